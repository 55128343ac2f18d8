import { matchesEventFilter } from './catch-up.js'
import {
  type AppendResult,
  assertExpectedVersion,
  assertStreamName,
  type EventPage,
  type EventQuery,
  type EventStore,
  type EventToStore,
  type ExpectedVersion,
  eventFields,
  eventPageSize,
  type RetentionOptions,
  type StoredEvent,
} from './event-store.js'

/** An event store in process memory: for tests and the in-memory bus. Everything is lost on exit. */
export function createInMemoryEventStore(): EventStore {
  // Positions start at 1 and only grow, so the array stays sorted; retention removes from anywhere.
  let events: StoredEvent[] = []
  let head = 0
  let truncatedThrough = 0
  const streamVersions = new Map<string, number>()
  const checkpoints = new Map<string, number>()

  function store(batch: readonly EventToStore[], stream?: string, fromVersion = 0): StoredEvent[] {
    const recordedAt = Date.now()
    const stored = batch.map(({ topic, envelope }, i) => ({
      position: ++head,
      topic,
      envelope,
      ...eventFields(envelope, recordedAt),
      stream,
      streamVersion: stream === undefined ? undefined : fromVersion + i + 1,
      recordedAt,
    }))
    events.push(...stored)
    return stored
  }

  return {
    async append(batch) {
      return store(batch).map((e) => e.position)
    },

    async appendToStream(stream, batch, options: { expectedVersion?: ExpectedVersion } = {}): Promise<AppendResult> {
      assertStreamName(stream)
      const actual = streamVersions.get(stream) ?? 0
      assertExpectedVersion(stream, options.expectedVersion ?? 'any', actual)
      const stored = store(batch, stream, actual)
      const version = actual + stored.length
      streamVersions.set(stream, version)
      return { version, positions: stored.map((e) => e.position) }
    },

    async readStream(stream, options = {}) {
      const from = options.fromVersion ?? 1
      const all = events.filter((e) => e.stream === stream && (e.streamVersion ?? 0) >= from)
      return options.limit === undefined ? all : all.slice(0, options.limit)
    },

    async getEvent(id) {
      return events.find((e) => e.envelope.id === id)
    },

    async queryEvents(query: EventQuery = {}): Promise<EventPage> {
      const limit = eventPageSize(query)
      const after = query.after ?? 0
      const before = query.before ?? Number.POSITIVE_INFINITY
      const items: StoredEvent[] = []
      const newestFirst = query.newestFirst === true
      for (let i = 0; i < events.length; i++) {
        const event = events[newestFirst ? events.length - 1 - i : i]!
        if (event.position <= after || event.position >= before || !matchesEventFilter(event, query)) continue
        items.push(event)
        if (items.length > limit) break
      }
      const page = items.slice(0, limit)
      const last = page.at(-1)
      return items.length > limit && last !== undefined ? { items: page, nextCursor: last.position } : { items: page }
    },

    async headPosition() {
      return head
    },

    async deleteEvents(options: RetentionOptions) {
      const oldestCheckpoint = Math.min(...checkpoints.values())
      const limit = options.respectCheckpoints === false ? Number.POSITIVE_INFINITY : oldestCheckpoint
      const doomed = (e: StoredEvent) =>
        e.recordedAt < options.recordedBefore &&
        e.position <= limit &&
        (options.includeStreams === true || e.stream === undefined)
      const before = events.length
      for (const e of events) if (doomed(e)) truncatedThrough = Math.max(truncatedThrough, e.position)
      events = events.filter((e) => !doomed(e))
      return { deleted: before - events.length, truncatedThrough }
    },

    async truncatedThrough() {
      return truncatedThrough
    },

    async loadCheckpoint(name) {
      return checkpoints.get(name)
    },

    async saveCheckpoint(name, position) {
      checkpoints.set(name, position)
    },

    async deleteCheckpoint(name) {
      checkpoints.delete(name)
    },

    async close() {},
  }
}
