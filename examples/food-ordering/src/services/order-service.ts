import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import swagger from '@fastify/swagger'
import { type Bus, RequestTimeoutError } from '@herald/core'
import { traceCall, traceHeaders } from '@herald/observability'
import type { ServiceState } from '@herald/sqlite'
import Fastify, { type FastifyInstance } from 'fastify'
import { OrderCreated, OrderStatusChanged, PaymentLinkCreated, ReleaseStock, ReserveStock } from '../contracts.js'
import { type ItemWithQuantity, type StockApi, StockUnavailableError } from '../stock-api.js'

export const orderSchema = `CREATE TABLE IF NOT EXISTS orders (
  id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, items TEXT NOT NULL, total_cents INTEGER NOT NULL,
  status TEXT NOT NULL, -- rejected | pending | awaiting_payment | paid | ready | cancelled
  reason TEXT, payment_link TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, created_at)`

export type OrderStatus = 'rejected' | 'pending' | 'awaiting_payment' | 'paid' | 'ready' | 'cancelled'

/** How far along each status is: the read model only moves forward, however late or duplicated an update comes. */
const rank: Record<OrderStatus, number> = {
  rejected: 3,
  pending: 0,
  awaiting_payment: 1,
  paid: 2,
  ready: 3,
  cancelled: 3,
}

interface OrderRow {
  id: string
  customer_id: string
  items: string
  total_cents: number
  status: OrderStatus
  reason: string | null
  payment_link: string | null
  created_at: number
  updated_at: number
}

export interface Order {
  readonly id: string
  readonly customerId: string
  readonly items: readonly ItemWithQuantity[]
  readonly totalCents: number
  readonly status: OrderStatus
  readonly reason?: string
  readonly paymentLink?: string
  readonly createdAt: string
  readonly updatedAt: string
}

const toOrder = (row: OrderRow): Order => ({
  id: row.id,
  customerId: row.customer_id,
  items: JSON.parse(row.items) as ItemWithQuantity[],
  totalCents: row.total_cents,
  status: row.status,
  ...(row.reason === null ? {} : { reason: row.reason }),
  ...(row.payment_link === null ? {} : { paymentLink: row.payment_link }),
  createdAt: new Date(row.created_at).toISOString(),
  updatedAt: new Date(row.updated_at).toISOString(),
})

export interface OrderServiceOptions {
  /** Stock queries (the menu, "is this in stock?"), over gRPC. */
  readonly stock: StockApi
  /** How long to wait for the stock service's reservation. Default 5 s. */
  readonly reserveTimeoutMs?: number
}

