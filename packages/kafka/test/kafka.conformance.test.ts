import type { EventEmitter } from 'node:events'
import { type Envelope, uuidV7 } from '@herald/core'
import { describeTransport, type KafkaCluster, pollUntil, startKafka } from '@herald/testkit'
import { instancesChannel, Producer } from '@platformatic/kafka'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKafkaTransport } from '../src/index.js'
import { kafkaNames } from '../src/names.js'
import { outgoing } from '../src/records.js'

let cluster: KafkaCluster | undefined
beforeAll(async () => {
  cluster = await startKafka({ nodes: 1 })
})
afterAll(async () => {
  await cluster?.stop()
})

let prefixes = 0

describeTransport(
  'kafka',
  async () => {
    if (!cluster) throw new Error('Kafka test cluster not started')
    const brokers = cluster.brokers
    // Each test gets its own prefix (topics, consumer groups) on one cluster.
    const prefix = `conformance${++prefixes}`
    return {
      create: () =>
        createKafkaTransport({
          brokers,
          prefix,
          partitions: 2,
          refreshMs: 500,
          ...(process.env.HERALD_KAFKA_DEBUG
            ? { onError: (err: unknown) => console.log('kafka onError', String(err)) }
            : {}),
        }),
      // Poison goes in with the raw client, straight into the group's own topic.
      injectRaw: async (group, topic, envelope) => {
        const raw = new Producer({ clientId: 'inject', bootstrapBrokers: [...brokers] })
        const record = outgoing(kafkaNames(prefix).groupTopic(group), topic, envelope, undefined)
        const headers = new Map(Object.entries(record.headers).map(([k, v]) => [Buffer.from(k), v]))
        await raw.send({ messages: [{ topic: record.topic, value: record.value!, headers }] })
        await raw.close()
      },
      cleanup: async () => {},
    }
  },
  { persistent: true, orderWithoutKey: false, unbindKeepsQueued: false },
)

describe('kafka clients', () => {
  it("kafka-client-error-event: a client's own 'error' event is reported and its group goes on", async () => {
    if (!cluster) throw new Error('Kafka test cluster not started')
    // The client emits 'error' on itself when it gives up rejoining a group (seen when a rebalance met a closing
    // consumer). Collect the clients the transport creates and emit one on each, as the client does.
    const clients: { type: string; instance: EventEmitter }[] = []
    const collect = (created: unknown) => clients.push(created as { type: string; instance: EventEmitter })
    instancesChannel.subscribe(collect)
    const reported: unknown[] = []
    const transport = await createKafkaTransport({
      brokers: cluster.brokers,
      prefix: 'client-errors',
      partitions: 1,
      refreshMs: 500,
      onError: (err) => reported.push(err),
    })
    const got = new Set<string>()
    try {
      const sub = await transport.subscribe({ group: 'g', patterns: ['orders'] }, async (e) => {
        got.add(e.id)
      })
      const envelope = (): Envelope => ({ id: uuidV7(), headers: { type: 'orders' }, body: new Uint8Array(2) })
      const first = envelope()
      await transport.publish('orders', [first])
      await pollUntil(async () => got.has(first.id))
      const emitted = clients.filter((c) => ['admin', 'consumer', 'producer'].includes(c.type))
      expect(emitted.map((c) => c.type).sort()).toEqual(['admin', 'consumer', 'consumer', 'producer'])
      const failure = new Error('rejoinGroup failed 4 times.')
      // emit('error') with no listener throws: each must be heard.
      for (const client of emitted) expect(client.instance.emit('error', failure)).toBe(true)
      expect(reported.filter((err) => err === failure)).toHaveLength(emitted.length)
      // The group's consumer started again on a new client and still gets what is published.
      const second = envelope()
      await transport.publish('orders', [second])
      await pollUntil(async () => got.has(second.id))
      await sub.close()
    } finally {
      instancesChannel.unsubscribe(collect)
      await transport.close()
    }
  })
})
