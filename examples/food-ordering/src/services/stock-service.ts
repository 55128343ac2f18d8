import type { Bus } from '@herald/core'
import type { ServiceState } from '@herald/sqlite'
import { ReleaseStock, ReserveStock, StockReleased } from '../contracts.js'
import type { Dish } from '../menu.js'
import type { CheckResult, ItemWithQuantity, ReserveResult, StockApi, StockItem } from '../stock-api.js'

export const stockSchema = `CREATE TABLE IF NOT EXISTS items (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, price_cents INTEGER NOT NULL,
  available INTEGER NOT NULL CHECK (available >= 0));
CREATE TABLE IF NOT EXISTS reservations (
  order_id TEXT PRIMARY KEY, items TEXT NOT NULL, total_cents INTEGER NOT NULL,
  status TEXT NOT NULL, -- reserved | released
  created_at INTEGER NOT NULL, released_at INTEGER)`

interface ItemRow {
  id: string
  name: string
  price_cents: number
  available: number
}
interface ReservationRow {
  order_id: string
  items: string
  total_cents: number
  status: 'reserved' | 'released'
}

const toItem = (row: ItemRow): StockItem => ({
  id: row.id,
  name: row.name,
  priceCents: row.price_cents,
  available: row.available,
})

/** One line per dish, quantities of repeated dishes added up, so a dish is checked against its whole demand. */
function merge(items: readonly ItemWithQuantity[]): ItemWithQuantity[] {
  const totals = new Map<string, number>()
  for (const { id, quantity } of items) totals.set(id, (totals.get(id) ?? 0) + quantity)
  return [...totals].map(([id, quantity]) => ({ id, quantity }))
}

class Refused extends Error {}

/**
 * The stock: items with what is left of each, and a reservation per order. A reservation takes all of an order's
 * items or none, in one transaction whose every decrement is conditional (`available >= quantity`), so two
 * orders racing for the last units can never both get them, whichever process or connection they come through.
 * (The read-then-write of "read the count, subtract, write it back" is the race that oversells.)
 */
export function createStock(state: ServiceState, options: { readonly menu: readonly Dish[] }): StockApi {
  const { db } = state
  const seed = db.prepare(
    'INSERT OR IGNORE INTO items (id, name, price_cents, available) VALUES (@id, @name, @priceCents, @stock)',
  )
  db.transaction(() => {
    for (const dish of options.menu) seed.run(dish)
  })()
  const all = db.prepare<[], ItemRow>('SELECT * FROM items ORDER BY id')
  const one = db.prepare<[string], ItemRow>('SELECT * FROM items WHERE id = ?')
  const take = db.prepare<[number, string, number]>(
    'UPDATE items SET available = available - ? WHERE id = ? AND available >= ?',
  )
  const reservation = db.prepare<[string], ReservationRow>('SELECT * FROM reservations WHERE order_id = ?')
  const insertReservation = db.prepare<[string, string, number, number]>(
    "INSERT INTO reservations (order_id, items, total_cents, status, created_at) VALUES (?, ?, ?, 'reserved', ?)",
  )

  function check(items: readonly ItemWithQuantity[]): CheckResult {
    const found: StockItem[] = []
    for (const { id, quantity } of merge(items)) {
      const row = one.get(id)
      if (row === undefined) return { inStock: false, items: found, reason: `unknown_item: ${id}` }
      found.push(toItem(row))
      if (row.available < quantity)
        return {
          inStock: false,
          items: found,
          reason: `out_of_stock: ${id} (${row.available} left, ${quantity} asked)`,
        }
    }
    return { inStock: true, items: found, reason: '' }
  }

  const reserve = db.transaction((orderId: string, items: readonly ItemWithQuantity[]): ReserveResult => {
    const existing = reservation.get(orderId)
    // Asked again (a retry after a lost answer): the same answer.
    if (existing !== undefined)
      return existing.status === 'reserved'
        ? { reserved: true, totalCents: existing.total_cents, reason: '' }
        : { reserved: false, totalCents: 0, reason: 'order_released' }
    const lines = merge(items)
    let totalCents = 0
    for (const { id, quantity } of lines) {
      const row = one.get(id)
      if (row === undefined) throw new Refused(`unknown_item: ${id}`)
      if (take.run(quantity, id, quantity).changes === 0) {
        throw new Refused(`out_of_stock: ${id} (${row.available} left, ${quantity} asked)`)
      }
      totalCents += row.price_cents * quantity
    }
    insertReservation.run(orderId, JSON.stringify(lines), totalCents, Date.now())
    return { reserved: true, totalCents, reason: '' }
  })

  return {
    async getItems(ids) {
      const rows = ids.length === 0 ? all.all() : ids.flatMap((id) => one.get(id) ?? [])
      return rows.map(toItem)
    },
    async checkIfItemInStock(items) {
      return check(items)
    },
    async reserveItems(orderId, items) {
      if (orderId === '' || items.length === 0 || items.some((i) => i.quantity <= 0))
        return { reserved: false, totalCents: 0, reason: 'invalid_request: an order id and positive quantities' }
      try {
        // IMMEDIATE: the write lock is taken before the first read, so another process's reservation waits.
        return reserve.immediate(orderId, items)
      } catch (err) {
        if (err instanceof Refused) return { reserved: false, totalCents: 0, reason: err.message }
        throw err
      }
    },
  }
}