// JSON Schemas of the HTTP API: fastify validates with them and @fastify/swagger writes the OpenAPI document.
const itemSchema = {
  type: 'object',
  required: ['id', 'quantity'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 64 },
    quantity: { type: 'integer', minimum: 1, maximum: 50 },
  },
} as const
const orderJson = {
  type: 'object',
  required: ['id', 'customerId', 'items', 'totalCents', 'status', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'string' },
    customerId: { type: 'string' },
    items: { type: 'array', items: itemSchema },
    totalCents: { type: 'integer' },
    status: { type: 'string', enum: Object.keys(rank) },
    reason: { type: 'string', description: 'Why the order was rejected or cancelled' },
    paymentLink: { type: 'string', description: 'Where to pay, once the payment service has opened a checkout' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
} as const
const errorJson = {
  type: 'object',
  required: ['error'],
  properties: { error: { type: 'string' }, order: orderJson },
} as const
const customerParam = { customerId: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_-]+$' } }

const webDir = new URL('../../web/', import.meta.url)
const page = readFileSync(new URL('index.html', webDir), 'utf8')
const script = readFileSync(new URL('app.js', webDir), 'utf8')
// The page loads its script from here and talks to this origin only; the checkout is a link away.
const pageSecurity = {
  'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
}

/**
 * The order service: takes orders over HTTP (the stock reserved first, then `order.created` through the outbox),
 * keeps each order's status from the order saga's `order.status_changed`, and serves the web page the customer
 * orders and watches from. The caller listens.
 */
export async function registerOrderService(
  bus: Bus,
  state: ServiceState,
  options: OrderServiceOptions,
): Promise<FastifyInstance> {
  const { db } = state
  const byId = db.prepare<[string, string], OrderRow>('SELECT * FROM orders WHERE id = ? AND customer_id = ?')
  const insert = db.prepare(
    `INSERT INTO orders (id, customer_id, items, total_cents, status, reason, created_at, updated_at)
     VALUES (@id, @customerId, @items, @totalCents, @status, @reason, @now, @now)`,
  )
  const current = db.prepare<[string], Pick<OrderRow, 'status'>>('SELECT status FROM orders WHERE id = ?')
  const setStatus = db.prepare<[OrderStatus, string | null, number, string]>(
    'UPDATE orders SET status = ?, reason = ?, updated_at = ? WHERE id = ?',
  )
  const setLink = db.prepare<[string, number, string]>(
    'UPDATE orders SET payment_link = ?, updated_at = ? WHERE id = ? AND payment_link IS NULL',
  )
  const reserveTimeoutMs = options.reserveTimeoutMs ?? 5_000

  const readModel = bus.group('order')
  readModel.on(OrderStatusChanged, async (message) => {
    const { orderId, status, reason } = message.data
    const row = current.get(orderId)
    if (row !== undefined && rank[status] > rank[row.status]) setStatus.run(status, reason ?? null, Date.now(), orderId)
  })
  readModel.on(PaymentLinkCreated, async (message) => {
    setLink.run(message.data.checkoutUrl, Date.now(), message.data.orderId)
  })

  async function record(order: {
    id: string
    customerId: string
    items: readonly ItemWithQuantity[]
    totalCents: number
    status: 'pending' | 'rejected'
    reason?: string
    send?: ReturnType<Bus['prepare']>[]
  }): Promise<Order> {
    await state.apply(`create/${order.id}`, () => ({
      write: () =>
        insert.run({
          id: order.id,
          customerId: order.customerId,
          items: JSON.stringify(order.items),
          totalCents: order.totalCents,
          status: order.status,
          reason: order.reason ?? null,
          now: Date.now(),
        }),
      send: order.send ?? [],
    }))
    return toOrder(byId.get(order.id, order.customerId) as OrderRow)
  }

  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 })
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Food ordering: order service',
        version: '1.0.0',
        description:
          'Create an order, then poll it: pending → awaiting_payment (pay at paymentLink) → paid → ready, or rejected / cancelled with a reason.',
      },
    },
  })

  app.get('/', { schema: { hide: true } }, (_request, reply) =>
    reply.headers(pageSecurity).type('text/html; charset=utf-8').send(page),
  )
  app.get('/app.js', { schema: { hide: true } }, (_request, reply) =>
    reply.headers(pageSecurity).type('text/javascript; charset=utf-8').send(script),
  )
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger())

  app.get(
    '/menu',
    {
      schema: {
        summary: 'Every dish, with its price and how many can still be ordered (from the stock service)',
        response: {
          200: {
            type: 'object',
            properties: {
              items: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    id: { type: 'string' },
                    name: { type: 'string' },
                    priceCents: { type: 'integer' },
                    available: { type: 'integer' },
                  },
                },
              },
            },
          },
          503: errorJson,
        },
      },
    },
    async (_request, reply) => {
      try {
        return { items: await options.stock.getItems([]) }
      } catch (err) {
        if (err instanceof StockUnavailableError) return reply.code(503).send({ error: err.message })
        throw err
      }
    },
  )

  app.post<{ Params: { customerId: string }; Body: { items: ItemWithQuantity[] } }>(
    '/customer/:customerId/orders',
    {
      schema: {
        summary: 'Place an order: its stock is reserved, or it is rejected with the reason',
        params: { type: 'object', properties: customerParam, required: ['customerId'] },
        body: {
          type: 'object',
          required: ['items'],
          additionalProperties: false,
          properties: { items: { type: 'array', minItems: 1, maxItems: 20, items: itemSchema } },
        },
        response: { 201: orderJson, 409: errorJson, 503: errorJson },
      },
    },
    (request, reply) =>
      // One trace per order from here: the gRPC hint, the reservation request, order.created and what follows it.
      traceCall('POST /customer/{customerId}/orders', request.headers, async () => {
        const { customerId } = request.params
        const { items } = request.body
        const id = randomUUID()
        const rejected = async (reason: string, code: number) =>
          reply.code(code).send({
            error: reason,
            order: await record({ id, customerId, items, totalCents: 0, status: 'rejected', reason }),
          })
        try {
          // Is this in stock? Only a hint, asked over gRPC: it turns most shortfalls away before anything is held.
          const hint = await options.stock.checkIfItemInStock(items)
          if (!hint.inStock) return await rejected(hint.reason, 409)
        } catch (err) {
          if (err instanceof StockUnavailableError) return reply.code(503).send({ error: err.message })
          throw err
        }
        let answer: { reserved: boolean; totalCents: number; reason: string }
        try {
          answer = await bus.request(
            ReserveStock,
            { orderId: id, items },
            { timeoutMs: reserveTimeoutMs, correlationId: id },
          )
        } catch (err) {
          if (!(err instanceof RequestTimeoutError)) throw err
          // The reservation may still happen after we stopped waiting: undo it (a no-op if it never does).
          await record({
            id,
            customerId,
            items,
            totalCents: 0,
            status: 'rejected',
            reason: 'stock_timeout',
            send: [bus.prepare(ReleaseStock, { orderId: id }, { correlationId: id, headers: traceHeaders() })],
          })
          return reply.code(503).send({ error: `the stock service did not answer within ${reserveTimeoutMs} ms` })
        }
        if (!answer.reserved) return await rejected(answer.reason, 409)
        const order = await record({
          id,
          customerId,
          items,
          totalCents: answer.totalCents,
          status: 'pending',
          send: [
            bus.prepare(
              OrderCreated,
              { orderId: id, customerId, items, totalCents: answer.totalCents },
              { correlationId: id, headers: traceHeaders() },
            ),
          ],
        })
        return reply.code(201).send(order)
      }),
  )

  app.get<{ Params: { customerId: string; orderId: string } }>(
    '/customer/:customerId/orders/:orderId',
    {
      schema: {
        summary: "One of the customer's orders, with its status; poll it until ready or cancelled",
        params: {
          type: 'object',
          required: ['customerId', 'orderId'],
          properties: { ...customerParam, orderId: { type: 'string', maxLength: 64 } },
        },
        response: { 200: orderJson, 404: errorJson },
      },
    },
    async (request, reply) => {
      const row = byId.get(request.params.orderId, request.params.customerId)
      if (row === undefined) return reply.code(404).send({ error: 'no such order for this customer' })
      return toOrder(row)
    },
  )
  return app
}

/** How many orders are in each status. */
export function countOrders(state: ServiceState): Record<OrderStatus, number> {
  const counts: Record<OrderStatus, number> = {
    rejected: 0,
    pending: 0,
    awaiting_payment: 0,
    paid: 0,
    ready: 0,
    cancelled: 0,
  }
  const rows = state.db
    .prepare<[], { status: OrderStatus; n: number }>('SELECT status, COUNT(*) AS n FROM orders GROUP BY status')
    .all()
  for (const { status, n } of rows) counts[status] = n
  return counts
}
