import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createHistory, spawnWorker, waitFor } from '@herald/testkit'
import { expect, it } from 'vitest'
import { createSqliteTransport } from '../src/index.js'

const publisherWorker = fileURLToPath(new URL('./fixtures/publisher-worker.ts', import.meta.url))

it('sqlite-multiprocess-writers: 4 publisher processes x 2,500 messages on one file while a consumer polls, none skipped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-writers-'))
  const path = join(dir, 'herald.db')
  const consumer = createSqliteTransport({ path, pollIntervalMs: 5 })
  try {
    const history = createHistory()
    await consumer.subscribe({ group: 'g', patterns: ['gap.t'], maxInFlight: 50 }, async (e) => {
      history.delivered(e.id)
      history.completed(e.id)
    })
    const writers = Array.from({ length: 4 }, () =>
      spawnWorker(publisherWorker, { path, topic: 'gap.t', count: 2_500 }, (line) => {
        const { ok } = JSON.parse(line) as { ok: string }
        history.attempted(ok)
        history.ok(ok)
      }),
    )
    const exits = await Promise.all(writers.map((w) => w.exited))
    expect(exits.map((e) => e.code)).toEqual([0, 0, 0, 0])
    expect(history.counts.ok).toBe(10_000)
    await waitFor(() => history.check().lost.length === 0, history.onChange, { timeoutMs: 60_000 })
    const check = history.check()
    console.log(`[sqlite] sqlite-multiprocess-writers: ${history.summary()}`)
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
  } finally {
    await consumer.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
