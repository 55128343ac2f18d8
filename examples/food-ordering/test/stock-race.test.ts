import { pollUntil } from '@herald/testkit'
import { expect, it } from 'vitest'
import { countOrders } from '../src/services/order-service.js'
import { stockLevels } from '../src/services/stock-service.js'
import { startSystem } from './system.js'

it('stock-no-oversell: 200 concurrent orders through 2 order-service instances for 50 units reserve exactly 50', async () => {
  const system = await startSystem({
    orderInstances: 2,
    menu: [{ id: 'limited', name: 'Limited edition', priceCents: 500, stock: 50 }],
  })
  try {
    const [a, b] = system.orders
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, n) =>
        system.placeOrder(`customer-${n}`, [{ id: 'limited', quantity: 1 }], (n % 2 === 0 ? a : b)?.url),
      ),
    )
    const taken = answers.filter((answer) => answer.status === 201)
    const refused = answers.filter((answer) => answer.status === 409)
    expect(taken).toHaveLength(50)
    expect(refused).toHaveLength(150)
    // Each refusal says why, and the order is kept as rejected with that reason.
    for (const { body } of refused) {
      expect(body.error).toMatch(/^out_of_stock: limited \(0 left, 1 asked\)$/)
      expect(body.order).toMatchObject({ status: 'rejected', reason: body.error })
    }
    // Both instances took orders, and none is lost: 200 distinct ids, each stored once.
    const byInstance = taken.map(({ body }) => body.customerId)
    expect(new Set(byInstance.map((c) => Number(c.split('-')[1]) % 2)).size).toBe(2)
    const ids = new Set(answers.map(({ body }) => (body.order ?? body).id))
    expect(ids.size).toBe(200)
    expect(stockLevels(system.services.stock.state!).limited).toEqual({ available: 0, reserved: 50 })
    expect(countOrders(system.services.order.state!)).toMatchObject({ rejected: 150 })
    // Every reserved order went on: its saga started and its checkout opened.
    const sagas = system.services.order.sagas!.store
    await pollUntil(async () => (await sagas.counts('food.order')).running === 50)
    await pollUntil(async () => countOrders(system.services.order.state!).awaiting_payment === 50)
  } finally {
    await system.stop()
  }
})
