import { ReplayGapError } from '../errors.js'
import { sleep } from '../sleep.js'
import type { EventFilter, EventStore, StoredEvent } from './event-store.js'

/** True when `event` is selected by `filter`; stores without a query language filter with it. */
export function matchesEventFilter(event: StoredEvent, filter: EventFilter): boolean {
  if (filter.types !== undefined || filter.typesUnder !== undefined) {
    const exact = filter.types?.includes(event.type) ?? false
    const under = filter.typesUnder?.some((t) => event.type === t || event.type.startsWith(`${t}.`)) ?? false
    if (!exact && !under) return false
  }
  if (filter.source !== undefined && event.source !== filter.source) return false
  if (filter.correlationId !== undefined && event.correlationId !== filter.correlationId) return false
  if (filter.stream !== undefined && event.stream !== filter.stream) return false
  if (filter.since !== undefined && event.time < filter.since) return false
  if (filter.until !== undefined && event.time >= filter.until) return false
  return true
}

export interface ReplayProgress {
  /** Events handed to the handler so far. */
  readonly handled: number
  /** Position of the last event handled. */
  readonly position: number
  /** The store's head when the replay started: how far it goes. */
  readonly head: number
}

export interface ReplayOptions {
  readonly filter?: EventFilter
  /** Start after this position. Default 0. */
  readonly after?: number
  /** Events per query. Default 500. */
  readonly batchSize?: number
  /** Called after each batch. */
  readonly onProgress?: (progress: ReplayProgress) => void
  /** Stops the replay between events. */
  readonly signal?: AbortSignal
}

/**
 * Feeds the stored events matching `filter` to `handler`, one at a time, in position order, up to the head as it
 * was at the start. Resolves with the count and last position (pass it as `after` to resume).
 */
export async function replayEvents(
  store: EventStore,
  handler: (event: StoredEvent) => Promise<void> | void,
  options: ReplayOptions = {},
): Promise<ReplayProgress> {
  const head = await store.headPosition()
  let position = options.after ?? 0
  let handled = 0
  for (;;) {
    if (options.signal?.aborted) break
    const page = await store.queryEvents({ ...options.filter, after: position, limit: options.batchSize ?? 500 })
    for (const event of page.items) {
      if (event.position > head || options.signal?.aborted) return { handled, position, head }
      await handler(event)
      handled++
      position = event.position
    }
    options.onProgress?.({ handled, position, head })
    if (page.nextCursor === undefined) break
  }
  return { handled, position, head }
}

export interface ProjectionOptions {
  /** Names the checkpoint: one per projection. */
  readonly name: string
  readonly filter?: EventFilter
  /** Save the checkpoint after this many events (and whenever the projection catches up). Default 100. */
  readonly checkpointEvery?: number
  /** How often to look for new events once caught up. Default 500 ms. */
  readonly pollIntervalMs?: number
  readonly batchSize?: number
  /** The projection stopped on an error (the handler's, the store's, or a `ReplayGapError`). */
  readonly onError?: (err: unknown) => void
}

export interface Projection {
  /** Position of the last event handled. */
  position(): number
  /** Resolves the first time the projection has handled everything up to the head. */
  readonly caughtUp: Promise<void>
  /** Stops after the current event and saves the checkpoint. Resolves with the final position. */
  stop(): Promise<number>
  /** Resolves (or rejects with its error) when the projection ends. */
  readonly done: Promise<number>
}

/**
 * A catch-up subscription: replays from its stored checkpoint, then follows new events, saving the checkpoint
 * as it goes. A crash repeats at most `checkpointEvery` events (the handler should be idempotent or update state
 * in the same transaction as the checkpoint). If retention deleted events past the checkpoint, it fails with
 * `ReplayGapError` rather than skipping them. A projection with no checkpoint reads every event still stored.
 */
export function startProjection(
  store: EventStore,
  handler: (event: StoredEvent) => Promise<void> | void,
  options: ProjectionOptions,
): Projection {
  const stopping = new AbortController()
  const checkpointEvery = options.checkpointEvery ?? 100
  let position = 0
  let markCaughtUp!: () => void
  let failCaughtUp!: (err: unknown) => void
  const caughtUp = new Promise<void>((resolve, reject) => {
    markCaughtUp = resolve
    failCaughtUp = reject
  })
  caughtUp.catch(() => {})

  async function run(): Promise<number> {
    const saved = await store.loadCheckpoint(options.name)
    const truncated = await store.truncatedThrough()
    if (saved !== undefined && saved < truncated) throw new ReplayGapError(options.name, saved + 1, truncated + 1)
    position = saved ?? 0
    let sinceSave = 0
    const save = async () => {
      await store.saveCheckpoint(options.name, position)
      sinceSave = 0
    }
    if (saved === undefined) await save()
    while (!stopping.signal.aborted) {
      // Positions commit in order, so every event up to a head read before the query is in its result.
      const head = await store.headPosition()
      const page = await store.queryEvents({ ...options.filter, after: position, limit: options.batchSize ?? 500 })
      for (const event of page.items) {
        if (stopping.signal.aborted) break
        await handler(event)
        position = event.position
        if (++sinceSave >= checkpointEvery) await save()
      }
      if (page.nextCursor === undefined && !stopping.signal.aborted) {
        // Caught up: skip past the events the filter left out, so the checkpoint follows the head.
        if (head > position) {
          position = head
          sinceSave++
        }
        if (sinceSave > 0) await save()
        markCaughtUp()
        await sleep(options.pollIntervalMs ?? 500, stopping.signal)
      }
    }
    if (sinceSave > 0) await save()
    return position
  }

  const done = run()
  done.catch((err: unknown) => {
    failCaughtUp(err)
    options.onError?.(err)
  })
  return {
    position: () => position,
    caughtUp,
    async stop() {
      stopping.abort()
      return done
    },
    done,
  }
}
