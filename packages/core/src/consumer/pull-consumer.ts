import type { Envelope } from '../envelope.js'
import { decideFailure, type FailureOutcome, type RetryPolicy } from '../retry-policy.js'
import { sleep } from '../sleep.js'
import type { CloseReport, Delivery, Handler, Subscription } from '../transport.js'
import type { RateLimiter } from './rate-limiter.js'

/** A message claimed from a pull-based store, with its delivery count (this delivery included). */
export interface PulledMessage {
  readonly envelope: Envelope
  readonly topic: string
  readonly attempt: number
}

/**
 * How a claimed message ends: acked, retried later, dead-lettered, or handed back untouched at shutdown. A dead
 * letter says how many deliveries to record: the ones that reached a handler (a claim that found the attempts
 * used up delivered nothing, so it does not count).
 */
export type Settlement =
  | { readonly kind: 'ack' }
  | { readonly kind: 'release' }
  | Extract<FailureOutcome, { kind: 'retry' }>
  | (Extract<FailureOutcome, { kind: 'dead-letter' }> & { readonly attempts: number })

/** The settlement of a failed delivery, with the attempts a dead letter records. */
export function settlementOf(outcome: FailureOutcome, attempt: number): Settlement {
  return outcome.kind === 'retry' ? outcome : { ...outcome, attempts: attempt }
}

/** What a pull-based transport provides; the loop below provides concurrency, failure handling and shutdown. */
export interface PullSource<M extends PulledMessage> {
  /** Claims up to `max` messages for this consumer, counting a delivery attempt on each. */
  fetch(max: number): Promise<readonly M[]>
  /**
   * Applies the outcome. Must ignore a message whose claim was lost (its lease expired and another took it).
   * A source that settles in memory may return nothing: the consumer then skips a promise per message.
   */
  settle(message: M, settlement: Settlement): Promise<void> | void
  /**
   * The settlement the source will store for this one, if it cannot store it as given: e.g. a retry whose copy
   * could never be sent becomes a dead letter. Called before `settle`, which then gets the revised settlement.
   */
  revise?(message: M, settlement: Settlement): Settlement
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
  /** Shared by the group's consumers in this process: no claim takes more messages than it has tokens for. */
  readonly rate?: RateLimiter
  /** Told each delivery's outcome as it is decided (see `SubscriptionSpec.onSettled`). */
  readonly onSettled?: SettledListener
}

/** Hears how each delivery ended. */
export type SettledListener = (envelope: Envelope, delivery: Delivery, settlement: Settlement) => void

const fetchErrorBackoffMs = 500
const acked: Settlement = { kind: 'ack' }

/**
 * One claimed message until its outcome is stored. The handler sees it as its `Delivery`: the message and the
 * consumer's bookkeeping are private fields, so logging or spreading a delivery shows only the delivery.
 */
class Claim<M extends PulledMessage> implements Delivery {
  readonly topic: string
  readonly attempt: number
  readonly #message: M
  /** Handed back at shutdown while its handler still ran: its late outcome must not settle it again. */
  #abandoned = false
  /** Its place in the consumer's list of unsettled claims. */
  #index = -1

  constructor(
    message: M,
    readonly group: string,
    readonly signal: AbortSignal,
  ) {
    this.topic = message.topic
    this.attempt = message.attempt
    this.#message = message
  }

  get message(): M {
    return this.#message
  }

  get abandoned(): boolean {
    return this.#abandoned
  }

  abandon(): void {
    this.#abandoned = true
  }

  get index(): number {
    return this.#index
  }

