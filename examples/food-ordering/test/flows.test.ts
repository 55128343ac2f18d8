import { createLatch, pollUntil } from '@herald/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Order } from '../src/services/order-service.js'
import { type CheckoutProvider, offlineCheckout } from '../src/services/payment-service.js'
import { stockLevels } from '../src/services/stock-service.js'
import { startSystem, type TestSystem } from './system.js'

const paymentOf = (system: TestSystem, orderId: string) =>
  system.services.payment.state?.db
    .prepare<[string], { status: string; amount_cents: number }>(
      'SELECT status, amount_cents FROM payments WHERE order_id = ?',
    )
    .get(orderId)

async function untilStatus(system: TestSystem, customerId: string, orderId: string, status: string): Promise<Order> {
  let order: Order | undefined
  await pollUntil(async () => {
    order = await system.getOrder(customerId, orderId)
    return order.status === status
  })
  return order as Order
}

async function pay(link: string): Promise<void> {
  const response = await fetch(link, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ outcome: 'pay' }),
  })
  expect(response.status).toBe(200)
}

describe('food ordering, every service in one process', () => {
  let system: TestSystem
  beforeAll(async () => {
    system = await startSystem()
  })
  afterAll(() => system.stop())

  it('food-paid-then-ready: an order is reserved, paid at its checkout, cooked, and ready', async () => {
    const before = stockLevels(system.services.stock.state!).noodles!
    const { status, body } = await system.placeOrder('alice', [{ id: 'noodles', quantity: 2 }])
    expect(status).toBe(201)
    expect(body).toMatchObject({ customerId: 'alice', status: 'pending', totalCents: 2400 })
    const waiting = await untilStatus(system, 'alice', body.id, 'awaiting_payment')
    await pollUntil(async () => (await system.getOrder('alice', body.id)).paymentLink !== undefined)
    await pay((await system.getOrder('alice', body.id)).paymentLink as string)
    await untilStatus(system, 'alice', body.id, 'ready')
    expect(waiting.reason).toBeUndefined()
    expect(paymentOf(system, body.id)).toEqual({ status: 'paid', amount_cents: 2400 })
    expect((await system.services.order.sagas!.host.find({ key: body.id }))[0]?.status).toBe('completed')
    // A ready order keeps its stock: it was eaten.
    expect(stockLevels(system.services.stock.state!).noodles).toEqual({
      available: before.available - 2,
      reserved: before.reserved + 2,
    })
  })

  it('food-kitchen-failure-refunds: a dish the kitchen cannot make cancels the paid order, refunds it, and releases its stock', async () => {
    const before = stockLevels(system.services.stock.state!)
    const { body } = await system.placeOrder('bob', [
      { id: 'dumplings', quantity: 1 },
      { id: 'souffle', quantity: 2 },
    ])
    await pollUntil(async () => (await system.getOrder('bob', body.id)).paymentLink !== undefined)
    await pay((await system.getOrder('bob', body.id)).paymentLink as string)
    const cancelled = await untilStatus(system, 'bob', body.id, 'cancelled')
    expect(cancelled.reason).toBe('kitchen: souffle could not be made')
    await pollUntil(async () => paymentOf(system, body.id)?.status === 'refunded')
    await pollUntil(
      async () => stockLevels(system.services.stock.state!).souffle?.available === before.souffle?.available,
    )
    expect(stockLevels(system.services.stock.state!)).toEqual(before)
    expect((await system.services.order.sagas!.host.find({ key: body.id }))[0]?.status).toBe('compensated')
  })

  it('food-unknown-dish: an order for a dish not on the menu is rejected with the reason, and reserves nothing', async () => {
    const before = stockLevels(system.services.stock.state!)
    const { status, body } = await system.placeOrder('carol', [
      { id: 'noodles', quantity: 1 },
      { id: 'caviar', quantity: 1 },
    ])
    expect(status).toBe(409)
    expect(body).toMatchObject({
      error: 'unknown_item: caviar',
      order: { status: 'rejected', reason: 'unknown_item: caviar' },
    })
    expect(stockLevels(system.services.stock.state!)).toEqual(before)
  })

  it("food-webhook-forged: a webhook without Stripe's signature is refused and pays nothing", async () => {
    const { body } = await system.placeOrder('dave', [{ id: 'fried-rice', quantity: 1 }])
    await pollUntil(async () => (await system.getOrder('dave', body.id)).paymentLink !== undefined)
    const sessionId = (await system.getOrder('dave', body.id)).paymentLink?.split('/').at(-1)
    const forged = await fetch(`${system.services.payment.url}/webhooks/stripe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': 't=1,v1=00' },
      body: JSON.stringify({
        id: 'evt_forged',
        type: 'checkout.session.completed',
        data: { object: { id: sessionId } },
      }),
    })
    expect(forged.status).toBe(400)
    expect(paymentOf(system, body.id)?.status).toBe('open')
    expect((await system.getOrder('dave', body.id)).status).toBe('awaiting_payment')
  })

  it("food-http-api: the OpenAPI document describes the API it serves; bad requests and other customers' orders are refused", async () => {
    const base = system.services.order.url
    const document = (await (await fetch(`${base}/openapi.json`)).json()) as {
      openapi: string
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>
    }
    expect(document.openapi).toBe('3.1.0')
    expect(Object.keys(document.paths).sort()).toEqual([
      '/customer/{customerId}/orders',
      '/customer/{customerId}/orders/{orderId}',
      '/menu',
    ])
    expect(Object.keys(document.paths['/customer/{customerId}/orders']?.post?.responses ?? {})).toEqual([
      '201',
      '409',
      '503',
    ])
    const invalid = await system.placeOrder('erin', [{ id: 'noodles', quantity: 0 }])
    expect(invalid.status).toBe(400)
    expect(invalid.body.message).toMatch(/quantity/)
    const { body } = await system.placeOrder('erin', [{ id: 'noodles', quantity: 1 }])
    expect((await fetch(`${base}/customer/erin/orders/${body.id}`)).status).toBe(200)
    expect((await fetch(`${base}/customer/mallory/orders/${body.id}`)).status).toBe(404)
    const menu = (await (await fetch(`${base}/menu`)).json()) as { items: Array<{ id: string }> }
    expect(menu.items.map((item) => item.id)).toContain('souffle')
  })
})

it('food-payment-timeout: an order not paid in time is cancelled and its stock released; paying late refunds', async () => {
  const system = await startSystem({ paymentTimeoutMs: 1_500 })
  try {
    const before = stockLevels(system.services.stock.state!)
    const { body } = await system.placeOrder('frank', [{ id: 'mapo-tofu', quantity: 3 }])
    await pollUntil(async () => (await system.getOrder('frank', body.id)).paymentLink !== undefined)
    const cancelled = await untilStatus(system, 'frank', body.id, 'cancelled')
    expect(cancelled.reason).toBe('payment_timeout')
    await pollUntil(async () => paymentOf(system, body.id)?.status === 'cancelled')
    await pollUntil(
      async () => stockLevels(system.services.stock.state!)['mapo-tofu']?.available === before['mapo-tofu']?.available,
    )
    // The customer pays on the checkout page anyway: the money goes back, and the order stays cancelled.
    await pay(cancelled.paymentLink as string)
    await pollUntil(async () => paymentOf(system, body.id)?.status === 'refunded')
    expect((await system.getOrder('frank', body.id)).status).toBe('cancelled')
    expect(stockLevels(system.services.stock.state!)).toEqual(before)
  } finally {
    await system.stop()
  }
})

it('food-cancel-races-payment: a payment that lands while its cancel is closing the checkout is refunded, not kept', async () => {
  const closing = createLatch()
  const gate = createLatch()
  let paymentUrl = ''
  const offline = offlineCheckout(() => paymentUrl)
  // The cancel's call to close the checkout takes until the payment has landed.
  const checkout: CheckoutProvider = {
    ...offline,
    async close(sessionId) {
      closing.open()
      await gate.wait
      await offline.close(sessionId)
    },
  }
  const system = await startSystem({ paymentTimeoutMs: 1_500, checkout })
  paymentUrl = system.services.payment.url as string
  try {
    const { body } = await system.placeOrder('heidi', [{ id: 'noodles', quantity: 1 }])
    await pollUntil(async () => (await system.getOrder('heidi', body.id)).paymentLink !== undefined)
    await closing.wait
    await pay((await system.getOrder('heidi', body.id)).paymentLink as string)
    expect(paymentOf(system, body.id)?.status).toBe('paid')
    gate.open()
    await pollUntil(async () => paymentOf(system, body.id)?.status === 'refunded')
    expect((await system.getOrder('heidi', body.id)).status).toBe('cancelled')
  } finally {
    gate.open()
    await system.stop()
  }
})
