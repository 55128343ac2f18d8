import { EventEmitter } from 'node:events'
import { createInMemoryTransport, uuidV7 } from '@herald/core'
import { type BenchSide, counter, heraldThroughput, keyedBusThroughput } from '../measure.js'

const window = 1_000
const encoder = new TextEncoder()

async function handle(_payload: unknown): Promise<void> {}

/** Herald on its in-memory transport, end to end: publish, route, deliver to an async handler, ack. */
export const heraldInMemoryOver =
  (messages: number): BenchSide =>
  () =>
    heraldThroughput(createInMemoryTransport(), messages, window)

/** The baseline: an EventEmitter whose listener awaits an async handler, each emit awaited. */
export const rawEventEmitterOver =
  (messages: number): BenchSide =>
  async () => {
    const emitter = new EventEmitter()
    const done = counter(messages)
    emitter.on('message', (payload: unknown, ack: () => void) => {
      void handle(payload).then(() => {
        done.hit()
        ack()
      })
    })
    const body = encoder.encode('{"n":1}')
    const started = performance.now()
    for (let sent = 0; sent < messages; sent += window) {
      const batch: Promise<void>[] = []
      for (let i = 0; i < window; i++) {
        const message = { id: uuidV7(), headers: { type: 'bench.tick' }, body }
        batch.push(new Promise<void>((ack) => emitter.emit('message', message, ack)))
      }
      await Promise.all(batch)
    }
    await done.done
    return { perSecond: messages / ((performance.now() - started) / 1_000), rssGrowthMb: done.rssGrowthMb }
  }

export const heraldInMemory = heraldInMemoryOver(200_000)
export const rawEventEmitter = rawEventEmitterOver(200_000)

/** The same bus with every message keyed, 1,000 keys. */
export const heraldInMemoryKeyed: BenchSide = () =>
  keyedBusThroughput(createInMemoryTransport(), 200_000, window, 1_000)
