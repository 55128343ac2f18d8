import type { FastifyInstance, FastifyReply } from 'fastify'
import type Stripe from 'stripe'

/**
 * `POST /webhooks/stripe`: refuses (400, with the reason) a request whose `Stripe-Signature` does not verify
 * against the exact bytes received, and hands every verified event to `handle`.
 * Call before any other JSON route is added: JSON bodies on this app are kept raw (a Buffer).
 */
export function stripeWebhookRoute(
  app: FastifyInstance,
  options: {
    readonly stripe: Stripe
    readonly webhookSecret: string
    readonly handle: (event: Stripe.Event, reply: FastifyReply) => Promise<unknown>
  },
): void {
  // Signatures are over the exact bytes Stripe sent: keep the body raw.
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
  app.post('/webhooks/stripe', async (request, reply) => {
    const signature = request.headers['stripe-signature']
    let event: Stripe.Event
    try {
      if (typeof signature !== 'string') throw new Error('no Stripe-Signature header')
      event = options.stripe.webhooks.constructEvent(request.body as Buffer, signature, options.webhookSecret)
    } catch (err) {
      return reply.code(400).send({ error: `webhook refused: ${(err as Error).message}` })
    }
    return options.handle(event, reply)
  })
}
