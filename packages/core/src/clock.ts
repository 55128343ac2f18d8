/**
 * Where Herald reads the time and sets its timers. Every part that decides by the time takes one (the bus, the
 * in-memory and SQLite transports); the default is the system's. A test passes its own to move time on, or step
 * the wall clock, without waiting and without libfaketime (`createManualClock` in @herald/testkit).
 *
 * Two clocks, as an operating system has: the wall clock, which timestamps, due times and leases are written in,
 * and which an operator or NTP may step; and a monotonic clock, which only moves forward, for durations. Timers
 * run on the monotonic clock.
 */
export interface Clock {
  /** Wall-clock milliseconds since the Unix epoch. */
  now(): number
  /** Monotonic milliseconds from an arbitrary origin. */
  monotonic(): number
  /** Calls `fn` once `ms` of monotonic time have passed. */
  setTimer(fn: () => void, ms: number): ClockTimer
}

export interface ClockTimer {
  cancel(): void
  /** Lets the process exit while this timer waits. */
  unref(): void
}

class SystemTimer implements ClockTimer {
  readonly #timeout: ReturnType<typeof setTimeout>
  constructor(fn: () => void, ms: number) {
    this.#timeout = setTimeout(fn, Math.max(0, ms))
  }
  cancel(): void {
    clearTimeout(this.#timeout)
  }
  unref(): void {
    this.#timeout.unref()
  }
}

/** The system's clocks: `Date.now()`, `performance.now()` and `setTimeout`. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimer: (fn, ms) => new SystemTimer(fn, ms),
}

/**
 * Formats a clock's wall time as ISO 8601 (the CloudEvents `time`), once per millisecond rather than once per
 * message.
 */
export function isoClock(clock: Clock): () => string {
  let ms = Number.NaN
  let iso = ''
  return () => {
    const now = clock.now()
    if (now !== ms) {
      ms = now
      iso = new Date(now).toISOString()
    }
    return iso
  }
}
