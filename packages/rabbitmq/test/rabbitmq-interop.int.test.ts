import { createBus, defineEvent, isHeraldError } from '@herald/core'
import { createHistory, type RabbitMqServer, startRabbitMq, waitFor } from '@herald/testkit'
import amqp from 'amqplib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createRabbitMqTransport } from '../src/index.js'

// A broker of its own: these cases need no faults, and stay apart from the crash and restart cases.
let broker: RabbitMqServer
beforeAll(async () => {
  broker = await startRabbitMq()
}, 120_000)
afterAll(async () => {
  await broker?.stop()
})

describe('rabbitmq interoperability with plain AMQP clients', () => {
  const TripCreated = defineEvent('trip.event.created', {
    version: 1,
    schema: z.object({ tripId: z.string(), riderId: z.string() }),
  })

  it('declares a designed topology exactly; a plain amqplib consumer reads a Herald event, a Herald subscriber handles a plain JSON message', async () => {
    // The ride-sharing design's names: exchange `trip`, queue `find_available_drivers`, key `trip.event.created`.
    const transport = await createRabbitMqTransport({ url: broker.url, exchange: 'trip', namespace: 'interop' })
    const bus = createBus({ transport, service: 'trip-service' })
    const handled: { tripId: string; riderId: string; id: string; source: string }[] = []
    const history = createHistory()
    bus.group('find_available_drivers').on(TripCreated, async (message) => {
      handled.push({ ...message.data, id: message.id, source: message.source })
      history.completed(message.id)
    })
    await bus.start()

    const connection = await amqp.connect(broker.url)
    try {
      const channel = await connection.createConfirmChannel()
      // A plain consumer with its own queue on the same exchange.
      const { queue } = await channel.assertQueue('', { exclusive: true })
      await channel.bindQueue(queue, 'trip', 'trip.event.*')
      const received = new Promise<amqp.ConsumeMessage>((resolve) => {
        void channel.consume(queue, (m) => m && resolve(m), { noAck: true })
      })
      await bus.publish(TripCreated, { tripId: 't-1', riderId: 'r-1' })
      const plain = await received
      expect(plain.fields.routingKey).toBe('trip.event.created')
      expect(plain.properties.contentType).toBe('application/json')
      expect(plain.properties.deliveryMode).toBe(2)
      expect(plain.properties.headers).toMatchObject({
        'cloudEvents:type': 'trip.event.created',
        'cloudEvents:source': 'trip-service',
        'cloudEvents:specversion': '1.0',
      })
      expect(JSON.parse(plain.content.toString())).toEqual({ tripId: 't-1', riderId: 'r-1' })

      // A plain publisher: JSON with the AMQP message id and type, no Herald or CloudEvents headers.
      channel.publish('trip', 'trip.event.created', Buffer.from(JSON.stringify({ tripId: 't-2', riderId: 'r-2' })), {
        contentType: 'application/json',
        messageId: 'plain-1',
        type: 'trip.event.created',
        appId: 'legacy-service',
        persistent: true,
      })
      await channel.waitForConfirms()
      await waitFor(() => history.isCompleted('plain-1'), history.onChange)
      expect(handled.find((h) => h.id === 'plain-1')).toEqual({
        tripId: 't-2',
        riderId: 'r-2',
        id: 'plain-1',
        source: 'legacy-service',
      })
    } finally {
      await connection.close()
      await bus.stop()
      await transport.close()
    }
  })

  it('a group whose queue already exists with other arguments gets a ConfigurationError naming the fix', async () => {
    const connection = await amqp.connect(broker.url)
    await (await connection.createChannel()).assertQueue('legacy_classic_queue', { durable: true })
    await connection.close()
    const transport = await createRabbitMqTransport({ url: broker.url, exchange: 'clash', namespace: 'clash' })
    try {
      const outcome = await transport.declareGroup('legacy_classic_queue', ['clash.t']).then(
        () => undefined,
        (err: unknown) => err,
      )
      expect(isHeraldError(outcome, 'CONFIGURATION')).toBe(true)
      expect(String((outcome as Error).message)).toMatch(
        /queue "legacy_classic_queue" .*already exists with another x-[a-z-]+ .*queueName/,
      )
    } finally {
      await transport.close()
    }
  })
})
