import { randomUUID } from 'node:crypto'
import type { Bus } from '@herald/core'
import { stripeWebhookRoute } from '@herald/example-kit'
import { traceCall, traceHeaders } from '@herald/observability'
import type { ServiceState } from '@herald/sqlite'
import Fastify, { type FastifyInstance } from 'fastify'
import type Stripe from 'stripe'
import { CancelPayment, OrderCreated, OrderPaid, PaymentCancelled, PaymentLinkCreated } from '../contracts.js'

export const paymentSchema = `CREATE TABLE IF NOT EXISTS payments (
  session_id TEXT PRIMARY KEY, order_id TEXT NOT NULL UNIQUE, items TEXT NOT NULL, amount_cents INTEGER NOT NULL,
  status TEXT NOT NULL, -- open | paid | cancelled | refunded
  correlation_id TEXT NOT NULL,
  trace TEXT NOT NULL, -- the order's trace context (W3C headers, JSON): its webhook continues that trace
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`

type PaymentStatus = 'open' | 'paid' | 'cancelled' | 'refunded'
interface PaymentRow {
  session_id: string
  order_id: string
  items: string
  amount_cents: number
  status: PaymentStatus
  correlation_id: string
  trace: string
}

/** Where customers pay. Whichever provider runs, the outcome comes back through the Stripe-signed webhook. */
export interface CheckoutProvider {
  readonly name: 'offline' | 'stripe'
  open(order: { orderId: string; amountCents: number }): Promise<{ sessionId: string; checkoutUrl: string }>
  /** Closes a checkout that was not paid, so it can no longer be. */
  close(sessionId: string): Promise<void>
  refund(sessionId: string, amountCents: number): Promise<void>
}

/** Stripe Checkout; each call carries an idempotency key, so a redelivered message repeats nothing. */
export function stripeCheckout(stripe: Stripe, urls: { returnUrl: string }): CheckoutProvider {
  return {
    name: 'stripe',
    async open({ orderId, amountCents }) {
      const session = await stripe.checkout.sessions.create(
        {
          mode: 'payment',
          line_items: [
            { quantity: 1, price_data: { currency: 'eur', unit_amount: amountCents, product_data: { name: 'Order' } } },
          ],
          client_reference_id: orderId,
          success_url: `${urls.returnUrl}?order=${orderId}`,
          cancel_url: `${urls.returnUrl}?order=${orderId}`,
        },
        { idempotencyKey: `order-${orderId}` },
      )
      if (session.url === null) throw new Error(`Stripe returned no checkout URL for order ${orderId}`)
      return { sessionId: session.id, checkoutUrl: session.url }
    },
    async close(sessionId) {
      await stripe.checkout.sessions.expire(sessionId, {}, { idempotencyKey: `expire-${sessionId}` })
    },
    async refund(sessionId) {
      const session = await stripe.checkout.sessions.retrieve(sessionId)
      if (typeof session.payment_intent !== 'string') return
      await stripe.refunds.create({ payment_intent: session.payment_intent }, { idempotencyKey: `refund-${sessionId}` })
    },
  }
}

/**
 * A stand-in for Stripe that needs no network: its checkout page is served by the payment service itself, and
 * paying there delivers a webhook signed exactly as Stripe signs them.
 */
export function offlineCheckout(publicUrl: () => string): CheckoutProvider {
  return {
    name: 'offline',
    async open() {
      const sessionId = `cs_offline_${randomUUID()}`
      return { sessionId, checkoutUrl: `${publicUrl()}/checkout/${sessionId}` }
    },
    async close() {},
    async refund() {},
  }
}

export interface PaymentServiceOptions {
  readonly provider: CheckoutProvider
  /** Verifies webhook signatures (and signs the offline checkout's). */
  readonly stripe: Stripe
  readonly webhookSecret: string
  /** Where the offline checkout sends the customer back to: the order page. */
  readonly returnUrl: () => string
}

/**
 * Thrown where a payment's status moved between the provider call made for the status read before it and the
 * commit (a webhook and a cancel racing): nothing was recorded, and `decided` reads the payment and decides again.
 */
class PaymentMoved extends Error {}

async function decided(work: () => Promise<void>): Promise<void> {
  for (;;) {
    try {
      return await work()
    } catch (err) {
      if (!(err instanceof PaymentMoved)) throw err
    }
  }
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c)

