import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type Bus,
  createBus,
  createInMemoryTransport,
  defineCommand,
  defineEvent,
  type MessageContract,
  startOutboxRelay,
} from '@herald/core'
import { defineSaga, message, registerSagas } from '@herald/saga'
import { createSqliteSagaStore } from '@herald/saga/sqlite'
import { createSqliteOutbox } from '@herald/sqlite'
import Database from 'better-sqlite3'
import { z } from 'zod'
import type { BenchSide } from '../measure.js'

const orders = 1_000
/** Messages each order's saga handles: the start and three replies. */
const stepsEach = 4
const window = 100

const order = z.object({ orderId: z.string() })
const byOrder = (d: { orderId: string }) => d.orderId
const OrderPlaced = defineEvent('order.placed', { schema: order, key: byOrder })
const ReserveStock = defineCommand('stock.reserve', { schema: order, key: byOrder })
const StockReserved = defineEvent('stock.reserved', { schema: order, key: byOrder })
const ChargePayment = defineCommand('payment.charge', { schema: order, key: byOrder })
const PaymentCharged = defineEvent('payment.charged', { schema: order, key: byOrder })
const StartCooking = defineCommand('kitchen.cook', { schema: order, key: byOrder })
const Cooked = defineEvent('kitchen.cooked', { schema: order, key: byOrder })
const OrderDone = defineEvent('order.done', { schema: order, key: byOrder })

/**
 * The other services, the same on both sides: each command is answered at once with the event the flow waits
 * for, and a watcher counts the orders done. Orders go out `window` at a time; the rate is saga steps per second
 * from the first order placed to the last order done.
 */
async function run(bus: Bus, started: () => Promise<void>): Promise<number> {
  let done = 0
  let all!: () => void
  const finished = new Promise<void>((resolve) => {
    all = resolve
  })
  bus
    .group('services', { maxInFlight: 100 })
    .on(ReserveStock, async (m, context) => {
      await context.publish(StockReserved, m.data)
    })
    .on(ChargePayment, async (m, context) => {
      await context.publish(PaymentCharged, m.data)
    })
    .on(StartCooking, async (m, context) => {
      await context.publish(Cooked, m.data)
    })
  bus.group('watcher').on(OrderDone, async () => {
    if (++done === orders) all()
  })
  await bus.start()
  await started()
  const begin = performance.now()
  for (let i = 0; i < orders; i += window)
    await Promise.all(Array.from({ length: window }, (_, n) => bus.publish(OrderPlaced, { orderId: `o${i + n}` })))
  await finished
  return (orders * stepsEach) / ((performance.now() - begin) / 1_000)
}

/** Herald: a three-step saga (zod state, each step one send) on `@herald/saga/sqlite`, its relay into the bus. */
export const heraldSqliteSaga: BenchSide = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-saga-'))
  const transport = createInMemoryTransport()
  const bus = createBus({ transport, service: 'bench' })
  const store = createSqliteSagaStore({ path: join(dir, 'app.db') })
  const saga = defineSaga('order', {
    state: z.object({ orderId: z.string(), step: z.enum(['reserving', 'charging', 'cooking']) }),
  })
    .startedBy(OrderPlaced, byOrder, (state, { data }) =>
      state !== undefined ? {} : { state: { ...data, step: 'reserving' }, messages: [message(ReserveStock, data)] },
    )
    .on(StockReserved, byOrder, (state, { data }) =>
      state.step !== 'reserving'
        ? {}
        : { state: { ...state, step: 'charging' }, messages: [message(ChargePayment, data)] },
    )
    .on(PaymentCharged, byOrder, (state, { data }) =>
      state.step !== 'charging'
        ? {}
        : { state: { ...state, step: 'cooking' }, messages: [message(StartCooking, data)] },
    )
    .on(Cooked, byOrder, (state, { data }) =>
      state.step !== 'cooking' ? {} : { complete: true, messages: [message(OrderDone, data)] },
    )
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
 * The baseline: the same flow by hand on better-sqlite3. Each handler checks an inbox table, reads and writes the
 * order's step and stages its one message in Herald's SQLite outbox, in one transaction, then wakes the same
 * relay; no version check, no history, no state validation, no timeouts or compensations.
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
  db.exec(`CREATE TABLE orders (id TEXT PRIMARY KEY, step TEXT NOT NULL);
    CREATE TABLE inbox (group_name TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (group_name, id))`)
  const seen = db.prepare<[string, string]>('INSERT OR IGNORE INTO inbox (group_name, id) VALUES (?, ?)')
  const insert = db.prepare<[string, string]>('INSERT OR IGNORE INTO orders (id, step) VALUES (?, ?)')
  const read = db.prepare<[string], { step: string }>('SELECT step FROM orders WHERE id = ?')
  const move = db.prepare<[string, string]>('UPDATE orders SET step = ? WHERE id = ?')
  const relay = startOutboxRelay({ store: outbox, transport, pollIntervalMs: 10 })
  const step =
    (from: string | undefined, to: string, next: MessageContract) =>
    async (m: { id: string; data: { orderId: string } }, context: { prepare: Bus['prepare'] }) => {
      if (from !== undefined && read.get(m.data.orderId)?.step !== from) return
      const send = await context.prepare(next, m.data)
      db.transaction(() => {
        if (seen.run('order', m.id).changes === 0) return
        if (from === undefined) insert.run(m.data.orderId, to)
        else move.run(to, m.data.orderId)
        outbox.stage(db, [send])
      }).immediate()
      relay.notify()
    }
  bus
    .group('order')
    .on(OrderPlaced, step(undefined, 'reserving', ReserveStock))
    .on(StockReserved, step('reserving', 'charging', ChargePayment))
    .on(PaymentCharged, step('charging', 'cooking', StartCooking))
    .on(Cooked, step('cooking', 'done', OrderDone))
  const perSecond = await run(bus, async () => {})
  await bus.stop()
  await relay.stop()
  await outbox.close()
  db.close()
  await transport.close()
  rmSync(dir, { recursive: true, force: true })
  return { perSecond }
}
