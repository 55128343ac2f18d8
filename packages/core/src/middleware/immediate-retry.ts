import { isHeraldError } from '../errors.js'
import { sleep } from '../sleep.js'
import type { Middleware } from '../transport.js'

/**
 * Retries a failed attempt in process, `retries` times, `delayMs` apart, before the failure goes back to the
 * transport for durable, delayed redelivery. Poison failures (errors carrying a dead-letter reason) are never
 * retried, and retrying stops when the delivery's signal aborts (shutdown).
 */
export function immediateRetry(retries: number, delayMs: number): Middleware {
  return (next) => async (envelope, delivery) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await next(envelope, delivery)
      } catch (err) {
        const poison = isHeraldError(err) && err.deadLetterReason !== undefined
        if (poison || attempt >= retries || delivery.signal.aborted) throw err
      }
      await sleep(delayMs, delivery.signal)
    }
  }
}