  set index(index: number) {
    this.#index = index
  }
}

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
  // Every claimed message until it is settled, in no order (removal swaps in the last one: no hashing, no
  // shifting); `handlers` counts those whose handler still runs.
  const unsettled: Claim<M>[] = []
  let handlers = 0
  // Wakes the claiming loop when a handler returns, and shutdown when the last outcome is stored.
  let slotFreed: (() => void) | undefined
  let allSettled: (() => void) | undefined
  let closed: Promise<CloseReport> | undefined
  const onSettled = options.onSettled

  function report(delivery: Claim<M> | M, settlement: Settlement): void {
    const message = delivery instanceof Claim ? delivery.message : delivery
    const facts: Delivery =
      delivery instanceof Claim
        ? delivery
        : { topic: message.topic, group: options.group, attempt: message.attempt, signal: abandon.signal }
    try {
      onSettled?.(message.envelope, facts, settlement)
    } catch (err) {
      options.onError(err)
    }
  }

  async function settleSafely(message: M | Claim<M>, settlement: Settlement): Promise<void> {
    if (onSettled !== undefined) report(message, settlement)
    try {
      await source.settle(message instanceof Claim ? message.message : message, settlement)
    } catch (err) {
      options.onError(err)
    }
  }

  // Runs the handler. No async function per message: a promise chain on the handler's own promise is the only
  // allocation the wait needs.
  function start(message: M): void {
    const claim = new Claim(message, options.group, abandon.signal)
    claim.index = unsettled.length
    unsettled.push(claim)
    handlers++
    if (message.attempt > options.retry.maxAttempts) {
      // Earlier deliveries ended without an outcome (the consumer crashed or lost its lease): stop here.
      const attempts = message.attempt - 1
      handled(claim, { kind: 'dead-letter', reason: 'max_deliveries_exceeded', error: undefined, attempts })
      return
    }
    let handling: Promise<void>
    try {
      handling = handler(message.envelope, claim)
    } catch (err) {
      handled(claim, settlementOf(decideFailure(err, message.attempt, options.retry), message.attempt))
      return
    }
    Promise.resolve(handling).then(
      () => handled(claim, acked),
      (err: unknown) =>
        handled(claim, settlementOf(decideFailure(err, message.attempt, options.retry), message.attempt)),
    )
  }

  function handled(claim: Claim<M>, decided: Settlement): void {
    // The handler's slot is free once it returns: the next claim overlaps this settlement (one round trip, or
    // one shared commit, instead of two in a row). The settlement still counts against the unsettled limit.
    handlers--
    // An abandoned message was already handed back at shutdown.
    if (claim.abandoned) return
    const settlement = source.revise === undefined ? decided : source.revise(claim.message, decided)
    if (onSettled !== undefined) report(claim, settlement)
    let settling: Promise<void> | void
    try {
      settling = source.settle(claim.message, settlement)
    } catch (err) {
      options.onError(err)
      settled(claim)
      return
    }
    // Settled at once (in memory): `settled` wakes the loop. Otherwise wake it now, for the handler's slot.
    if (settling === undefined) {
      settled(claim)
      return
    }
    slotFreed?.()
    settling.then(
      () => settled(claim),
      (err: unknown) => {
        options.onError(err)
        settled(claim)
      },
    )
  }

  function settled(claim: Claim<M>): void {
    // Shutdown already took an abandoned claim off the list.
    if (claim.abandoned) return
    forget(claim)
    slotFreed?.()
    if (unsettled.length === 0) allSettled?.()
  }

  function forget(claim: Claim<M>): void {
    const last = unsettled.pop()!
    if (last !== claim) {
      unsettled[claim.index] = last
      last.index = claim.index
    }
  }

  async function loop(): Promise<void> {
    while (!stopping.signal.aborted) {
      // At most maxInFlight handlers at once, and at most as many settlements again still on their way.
      const free = Math.min(options.maxInFlight - handlers, 2 * options.maxInFlight - unsettled.length)
      if (free <= 0) {
        await new Promise<void>((resolve) => {
          slotFreed = resolve
        })
        slotFreed = undefined
        // Handlers finishing in the same turn free their slots together: claim for all of them at once.
        await new Promise((resolve) => setImmediate(resolve))
        continue
      }
      let want = free
      if (options.rate !== undefined) {
        want = options.rate.take(free)
        if (want === 0) {
          await sleep(options.rate.msUntilNext(), stopping.signal)
          continue
        }
      }
      let batch: readonly M[]
      try {
        batch = await source.fetch(want)
      } catch (err) {
        options.rate?.giveBack(want)
        options.onError(err)
        await sleep(fetchErrorBackoffMs, stopping.signal)
        continue
      }
      if (batch.length < want) options.rate?.giveBack(want - batch.length)
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
    const inFlight = unsettled.length
    slotFreed?.()
    await looping
    const allDone = new Promise<boolean>((resolve) => {
      allSettled = () => resolve(false)
      if (unsettled.length === 0) resolve(false)
    })
    const timeout = new AbortController()
    const timedOut = await Promise.race([allDone, sleep(options.shutdownTimeoutMs, timeout.signal).then(() => true)])
    timeout.abort()
    let abandoned = 0
    if (timedOut) {
      abandon.abort()
      for (const claim of unsettled.splice(0)) {
        claim.abandon()
        abandoned++
        await settleSafely(claim, { kind: 'release' })
      }
    }
    options.onClosed?.()
    return { drained: inFlight - abandoned, abandoned }
  }

  return {
    group: options.group,
    close() {
      closed ??= shutdown()
      return closed
    },
  }
}