/**
 * The stock service on the bus: answers `stock.reserve` requests, and puts an order's reserved stock back when its
 * saga compensates (once per order, however often it is asked).
 */
export function registerStockService(bus: Bus, state: ServiceState, stock: StockApi): void {
  const { db } = state
  const group = bus.group('stock')
  group.on(ReserveStock, (message) => stock.reserveItems(message.data.orderId, message.data.items))
  const reservation = db.prepare<[string], ReservationRow>('SELECT * FROM reservations WHERE order_id = ?')
  const release = db.prepare<[number, string]>(
    "UPDATE reservations SET status = 'released', released_at = ? WHERE order_id = ? AND status = 'reserved'",
  )
  const tombstone = db.prepare<[string, number, number]>(
    "INSERT OR IGNORE INTO reservations (order_id, items, total_cents, status, created_at, released_at) VALUES (?, '[]', 0, 'released', ?, ?)",
  )
  const putBack = db.prepare<[number, string]>('UPDATE items SET available = available + ? WHERE id = ?')

  group.on(ReleaseStock, async (message, context) => {
    const { orderId } = message.data
    await state.apply(`${context.group}/${message.id}`, () => ({
      write: () => {
        const row = reservation.get(orderId)
        if (row === undefined) {
          // Released before it was reserved: a late ReserveItems for this order is refused.
          tombstone.run(orderId, Date.now(), Date.now())
          return
        }
        if (release.run(Date.now(), orderId).changes === 0) return
        for (const { id, quantity } of JSON.parse(row.items) as ItemWithQuantity[]) putBack.run(quantity, id)
      },
      send: [context.prepare(StockReleased, { orderId })],
    }))
  })
}

/** What the stock holds now: per dish, what is left and what active reservations hold. */
export function stockLevels(state: Pick<ServiceState, 'db'>): Record<string, { available: number; reserved: number }> {
  const levels: Record<string, { available: number; reserved: number }> = {}
  for (const row of state.db.prepare<[], ItemRow>('SELECT * FROM items').all())
    levels[row.id] = { available: row.available, reserved: 0 }
  const active = state.db.prepare<[], ReservationRow>("SELECT * FROM reservations WHERE status = 'reserved'").all()
  for (const row of active)
    for (const { id, quantity } of JSON.parse(row.items) as ItemWithQuantity[]) {
      const level = levels[id]
      if (level !== undefined) level.reserved += quantity
    }
  return levels
}
