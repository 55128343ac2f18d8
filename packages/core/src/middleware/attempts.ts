import { type Clock, type ClockTimer, systemClock } from '../clock.js'
import { HandlerTimeoutError, isHeraldError } from '../errors.js'
import type { Delivery, Handler, Middleware } from '../transport.js'

export interface AttemptOptions {
  /** In-process retries of a failed try before the failure goes back to the transport. */
  readonly retries: number
  /** Pause between those tries. */
  readonly retryDelayMs: number
  /** A try running longer than this fails with `HandlerTimeoutError` and has its signal aborted. */
  readonly timeoutMs: number
  /** Whose time the timeouts and pauses run on. Default: the system's. */
  readonly clock?: Clock
}

/**
 * One try of a handler. The handler sees it as its delivery. Its signal is made only when the handler reads it:
 * most handlers never do, and then a try costs no abort controller and no listener.
 */
class Try implements Delivery {
  /** Neighbours in the list of running tries, oldest first (their deadlines are in the same order). */
  prev: Try | undefined
  next: Try | undefined
  running = false
  #controller: AbortController | undefined
  #reason: unknown
  #aborted = false

  constructor(
    readonly outer: Delivery,
    readonly deadline: number,
    /** Ends the try with an error (a timeout) while its handler still runs. */
    readonly fail: (error: unknown) => void,
  ) {}

  get topic(): string {
    return this.outer.topic
  }

  get group(): string {
    return this.outer.group
  }

  get attempt(): number {
    return this.outer.attempt
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#aborted) this.#controller.abort(this.#reason)
      else if (this.outer.signal.aborted) this.#controller.abort(this.outer.signal.reason)
    }
    return this.#controller.signal
  }

  abort(reason: unknown): void {
    if (this.#aborted) return
    this.#aborted = true
    this.#reason = reason
    this.#controller?.abort(reason)
  }
}

/**
 * Runs each delivery's handler with a timeout per try and `retries` immediate retries, `retryDelayMs` apart,
 * before a failure goes back to the transport for durable, delayed redelivery. Errors that carry a dead-letter
 * reason are never retried here, and retrying stops when the delivery's signal aborts (shutdown).
 *
 * Costs no timer and no listener per message: the running tries form one list in deadline order under one
 * timer, and each consumer's signal gets one listener, the first time it is seen, that aborts the tries under it.
 * A handler that ignores its aborted signal keeps running, but its late outcome settles nothing.
 */
export function attempts(options: AttemptOptions): Middleware {
  const { retries, retryDelayMs, timeoutMs, clock = systemClock } = options
  return (next) => {
    let oldest: Try | undefined
    let newest: Try | undefined
    let timer: ClockTimer | undefined
    /** Deliveries waiting between two tries, with the function that ends the wait. */
    const pausing = new Map<Delivery, () => void>()
    const hooked = new WeakSet<AbortSignal>()

    function link(t: Try): void {
      t.running = true
      t.prev = newest
      if (newest === undefined) oldest = t
      else newest.next = t
      newest = t
      if (timer === undefined) arm()
    }

    /** Takes a try off the list; false if it was already off (timed out, or aborted). */
    function unlink(t: Try): boolean {
      if (!t.running) return false
      t.running = false
      if (t.prev === undefined) oldest = t.next
      else t.prev.next = t.next
      if (t.next === undefined) newest = t.prev
      else t.next.prev = t.prev
      t.prev = t.next = undefined
      return true
    }

    function arm(): void {
      if (oldest === undefined) return
      timer = clock.setTimer(expire, oldest.deadline - clock.monotonic())
      // Running handlers keep the process alive; the timer that watches them need not.
      timer.unref()
    }

    function expire(): void {
      timer = undefined
      const now = clock.monotonic()
      while (oldest !== undefined && oldest.deadline <= now) {
        const t = oldest
        unlink(t)
        const error = new HandlerTimeoutError(timeoutMs)
        t.abort(error)
        t.fail(error)
      }
      arm()
    }

    function hook(signal: AbortSignal): void {
      if (hooked.has(signal)) return
      hooked.add(signal)
      signal.addEventListener(
        'abort',
        () => {
          for (let t = oldest; t !== undefined; t = t.next) if (t.outer.signal === signal) t.abort(signal.reason)
          for (const [delivery, wake] of pausing) if (delivery.signal === signal) wake()
        },
        { once: true },
      )
    }

    function run(envelope: Parameters<Handler>[0], delivery: Delivery, tried: number): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        const failed = (error: unknown) => {
          const poison = isHeraldError(error) && error.deadLetterReason !== undefined
          if (poison || tried >= retries || delivery.signal.aborted) return reject(error)
          const wake = () => {
            wait.cancel()
            pausing.delete(delivery)
            if (delivery.signal.aborted) reject(error)
            else resolve(run(envelope, delivery, tried + 1))
          }
          const wait = clock.setTimer(wake, retryDelayMs)
          pausing.set(delivery, wake)
        }
        const t = new Try(delivery, clock.monotonic() + timeoutMs, failed)
        link(t)
        let handling: Promise<void>
        try {
          handling = next(envelope, t)
        } catch (error) {
          unlink(t)
          failed(error)
          return
        }
        Promise.resolve(handling).then(
          () => {
            if (unlink(t)) resolve()
          },
          (error: unknown) => {
            if (unlink(t)) failed(error)
          },
        )
      })
    }

    return (envelope, delivery) => {
      hook(delivery.signal)
      return run(envelope, delivery, 0)
    }
  }
}
