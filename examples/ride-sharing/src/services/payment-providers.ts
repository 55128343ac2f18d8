import { randomUUID } from 'node:crypto'
import type Stripe from 'stripe'

export interface CheckoutSession {
  readonly sessionId: string
  readonly checkoutUrl: string
}

/** Where riders pay. Outcomes come back through the Stripe-signed webhook, whichever provider runs. */
export interface PaymentProvider {
  readonly name: 'offline' | 'stripe'
  createSession(input: { tripId: string; riderId: string; amountCents: number }): Promise<CheckoutSession>
}

/**
 * Stripe Checkout. The trip id is the idempotency key, so a redelivered assignment never opens a second session.
 * Needs `STRIPE_SECRET_KEY` and network access to Stripe.
 */
export function stripeProvider(stripe: Stripe, urls: { success: string; cancel: string }): PaymentProvider {
  return {
    name: 'stripe',
    async createSession({ tripId, riderId, amountCents }) {
      const session = await stripe.checkout.sessions.create(
        {
          mode: 'payment',
          line_items: [
            { quantity: 1, price_data: { currency: 'eur', unit_amount: amountCents, product_data: { name: 'Ride' } } },
          ],
          client_reference_id: tripId,
          metadata: { tripId, riderId },
          success_url: urls.success,
          cancel_url: urls.cancel,
        },
        { idempotencyKey: `trip-${tripId}` },
      )
      if (session.url === null) throw new Error(`Stripe returned no checkout URL for trip ${tripId}`)
      return { sessionId: session.id, checkoutUrl: session.url }
    },
  }
}

/**
 * A stand-in for Stripe that needs no network: its checkout page is `POST <publicUrl>/checkout/<session>` on the
 * payment service, which answers with a webhook event signed exactly as Stripe signs them.
 */
export function offlineProvider(publicUrl: () => string): PaymentProvider {
  return {
    name: 'offline',
    async createSession() {
      const sessionId = `cs_offline_${randomUUID()}`
      return { sessionId, checkoutUrl: `${publicUrl()}/checkout/${sessionId}` }
    },
  }
}
