import { ConfigurationError } from '../errors.js'

/**
 * A token bucket shared by the consumers of one group in one process. It holds at most a tenth of a second's
 * worth of tokens, so no window of time sees more than its share plus that tenth: over any 5 s, at most
 * 5.1 × `perSecond` messages start.
 */
export interface RateLimiter {
  readonly perSecond: number
  /** Takes up to `max` tokens now; returns how many it took (0 when the bucket is empty). */
  take(max: number): number
  /** Returns tokens taken but not used (a claim found fewer messages than it had tokens for). */
  giveBack(n: number): void
  /** Milliseconds until at least one token is there. */
  msUntilNext(): number
}

export function checkRate(perSecond: number): number {
  if (!(Number.isFinite(perSecond) && perSecond > 0))
    throw new ConfigurationError('maxPerSecond', 'must be a positive number of messages per second')
  return perSecond
}

/** The bucket's size: a tenth of a second's worth, and at least one message. */
export function burstOf(perSecond: number): number {
  return Math.max(1, perSecond / 10)
}

export function createRateLimiter(perSecond: number, now: () => number = () => performance.now()): RateLimiter {
  checkRate(perSecond)
  const capacity = burstOf(perSecond)
  let tokens = capacity
  let at = now()

  function refill(): void {
    const t = now()
    tokens = Math.min(capacity, tokens + ((t - at) * perSecond) / 1_000)
    at = t
  }

  return {
    perSecond,
    take(max) {
      refill()
      const taken = Math.max(0, Math.min(max, Math.floor(tokens)))
      tokens -= taken
      return taken
    },
    giveBack(n) {
      tokens = Math.min(capacity, tokens + n)
    },
    msUntilNext() {
      refill()
      return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * 1_000) / perSecond)
    },
  }
}
