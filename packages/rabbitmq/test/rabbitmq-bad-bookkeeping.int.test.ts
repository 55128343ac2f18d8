import { createBus, defineEvent, type Handler, isHeraldError, type SubscriptionSpec } from '@herald/core'
import { createHistory, pollUntil, type RabbitMqServer, startRabbitMq } from '@herald/testkit'
import amqp from 'amqplib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createRabbitMqTransport, type RabbitMqTransport } from '../src/index.js'

// A broker of its own: a plain client writes around Herald's publisher here.
let broker: RabbitMqServer
beforeAll(async () => {
  broker = await startRabbitMq()
}, 120_000)
afterAll(async () => {
  await broker?.stop()
})

const Order = defineEvent('order.placed', { schema: z.object({ orderId: z.string() }) })
const fast = {
  immediateRetries: 0,
  retry: { maxAttempts: 3, backoff: { initialMs: 10, maxMs: 10, factor: 1, jitter: 0 } },
}
let runs = 0

async function setup(): Promise<{ transport: RabbitMqTransport; name: string }> {
  const name = `bad${++runs}`
  const transport = await createRabbitMqTransport({
    url: broker.url,
    exchange: name,
    namespace: name,
    queueName: (group) => `${name}.${group}`,
    publishTimeoutMs: 10_000,
  })
  return { transport, name }
}

/** A plain amqplib publisher writing to Herald's exchange, confirmed. */
async function plainPublisher() {
  const connection = await amqp.connect(broker.url)
  const channel = await connection.createConfirmChannel()
  return {
    async publish(exchange: string, key: string, data: unknown, options: amqp.Options.Publish = {}) {
      channel.publish(exchange, key, Buffer.from(JSON.stringify(data)), {
        contentType: 'application/json',
        type: 'order.placed',
        persistent: true,
        ...options,
      })
      await channel.waitForConfirms()
    },
    close: () => connection.close(),
  }
}

