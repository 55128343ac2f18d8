import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createBus, createInMemoryTransport } from '@herald/core'
import { openServiceState, type ServiceState } from '@herald/sqlite'
import Stripe from 'stripe'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { allContracts, PaymentSessionCreated, PaymentSucceeded, TripDriverAssigned } from '../src/contracts.js'
import { offlineProvider } from '../src/services/payment-providers.js'
import { paymentSchema, registerPaymentService } from '../src/services/payment-service.js'

const webhookSecret = 'whsec_test_secret_for_the_payment_service'
const stripe = new Stripe('sk_test_offline')
let dir: string
let state: ServiceState
let cleanup: Array<() => Promise<void>> = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'herald-payment-'))
})
afterEach(async () => {
  for (const c of cleanup.reverse()) await c()
  cleanup = []
  rmSync(dir, { recursive: true, force: true })
})

async function start() {
  const transport = createInMemoryTransport()
  const bus = createBus({ transport, service: 'payment-service', contracts: allContracts })
  state = openServiceState({ path: join(dir, 'payment.db'), transport, schema: paymentSchema })
  const app = registerPaymentService(bus, state, {
    provider: offlineProvider(() => 'http://payments.test'),
    stripe,
    webhookSecret,
  })
  // What the rider side sees: the session, then the outcome.
  const seen: { type: string; data: Record<string, unknown> }[] = []
  let wake = () => {}
  const watch = createBus({ transport, service: 'watcher', contracts: allContracts })
  for (const contract of [PaymentSessionCreated, PaymentSucceeded] as const) {
    watch.group('watcher').on(contract, async (m) => {
      seen.push({ type: m.type, data: m.data as Record<string, unknown> })
      wake()
    })
  }
  await bus.start()
  await watch.start()
  cleanup.push(async () => {
    await app.close()
    await watch.stop()
    await bus.stop()
    await state.close()
    await transport.close()
  })
  const waitFor = async (n: number) => {
    while (seen.length < n) await new Promise<void>((done) => (wake = done))
  }
  return { bus, app, seen, waitFor }
}

it('opens one session per assigned trip and turns a signed webhook into payment.event.succeeded, once', async () => {
  const { bus, app, seen, waitFor } = await start()
  const assigned = { tripId: 't-1', riderId: 'r-1', driverId: 'd-1', fareCents: 1_250 }
  await bus.publish(TripDriverAssigned, assigned)
  await bus.publish(TripDriverAssigned, assigned) // a second assignment event for the trip opens nothing new
  await waitFor(1)
  const session = seen[0]?.data as { sessionId: string; checkoutUrl: string }
  expect(session.checkoutUrl).toBe(`http://payments.test/checkout/${session.sessionId}`)

  const pay = () => app.inject({ method: 'POST', url: `/checkout/${session.sessionId}`, payload: { outcome: 'pay' } })
  expect((await pay()).statusCode).toBe(200)
  expect((await pay()).statusCode).toBe(200) // a second webhook finds the payment settled
  await waitFor(2)
  expect(seen.map((s) => s.type)).toEqual(['payment.event.session_created', 'payment.event.succeeded'])
  expect(seen[1]?.data).toMatchObject({ tripId: 't-1', riderId: 'r-1', amountCents: 1_250 })
  const rows = state.db.prepare('SELECT status FROM payments').all()
  expect(rows).toEqual([{ status: 'succeeded' }])
  const webhooks = state.db.prepare("SELECT COUNT(*) AS n FROM handled_messages WHERE key LIKE 'webhook/%'").get()
  expect(webhooks).toEqual({ n: 2 })
})

it('refuses a webhook with no signature, a forged one, or one over other bytes, and publishes nothing', async () => {
  const { app, seen } = await start()
  const payload = JSON.stringify({
    id: 'evt_forged',
    object: 'event',
    type: 'checkout.session.completed',
    data: { object: { id: 'cs_any' } },
  })
  const post = (headers: Record<string, string>, body = payload) =>
    app.inject({
      method: 'POST',
      url: '/webhooks/stripe',
      headers: { 'content-type': 'application/json', ...headers },
      payload: body,
    })
  const forged = stripe.webhooks.generateTestHeaderString({ payload, secret: 'whsec_someone_else' })
  const genuine = stripe.webhooks.generateTestHeaderString({ payload, secret: webhookSecret })
  expect((await post({})).statusCode).toBe(400)
  expect((await post({ 'stripe-signature': forged })).statusCode).toBe(400)
  expect((await post({ 'stripe-signature': genuine }, payload.replace('cs_any', 'cs_other'))).statusCode).toBe(400)
  // Genuine, but for no session of ours: acknowledged, nothing published.
  expect((await post({ 'stripe-signature': genuine })).statusCode).toBe(200)
  expect(seen).toEqual([])
})
