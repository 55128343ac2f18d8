import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, createBus, createInMemoryTransport, defineEvent, startOutboxRelay } from '@herald/core'
import { defineSaga, message, registerSagas } from '@herald/saga'
import { createSqliteSagaStore } from '@herald/saga/sqlite'
import { createSqliteOutbox } from '@herald/sqlite'
import Database from 'better-sqlite3'
import { z } from 'zod'
import type { BenchSide } from '../measure.js'

const instances = 200
const stepsEach = 25
const steps = instances * stepsEach

const byId = (d: { id: string }) => d.id
const Opened = defineEvent('tally.opened', { schema: z.object({ id: z.string() }), key: byId })
const Added = defineEvent('tally.added', { schema: z.object({ id: z.string(), n: z.number().int() }), key: byId })
const Counted = defineEvent('tally.counted', {
  schema: z.object({ id: z.string(), count: z.number().int() }),
  key: byId,
})

/**
 * Opens every instance, then sends every step at once; the rate is steps per second from the first step sent to
 * the last step's `tally.counted` relayed out of the outbox and handled by a watcher.
 */
async function run(bus: Bus, started: () => Promise<void>): Promise<number> {
  let counted = 0
  let done!: () => void
  const all = new Promise<void>((resolve) => {
    done = resolve
  })
  bus.group('watcher').on(Counted, async () => {
    if (++counted === steps) done()
  })
  await bus.start()
  await started()
  await Promise.all(Array.from({ length: instances }, (_, i) => bus.publish(Opened, { id: `t${i}` })))
  const begin = performance.now()
  for (let n = 0; n < stepsEach; n++)
    await Promise.all(Array.from({ length: instances }, (_, i) => bus.publish(Added, { id: `t${i}`, n })))
  await all
  return steps / ((performance.now() - begin) / 1_000)
}

/** Herald: a saga (zod state, a step that sends) on `@herald/saga/sqlite`, its relay into the bus. */
export const heraldSqliteSaga: BenchSide = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-saga-'))
  const transport = createInMemoryTransport()
  const bus = createBus({ transport, service: 'bench' })
  const store = createSqliteSagaStore({ path: join(dir, 'app.db') })
  const saga = defineSaga('tally', { state: z.object({ count: z.number().int() }) })
    .startedBy(Opened, byId, (state) => (state !== undefined ? {} : { state: { count: 0 } }))
    .on(Added, byId, (state, { data }) => ({
      state: { count: state.count + 1 },
      messages: [message(Counted, { id: data.id, count: state.count + 1 })],
    }))
  const host = registerSagas(bus, { store, sagas: [saga], relay: { pollIntervalMs: 10 } })
  const perSecond = await run(bus, () => host.start())
  await bus.stop()
  await host.stop()
  await store.close()
  await transport.close()
  rmSync(dir, { recursive: true, force: true })
  return { perSecond }
}

/**
 * The baseline: the same flow by hand on better-sqlite3. Each handler checks an inbox table, reads and writes a
 * state row and stages its message in Herald's SQLite outbox, in one transaction; no versions, no history, no
 * state validation, no timeouts.
 */
export const rawSqliteSaga: BenchSide = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-saga-raw-'))
  const path = join(dir, 'app.db')
  const transport = createInMemoryTransport()
  const bus = createBus({ transport, service: 'bench' })
  const outbox = createSqliteOutbox({ path })
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.exec(`CREATE TABLE tally (key TEXT PRIMARY KEY, count INTEGER NOT NULL);
    CREATE TABLE inbox (group_name TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (group_name, id))`)
  const seen = db.prepare<[string, string]>('INSERT OR IGNORE INTO inbox (group_name, id) VALUES (?, ?)')
  const open = db.prepare<[string]>('INSERT OR IGNORE INTO tally (key, count) VALUES (?, 0)')
  const read = db.prepare<[string], { count: number }>('SELECT count FROM tally WHERE key = ?')
  const write = db.prepare<[number, string]>('UPDATE tally SET count = ? WHERE key = ?')
  const relay = startOutboxRelay({ store: outbox, transport, pollIntervalMs: 10 })
  bus
    .group('tally')
    .on(Opened, async (m) => {
      db.transaction(() => {
        if (seen.run('tally', m.id).changes === 1) open.run(m.data.id)
      }).immediate()
    })
    .on(Added, async (m, context) => {
      const count = (read.get(m.data.id)?.count ?? 0) + 1
      const counted = await context.prepare(Counted, { id: m.data.id, count })
      db.transaction(() => {
        if (seen.run('tally', m.id).changes === 0) return
        write.run(count, m.data.id)
        outbox.stage(db, [counted])
      }).immediate()
      relay.notify()
    })
  const perSecond = await run(bus, async () => {})
  await bus.stop()
  await relay.stop()
  await outbox.close()
  db.close()
  await transport.close()
  rmSync(dir, { recursive: true, force: true })
  return { perSecond }
}
