import { uuidV7 } from '@herald/core'
import { createRabbitMqTransport } from '@herald/rabbitmq'
import amqp from 'amqplib'
import {
  atFixedRate,
  type BenchSide,
  benchBus,
  counter,
  heraldLatency,
  heraldThroughput,
  latencies,
  level,
  publishBusInWindows,
  publishInWindows,
  sinceSent,
} from '../measure.js'

const messages = 30_000
const window = 1_000
const prefetch = 100
let runs = 0

function serverUrl(): string {
  const url = process.env.HERALD_BENCH_RABBITMQ_URL
  if (!url) throw new Error('HERALD_BENCH_RABBITMQ_URL is not set: run through `npm run bench`')
  return url
}

/** Herald with its defaults (quorum queues, persistent, confirms) under names of its own. */
function heraldTransport(kind: string) {
  const name = `bench-${kind}${process.pid}-${++runs}`
  return createRabbitMqTransport({
    url: serverUrl(),
    exchange: name,
    namespace: name,
    queueName: (group) => `${name}.${group}`,
  })
}

/** Herald on RabbitMQ (quorum queue, persistent, confirms): publish confirmed, delivered, handled, acked. */
export const heraldRabbitMq: BenchSide = async () => heraldThroughput(await heraldTransport('e2e'), messages, window)

/** The baseline's topology: a topic exchange and a quorum queue bound to it, as Herald declares for a group. */
async function rawTopology(name: string) {
  const connection = await amqp.connect(serverUrl(), { noDelay: true })
  const publisher = await connection.createConfirmChannel()
  const consumer = await connection.createChannel()
  await publisher.assertExchange(name, 'topic', { durable: true })
  await publisher.assertQueue(name, { durable: true, arguments: { 'x-queue-type': 'quorum' } })
  await publisher.bindQueue(name, name, 'bench.#')
  await consumer.prefetch(prefetch)
  const teardown = async () => {
    await publisher.deleteQueue(name)
    await publisher.deleteExchange(name)
    await connection.close()
  }
  return { connection, publisher, consumer, teardown }
}

/** Publishes `messages` bodies through the raw publisher, a window at a time, each window's confirms awaited. */
async function rawPublishAll(publisher: amqp.ConfirmChannel, exchange: string): Promise<void> {
  const body = Buffer.from('{"n":1}')
  for (let sent = 0; sent < messages; sent += window)
    await publishConfirmed(
      publisher,
      exchange,
      Array.from({ length: window }, () => body),
    )
}

/**
 * What a hand-rolled publisher of the same messages sends: an id per message and the CloudEvents AMQP binding's
 * headers, as Herald does (a plain client can read either). Headers cost the broker: the same raw client with no
 * properties at all publishes 15 to 25% faster on this machine (docs/benchmarks.md).
 */
function messageOptions(): amqp.Options.Publish {
  const id = uuidV7()
  return {
    persistent: true,
    messageId: id,
    type: 'bench.tick',
    headers: { 'cloudEvents:id': id, 'cloudEvents:type': 'bench.tick' },
  }
}

