import type { Envelope } from '../envelope.js'
import { decideFailure, type FailureOutcome, type RetryPolicy } from '../retry-policy.js'
import { sleep } from '../sleep.js'
import type { CloseReport, Delivery, Handler, Subscription } from '../transport.js'

/** A message claimed from a pull-based store, with its delivery count (this delivery included). */
export interface PulledMessage {
  readonly envelope: Envelope
  readonly topic: string
  readonly attempt: number
}

/** How a claimed message ends: acked, retried later, dead-lettered, or handed back untouched at shutdown. */
export type Settlement = { readonly kind: 'ack' } | { readonly kind: 'release' } | FailureOutcome

/** What a pull-based transport provides; the loop below provides concurrency, failure handling and shutdown. */
export interface PullSource<M extends PulledMessage> {
  /** Claims up to `max` messages for this consumer, counting a delivery attempt on each. */
  fetch(max: number): Promise<readonly M[]>
  /**
   * Applies the outcome. Must ignore a message whose claim was lost (its lease expired and another took it).
   * A source that settles in memory may return nothing: the consumer then skips a promise per message.
   */
  settle(message: M, settlement: Settlement): Promise<void> | void
  /** Resolves when new messages may be ready, or when `signal` aborts. */
  waitForWork(signal: AbortSignal): Promise<void>
}

export interface PullConsumerOptions {
  readonly group: string
  readonly maxInFlight: number
  readonly retry: RetryPolicy
  readonly shutdownTimeoutMs: number
  /** Store errors (fetch or settle) that the loop survived. */
  readonly onError: (err: unknown) => void
  /** Called after the consumer stopped, e.g. to unregister it from its transport. */
  readonly onClosed?: () => void
}

const fetchErrorBackoffMs = 500
const acked: Settlement = { kind: 'ack' }

/**
 * Runs a consumer over a pull-based store: claims only as many messages as it can start at once (so a crash
 * counts an attempt only against messages whose handler had started), runs each handler, settles the outcome
 * through the shared failure model, and on `close()` drains running handlers or abandons them after the timeout.
 */
export function startPullConsumer<M extends PulledMessage>(
  source: PullSource<M>,
  handler: Handler,
  options: PullConsumerOptions,
): Subscription {
  const stopping = new AbortController()
  // One signal for every delivery of this consumer: it aborts only when shutdown abandons what is still running.
  const abandon = new AbortController()
  // Every claimed message until it is settled; `handlers` counts those whose handler still runs.
  const running = new Map<M, { abandoned: boolean; done: Promise<void> | undefined }>()
  let handlers = 0
  let slotFreed: (() => void) | undefined
  let closed: Promise<CloseReport> | undefined

  async function settleSafely(message: M, settlement: Settlement): Promise<void> {
    try {
      await source.settle(message, settlement)
    } catch (err) {
      options.onError(err)
    }
  }

  async function run(message: M, delivery: Delivery, entry: { abandoned: boolean }): Promise<void> {
    let handling = true
    try {
      let settlement: Settlement
      if (message.attempt > options.retry.maxAttempts) {
        // Earlier deliveries ended without an outcome (the consumer crashed or lost its lease): stop here.
        settlement = { kind: 'dead-letter', reason: 'max_deliveries_exceeded', error: undefined }
      } else {
        try {
          await handler(message.envelope, delivery)
          settlement = acked
        } catch (err) {
          settlement = decideFailure(err, message.attempt, options.retry)
        }
      }
      // The handler's slot is free once it returns: the next claim overlaps this settlement (one round trip, or
      // one shared commit, instead of two in a row). The settlement still counts against the unsettled limit.
      handling = false
      handlers--
      slotFreed?.()
      // An abandoned message was already handed back at shutdown; its late outcome must not settle it twice.
      if (entry.abandoned) return
      try {
        const settling = source.settle(message, settlement)
        if (settling !== undefined) await settling
      } catch (err) {
        options.onError(err)
      }
    } finally {
      if (handling) handlers--
      running.delete(message)
      slotFreed?.()
    }
  }

  function start(message: M): void {
    const delivery: Delivery = {
      topic: message.topic,
      group: options.group,
      attempt: message.attempt,
      signal: abandon.signal,
    }
    const entry: { abandoned: boolean; done: Promise<void> | undefined } = { abandoned: false, done: undefined }
    // Registered before it runs: a run that settles without awaiting (a source that settles in memory) removes
    // its entry before `run` returns.
    running.set(message, entry)
    handlers++
    entry.done = run(message, delivery, entry)
  }

  async function loop(): Promise<void> {
    while (!stopping.signal.aborted) {
      // At most maxInFlight handlers at once, and at most as many settlements again still on their way.
      const free = Math.min(options.maxInFlight - handlers, 2 * options.maxInFlight - running.size)
      if (free <= 0) {
        await new Promise<void>((resolve) => {
          slotFreed = resolve
        })
        slotFreed = undefined
        // Handlers finishing in the same turn free their slots together: claim for all of them at once.
        await new Promise((resolve) => setImmediate(resolve))
        continue
      }
      let batch: readonly M[]
      try {
        batch = await source.fetch(free)
      } catch (err) {
        options.onError(err)
        await sleep(fetchErrorBackoffMs, stopping.signal)
        continue
      }
      if (stopping.signal.aborted) {
        await Promise.all(batch.map((m) => settleSafely(m, { kind: 'release' })))
        return
      }
      if (batch.length === 0) {
        await source.waitForWork(stopping.signal)
        continue
      }
      for (const message of batch) start(message)
    }
  }

  const looping = loop().catch(options.onError)

  async function shutdown(): Promise<CloseReport> {
    stopping.abort()
    // No handler starts after this point: the loop hands back anything it fetches from now on.
    const entries = [...running.entries()]
    slotFreed?.()
    await looping
    const allDone = Promise.all(entries.map(([, e]) => e.done))
    const timeout = new AbortController()
    const timedOut = await Promise.race([
      allDone.then(() => false),
      sleep(options.shutdownTimeoutMs, timeout.signal).then(() => true),
    ])
    timeout.abort()
    let abandoned = 0
    if (timedOut) {
      abandon.abort()
      for (const [message, entry] of running) {
        entry.abandoned = true
        abandoned++
        await settleSafely(message, { kind: 'release' })
      }
    }
    options.onClosed?.()
    return { drained: entries.length - abandoned, abandoned }
  }

  return {
    group: options.group,
    close() {
      closed ??= shutdown()
      return closed
    },
  }
}
