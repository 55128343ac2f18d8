import { type EventStore, replayEvents, type StoredEvent, startProjection } from '@herald/core'
import Database from 'better-sqlite3'
import { BookPurchased, ChapterPurchased, ChapterRead, UserRegistered } from './contracts.js'

/**
 * Reading statistics, a read model built from the event store: per book, chapters read, seconds read and
 * copies sold; per day, registrations. It can be thrown away and rebuilt from the stored events at any time.
 */
export interface Statistics {
  readonly db: Database.Database
  apply(event: StoredEvent): void
  snapshot(): StatisticsSnapshot
}

export interface StatisticsSnapshot {
  readonly books: readonly { book: string; chapters_read: number; seconds: number; sold: number }[]
  readonly registered: number
}

const types = [ChapterRead.type, ChapterPurchased.type, BookPurchased.type, UserRegistered.type]
const decoder = new TextDecoder()

export function openStatistics(path: string): Statistics {
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.exec(`CREATE TABLE IF NOT EXISTS book_stats (book_id TEXT PRIMARY KEY, chapters_read INTEGER NOT NULL DEFAULT 0,
      seconds INTEGER NOT NULL DEFAULT 0, sold INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY);
    CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)`)
  const seen = db.prepare('INSERT OR IGNORE INTO seen VALUES (?)')
  const bump = (book: string, column: 'chapters_read' | 'seconds' | 'sold', by: number) =>
    db
      .prepare(
        `INSERT INTO book_stats (book_id, ${column}) VALUES (@book, @by)
         ON CONFLICT (book_id) DO UPDATE SET ${column} = ${column} + @by`,
      )
      .run({ book, by })
  // The recorder stores at least once: an event stored twice counts once.
  const apply = db.transaction((event: StoredEvent) => {
    if (seen.run(event.envelope.id).changes === 0) return
    const data = JSON.parse(decoder.decode(event.envelope.body)) as Record<string, unknown>
    if (event.type === ChapterRead.type) {
      bump(String(data.bookId), 'chapters_read', 1)
      bump(String(data.bookId), 'seconds', Number(data.seconds))
    } else if (event.type === ChapterPurchased.type || event.type === BookPurchased.type) {
      bump(String(data.bookId), 'sold', 1)
    } else if (event.type === UserRegistered.type) {
      db.prepare(
        "INSERT INTO counters VALUES ('registered', 1) ON CONFLICT (name) DO UPDATE SET value = value + 1",
      ).run()
    }
  })
  return {
    db,
    apply: (event) => apply(event),
    snapshot: () => ({
      books: db
        .prepare('SELECT book_id AS book, chapters_read, seconds, sold FROM book_stats ORDER BY book_id')
        .all() as StatisticsSnapshot['books'],
      registered:
        (db.prepare("SELECT value FROM counters WHERE name = 'registered'").get() as { value: number } | undefined)
          ?.value ?? 0,
    }),
  }
}

/** The live projection: catches up from its checkpoint, then follows the store. */
export function startStatistics(store: EventStore, statistics: Statistics, onError: (err: unknown) => void) {
  return startProjection(store, (event) => statistics.apply(event), {
    name: 'reading-statistics',
    filter: { types },
    pollIntervalMs: 50,
    onError,
  })
}

/** Builds the statistics again, from nothing, by replaying every stored event into a new database. */
export async function rebuildStatistics(store: EventStore, path: string): Promise<StatisticsSnapshot> {
  const fresh = openStatistics(path)
  try {
    await replayEvents(store, (event) => fresh.apply(event), { filter: { types } })
    return fresh.snapshot()
  } finally {
    fresh.db.close()
  }
}
