import type { Envelope } from '../envelope.js'
import { ConcurrencyError, ConfigurationError } from '../errors.js'

/** An event to keep: the envelope as published and the topic it was published on. */
export interface EventToStore {
  readonly topic: string
  readonly envelope: Envelope
}

/** An event as the store keeps it. Query fields are read from the envelope's headers when it is stored. */
export interface StoredEvent {
  /** Global position: strictly increasing in commit order, so a reader that has seen position p never later finds a smaller one. */
  readonly position: number
  readonly topic: string
  readonly envelope: Envelope
  /** The `type` header. */
  readonly type: string
  /** The `source` header (the publishing service). */
  readonly source: string
  /** The `time` header as epoch ms (when the event happened); the store time when the header is absent or bad. */
  readonly time: number
  readonly correlationId: string | undefined
  /** Set for events appended to a stream. */
  readonly stream: string | undefined
  /** 1 for a stream's first event; contiguous within the stream. */
  readonly streamVersion: number | undefined
  /** Epoch ms when the store committed it. */
  readonly recordedAt: number
}

/** Selects events. Every field narrows; `since` is inclusive and `until` exclusive, both on `time`. */
export interface EventFilter {
  readonly types?: readonly string[]
  /**
   * Types equal to one of these or under it: `order` matches `order`, `order.placed` and `order.line.added` (what
   * the topic pattern `order.#` would). With `types` too, an event matching either is selected.
   */
  readonly typesUnder?: readonly string[]
  readonly source?: string
  readonly correlationId?: string
  readonly stream?: string
  readonly since?: number
  readonly until?: number
}

export interface EventQuery extends EventFilter {
  /** Only events after this position (a page's `nextCursor`, a checkpoint). Default 0: from the start. */
  readonly after?: number
  /**
   * Pages newest first: the newest matching events, in descending position order; `nextCursor` is then the next
   * (older) page's `before`. Default false: oldest first.
   */
  readonly newestFirst?: boolean
  /** Only events before this position (a newest-first page's `nextCursor`). Default: no bound. */
  readonly before?: number
  /** Page size. Default 100, at most 10,000. */
  readonly limit?: number
}

export interface EventPage {
  /** In position order (descending with `newestFirst`). */
  readonly items: readonly StoredEvent[]
  /** Pass as `after` for the next page; absent on the last page. */
  readonly nextCursor?: number
}

/**
 * What a stream must be at for an append to succeed: `no-stream` (no events yet), a version number (0 also means
 * empty), or `any` (no check). A mismatch rejects with `ConcurrencyError` and stores nothing.
 */
export type ExpectedVersion = number | 'no-stream' | 'any'

export interface AppendResult {
  /** The stream's version after the append. */
  readonly version: number
  readonly positions: readonly number[]
}

export interface RetentionOptions {
  /** Delete events recorded before this time (epoch ms). */
  readonly recordedBefore: number
  /** Also delete events that belong to streams (event-sourced state). Default false: streams are kept. */
  readonly includeStreams?: boolean
  /**
   * Never delete past the oldest stored checkpoint, so no catch-up reader misses an event. Default true. With
   * false, a reader whose checkpoint falls in the deleted range fails with `ReplayGapError` instead of skipping.
   */
  readonly respectCheckpoints?: boolean
}

export interface RetentionResult {
  readonly deleted: number
  /** The highest position ever deleted by retention (0 if none): readers behind it have a gap. */
  readonly truncatedThrough: number
}

/**
 * Every event kept, queryable and replayable; streams with optimistic concurrency for event sourcing; stored
 * checkpoints for catch-up readers (projections). Implemented in memory, on SQLite and on PostgreSQL.
 */
export interface EventStore {
  /** Stores events that belong to no stream (the audit log of a bus). Returns their positions. */
  append(events: readonly EventToStore[]): Promise<readonly number[]>
  /** Appends to `stream` if it is at `expectedVersion` (default `any`), all or nothing. */
  appendToStream(
    stream: string,
    events: readonly EventToStore[],
    options?: { readonly expectedVersion?: ExpectedVersion },
  ): Promise<AppendResult>
  /** A stream's events from `fromVersion` (default 1), in version order. An unknown stream reads as empty. */
  readStream(
    stream: string,
    options?: { readonly fromVersion?: number; readonly limit?: number },
  ): Promise<readonly StoredEvent[]>
  /** The event with this envelope id (the first stored, if stored twice). */
  getEvent(id: string): Promise<StoredEvent | undefined>
  queryEvents(query?: EventQuery): Promise<EventPage>
  /** The highest position stored (0 when empty). */
  headPosition(): Promise<number>
  deleteEvents(options: RetentionOptions): Promise<RetentionResult>
  /** The highest position retention has deleted (0 if none). */
  truncatedThrough(): Promise<number>
  loadCheckpoint(name: string): Promise<number | undefined>
  saveCheckpoint(name: string, position: number): Promise<void>
  deleteCheckpoint(name: string): Promise<void>
  /** Waits for pending appends, then closes connections. Idempotent. */
  close(): Promise<void>
}

/** Hard upper bound on one page, so a query never loads the whole store into memory. */
export const maxEventPage = 10_000

/** The page size a query asks for, bounded. */
export function eventPageSize(query: EventQuery): number {
  const limit = query.limit ?? 100
  if (!(Number.isInteger(limit) && limit > 0)) throw new RangeError(`limit must be a positive integer, got ${limit}`)
  return Math.min(limit, maxEventPage)
}

/** The query fields of an event, read from its headers. */
export function eventFields(
  envelope: Envelope,
  recordedAt: number,
): { type: string; source: string; time: number; correlationId: string | undefined } {
  const headers = envelope.headers
  const time = headers.time === undefined ? Number.NaN : Date.parse(headers.time)
  return {
    type: headers.type ?? '',
    source: headers.source ?? '',
    time: Number.isFinite(time) ? time : recordedAt,
    correlationId: headers.correlationid,
  }
}

/** Throws `ConcurrencyError` unless a stream at `actual` satisfies `expected`. */
export function assertExpectedVersion(stream: string, expected: ExpectedVersion, actual: number): void {
  if (expected === 'any') return
  if (expected === 'no-stream') {
    if (actual !== 0) throw new ConcurrencyError(stream, 'no-stream', actual)
    return
  }
  if (!(Number.isInteger(expected) && expected >= 0)) {
    throw new ConfigurationError('expectedVersion', `must be a version (integer >= 0), 'no-stream' or 'any'`)
  }
  if (expected !== actual) throw new ConcurrencyError(stream, expected, actual)
}

export function assertStreamName(stream: string): void {
  if (typeof stream !== 'string' || stream.length === 0 || stream.length > 512) {
    throw new ConfigurationError('stream', 'must be a non-empty string of at most 512 characters')
  }
}
