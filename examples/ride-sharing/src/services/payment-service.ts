import { randomUUID } from 'node:crypto'
import type { Bus } from '@herald/core'
import { stripeWebhookRoute } from '@herald/example-kit'
import type { ServiceState } from '@herald/sqlite'
import Fastify, { type FastifyInstance } from 'fastify'
import type Stripe from 'stripe'
import { PaymentFailed, PaymentSessionCreated, PaymentSucceeded, TripDriverAssigned } from '../contracts.js'
import type { PaymentProvider } from './payment-providers.js'

export const paymentSchema = `CREATE TABLE IF NOT EXISTS payments (
  session_id TEXT PRIMARY KEY, trip_id TEXT NOT NULL UNIQUE, rider_id TEXT NOT NULL,
  amount_cents INTEGER NOT NULL, status TEXT NOT NULL, -- open | succeeded | failed
  correlation_id TEXT NOT NULL, caused_by TEXT NOT NULL, -- the trip's flow, so the outcome joins it
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`

interface PaymentRow {
  session_id: string
  trip_id: string
  rider_id: string
  amount_cents: number
  status: 'open' | 'succeeded' | 'failed'
  correlation_id: string
  caused_by: string
}

export interface PaymentServiceOptions {
  readonly provider: PaymentProvider
  /** The Stripe SDK: verifies webhook signatures (offline too) and, with the Stripe provider, opens sessions. */
  readonly stripe: Stripe
  /** The endpoint secret webhooks are signed with (`whsec_…`). */
  readonly webhookSecret: string
}

/** The outcomes the webhook understands; every other Stripe event is acknowledged and ignored. */
const outcomes: Record<string, 'succeeded' | 'failed'> = {
  'checkout.session.completed': 'succeeded',
  'checkout.session.async_payment_succeeded': 'succeeded',
  'checkout.session.async_payment_failed': 'failed',
  'checkout.session.expired': 'failed',
}

/**
 * Opens a payment session when a driver is assigned, and turns Stripe's signed webhooks into
 * `payment.event.succeeded` / `payment.event.failed`. Returns the HTTP server for the webhook (and, with the
 * offline provider, its checkout page); the caller listens.
 */
export function registerPaymentService(bus: Bus, state: ServiceState, options: PaymentServiceOptions): FastifyInstance {
  const { db } = state
  const byTrip = db.prepare<[string], PaymentRow>('SELECT * FROM payments WHERE trip_id = ?')
  const bySession = db.prepare<[string], PaymentRow>('SELECT * FROM payments WHERE session_id = ?')
  const insert = db.prepare(
    `INSERT INTO payments (session_id, trip_id, rider_id, amount_cents, status, correlation_id, caused_by,
       created_at, updated_at)
     VALUES (@sessionId, @tripId, @riderId, @amountCents, 'open', @correlationId, @causedBy, @now, @now)`,
  )
  const settle = db.prepare<[string, number, string]>(
    "UPDATE payments SET status = ?, updated_at = ? WHERE session_id = ? AND status = 'open'",
  )

  bus.group('payment_trip_assigned').on(TripDriverAssigned, async (message, context) => {
    const { tripId, riderId, fareCents } = message.data
    if (byTrip.get(tripId) !== undefined) return
    // The provider call happens before the transaction; a crash in between opens a second session next time
    // (Stripe's idempotency key makes it the same one).
    const session = await options.provider.createSession({ tripId, riderId, amountCents: fareCents })
    await state.apply(`${context.group}/${message.id}`, () => {
      if (byTrip.get(tripId) !== undefined) return undefined
      return {
        write: () =>
          insert.run({
            ...session,
            tripId,
            riderId,
            amountCents: fareCents,
            correlationId: message.correlationId,
            causedBy: message.id,
            now: Date.now(),
          }),
        send: [
          context.prepare(
            PaymentSessionCreated,
            { tripId, riderId, amountCents: fareCents, ...session },
            { partitionKey: tripId },
          ),
        ],
      }
    })
  })

  const app = Fastify({ logger: false, bodyLimit: 256 * 1024 })

  stripeWebhookRoute(app, {
    stripe: options.stripe,
    webhookSecret: options.webhookSecret,
    handle: async (event, reply) => {
      const outcome = outcomes[event.type]
      if (outcome === undefined) return reply.send({ ignored: event.type })
      const session = event.data.object as { id: string }
      await state.apply(`webhook/${event.id}`, () => {
        const payment = bySession.get(session.id)
        if (payment?.status !== 'open') return undefined
        const fields = { tripId: payment.trip_id, riderId: payment.rider_id, sessionId: payment.session_id }
        const flow = {
          partitionKey: fields.tripId,
          correlationId: payment.correlation_id,
          causationId: payment.caused_by,
        }
        return {
          write: () => settle.run(outcome, Date.now(), payment.session_id),
          send: [
            outcome === 'succeeded'
              ? bus.prepare(PaymentSucceeded, { ...fields, amountCents: payment.amount_cents }, flow)
              : bus.prepare(PaymentFailed, { ...fields, reason: event.type }, flow),
          ],
        }
      })
      return reply.send({ received: event.id })
    },
  })

  if (options.provider.name === 'offline') {
    // The offline checkout: the rider's "card" says pay or decline, and Stripe's webhook follows, signed.
    app.post<{ Params: { sessionId: string } }>('/checkout/:sessionId', async (request, reply) => {
      const payment = bySession.get(request.params.sessionId)
      if (payment === undefined) return reply.code(404).send({ error: 'no such checkout session' })
      const body = JSON.parse((request.body as Buffer | undefined)?.toString() || '{}') as { outcome?: string }
      const paid = body.outcome !== 'decline'
      const payload = JSON.stringify({
        id: `evt_offline_${randomUUID()}`,
        object: 'event',
        type: paid ? 'checkout.session.completed' : 'checkout.session.async_payment_failed',
        data: {
          object: { id: payment.session_id, object: 'checkout.session', payment_status: paid ? 'paid' : 'unpaid' },
        },
      })
      const header = options.stripe.webhooks.generateTestHeaderString({ payload, secret: options.webhookSecret })
      const delivered = await app.inject({
        method: 'POST',
        url: '/webhooks/stripe',
        headers: { 'content-type': 'application/json', 'stripe-signature': header },
        payload,
      })
      return reply.code(delivered.statusCode).send(delivered.json())
    })
  }
  return app
}
