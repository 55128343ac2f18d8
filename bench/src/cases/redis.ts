import { createRedisTransport } from '@herald/redis'
import { Redis } from 'ioredis'
import {
  atFixedRate,
  type BenchSide,
  heraldLatency,
  heraldThroughput,
  keyedBusThroughput,
  latencies,
  sinceSent,
} from '../measure.js'

const messages = 30_000
const window = 1_000
let runs = 0

function serverUrl(): string {
  const url = process.env.HERALD_BENCH_REDIS_URL
  if (!url) throw new Error('HERALD_BENCH_REDIS_URL is not set: run through `npm run bench`')
  return url
}

/** Herald on Redis (AOF, appendfsync everysec): publish confirmed, delivered, handled, acked. */
export const heraldRedis: BenchSide = async () => {
  const transport = await createRedisTransport({ url: serverUrl(), prefix: `bench${process.pid}-${++runs}` })
  return heraldThroughput(transport, messages, window)
}

/** The same bus with every message keyed, 1,000 keys. */
export const heraldRedisKeyed: BenchSide = async () => {
  const transport = await createRedisTransport({ url: serverUrl(), prefix: `bench-keyed${process.pid}-${++runs}` })
  return keyedBusThroughput(transport, messages, window, 1_000)
}

/**
 * The raw consumer: XREADGROUP COUNT 100 BLOCK 100 on its own connection, each entry handed to `handle`, then the
 * batch acked and deleted (XACK + XDEL) in one pipeline, until `total` entries are done.
 */
async function rawConsume(
  redis: Redis,
  reader: Redis,
  key: string,
  total: number,
  handle: (fields: Buffer[]) => Promise<void> | void,
): Promise<void> {
  let consumed = 0
  while (consumed < total) {
    const reply = (await reader.callBuffer('XREADGROUP', [
      ...['GROUP', 'g', 'c', 'COUNT', 100, 'BLOCK', 100, 'STREAMS', key, '>'],
    ])) as [Buffer, [Buffer, Buffer[]][]][] | null
    const entries = reply?.[0]?.[1] ?? []
    if (entries.length === 0) continue
    await Promise.all(entries.map(([, fields]) => handle(fields)))
    const ids = entries.map(([id]) => id)
    await redis
      .pipeline()
      .xack(key, 'g', ...ids)
      .xdel(key, ...ids)
      .exec()
    consumed += entries.length
  }
}

/**
 * The baseline: raw ioredis on one stream. XADD pipelined a window at a time; a consumer on its own connection
 * reads with XREADGROUP COUNT 100 BLOCK and acks each batch with XACK + XDEL in one pipeline.
 */
export const rawRedis: BenchSide = async () => {
  const key = `raw-bench:${process.pid}:${++runs}`
  const redis = new Redis(serverUrl(), { protocol: 2 })
  const reader = redis.duplicate()
  await redis.call('XGROUP', 'CREATE', key, 'g', '0', 'MKSTREAM')
  const body = Buffer.from('{"n":1}')
  const started = performance.now()
  const consuming = rawConsume(redis, reader, key, messages, async () => {})
  for (let sent = 0; sent < messages; sent += window) {
    const pipeline = redis.pipeline()
    for (let i = 0; i < window; i++)
      pipeline.xadd(key, '*', 'i', `${sent + i}`, 'h', '{"type":"bench.tick"}', 'b', body)
    await pipeline.exec()
  }
  await consuming
  const seconds = (performance.now() - started) / 1_000
  await redis.del(key)
  reader.disconnect()
  redis.disconnect()
  return { perSecond: messages / seconds }
}

/**
 * What Node users pick instead: BullMQ on the same server. 30,000 jobs added in bulk windows of 1,000, one Worker
 * with concurrency 100; the clock runs from the first add to the last job completed.
 */
export const bullmq: BenchSide = async () => {
  const { Queue, Worker } = await import('bullmq')
  const url = new URL(serverUrl())
  const connection = { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null }
  const name = `bullmq-bench-${process.pid}-${++runs}`
  const queue = new Queue(name, { connection })
  let completed = 0
  let done!: () => void
  const all = new Promise<void>((resolve) => {
    done = resolve
  })
  const worker = new Worker(
    name,
    async () => {
      if (++completed === messages) done()
    },
    { connection, concurrency: 100, removeOnComplete: { count: 0 } },
  )
  await worker.waitUntilReady()
  const started = performance.now()
  for (let sent = 0; sent < messages; sent += window) {
    await queue.addBulk(
      Array.from({ length: window }, (_, i) => ({
        name: 'bench.tick',
        data: { n: sent + i },
        opts: { removeOnComplete: true },
      })),
    )
  }
  await all
  const seconds = (performance.now() - started) / 1_000
  await worker.close()
  await queue.obliterate({ force: true })
  await queue.close()
  return { perSecond: messages / seconds }
}

const latencyTotal = 15_000
const latencyRate = 5_000

/** Herald on Redis at a fixed 5,000 msg/s: publish call to handler start. */
export const heraldRedisLatency: BenchSide = async () => {
  const transport = await createRedisTransport({ url: serverUrl(), prefix: `bench-lat${process.pid}-${++runs}` })
  return heraldLatency(transport, latencyTotal, latencyRate)
}

/** Raw ioredis at the same rate: each tick's XADDs in one pipeline; a reader with XREADGROUP BLOCK, XACK + XDEL. */
export const rawRedisLatency: BenchSide = async () => {
  const key = `raw-bench-lat:${process.pid}:${++runs}`
  const redis = new Redis(serverUrl(), { protocol: 2 })
  const reader = redis.duplicate()
  await redis.call('XGROUP', 'CREATE', key, 'g', '0', 'MKSTREAM')
  const samples: number[] = []
  const started = performance.now()
  const consuming = rawConsume(redis, reader, key, latencyTotal, (fields) => {
    samples.push(sinceSent(fields[1]!))
  })
  await atFixedRate(latencyTotal, latencyRate, async (bodies) => {
    const pipeline = redis.pipeline()
    for (const body of bodies) pipeline.xadd(key, '*', 'b', Buffer.from(body))
    await pipeline.exec()
  })
  await consuming
  const perSecond = latencyTotal / ((performance.now() - started) / 1_000)
  await redis.del(key)
  reader.disconnect()
  redis.disconnect()
  return { perSecond, ...latencies(samples) }
}
