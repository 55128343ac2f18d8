import { createRabbitMqTransport } from '@herald/rabbitmq'
import amqp from 'amqplib'
import { atFixedRate, type BenchSide, heraldLatency, heraldThroughput, latencies, sinceSent } from '../measure.js'

const messages = 30_000
const window = 1_000
const prefetch = 100
let runs = 0

function serverUrl(): string {
  const url = process.env.HERALD_BENCH_RABBITMQ_URL
  if (!url) throw new Error('HERALD_BENCH_RABBITMQ_URL is not set: run through `npm run bench`')
  return url
}

/** Herald on RabbitMQ (quorum queue, persistent, confirms): publish confirmed, delivered, handled, acked. */
export const heraldRabbitMq: BenchSide = async () => {
  const name = `bench${process.pid}-${++runs}`
  const transport = await createRabbitMqTransport({
    url: serverUrl(),
    exchange: name,
    namespace: name,
    queueName: (group) => `${name}.${group}`,
  })
  return heraldThroughput(transport, messages, window)
}

/** The baseline's topology: a topic exchange and a quorum queue bound to it, as Herald declares for a group. */
async function rawTopology(name: string) {
  const connection = await amqp.connect(serverUrl(), { noDelay: true })
  const publisher = await connection.createConfirmChannel()
  const consumer = await connection.createChannel()
  await publisher.assertExchange(name, 'topic', { durable: true })
  await publisher.assertQueue(name, { durable: true, arguments: { 'x-queue-type': 'quorum' } })
  await publisher.bindQueue(name, name, 'bench.#')
  await consumer.prefetch(prefetch)
  return { connection, publisher, consumer }
}

/** Publishes on a confirm channel and resolves when the broker confirmed every message of the batch. */
function publishConfirmed(channel: amqp.ConfirmChannel, exchange: string, bodies: readonly Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = bodies.length
    for (const body of bodies)
      channel.publish(exchange, 'bench.tick', body, { persistent: true, contentType: 'application/json' }, (err) => {
        if (err) reject(err)
        else if (--left === 0) resolve()
      })
  })
}

/**
 * The baseline: raw amqplib. Persistent messages published on a confirm channel a window at a time (each window's
 * confirms awaited); a consumer with the same prefetch (100) acks each message after its handler.
 */
export const rawRabbitMq: BenchSide = async () => {
  const name = `raw-bench-${process.pid}-${++runs}`
  const { connection, publisher, consumer } = await rawTopology(name)
  let consumed = 0
  let done!: () => void
  const all = new Promise<void>((resolve) => {
    done = resolve
  })
  await consumer.consume(name, (message) => {
    if (message === null) return
    consumer.ack(message)
    if (++consumed === messages) done()
  })
  const body = Buffer.from('{"n":1}')
  const started = performance.now()
  for (let sent = 0; sent < messages; sent += window)
    await publishConfirmed(
      publisher,
      name,
      Array.from({ length: window }, () => body),
    )
  await all
  const seconds = (performance.now() - started) / 1_000
  await publisher.deleteQueue(name)
  await publisher.deleteExchange(name)
  await connection.close()
  return { perSecond: messages / seconds }
}

const latencyTotal = 15_000
const latencyRate = 5_000

/** Herald on RabbitMQ at a fixed 5,000 msg/s: publish call to handler start. */
export const heraldRabbitMqLatency: BenchSide = async () => {
  const name = `bench-lat${process.pid}-${++runs}`
  const transport = await createRabbitMqTransport({
    url: serverUrl(),
    exchange: name,
    namespace: name,
    queueName: (group) => `${name}.${group}`,
  })
  return heraldLatency(transport, latencyTotal, latencyRate)
}

/** Raw amqplib at the same rate: each tick's messages published with confirms; consumer acks each one. */
export const rawRabbitMqLatency: BenchSide = async () => {
  const name = `raw-bench-lat-${process.pid}-${++runs}`
  const { connection, publisher, consumer } = await rawTopology(name)
  const samples: number[] = []
  let done!: () => void
  const all = new Promise<void>((resolve) => {
    done = resolve
  })
  await consumer.consume(name, (message) => {
    if (message === null) return
    samples.push(sinceSent(message.content))
    consumer.ack(message)
    if (samples.length === latencyTotal) done()
  })
  const started = performance.now()
  await atFixedRate(latencyTotal, latencyRate, (bodies) =>
    publishConfirmed(
      publisher,
      name,
      bodies.map((b) => Buffer.from(b)),
    ),
  )
  await all
  const perSecond = latencyTotal / ((performance.now() - started) / 1_000)
  await publisher.deleteQueue(name)
  await publisher.deleteExchange(name)
  await connection.close()
  return { perSecond, ...latencies(samples) }
}