/**
 * Opens a checkout for each new order, turns Stripe's signed webhook into `order.paid` (broadcast: the order saga
 * and the kitchen both take it), and closes or refunds a checkout when the order's saga asks (`payment.cancel`).
 * A payment that lands after its order was cancelled is refunded at once. The caller listens.
 */
export function registerPaymentService(bus: Bus, state: ServiceState, options: PaymentServiceOptions): FastifyInstance {
  const { db } = state
  const { provider } = options
  const byOrder = db.prepare<[string], PaymentRow>('SELECT * FROM payments WHERE order_id = ?')
  const bySession = db.prepare<[string], PaymentRow>('SELECT * FROM payments WHERE session_id = ?')
  const insert = db.prepare(
    `INSERT INTO payments (session_id, order_id, items, amount_cents, status, correlation_id, trace, created_at,
       updated_at)
     VALUES (@sessionId, @orderId, @items, @amountCents, @status, @correlationId, @trace, @now, @now)`,
  )
  const move = db.prepare<[PaymentStatus, number, string, PaymentStatus]>(
    'UPDATE payments SET status = ?, updated_at = ? WHERE session_id = ? AND status = ?',
  )
  const group = bus.group('payment')

  group.on(OrderCreated, async (message, context) => {
    const { orderId, items, totalCents } = message.data
    if (byOrder.get(orderId) !== undefined) return
    const session = await provider.open({ orderId, amountCents: totalCents })
    await state.apply(`${context.group}/${message.id}`, () =>
      byOrder.get(orderId) !== undefined
        ? undefined
        : {
            write: () =>
              insert.run({
                ...session,
                orderId,
                items: JSON.stringify(items),
                amountCents: totalCents,
                status: 'open',
                correlationId: message.correlationId,
                trace: JSON.stringify(traceHeaders()),
                now: Date.now(),
              }),
            send: [context.prepare(PaymentLinkCreated, { orderId, ...session }, { headers: traceHeaders() })],
          },
    )
  })

  group.on(CancelPayment, async (message, context) => {
    const { orderId } = message.data
    await decided(async () => {
      const before = byOrder.get(orderId)
      // Provider calls first (idempotent), then the record, made only if the payment is still where it was.
      if (before?.status === 'open') await provider.close(before.session_id)
      if (before?.status === 'paid') await provider.refund(before.session_id, before.amount_cents)
      await state.apply(`${context.group}/${message.id}`, () => {
        const row = byOrder.get(orderId)
        if (row === undefined) {
          // Cancelled before its checkout opened: keep a record, so the late order.created opens none.
          return {
            write: () =>
              insert.run({
                sessionId: `none_${orderId}`,
                orderId,
                items: '[]',
                amountCents: 0,
                status: 'cancelled',
                correlationId: message.correlationId,
                trace: '{}',
                now: Date.now(),
              }),
            send: [context.prepare(PaymentCancelled, { orderId, refundedCents: 0 })],
          }
        }
        if (row.status !== before?.status) throw new PaymentMoved()
        if (row.status !== 'open' && row.status !== 'paid') return undefined
        const refunded = row.status === 'paid'
        return {
          write: () => move.run(refunded ? 'refunded' : 'cancelled', Date.now(), row.session_id, row.status),
          send: [context.prepare(PaymentCancelled, { orderId, refundedCents: refunded ? row.amount_cents : 0 })],
        }
      })
    })
  })

  const app = Fastify({ logger: false, bodyLimit: 256 * 1024 })
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) =>
    done(null, Object.fromEntries(new URLSearchParams(body as string))),
  )

  stripeWebhookRoute(app, {
    stripe: options.stripe,
    webhookSecret: options.webhookSecret,
    handle: async (event, reply) => {
      if (event.type !== 'checkout.session.completed') return reply.send({ ignored: event.type })
      const payment = bySession.get(event.data.object.id)
      // The webhook goes on in its order's trace: Stripe's request carries none of ours.
      const trace = payment === undefined ? {} : (JSON.parse(payment.trace) as Record<string, string>)
      await traceCall('POST /webhooks/stripe', trace, () => decided(() => settlePayment(event)))
      return reply.send({ received: event.id })
    },
  })

  async function settlePayment(event: Stripe.CheckoutSessionCompletedEvent) {
    const before = bySession.get(event.data.object.id)
    // Paid after the order was cancelled: the money goes back.
    if (before?.status === 'cancelled') await provider.refund(before.session_id, before.amount_cents)
    await state.apply(`webhook/${event.id}`, () => {
      const row = bySession.get(event.data.object.id)
      if (row?.status !== before?.status) throw new PaymentMoved()
      if (row === undefined || (row.status !== 'open' && row.status !== 'cancelled')) return undefined
      const flow = { correlationId: row.correlation_id, headers: traceHeaders() }
      const items = JSON.parse(row.items) as Array<{ id: string; quantity: number }>
      return row.status === 'open'
        ? {
            write: () => move.run('paid', Date.now(), row.session_id, 'open'),
            send: [
              bus.prepare(
                OrderPaid,
                { orderId: row.order_id, sessionId: row.session_id, amountCents: row.amount_cents, items },
                flow,
              ),
            ],
          }
        : {
            write: () => move.run('refunded', Date.now(), row.session_id, 'cancelled'),
            send: [bus.prepare(PaymentCancelled, { orderId: row.order_id, refundedCents: row.amount_cents }, flow)],
          }
    })
  }

  if (provider.name === 'offline') {
    // The offline checkout page: Pay or Decline; paying delivers Stripe's webhook, signed with the same secret.
    app.get<{ Params: { sessionId: string } }>('/checkout/:sessionId', async (request, reply) => {
      const row = bySession.get(request.params.sessionId)
      if (row === undefined) return reply.code(404).type('text/plain').send('no such checkout session')
      const amount = (row.amount_cents / 100).toFixed(2)
      const action = `/checkout/${encodeURIComponent(row.session_id)}`
      return (
        reply
          // The form posts here and is redirected back to the order page: both are allowed form targets.
          .headers({
            'content-security-policy': `default-src 'none'; style-src 'unsafe-inline'; form-action 'self' ${new URL(options.returnUrl()).origin}`,
          })
          .type('text/html; charset=utf-8')
          .send(`<!doctype html><html lang="en"><meta charset="utf-8"><title>Checkout</title>
<body style="font-family:sans-serif;max-width:28rem;margin:3rem auto">
<h1>Checkout (offline)</h1><p>Order <code>${escapeHtml(row.order_id)}</code>: <strong id="amount">€${amount}</strong> (${escapeHtml(row.status)})</p>
<form method="post" action="${escapeHtml(action)}"><input type="hidden" name="outcome" value="pay"><button id="pay">Pay €${amount}</button></form>
<form method="post" action="${escapeHtml(action)}"><input type="hidden" name="outcome" value="decline"><button id="decline">Decline</button></form>
</body></html>`)
      )
    })
    app.post<{ Params: { sessionId: string } }>('/checkout/:sessionId', async (request, reply) => {
      const row = bySession.get(request.params.sessionId)
      if (row === undefined) return reply.code(404).send({ error: 'no such checkout session' })
      const body = request.body
      const fields = (Buffer.isBuffer(body) ? JSON.parse(body.toString() || '{}') : (body ?? {})) as {
        outcome?: string
      }
      const form = request.headers['content-type']?.startsWith('application/x-www-form-urlencoded') === true
      const back = `${options.returnUrl()}/?order=${encodeURIComponent(row.order_id)}`
      // A declined card changes nothing: the customer may try again until the order's payment timeout.
      if (fields.outcome === 'decline') return form ? reply.redirect(back, 303) : reply.send({ declined: true })
      const payload = JSON.stringify({
        id: `evt_offline_${randomUUID()}`,
        object: 'event',
        type: 'checkout.session.completed',
        data: { object: { id: row.session_id, object: 'checkout.session', payment_status: 'paid' } },
      })
      const delivered = await app.inject({
        method: 'POST',
        url: '/webhooks/stripe',
        headers: {
          'content-type': 'application/json',
          'stripe-signature': options.stripe.webhooks.generateTestHeaderString({
            payload,
            secret: options.webhookSecret,
          }),
        },
        payload,
      })
      if (form) return reply.redirect(back, 303)
      return reply.code(delivered.statusCode).send(delivered.json())
    })
  }
  return app
}
