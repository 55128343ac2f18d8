import { createKafkaTransport } from '@herald/kafka'
import { Admin, Consumer, ProduceAcks, Producer } from '@platformatic/kafka'
import { type BenchSide, heraldThroughput } from '../measure.js'

const messages = 30_000
const window = 1_000
let runs = 0

function brokers(): string[] {
  const list = process.env.HERALD_BENCH_KAFKA_BROKERS
  if (!list) throw new Error('HERALD_BENCH_KAFKA_BROKERS is not set: run through `npm run bench`')
  return list.split(',')
}

/** Herald on Kafka (one node; idempotent producer, acks=all): publish acknowledged, delivered, handled, committed. */
export const heraldKafka: BenchSide = async () => {
  const transport = await createKafkaTransport({ brokers: brokers(), prefix: `bench${process.pid}-${++runs}` })
  return heraldThroughput(transport, messages, window)
}

/**
 * The baseline: the raw client on a topic of the same partitions. Each window of 1,000 values goes as one
 * idempotent acks=all send; a consumer in its own group reads them with the client's stream and commits every
 * 200 ms (autocommit), until all are read.
 */
export const rawKafka: BenchSide = async () => {
  const bootstrapBrokers = brokers()
  const topic = `raw-bench-${process.pid}-${++runs}`
  const admin = new Admin({ clientId: 'raw-admin', bootstrapBrokers })
  await admin.createTopics({ topics: [topic], partitions: 6, replicas: 1 })
  await admin.close()
  const producer = new Producer({ clientId: 'raw-producer', bootstrapBrokers, idempotent: true, acks: ProduceAcks.ALL })
  const consumer = new Consumer({ groupId: `${topic}-g`, clientId: 'raw-consumer', bootstrapBrokers })
  const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: 200 })
  let consumed = 0
  const all = new Promise<void>((resolve) =>
    stream.on('data', () => {
      if (++consumed === messages) resolve()
    }),
  )
  const body = Buffer.from('{"n":1}')
  const started = performance.now()
  for (let sent = 0; sent < messages; sent += window) {
    await producer.send({
      messages: Array.from({ length: window }, (_, i) => ({
        topic,
        value: body,
        headers: new Map([
          [Buffer.from('type'), Buffer.from('bench.tick')],
          [Buffer.from('id'), Buffer.from(String(sent + i))],
        ]),
      })),
    })
  }
  await all
  const seconds = (performance.now() - started) / 1_000
  await stream.close()
  await consumer.close(true)
  await producer.close()
  return { perSecond: messages / seconds }
}
