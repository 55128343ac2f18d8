import { type Bus, createBus, defineEvent, type Envelope, sleep, type Transport, uuidV7 } from '@herald/core'
import { z } from 'zod'

/**
 * Which API Herald's side is measured at: `bus`, what a user calls (`createBus`, a zod contract, `bus.publish`,
 * `bus.on`, default consumer options), or `transport`, the port under it (ready envelopes into
 * `transport.publish`, a bare handler on `transport.subscribe`). `npm run bench` runs both; the transport figure
 * says what the bus itself costs.
 */
export type Level = 'bus' | 'transport'
export const level: Level = process.env.HERALD_BENCH_LEVEL === 'transport' ? 'transport' : 'bus'

/** The bus-level message: a zod contract, as a user writes one. `n` is a counter or a send timestamp. */
export const Tick = defineEvent('bench.tick', { schema: z.object({ n: z.number() }) })

/** The same message ordered by key: `n` modulo the key count names its key, as the contract's `key` says. */
export const keyedTick = (keys: number) =>
  defineEvent('bench.tick', { schema: z.object({ n: z.number() }), key: (data) => `k${data.n % keys}` })

/**
 * End-to-end throughput at the bus level with every message keyed (`keys` keys, round robin), so each group
 * handles one key's messages one at a time: beside the unkeyed figure it is what ordering costs.
 */
export async function keyedBusThroughput(
  transport: Transport,
  total: number,
  window: number,
  keys: number,
): Promise<Measurement> {
  const Keyed = keyedTick(keys)
  const done = counter(total)
  const bus = createBus({ transport, service: 'bench' })
  bus.group('bench', { maxInFlight: 100 }).on(Keyed, async () => done.hit())
  await bus.start()
  const started = performance.now()
  for (let sent = 0; sent < total; sent += window) {
    const batch: Promise<string>[] = []
    for (let i = 0; i < window; i++) batch.push(bus.publish(Keyed, { n: sent + i }))
    await Promise.all(batch)
  }
  await done.done
  await bus.stop()
  const seconds = (performance.now() - started) / 1_000
  await transport.close()
  return { perSecond: total / seconds, rssGrowthMb: done.rssGrowthMb }
}

/** A bus over `transport` with the bench's one consumer, `maxInFlight` 100 as the transport-level side uses. */
export async function benchBus(
  transport: Transport,
  onTick: ((n: number) => void) | undefined,
  maxInFlight = 100,
): Promise<Bus> {
  const bus = createBus({ transport, service: 'bench' })
  if (onTick) {
    bus.group('bench', { maxInFlight }).on(Tick, async (message) => {
      onTick(message.data.n)
    })
  }
  await bus.start()
  return bus
}

/** `total` publishes through the bus in windows of `window` concurrent calls, each window awaited. */
export async function publishBusInWindows(bus: Bus, total: number, window: number): Promise<void> {
  for (let sent = 0; sent < total; sent += window) {
    const batch: Promise<string>[] = []
    for (let i = 0; i < window; i++) batch.push(bus.publish(Tick, { n: 1 }))
    await Promise.all(batch)
  }
}
/** One side of one benchmark, measured in its own process. */
export interface Measurement {
  readonly perSecond: number
  readonly p50Ms?: number
  readonly p99Ms?: number
  /** RSS at the end of the run less RSS when a tenth of its messages were handled (the heap had warmed up). */
  readonly rssGrowthMb?: number
}

export type BenchSide = () => Promise<Measurement>

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

export function latencies(samples: number[]): { p50Ms: number; p99Ms: number } {
  samples.sort((a, b) => a - b)
  return { p50Ms: round(percentile(samples, 50)), p99Ms: round(percentile(samples, 99)) }
}

export const round = (n: number, digits = 2): number => Math.round(n * 10 ** digits) / 10 ** digits

const rssMb = (): number => process.memoryUsage.rss() / 2 ** 20

/**
 * Counts handled messages; `done` resolves when the count reaches `target`. It also notes RSS when a tenth of
 * them are handled and again at the end, for `rssGrowthMb`.
 */
export function counter(target: number): {
  hit(): void
  readonly done: Promise<void>
  readonly count: number
  readonly rssGrowthMb: number
} {
  let count = 0
  let rssAtTenth = 0
  let rssAtEnd = 0
  const tenth = Math.max(1, Math.floor(target / 10))
  let resolve!: () => void
  const done = new Promise<void>((r) => {
    resolve = r
  })
  return {
    hit() {
      if (++count === tenth) rssAtTenth = rssMb()
      if (count === target) {
        rssAtEnd = rssMb()
        resolve()
      }
    },
    done,
    get count() {
      return count
    },
    get rssGrowthMb() {
      return round(rssAtEnd - rssAtTenth, 1)
    },
  }
}