/** Publishes on a confirm channel and resolves when the broker confirmed every message of the batch. */
function publishConfirmed(channel: amqp.ConfirmChannel, exchange: string, bodies: readonly Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    let left = bodies.length
    for (const body of bodies)
      channel.publish(exchange, 'bench.tick', body, messageOptions(), (err) => {
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
  const { publisher, consumer, teardown } = await rawTopology(name)
  const done = counter(messages)
  await consumer.consume(name, (message) => {
    if (message === null) return
    consumer.ack(message)
    done.hit()
  })
  const started = performance.now()
  await rawPublishAll(publisher, name)
  await done.done
  const seconds = (performance.now() - started) / 1_000
  await teardown()
  return { perSecond: messages / seconds }
}

const latencyTotal = 15_000
const latencyRate = 5_000

/** Herald on RabbitMQ at a fixed 5,000 msg/s: publish call to handler start. */
export const heraldRabbitMqLatency: BenchSide = async () =>
  heraldLatency(await heraldTransport('lat'), latencyTotal, latencyRate)

/** Raw amqplib at the same rate: each tick's messages published with confirms; consumer acks each one. */
export const rawRabbitMqLatency: BenchSide = async () => {
  const name = `raw-bench-lat-${process.pid}-${++runs}`
  const { publisher, consumer, teardown } = await rawTopology(name)
  const samples: number[] = []
  const done = counter(latencyTotal)
  await consumer.consume(name, (message) => {
    if (message === null) return
    samples.push(sinceSent(message.content))
    consumer.ack(message)
    done.hit()
  })
  const started = performance.now()
  await atFixedRate(latencyTotal, latencyRate, (bodies) =>
    publishConfirmed(
      publisher,
      name,
      bodies.map((b) => Buffer.from(b)),
    ),
  )
  await done.done
  const perSecond = latencyTotal / ((performance.now() - started) / 1_000)
  await teardown()
  return { perSecond, ...latencies(samples) }
}

/** Herald, publishing only: `messages` confirmed publishes, a window at a time, into a group's quorum queue. */
export const heraldRabbitMqPublish: BenchSide = async () => {
  const transport = await heraldTransport('pub')
  await transport.declareGroup('bench', ['bench.#'])
  const bus = level === 'bus' ? await benchBus(transport, undefined) : undefined
  const started = performance.now()
  if (bus) await publishBusInWindows(bus, messages, window)
  else await publishInWindows(transport, messages, window)
  const seconds = (performance.now() - started) / 1_000
  await transport.deleteGroup('bench')
  await transport.close()
  return { perSecond: messages / seconds }
}

/** Raw amqplib, publishing only: the same windows of confirmed persistent publishes into the same topology. */
export const rawRabbitMqPublish: BenchSide = async () => {
  const name = `raw-bench-pub-${process.pid}-${++runs}`
  const { publisher, teardown } = await rawTopology(name)
  const started = performance.now()
  await rawPublishAll(publisher, name)
  const seconds = (performance.now() - started) / 1_000
  await teardown()
  return { perSecond: messages / seconds }
}

/** Herald, consuming only: a queue filled beforehand, drained by one subscriber (prefetch 100), each message acked. */
export const heraldRabbitMqConsume: BenchSide = async () => {
  const transport = await heraldTransport('con')
  await transport.declareGroup('bench', ['bench.#'])
  await publishInWindows(transport, messages, window)
  const done = counter(messages)
  const started = performance.now()
  // The queue holds `bench.tick` envelopes with the body `{"n":1}`: valid data for the bus's contract too.
  const sub =
    level === 'bus'
      ? await benchBus(transport, () => done.hit(), prefetch)
      : await transport.subscribe({ group: 'bench', patterns: ['bench.#'], maxInFlight: prefetch }, async () => {
          done.hit()
        })
  await done.done
  const seconds = (performance.now() - started) / 1_000
  if ('stop' in sub) await sub.stop()
  else await sub.close()
  await transport.deleteGroup('bench')
  await transport.close()
  return { perSecond: messages / seconds }
}

/** Raw amqplib, consuming only: the same filled quorum queue, prefetch 100, ack after each handler. */
export const rawRabbitMqConsume: BenchSide = async () => {
  const name = `raw-bench-con-${process.pid}-${++runs}`
  const { publisher, consumer, teardown } = await rawTopology(name)
  await rawPublishAll(publisher, name)
  const done = counter(messages)
  const started = performance.now()
  await consumer.consume(name, (message) => {
    if (message === null) return
    void Promise.resolve().then(() => {
      consumer.ack(message)
      done.hit()
    })
  })
  await done.done
  const seconds = (performance.now() - started) / 1_000
  await teardown()
  return { perSecond: messages / seconds }
}
