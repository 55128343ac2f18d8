import {
  compareDeadLetters,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterPage,
  type DeadLetterQuery,
  matchesDeadLetterFilter,
  pageOfDeadLetters,
} from '@herald/core'
import type { Channel, GetMessage, Options } from 'amqplib'
import { carriedHeaders, copyOptions, deadLetterFrom, X } from './amqp-message.js'
import type { Outgoing } from './connection.js'

export interface DeadLetterBrowserOptions {
  readonly queue: string
  /** A channel of the current connection. */
  readonly openChannel: () => Promise<Channel>
  readonly publish: (messages: readonly Outgoing[]) => Promise<void>
  readonly groupOfQueue: (queue: string) => string
  /** Where a redriven copy goes: through Herald's own delayed exchange to the group's queue. */
  readonly redriveTo: (group: string) => { readonly exchange: string; readonly routingKey: string }
}

interface Held {
  readonly message: GetMessage
  readonly letter: DeadLetter
}

/** Stops a browse that new dead letters keep feeding. */
const maxHeld = 1_000_000

/**
 * The dead-letter queue read as data. A queue has no index, so every operation takes the messages off it
 * unacknowledged (`basic.get`), looks at them, acks the ones it moved or deleted and hands the rest back (`nack`
 * with requeue). Operations run one at a time on one channel: the broker applies a channel's requeues before its
 * next `get`, so no browse misses letters the previous one handed back. Cost grows with the queue's length; a
 * dead-letter queue is meant to stay short.
 */
export function createDeadLetterBrowser(options: DeadLetterBrowserOptions) {
  let channel: Channel | undefined
  let queue: Promise<unknown> = Promise.resolve()

  async function browseChannel(): Promise<Channel> {
    if (channel !== undefined) return channel
    const opened = await options.openChannel()
    opened.on('error', () => {})
    opened.once('close', () => {
      if (channel === opened) channel = undefined
    })
    channel = opened
    return opened
  }

  function holding<T>(work: (held: readonly Held[], channel: Channel) => Promise<T>): Promise<T> {
    const run = async () => {
      const ch = await browseChannel()
      const held: Held[] = []
      try {
        while (held.length < maxHeld) {
          const message = await ch.get(options.queue, { noAck: false })
          if (message === false) break
          held.push({ message, letter: deadLetterFrom(message, options.groupOfQueue) })
        }
        held.sort((a, b) => compareDeadLetters(a.letter, b.letter))
        return await work(held, ch)
      } finally {
        // Everything not acked goes back to the queue.
        for (const h of held) if (!acked.has(h)) ch.nack(h.message, false, true)
        acked.clear()
      }
    }
    const result = queue.then(run, run)
    queue = result.catch(() => {})
    return result
  }
  const acked = new Set<Held>()
  function ack(ch: Channel, h: Held): void {
    ch.ack(h.message)
    acked.add(h)
  }

  function redriveOptions(held: Held): Options.Publish {
    return copyOptions(
      held.message,
      { ...carriedHeaders(held.message), [X.topic]: held.letter.topic },
      held.letter.envelope.id,
    )
  }

  return {
    list(query: DeadLetterQuery = {}): Promise<DeadLetterPage> {
      return holding(async (held) =>
        pageOfDeadLetters(
          held.map((h) => h.letter),
          query,
        ),
      )
    },

    get(id: string, group?: string): Promise<DeadLetter | undefined> {
      return holding(async (held) =>
        held.map((h) => h.letter).find((l) => l.envelope.id === id && (group === undefined || l.group === group)),
      )
    },

    /** Back to the group's queue with the attempt count reset; acked here only once the broker confirmed the copy. */
    redrive(filter: DeadLetterFilter): Promise<number> {
      return holding(async (held, channel) => {
        const chosen = held.filter((h) => matchesDeadLetterFilter(h.letter, filter) && h.letter.group !== '')
        for (let i = 0; i < chosen.length; i += 500) {
          const batch = chosen.slice(i, i + 500)
          await options.publish(
            batch.map((h) => ({
              ...options.redriveTo(h.letter.group),
              content: h.message.content,
              options: redriveOptions(h),
              topic: h.letter.topic,
            })),
          )
          for (const h of batch) ack(channel, h)
        }
        return chosen.length
      })
    },

    purge(filter: DeadLetterFilter): Promise<number> {
      return holding(async (held, channel) => {
        const chosen = held.filter((h) => matchesDeadLetterFilter(h.letter, filter))
        for (const h of chosen) ack(channel, h)
        return chosen.length
      })
    },

    async close(): Promise<void> {
      await queue
      const current = channel
      channel = undefined
      await current?.close().catch(() => {})
    },

    countByGroup(): Promise<Map<string, number>> {
      return holding(async (held) => {
        const counts = new Map<string, number>()
        for (const { letter } of held) counts.set(letter.group, (counts.get(letter.group) ?? 0) + 1)
        return counts
      })
    },
  }
}
