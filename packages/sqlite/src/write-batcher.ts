import type Database from 'better-sqlite3'

/** Runs write operations in shared transactions: one commit (one fsync) for everything queued in a tick. */
export interface WriteBatcher {
  /** Queues `operation`; it runs in its own savepoint, so its failure does not undo the others. */
  run<T>(operation: () => T): Promise<T>
  /** Resolves once everything queued so far has committed or failed. */
  flush(): Promise<void>
}

interface Pending {
  readonly operation: () => unknown
  readonly resolve: (value: unknown) => void
  readonly reject: (err: unknown) => void
  outcome?: { ok: true; value: unknown } | { ok: false; error: unknown }
}

/**
 * Group commit over one connection. Operations queued during one turn of the event loop share a
 * `BEGIN IMMEDIATE` transaction; a failing commit (disk full, busy past the timeout) rejects every one of them.
 */
export function createWriteBatcher(db: Database.Database): WriteBatcher {
  let queue: Pending[] = []
  let scheduled: Promise<void> | undefined
  const inSavepoint = db.transaction((operation: () => unknown) => operation())
  const runAll = db.transaction((batch: Pending[]) => {
    for (const item of batch) {
      try {
        item.outcome = { ok: true, value: inSavepoint(item.operation) }
      } catch (error) {
        item.outcome = { ok: false, error }
      }
    }
  })

  function commit(): void {
    scheduled = undefined
    const batch = queue
    queue = []
    try {
      runAll.immediate(batch)
    } catch (error) {
      for (const item of batch) item.reject(error)
      return
    }
    for (const item of batch) {
      const outcome = item.outcome
      if (outcome?.ok) item.resolve(outcome.value)
      else item.reject(outcome?.error)
    }
  }

  function schedule(): Promise<void> {
    scheduled ??= new Promise((resolve) => setImmediate(() => resolve(commit())))
    return scheduled
  }

  return {
    run<T>(operation: () => T) {
      return new Promise<T>((resolve, reject) => {
        queue.push({ operation, resolve: resolve as (value: unknown) => void, reject })
        void schedule()
      })
    },
    async flush() {
      if (queue.length > 0) await schedule()
    },
  }
}
