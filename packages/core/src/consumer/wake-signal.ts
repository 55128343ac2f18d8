/** A level-triggered wake-up: `notify()` wakes current waiters, or the next one if nobody is waiting. */
export interface WakeSignal {
  notify(): void
  /** Resolves on `notify()`, after `timeoutMs`, or when `signal` aborts, whichever comes first. */
  wait(timeoutMs: number, signal: AbortSignal): Promise<void>
}

export function createWakeSignal(): WakeSignal {
  let pending = false
  // Plain callbacks, no AbortController per wait: consumers wait once per delivery burst, and an aborted
  // controller allocates a DOMException every time.
  const wakers = new Set<() => void>()
  return {
    notify() {
      if (wakers.size === 0) {
        pending = true
        return
      }
      for (const wake of [...wakers]) wake()
    },
    wait(timeoutMs, signal) {
      if (pending || signal.aborted) {
        pending = false
        return Promise.resolve()
      }
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer)
          signal.removeEventListener('abort', done)
          wakers.delete(done)
          resolve()
        }
        const timer = setTimeout(done, Math.max(0, timeoutMs))
        signal.addEventListener('abort', done, { once: true })
        wakers.add(done)
      })
    },
  }
}
