import { describeTransport, type KafkaCluster, startKafka } from '@herald/testkit'
import { Producer } from '@platformatic/kafka'
import { afterAll, beforeAll } from 'vitest'
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
