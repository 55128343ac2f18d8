/** Thrown when a liveness deadline passes: the awaited condition never became true. */
export class WaitTimeoutError extends Error {
  constructor(what: string, timeoutMs: number, detail: string) {
    super(`Timed out after ${timeoutMs} ms waiting for ${what}${detail ? `: ${detail}` : ''}`)
    this.name = 'WaitTimeoutError'
  }
}

export interface WaitForOptions {
  /** Liveness limit: fail if the condition is not true by then. Never a way to synchronise. Default 30 s. */
  readonly timeoutMs?: number
  /** Named in the error. */
  readonly what?: string
  /** Extra state for the error message (e.g. the history summary). */
  readonly describe?: () => string
}

/**
 * Resolves as soon as `condition()` is true, re-checking whenever `subscribe`'s source reports a change
 * (and at a slow safety interval for conditions on external state).
 */
export function waitFor(
  condition: () => boolean | Promise<boolean>,
  subscribe: ((listener: () => void) => () => void) | undefined,
  options: WaitForOptions = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30_000
  return new Promise((resolve, reject) => {
    let settled = false
    let checking = false
    let again = false
    const finish = (err?: Error) => {
      if (settled) return
      settled = true
      clearTimeout(deadline)
      clearInterval(safety)
      unsubscribe?.()
      if (err) reject(err)
      else resolve()
    }
    const evaluate = async () => {
      if (settled) return
      if (checking) {
        again = true
        return
      }
      checking = true
      try {
        do {
          again = false
          if (await condition()) return finish()
        } while (again)
      } catch (err) {
        finish(err as Error)
      } finally {
        checking = false
      }
    }
    const deadline = setTimeout(
      () => finish(new WaitTimeoutError(options.what ?? 'condition', timeoutMs, options.describe?.() ?? '')),
      timeoutMs,
    )
    const safety = setInterval(evaluate, 100)
    const unsubscribe = subscribe?.(() => void evaluate())
    void evaluate()
  })
}

/**
 * Re-checks a condition on external state (a store query) every `intervalMs` until it holds.
 * For state that emits no event; the deadline is a liveness limit, not a timer to wait out.
 */
export async function pollUntil(condition: () => Promise<boolean>, timeoutMs = 30_000, intervalMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new WaitTimeoutError('a store condition', timeoutMs, '')
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
