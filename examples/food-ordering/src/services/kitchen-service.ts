import { type Bus, sleep } from '@herald/core'
import { CookingFailed, OrderCooked, OrderPaid } from '../contracts.js'

export interface KitchenOptions {
  /** How long an order takes to cook. */
  readonly cookMs: number
  /** Dishes this kitchen cannot make today: an order with one fails (and is refunded by its saga). */
  readonly failingDishes: ReadonlySet<string>
}

/**
 * The kitchen has no API and no database: it takes `order.paid` (its own copy of the broadcast), cooks, and says
 * how it went. Cooking an order twice after a redelivery says it twice; the order saga takes the first.
 */
export function registerKitchenService(bus: Bus, options: KitchenOptions): void {
  bus.group('kitchen').on(OrderPaid, async (message, context) => {
    const { orderId, items } = message.data
    await sleep(options.cookMs, context.signal)
    const failed = items.find((item) => options.failingDishes.has(item.id))
    if (failed !== undefined)
      await context.publish(CookingFailed, { orderId, reason: `${failed.id} could not be made` })
    else await context.publish(OrderCooked, { orderId })
  })
}
