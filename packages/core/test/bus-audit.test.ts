import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  createBus,
  createInMemoryEventStore,
  createInMemoryTransport,
  defineCommand,
  defineEvent,
  type EventStore,
} from '../src/index.js'

const OrderPlaced = defineEvent('order.placed', { schema: z.object({ orderId: z.string() }) })
const OrderPaid = defineEvent('order.paid', { schema: z.object({ orderId: z.string() }) })
const ChargeCard = defineCommand('payment.charge', { schema: z.object({ orderId: z.string() }) })

describe('bus audit', () => {
  it('records every published event, with the correlation carried from the handled message', async () => {
    const store = createInMemoryEventStore()
    const transport = createInMemoryTransport()
    const bus = createBus({ transport, service: 'orders', audit: { store } })
    let markPaid!: () => void
    const paid = new Promise<void>((resolve) => {
      markPaid = resolve
    })
    bus.on(OrderPlaced, async (message, context) => {
      await context.send(ChargeCard, { orderId: message.data.orderId })
      await context.publish(OrderPaid, { orderId: message.data.orderId })
    })
    bus.group('payments').on(ChargeCard, async () => {})
    bus.group('ledger').on(OrderPaid, async () => markPaid())
    await bus.start()
    const placedId = await bus.publish(OrderPlaced, { orderId: 'o-1' })
    await paid
    await bus.stop()

    const { items } = await store.queryEvents({ correlationId: placedId })
    expect(items.map((e) => e.type)).toEqual(['order.placed', 'order.paid'])
    expect(items[1]).toMatchObject({ source: 'orders', topic: 'order.paid' })
    expect(items[1]?.envelope.headers.causationid).toBe(placedId)
  })

  it('rejects the publish when the event could not be recorded, so the caller can retry with the same id', async () => {
    const failing: EventStore = {
      ...createInMemoryEventStore(),
      append: async () => {
        throw new Error('disk full')
      },
    }
    const bus = createBus({ transport: createInMemoryTransport(), service: 'orders', audit: { store: failing } })
    await expect(bus.publish(OrderPlaced, { orderId: 'o-2' })).rejects.toThrow('disk full')
  })
})
