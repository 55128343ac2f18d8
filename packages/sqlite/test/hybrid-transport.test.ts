import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createHybridTransport, createInMemoryTransport, type Envelope, uuidV7 } from '@herald/core'
import { describeTransport, pollUntil } from '@herald/testkit'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { createSqliteTransport } from '../src/index.js'

const encoder = new TextEncoder()
const envelope = (type: string): Envelope => ({ id: uuidV7(), headers: { type }, body: encoder.encode('{}') })

// The hybrid bus as services run it: `local.#` in process, everything else durable. The suite's topics are not
// local, so it proves the remote half through the hybrid; the cases below prove the split.
describeTransport(
  'hybrid (in-memory + sqlite)',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-hybrid-'))
    const path = join(dir, 'herald.db')
    return {
      create: async () =>
        createHybridTransport({
          local: createInMemoryTransport(),
          remote: createSqliteTransport({ path, pollIntervalMs: 20 }),
          localOnly: ['local.#'],
        }),
      injectRaw: async (group, topic, e) => {
        const db = new Database(path)
        db.prepare(
          `INSERT INTO herald_queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        ).run(group, e.id, topic, JSON.stringify(e.headers), Buffer.from(e.body), Date.now(), Date.now())
        db.close()
      },
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    }
  },
  { persistent: true },
)

describe('hybrid transport: the split', () => {
  const dirs: string[] = []
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
  })
  const files = () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-hybrid-'))
    dirs.push(dir)
    return { local: join(dir, 'local.db'), remote: join(dir, 'remote.db') }
  }

  it('a local topic never reaches the remote transport; one group with one handler gets both kinds', async () => {
    const remote = createSqliteTransport({ path: files().remote, pollIntervalMs: 20 })
    const hybrid = createHybridTransport({ local: createInMemoryTransport(), remote, localOnly: ['cache.*'] })
    // A spy straight on the remote transport, bound to everything.
    const seenRemotely: string[] = []
    const spy = await remote.subscribe({ group: 'spy', patterns: ['#'] }, async (_e, d) => {
      seenRemotely.push(d.topic)
    })
    const handled: string[] = []
    const sub = await hybrid.subscribe({ group: 'both', patterns: ['#'] }, async (_e, d) => {
      handled.push(d.topic)
    })
    await hybrid.publish('cache.invalidated', [envelope('cache.invalidated')])
    await hybrid.publish('order.created', [envelope('order.created')])
    await hybrid.publish('cache.warmed', [envelope('cache.warmed')], { mandatory: true })
    await pollUntil(async () => handled.length === 3 && seenRemotely.length === 1)
    expect(handled.sort()).toEqual(['cache.invalidated', 'cache.warmed', 'order.created'])
    expect(seenRemotely).toEqual(['order.created'])
    const groups = await hybrid.listGroups()
    expect(groups.find((g) => g.group === 'both')?.patterns).toEqual(['#'])
    await sub.close()
    await spy.close()
    await hybrid.close()
  })

  it('literal patterns subscribe only the half they can match', async () => {
    const remote = createSqliteTransport({ path: files().remote, pollIntervalMs: 20 })
    const hybrid = createHybridTransport({ local: createInMemoryTransport(), remote, localOnly: ['cache.*'] })
    const sub = await hybrid.subscribe({ group: 'cache-only', patterns: ['cache.invalidated'] }, async () => {})
    expect((await remote.listGroups()).map((g) => g.group)).not.toContain('cache-only')
    // A group on both halves gives each only the patterns it can match: the remote never hears of a local topic.
    const mixed = await hybrid.subscribe(
      { group: 'mixed', patterns: ['cache.invalidated', 'cache.*', 'order.created', 'audit.#'] },
      async () => {},
    )
    expect((await remote.listGroups()).find((g) => g.group === 'mixed')?.patterns).toEqual(['audit.#', 'order.created'])
    await mixed.close()
    await sub.close()
    await hybrid.close()
  })

  it('across a restart: durable halves keep what was published to each, and each goes to its own group', async () => {
    const paths = files()
    const open = () =>
      createHybridTransport({
        local: createSqliteTransport({ path: paths.local, pollIntervalMs: 20 }),
        remote: createSqliteTransport({ path: paths.remote, pollIntervalMs: 20 }),
        localOnly: ['audit.#'],
      })
    const first = open()
    await first.declareGroup('g', ['#'])
    const sent = [envelope('audit.login'), envelope('order.created'), envelope('audit.logout')]
    await first.publish('audit.login', [sent[0]!])
    await first.publish('order.created', [sent[1]!])
    const scheduledAt = Date.now() + 300
    await first.schedule('audit.logout', [sent[2]!], scheduledAt)
    await first.close()
    // Each half's file holds its own topics only.
    const topicsIn = (path: string) => {
      const db = new Database(path, { readonly: true })
      const rows = db.prepare('SELECT topic FROM herald_queue ORDER BY topic').all() as { topic: string }[]
      db.close()
      return rows.map((r) => r.topic)
    }
    expect(topicsIn(paths.remote)).toEqual(['order.created'])
    expect(topicsIn(paths.local)).toEqual(['audit.login', 'audit.logout'])

    const second = open()
    const got = new Map<string, number>()
    const sub = await second.subscribe({ group: 'g', patterns: ['#'] }, async (e) => {
      got.set(e.id, Date.now())
    })
    await pollUntil(async () => got.size === 3)
    expect([...got.keys()].sort()).toEqual(sent.map((e) => e.id).sort())
    expect(got.get(sent[2]!.id)).toBeGreaterThanOrEqual(scheduledAt)
    await sub.close()
    await second.close()
  })
})
