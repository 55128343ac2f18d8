import { type Bus, PermanentError } from '@herald/core'
import { OrderPlaced, OrderReady, PaymentCaptured, PrepareDish } from './contracts.js'

/** What the services did, for the summary. */
export interface DemoStats {
  published: number
  handled: number
  retried: number
  readonly ready: Set<string>
  readonly log: string[]
}

export const menu = ['margherita', 'ramen', 'falafel', 'pho', 'paella', 'tacos'] as const

/** Decides which attempts fail, so that the demo shows retries and dead letters. */
export interface Faults {
  /** The payment gateway is flaky: this attempt fails and is retried. */
  paymentFails(orderId: string, attempt: number): boolean
  /** The kitchen cannot make this dish: a permanent failure, dead-lettered at once. */
  unknownDish(dish: string): boolean
}

function note(stats: DemoStats, line: string): void {
  stats.log.push(line)
  if (stats.log.length > 8) stats.log.shift()
}

/**
 * Four services in one bus: payments charge placed orders, orders ask the kitchen to cook paid ones,
 * the kitchen cooks, notifications tell the customer. Each service is its own group.
 */
export function registerServices(bus: Bus, stats: DemoStats, faults: Faults): void {
  bus.group('payments').on(OrderPlaced, async (message, context) => {
    stats.handled++
    if (faults.paymentFails(message.data.orderId, context.attempt)) {
      stats.retried++
      throw new Error(`payment gateway timed out for ${message.data.orderId}`)
    }
    await context.publish(PaymentCaptured, message.data, { partitionKey: message.data.orderId })
    stats.published++
  })

  bus.group('orders').on(PaymentCaptured, async (message, context) => {
    stats.handled++
    await context.send(PrepareDish, { orderId: message.data.orderId, dish: message.data.dish })
    stats.published++
  })

  bus.group('kitchen', { maxInFlight: 4 }).on(PrepareDish, async (message, context) => {
    stats.handled++
    if (faults.unknownDish(message.data.dish)) {
      note(stats, `kitchen: cannot cook ${message.data.dish} (${message.data.orderId}) -> dead letter`)
      throw new PermanentError(`no recipe for "${message.data.dish}"`)
    }
    await context.publish(OrderReady, message.data)
    stats.published++
  })

  bus.group('notifications').on(OrderReady, async (message) => {
    stats.handled++
    stats.ready.add(message.data.orderId)
    note(stats, `notify: order ${message.data.orderId} (${message.data.dish}) is ready`)
  })
}
