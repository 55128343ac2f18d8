import { sleep } from '../sleep.js'

/** A level-triggered wake-up: `notify()` wakes current waiters, or the next one if nobody is waiting. */
export interface WakeSignal {
  notify(): void
  /** Resolves on `notify()`, after `timeoutMs`, or when `signal` aborts, whichever comes first. */
  wait(timeoutMs: number, signal: AbortSignal): Promise<void>
}

export function createWakeSignal(): WakeSignal {
  let pending = false
  let wakers: (() => void)[] = []
  return {
    notify() {
      if (wakers.length === 0) {
        pending = true
        return
      }
      const current = wakers
      wakers = []
      for (const wake of current) wake()
    },
    async wait(timeoutMs, signal) {
      if (pending) {
        pending = false
        return
      }
      const local = new AbortController()
      const onAbort = () => local.abort()
      signal.addEventListener('abort', onAbort, { once: true })
      const wake = () => local.abort()
      wakers.push(wake)
      await sleep(timeoutMs, local.signal)
      signal.removeEventListener('abort', onAbort)
      wakers = wakers.filter((w) => w !== wake)
    },
  }
}
