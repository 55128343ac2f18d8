import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describeTransport } from '@herald/testkit'
import Database from 'better-sqlite3'
import { createSqliteTransport } from '../src/index.js'

describeTransport(
  'sqlite',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-sqlite-'))
    const path = join(dir, 'herald.db')
    return {
      create: async () => createSqliteTransport({ path, pollIntervalMs: 20 }),
      // Poison goes in with the raw client, bypassing every check Herald's publisher makes.
      injectRaw: async (group, topic, envelope) => {
        const db = new Database(path)
        db.prepare(
          `INSERT INTO herald_queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          group,
          envelope.id,
          topic,
          JSON.stringify(envelope.headers),
          Buffer.from(envelope.body),
          Date.now(),
          Date.now(),
        )
        db.close()
      },
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    }
  },
  { persistent: true },
)
