import type { Bus } from '@herald/core'
import type { ServiceState } from '@herald/sqlite'
import {
  CancelOrder,
  DeviceStarted,
  DeviceStopped,
  OrderCancelled,
  OrderCreated,
  OrderPaid,
  OrderRefunded,
  PayOrder,
  PlaceOrder,
  plans,
  RefundOrder,
  ReleaseDevice,
  UserCreated,
  UserUpdated,
} from '../contracts.js'

export const billingSchema = `CREATE TABLE IF NOT EXISTS customers (
  user_id TEXT PRIMARY KEY, username TEXT NOT NULL, email TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meters (
  device_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, started_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS charges (
  id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, user_id TEXT NOT NULL,
  seconds INTEGER NOT NULL, amount_cents INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, plan_id TEXT NOT NULL, amount_cents INTEGER NOT NULL,
  status TEXT NOT NULL, reason TEXT)`

/** Running time is charged by the started minute: ¥0.10 a minute. */
export const centsPerMinute = 10

interface OrderRow {
  id: string
  user_id: string
  plan_id: string
  amount_cents: number
  status: 'created' | 'paid' | 'cancelled' | 'refunded'
}

/**
 * The billing service: customers copied from user events, metering from `device.started` to `device.stopped`
 * (charged by running time), and plan orders: `order.created`, `order.paid`, `order.cancelled` and, for a paid
 * order that is cancelled, `order.refunded` (the design published only `order.paid`).
 */
export function registerBillingService(bus: Bus, state: ServiceState): void {
  const { db } = state
  const upsertCustomer = db.prepare(
    `INSERT INTO customers (user_id, username, email) VALUES (@userId, @username, @email)
     ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, email = excluded.email`,
  )
  const openMeter = db.prepare('INSERT OR IGNORE INTO meters (device_id, user_id, started_at) VALUES (?, ?, ?)')
  const meter = db.prepare<[string], { started_at: number }>('SELECT started_at FROM meters WHERE device_id = ?')
  const closeMeter = db.prepare<[string]>('DELETE FROM meters WHERE device_id = ?')
  const charge = db.prepare('INSERT INTO charges (device_id, user_id, seconds, amount_cents) VALUES (?, ?, ?, ?)')
  const order = db.prepare<[string], OrderRow>('SELECT * FROM orders WHERE id = ?')
  const insertOrder = db.prepare(
    `INSERT INTO orders (id, user_id, plan_id, amount_cents, status) VALUES (@orderId, @userId, @planId, @amountCents, 'created')`,
  )
  const setOrder = db.prepare<[string, string | null, string]>('UPDATE orders SET status = ?, reason = ? WHERE id = ?')
  const key = (id: string) => `billing-service/${id}`

  bus
    .group('billing-service')
    .on(UserCreated, (message) =>
      state.apply(key(message.id), () => ({ write: () => upsertCustomer.run(message.data) })),
    )
    .on(UserUpdated, (message) =>
      state.apply(key(message.id), () => ({ write: () => upsertCustomer.run(message.data) })),
    )
    .on(DeviceStarted, (message) =>
      state.apply(key(message.id), () => ({
        write: () => openMeter.run(message.data.deviceId, message.data.userId, message.data.at),
      })),
    )
    .on(DeviceStopped, (message) =>
      state.apply(key(message.id), () => {
        const open = meter.get(message.data.deviceId)
        if (open === undefined) return undefined
        const seconds = Math.max(0, Math.round((message.data.at - open.started_at) / 1_000))
        const minutes = Math.max(1, Math.ceil(seconds / 60))
        return {
          write: () => {
            closeMeter.run(message.data.deviceId)
            charge.run(message.data.deviceId, message.data.userId, seconds, minutes * centsPerMinute)
          },
        }
      }),
    )
    .on(PlaceOrder, (message, context) =>
      state.apply(key(message.id), () => {
        if (order.get(message.data.orderId) !== undefined) return undefined
        const created = { ...message.data, amountCents: plans[message.data.planId] }
        return { write: () => insertOrder.run(created), send: [context.prepare(OrderCreated, created)] }
      }),
    )
    .on(PayOrder, (message, context) =>
      state.apply(key(message.id), () => {
        const found = order.get(message.data.orderId)
        if (found?.status !== 'created') return undefined
        return {
          write: () => setOrder.run('paid', null, found.id),
          send: [
            context.prepare(OrderPaid, { orderId: found.id, userId: found.user_id, amountCents: found.amount_cents }),
          ],
        }
      }),
    )
    .on(CancelOrder, (message, context) =>
      state.apply(key(message.id), () => {
        const found = order.get(message.data.orderId)
        if (found === undefined || found.status === 'cancelled' || found.status === 'refunded') return undefined
        const ids = { orderId: found.id, userId: found.user_id }
        const send = [context.prepare(OrderCancelled, { ...ids, reason: message.data.reason })]
        // A paid order's phone goes back to the pool with the money.
        if (found.status === 'paid')
          send.push(
            context.prepare(OrderRefunded, { ...ids, amountCents: found.amount_cents }),
            context.prepare(ReleaseDevice, ids),
          )
        return {
          write: () => setOrder.run(found.status === 'paid' ? 'refunded' : 'cancelled', message.data.reason, found.id),
          send,
        }
      }),
    )
    // The purchase saga's undo: the device could not be allocated.
    .on(RefundOrder, (message, context) =>
      state.apply(key(message.id), () => {
        const found = order.get(message.data.orderId)
        if (found?.status !== 'paid') return undefined
        const ids = { orderId: found.id, userId: found.user_id }
        return {
          write: () => setOrder.run('refunded', message.data.reason, found.id),
          send: [
            context.prepare(OrderCancelled, { ...ids, reason: message.data.reason }),
            context.prepare(OrderRefunded, { ...ids, amountCents: found.amount_cents }),
          ],
        }
      }),
    )
    // The purchase saga cancels an order nobody paid.
    .on(OrderCancelled, (message) =>
      state.apply(key(message.id), () => {
        const found = order.get(message.data.orderId)
        if (found?.status !== 'created') return undefined
        return { write: () => setOrder.run('cancelled', message.data.reason, found.id) }
      }),
    )
}

export function billingTotals(state: ServiceState) {
  const orders = state.db
    .prepare<[], { status: string; n: number }>('SELECT status, count(*) AS n FROM orders GROUP BY status')
    .all()
  const charges = state.db
    .prepare<[], { n: number; cents: number | null }>('SELECT count(*) AS n, sum(amount_cents) AS cents FROM charges')
    .get()
  const customers = state.db.prepare<[], { user_id: string; username: string; email: string }>(
    'SELECT * FROM customers ORDER BY user_id',
  )
  return {
    orders: Object.fromEntries(orders.map((o) => [o.status, o.n])) as Record<string, number>,
    charges: charges?.n ?? 0,
    chargedCents: charges?.cents ?? 0,
    customers: customers.all(),
  }
}
