/**
 * A Jepsen-style record of what happened to each message id, and the set algebra over it:
 * what was acknowledged in must come out; what was never sent must never come out; duplicates are counted.
 */
export interface History {
  attempted(id: string): void
  ok(id: string): void
  /** Rejected with a definite error: nothing was stored. */
  failed(id: string): void
  /** Rejected without knowing whether it was stored (timeout, connection loss). */
  indeterminate(id: string): void
  delivered(id: string): void
  completed(id: string): void
  deadLettered(id: string): void
  /** Subscribes to every record; returns an unsubscribe function. */
  onChange(listener: () => void): () => void
  readonly counts: {
    readonly attempted: number
    readonly ok: number
    readonly deliveries: number
    readonly completed: number
    readonly deadLettered: number
  }
  deliveriesOf(id: string): number
  isCompleted(id: string): boolean
  check(): HistoryCheck
  /** One line: `attempted=… ok=… completed=… lost=0 unexpected=0 duplicates=… dlq=…`. */
  summary(): string
}

export interface HistoryCheck {
  /** ok − (completed ∪ deadLettered) */
  readonly lost: readonly string[]
  /** delivered − attempted */
  readonly unexpected: readonly string[]
  /** failed ∩ delivered */
  readonly definiteButDelivered: readonly string[]
  /** indeterminate ∩ completed */
  readonly recovered: readonly string[]
  /** Σ max(0, deliveries(id) − 1) */
  readonly duplicates: number
}

export function createHistory(): History {
  const attempted = new Set<string>()
  const ok = new Set<string>()
  const failed = new Set<string>()
  const indeterminate = new Set<string>()
  const delivered = new Map<string, number>()
  const completed = new Set<string>()
  const deadLettered = new Set<string>()
  const listeners = new Set<() => void>()
  let deliveries = 0

  function changed(): void {
    for (const listener of listeners) listener()
  }

  function record(set: Set<string>, id: string): void {
    set.add(id)
    changed()
  }

  function check(): HistoryCheck {
    let duplicates = 0
    for (const count of delivered.values()) duplicates += Math.max(0, count - 1)
    return {
      lost: [...ok].filter((id) => !completed.has(id) && !deadLettered.has(id)),
      unexpected: [...delivered.keys()].filter((id) => !attempted.has(id)),
      definiteButDelivered: [...failed].filter((id) => delivered.has(id)),
      recovered: [...indeterminate].filter((id) => completed.has(id)),
      duplicates,
    }
  }

  return {
    attempted: (id) => record(attempted, id),
    ok: (id) => record(ok, id),
    failed: (id) => record(failed, id),
    indeterminate: (id) => record(indeterminate, id),
    delivered(id) {
      deliveries++
      delivered.set(id, (delivered.get(id) ?? 0) + 1)
      changed()
    },
    completed: (id) => record(completed, id),
    deadLettered: (id) => record(deadLettered, id),
    onChange(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    get counts() {
      return {
        attempted: attempted.size,
        ok: ok.size,
        deliveries,
        completed: completed.size,
        deadLettered: deadLettered.size,
      }
    },
    deliveriesOf: (id) => delivered.get(id) ?? 0,
    isCompleted: (id) => completed.has(id),
    check,
    summary() {
      const c = check()
      return (
        `attempted=${attempted.size} ok=${ok.size} indeterminate=${indeterminate.size} completed=${completed.size} ` +
        `lost=${c.lost.length} unexpected=${c.unexpected.length} definiteButDelivered=${c.definiteButDelivered.length} ` +
        `duplicates=${c.duplicates} dlq=${deadLettered.size}`
      )
    },
  }
}
