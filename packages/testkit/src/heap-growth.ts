import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { createBus, defineEvent, type Transport } from '@herald/core'
import { objectSchema } from './suite/test-schema.js'

export interface HeapGrowth {
  /** Live heap after a full collection once the first tenth of the messages was handled, in bytes. */
  readonly warmBytes: number
  /** Live heap after a full collection once all of them were handled and acked, in bytes. */
  readonly endBytes: number
  /** What each message handled after the first tenth left behind on average: about 0 unless something leaks. */
  readonly bytesPerMessage: number
}

const Tick = defineEvent('heap.tick', { schema: objectSchema({ n: 'number' }) })

/** The collector, exposed for this process: live heap is only comparable straight after a full collection. */
function collector(): () => void {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}

/**
 * Runs `messages` events through a bus on `transport` (published in windows of `window`, one consumer group) and
 * measures the live heap after a full collection at the first tenth and at the end. A consumer that keeps
 * anything per message (an id in a map, a settled promise, an unbounded buffer) shows as bytes per message.
 */
export async function measureHeapGrowth(
  transport: Transport,
  { messages, group = 'heap', window = 500 }: { messages: number; group?: string; window?: number },
): Promise<HeapGrowth> {
  const gc = collector()
  const bus = createBus({ transport, service: group })
  const tenth = Math.floor(messages / 10)
  let handled = 0
  let reached: (() => void) | undefined
  let target = tenth
  bus.group(group).on(Tick, async () => {
    if (++handled === target) reached?.()
  })
  await bus.start()
  const handledUpTo = (count: number) =>
    new Promise<void>((resolve) => {
      target = count
      reached = resolve
      if (handled >= count) resolve()
    })
  const liveHeap = (): number => {
    gc()
    return process.memoryUsage().heapUsed
  }
  let warmBytes = 0
  for (let sent = 0; sent < messages; sent += window) {
    await Promise.all(
      Array.from({ length: Math.min(window, messages - sent) }, (_, i) => bus.publish(Tick, { n: sent + i })),
    )
    if (warmBytes === 0 && sent + window >= tenth) {
      await handledUpTo(tenth)
      warmBytes = liveHeap()
    }
  }
  await handledUpTo(messages)
  const endBytes = liveHeap()
  await bus.stop()
  return { warmBytes, endBytes, bytesPerMessage: (endBytes - warmBytes) / (messages - tenth) }
}
