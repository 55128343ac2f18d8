import type { Clock, ClockTimer } from '@herald/core'

/**
 * A clock that moves only when the test says so: `advance` is time passing, `step` is the wall clock being set
 * (by NTP or an operator) while monotonic time stands still. Pass it to the bus and the transport to test delays,
 * timeouts, leases and clock steps without waiting for them and without libfaketime.
 */
export interface ManualClock extends Clock {
  /**
   * Moves both clocks forward by `ms`, firing each timer that falls due on the way, in due order, with the clocks
   * at its due time. Between timers it lets the event loop turn once, so what a timer starts (a delivery, a retry)
   * runs before the next one fires.
   */
  advance(ms: number): Promise<void>
  /** Sets the wall clock forward (positive) or back (negative) by `ms`. Timers do not move. */
  step(ms: number): void
  /** Timers set and not yet fired or cancelled. */
  readonly pending: number
}

interface ManualTimer extends ClockTimer {
  readonly due: number
  readonly order: number
  readonly fn: () => void
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * A manual clock whose wall time starts at `startMs`. The default, 2100-01-01T00:00:00Z, is far from the system's
 * time, so a part that reads the system clock where it should read this one stands out: what it schedules is
 * decades away.
 */
export function createManualClock(startMs = Date.UTC(2100, 0, 1)): ManualClock {
  let wall = startMs
  let mono = 0
  let order = 0
  const timers = new Set<ManualTimer>()

  function nextDue(until: number): ManualTimer | undefined {
    let next: ManualTimer | undefined
    for (const t of timers) {
      if (t.due > until) continue
      if (next === undefined || t.due < next.due || (t.due === next.due && t.order < next.order)) next = t
    }
    return next
  }

  return {
    now: () => wall,
    monotonic: () => mono,
    setTimer(fn, ms) {
      const timer: ManualTimer = {
        due: mono + Math.max(0, ms),
        order: order++,
        fn,
        cancel: () => timers.delete(timer),
        unref: () => {},
      }
      timers.add(timer)
      return timer
    },
    async advance(ms) {
      if (!(ms >= 0)) throw new RangeError(`advance takes a duration of 0 or more, not ${ms}`)
      const until = mono + ms
      await turn()
      for (let t = nextDue(until); t !== undefined; t = nextDue(until)) {
        timers.delete(t)
        wall += t.due - mono
        mono = t.due
        t.fn()
        await turn()
      }
      wall += until - mono
      mono = until
      await turn()
    },
    step(ms) {
      wall += ms
    },
    get pending() {
      return timers.size
    },
  }
}
