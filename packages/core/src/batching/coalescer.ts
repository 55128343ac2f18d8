/**
 * Turns many small requests into few round trips: requests made while `maxConcurrent` batches are in flight
 * wait and go together in the next batch (up to `maxBatch`). An idle coalescer sends at the end of the current
 * event-loop turn, so a burst of calls in one turn shares a batch and a lone call is not delayed.
 */
export interface Coalescer<I, R> {
  submit(item: I): Promise<R>
  /** Resolves once everything submitted so far has been sent and answered. */
  flush(): Promise<void>
}

interface Pending<I, R> {
  readonly item: I
  readonly resolve: (value: R) => void
  readonly reject: (err: unknown) => void
}

/** What a batch returns: per item, its result or its own error (one bad item need not fail the others). */
export type BatchOutcome<R> = readonly ({ ok: true; value: R } | { ok: false; error: unknown })[]

/** The outcome of an item that succeeded with nothing to return: one shared object, not one per item. */
export const succeeded: { readonly ok: true; readonly value: undefined } = Object.freeze({ ok: true, value: undefined })

export function createCoalescer<I, R>(
  execute: (items: readonly I[]) => Promise<BatchOutcome<R>>,
  options: { maxBatch: number; maxConcurrent: number },
): Coalescer<I, R> {
  const queue: Pending<I, R>[] = []
  let inFlight = 0
  let scheduled = false
  const idle: (() => void)[] = []

  function pump(): void {
    scheduled = false
    while (inFlight < options.maxConcurrent && queue.length > 0) {
      const batch = queue.splice(0, options.maxBatch)
      inFlight++
      void send(batch)
    }
    if (inFlight === 0 && queue.length === 0) for (const done of idle.splice(0)) done()
  }

  async function send(batch: Pending<I, R>[]): Promise<void> {
    try {
      const outcomes = await execute(batch.map((p) => p.item))
      batch.forEach((pending, i) => {
        const outcome = outcomes[i]
        if (outcome?.ok) pending.resolve(outcome.value)
        else pending.reject(outcome?.error ?? new Error('batch returned no outcome for an item'))
      })
    } catch (err) {
      for (const pending of batch) pending.reject(err)
    } finally {
      inFlight--
      pump()
    }
  }

  return {
    submit(item) {
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject })
        if (!scheduled && inFlight < options.maxConcurrent) {
          scheduled = true
          setImmediate(pump)
        }
      })
    },
    flush() {
      if (inFlight === 0 && queue.length === 0) return Promise.resolve()
      return new Promise((resolve) => idle.push(resolve))
    },
  }
}
