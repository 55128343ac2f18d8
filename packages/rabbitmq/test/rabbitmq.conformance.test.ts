import { describeTransport, type RabbitMqServer, startRabbitMq } from '@herald/testkit'
import amqp from 'amqplib'
import { afterAll, beforeAll } from 'vitest'
import { publishOptions } from '../src/amqp-message.js'
import { createRabbitMqTransport } from '../src/index.js'

let server: RabbitMqServer | undefined
beforeAll(async () => {
  server = await startRabbitMq()
}, 120_000)
afterAll(async () => {
  await server?.stop()
})

let runs = 0

describeTransport(
  'rabbitmq',
  async () => {
    if (!server) throw new Error('RabbitMQ test server not started')
    const url = server.url
    // Each test gets its own exchange, namespace and queue names on one broker.
    const n = ++runs
    const options = {
      url,
      exchange: `conf${n}`,
      namespace: `conf${n}`,
      queueName: (group: string) => `conf${n}.${group}`,
      publishTimeoutMs: 10_000,
    }
    return {
      create: () => createRabbitMqTransport(options),
      // Poison goes in with the raw client, bypassing every check Herald's publisher makes.
      injectRaw: async (group, _topic, envelope) => {
        const connection = await amqp.connect(url)
        const channel = await connection.createConfirmChannel()
        channel.sendToQueue(options.queueName(group), Buffer.from(envelope.body), publishOptions(envelope))
        await channel.waitForConfirms()
        await connection.close()
      },
      cleanup: async () => {},
    }
  },
  { persistent: true },
)