describe('rabbitmq: what a plain client sets is advisory at most', () => {
  it('oversized-header-table: a 70,000-byte header fails the publish at once; publishes around it are delivered once', async () => {
    const { transport } = await setup()
    const bus = createBus({ transport, service: 'billing', consumer: fast })
    const seen = new Map<string, number>()
    bus.on(Order, async (message) => {
      seen.set(message.data.orderId, (seen.get(message.data.orderId) ?? 0) + 1)
    })
    await bus.start()
    try {
      const before = bus.publish(Order, { orderId: 'before' })
      const huge = bus.publish(Order, { orderId: 'huge' }, { headers: { 'x-note': 'x'.repeat(70_000) } })
      const after = bus.publish(Order, { orderId: 'after' })
      const refused = await huge.catch((e: unknown) => e)
      // Definite, not indeterminate: nothing was sent, and it was known before sending.
      expect(isHeraldError(refused, 'HEADER_INVALID')).toBe(true)
      expect(String(refused)).toMatch(/70\d{3} bytes encoded/)
      await Promise.all([before, after])
      const late = await bus.publish(Order, { orderId: 'later' })
      expect(late).toBeTypeOf('string')
      await pollUntil(async () => seen.size === 3)
      // Let redeliveries, if any, arrive: a round trip through the broker.
      await bus.publish(Order, { orderId: 'fence' })
      await pollUntil(async () => seen.has('fence'))
      expect(Object.fromEntries(seen)).toEqual({ before: 1, after: 1, later: 1, fence: 1 })
    } finally {
      await bus.stop()
      await transport.close()
    }
  })

  it('oversized-header-table: a plain message whose retry copy cannot be encoded is dead-lettered as too_large; its batch is handled once', async () => {
    const { transport, name } = await setup()
    // What observers hear (metrics, logs): the dead letter the retry became, not a retry.
    const outcomes = new Map<string, string>()
    const observed: typeof transport = Object.create(transport, {
      subscribe: {
        value: (spec: SubscriptionSpec, handler: Handler) =>
          transport.subscribe(
            {
              ...spec,
              onSettled: (envelope, _delivery, settlement) =>
                outcomes.set(
                  envelope.id,
                  settlement.kind === 'dead-letter' ? `dead-letter:${settlement.reason}` : settlement.kind,
                ),
            },
            handler,
          ),
      },
    })
    const bus = createBus({ transport: observed, service: 'billing', consumer: { ...fast, maxInFlight: 30 } })
    const calls = new Map<string, number>()
    bus.on(Order, async (message) => {
      calls.set(message.data.orderId, (calls.get(message.data.orderId) ?? 0) + 1)
      if (message.data.orderId === 'big' && calls.get('big') === 1) throw new Error('fails once')
    })
    await bus.start()
    const plain = await plainPublisher()
    try {
      // 64,000 bytes of header fit as sent; Herald's retry headers on top do not.
      await plain.publish(
        name,
        'order.placed',
        { orderId: 'big' },
        { messageId: 'big-1', headers: { 'x-note': 'y'.repeat(65_400) } },
      )
      for (let i = 0; i < 25; i++)
        await plain.publish(name, 'order.placed', { orderId: `good-${i}` }, { messageId: `good-${i}` })
      await pollUntil(async () => (await transport.listDeadLetters()).items.length === 1 && calls.size === 26)
      const [letter] = (await transport.listDeadLetters()).items
      expect(letter).toMatchObject({ reason: 'too_large', group: 'billing', topic: 'order.placed' })
      expect(letter?.envelope.id).toBe('big-1')
      expect(letter?.error?.message).toMatch(/cannot be retried/)
      await bus.publish(Order, { orderId: 'fence' })
      await pollUntil(async () => calls.has('fence'))
      for (let i = 0; i < 25; i++) expect(calls.get(`good-${i}`)).toBe(1)
      expect(calls.get('big')).toBe(1)
      expect(outcomes.get('big-1')).toBe('dead-letter:too_large')
      expect(outcomes.get('good-0')).toBe('ack')
    } finally {
      await plain.close()
      await bus.stop()
      await transport.close()
    }
  })

  it('forged-bookkeeping-headers: attempt counters and a topic header from a plain client change nothing', async () => {
    const { transport, name } = await setup()
    const bus = createBus({ transport, service: 'billing', consumer: fast })
    const history = createHistory()
    const attempts = new Map<string, number[]>()
    const topics = new Map<string, string>()
    bus.on(Order, async (message, context) => {
      history.delivered(message.id)
      attempts.set(message.id, [...(attempts.get(message.id) ?? []), context.attempt])
      topics.set(message.id, context.topic)
      if (message.data.orderId === 'always-fails') throw new Error('always fails')
      history.completed(message.id)
    })
    await bus.start()
    const plain = await plainPublisher()
    try {
      const forged: [string, Record<string, unknown>, string][] = [
        ['f-999', { 'x-herald-attempts': 999 }, 'fine'],
        ['f-count', { 'x-delivery-count': 999 }, 'fine'],
        ['f-neg', { 'x-herald-attempts': -20 }, 'always-fails'],
        ['f-topic', { 'x-herald-topic': 'admin.secrets' }, 'fine'],
      ]
      for (const [id, headers, orderId] of forged) {
        history.attempted(id)
        await plain.publish(name, 'order.placed', { orderId }, { messageId: id, headers })
        history.ok(id)
      }
      await pollUntil(
        async () =>
          ['f-999', 'f-count', 'f-topic'].every((id) => history.isCompleted(id)) &&
          (await transport.listDeadLetters()).items.length === 1,
      )
      const [letter] = (await transport.listDeadLetters()).items
      history.deadLettered(letter!.envelope.id)
      expect(letter).toMatchObject({ reason: 'handler_error', attempts: 3 })
      expect(attempts.get('f-999')).toEqual([1])
      expect(attempts.get('f-count')).toEqual([1])
      expect(attempts.get('f-neg')).toEqual([1, 2, 3])
      expect(topics.get('f-topic')).toBe('order.placed')
      console.log(`[rabbitmq] forged-bookkeeping-headers: ${history.summary()}`)
      expect(history.check().lost).toEqual([])
    } finally {
      await plain.close()
      await bus.stop()
      await transport.close()
    }
  })

  it('plain-message-without-id: one id across deliveries and listings; fetched, then redriven by it', async () => {
    const { transport, name } = await setup()
    const bus = createBus({ transport, service: 'billing', consumer: fast })
    const ids: string[] = []
    let failing = true
    bus.on(Order, async (message) => {
      ids.push(message.id)
      if (failing) throw new Error('not yet')
    })
    await bus.start()
    const plain = await plainPublisher()
    try {
      await plain.publish(name, 'order.placed', { orderId: 'no-id' })
      await pollUntil(async () => (await transport.listDeadLetters()).items.length === 1)
      expect(new Set(ids).size).toBe(1)
      const [first] = (await transport.listDeadLetters()).items
      const [second] = (await transport.listDeadLetters()).items
      expect(second?.envelope.id).toBe(first?.envelope.id)
      expect(first?.envelope.id).toBe(ids[0])
      expect(await transport.getDeadLetter(ids[0]!)).toMatchObject({ reason: 'handler_error' })
      failing = false
      expect(await transport.redriveDeadLetters({ ids: [ids[0]!] })).toBe(1)
      await pollUntil(async () => ids.length === 4)
      expect(new Set(ids).size).toBe(1)
      expect((await transport.listDeadLetters()).items).toEqual([])
    } finally {
      await plain.close()
      await bus.stop()
      await transport.close()
    }
  })
})