/**
 * Publishes `total` one-envelope messages through a Herald transport in windows of `window` concurrent publishes,
 * each window awaited: the shape every Herald throughput bench uses.
 */
export async function publishInWindows(transport: Transport, total: number, window: number): Promise<void> {
  const body = new TextEncoder().encode('{"n":1}')
  for (let sent = 0; sent < total; sent += window) {
    const batch: Promise<void>[] = []
    for (let i = 0; i < window; i++) {
      const envelope: Envelope = { id: uuidV7(), headers: { type: 'bench.tick' }, body }
      batch.push(transport.publish('bench.tick', [envelope]))
    }
    await Promise.all(batch)
  }
}

/**
 * Herald's end-to-end throughput on a transport: one consumer (`maxInFlight: 100`) handles `total` messages
 * published in windows of `window` concurrent publishes; the clock runs from the first publish to the last handled.
 */
export async function heraldThroughput(transport: Transport, total: number, window: number): Promise<Measurement> {
  if (level === 'bus') return busThroughput(transport, total, window)
  const done = counter(total)
  const sub = await transport.subscribe({ group: 'bench', patterns: ['bench.#'], maxInFlight: 100 }, async () => {
    done.hit()
  })
  const started = performance.now()
  await publishInWindows(transport, total, window)
  await done.done
  await sub.close()
  const seconds = (performance.now() - started) / 1_000
  await transport.close()
  return { perSecond: total / seconds, rssGrowthMb: done.rssGrowthMb }
}

/** The same at the bus level. */
async function busThroughput(transport: Transport, total: number, window: number): Promise<Measurement> {
  const done = counter(total)
  const bus = await benchBus(transport, () => done.hit())
  const started = performance.now()
  await publishBusInWindows(bus, total, window)
  await done.done
  await bus.stop()
  const seconds = (performance.now() - started) / 1_000
  await transport.close()
  return { perSecond: total / seconds, rssGrowthMb: done.rssGrowthMb }
}

/** Publishes `total` messages at `ratePerSecond`, in ticks of 5 ms, calling `send` with the batch of each tick. */
export async function atFixedRate(
  total: number,
  ratePerSecond: number,
  send: (bodies: Uint8Array[]) => Promise<void>,
): Promise<void> {
  const tickMs = 5
  const perTick = Math.max(1, Math.round((ratePerSecond * tickMs) / 1_000))
  const encoder = new TextEncoder()
  const started = performance.now()
  const inFlight: Promise<void>[] = []
  for (let sent = 0, tick = 0; sent < total; tick++) {
    const wait = started + tick * tickMs - performance.now()
    if (wait > 0) await sleep(wait)
    const bodies = Array.from({ length: Math.min(perTick, total - sent) }, () =>
      encoder.encode(JSON.stringify({ sentAt: performance.now() })),
    )
    sent += bodies.length
    inFlight.push(send(bodies))
  }
  await Promise.all(inFlight)
}

/** The time a body says it was sent at, to now. */
export function sinceSent(body: Uint8Array): number {
  return performance.now() - (JSON.parse(new TextDecoder().decode(body)) as { sentAt: number }).sentAt
}

/** Herald's latency at a fixed rate: publish call to handler start, p50 and p99, over `total` messages. */
export async function heraldLatency(transport: Transport, total: number, ratePerSecond: number): Promise<Measurement> {
  if (level === 'bus') return busLatency(transport, total, ratePerSecond)
  const samples: number[] = []
  const done = counter(total)
  await transport.subscribe({ group: 'bench', patterns: ['bench.#'], maxInFlight: 100 }, async (envelope) => {
    samples.push(sinceSent(envelope.body))
    done.hit()
  })
  const started = performance.now()
  await atFixedRate(total, ratePerSecond, async (bodies) => {
    await Promise.all(
      bodies.map((body) => transport.publish('bench.tick', [{ id: uuidV7(), headers: { type: 'bench.tick' }, body }])),
    )
  })
  await done.done
  const perSecond = total / ((performance.now() - started) / 1_000)
  await transport.close()
  return { perSecond, ...latencies(samples) }
}

/** The same at the bus level: the send time travels as the contract's `n`. */
async function busLatency(transport: Transport, total: number, ratePerSecond: number): Promise<Measurement> {
  const samples: number[] = []
  const done = counter(total)
  const bus = await benchBus(transport, (sentAt) => {
    samples.push(performance.now() - sentAt)
    done.hit()
  })
  const started = performance.now()
  await atFixedRate(total, ratePerSecond, async (bodies) => {
    await Promise.all(bodies.map(() => bus.publish(Tick, { n: performance.now() })))
  })
  await done.done
  const perSecond = total / ((performance.now() - started) / 1_000)
  await bus.stop()
  await transport.close()
  return { perSecond, ...latencies(samples) }
}
