import type Database from 'better-sqlite3'

/** Runs write operations in shared transactions: one commit (one fsync) for everything queued in a tick. */
export interface WriteBatcher {
  /**
   * Queues `operation`. One that runs several statements must pass `atomic`, so that it runs in its own savepoint
   * and a failure half-way leaves nothing behind; a single statement is atomic by itself.
   */
  run<T>(operation: () => T, options?: { atomic?: boolean }): Promise<T>
  /** Resolves once everything queued so far has committed or failed. */
  flush(): Promise<void>
}

interface Pending {
  readonly operation: () => unknown
  readonly atomic: boolean
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
        item.outcome = { ok: true, value: item.atomic ? inSavepoint(item.operation) : item.operation() }
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
    run<T>(operation: () => T, options: { atomic?: boolean } = {}) {
      return new Promise<T>((resolve, reject) => {
        queue.push({ operation, atomic: options.atomic === true, resolve: resolve as (value: unknown) => void, reject })
        void schedule()
      })
    },
    async flush() {
      if (queue.length > 0) await schedule()
    },
  }
}
