import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type EventStore, uuidV7 } from '@herald/core'
import { createPostgresEventStore } from '@herald/postgres'
import { createSqliteEventStore } from '@herald/sqlite'
import Database from 'better-sqlite3'
import pg from 'pg'
import { type BenchSide, latencies } from '../measure.js'

const events = 20_000
const window = 1_000
const body = new TextEncoder().encode('{"orderId":"o-1","amountCents":1250}')
let runs = 0

function event() {
  const id = uuidV7()
  return {
    topic: 'order.placed',
    envelope: { id, headers: { type: 'order.placed', source: 'bench', time: new Date().toISOString() }, body },
  }
}

/** Appends `events` single-event appends in windows of concurrent calls, then reads them all back in pages. */
async function appendThenRead(store: EventStore): Promise<{ appendPerS: number; readPerS: number }> {
  const started = performance.now()
  for (let sent = 0; sent < events; sent += window) {
    await Promise.all(Array.from({ length: window }, () => store.append([event()])))
  }
  const appended = performance.now()
  let read = 0
  let after: number | undefined
  do {
    const page = await store.queryEvents({ limit: 1_000, ...(after === undefined ? {} : { after }) })
    read += page.items.length
    after = page.nextCursor
  } while (after !== undefined)
  if (read !== events) throw new Error(`read ${read} of ${events}`)
  const done = performance.now()
  return { appendPerS: events / ((appended - started) / 1_000), readPerS: events / ((done - appended) / 1_000) }
}

/** The raw tables carry the same query indexes as Herald's, so the figures compare the same work. */
const sameIndexes = `CREATE INDEX events_id ON events (id);
  CREATE INDEX events_type ON events (type, position);
  CREATE INDEX events_source ON events (source, position);
  CREATE INDEX events_correlation ON events (correlation_id, position) WHERE correlation_id IS NOT NULL;
  CREATE INDEX events_time ON events (time);
  CREATE INDEX events_recorded ON events (recorded_at);`

function tempDir(): { path: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-events-'))
  return { path: join(dir, 'events.db'), cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

const pgUrl = () => {
  const url = process.env.HERALD_BENCH_PG_URL
  if (!url) throw new Error('HERALD_BENCH_PG_URL is not set: run through `npm run bench`')
  return url
}

export const heraldSqliteEventAppend: BenchSide = async () => {
  const dir = tempDir()
  const store = createSqliteEventStore({ path: dir.path })
  const { appendPerS } = await appendThenRead(store)
  await store.close()
  dir.cleanup()
  return { perSecond: appendPerS }
}

export const heraldSqliteEventRead: BenchSide = async () => {
  const dir = tempDir()
  const store = createSqliteEventStore({ path: dir.path })
  const { readPerS } = await appendThenRead(store)
  await store.close()
  dir.cleanup()
  return { perSecond: readPerS }
}

/** The baseline: one better-sqlite3 table with the same indexes, 1,000 rows per transaction, read in keyset pages. */
async function rawSqliteEvents(): Promise<{ appendPerS: number; readPerS: number }> {
  const dir = tempDir()
  const db = new Database(dir.path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.exec(`CREATE TABLE events (position INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, type TEXT NOT NULL,
    headers TEXT NOT NULL, body BLOB NOT NULL)`)
  const insert = db.prepare('INSERT INTO events (id, type, headers, body) VALUES (?, ?, ?, ?)')
  const insertMany = db.transaction((rows: ReturnType<typeof event>[]) => {
    for (const e of rows)
      insert.run(e.envelope.id, 'order.placed', JSON.stringify(e.envelope.headers), Buffer.from(body))
  })
  const page = db.prepare<[number], { position: number }>(
    'SELECT * FROM events WHERE position > ? ORDER BY position LIMIT 1000',
  )
  const started = performance.now()
  for (let sent = 0; sent < events; sent += window) {
    insertMany(Array.from({ length: window }, event))
    await new Promise((resolve) => setImmediate(resolve))
  }
  const appended = performance.now()
  let after = 0
  for (let rows = page.all(after); rows.length > 0; rows = page.all(after)) after = rows.at(-1)!.position
  const done = performance.now()
  db.close()
  dir.cleanup()
  return { appendPerS: events / ((appended - started) / 1_000), readPerS: events / ((done - appended) / 1_000) }
}

export const rawSqliteEventAppend: BenchSide = async () => ({ perSecond: (await rawSqliteEvents()).appendPerS })
export const rawSqliteEventRead: BenchSide = async () => ({ perSecond: (await rawSqliteEvents()).readPerS })

async function heraldPostgresEvents() {
  const store = await createPostgresEventStore({
    connectionString: pgUrl(),
    schema: `bench_es_${process.pid}_${++runs}`,
  })
  const result = await appendThenRead(store)
  await store.close()
  return result
}

export const heraldPostgresEventAppend: BenchSide = async () => ({
  perSecond: (await heraldPostgresEvents()).appendPerS,
})
export const heraldPostgresEventRead: BenchSide = async () => ({ perSecond: (await heraldPostgresEvents()).readPerS })

/** The baseline: one `pg` table with the same indexes, one multi-row INSERT of 1,000 per window, keyset reads. */
async function rawPostgresEvents(): Promise<{ appendPerS: number; readPerS: number }> {
  const schema = `bench_raw_es_${process.pid}_${++runs}`
  const pool = new pg.Pool({ connectionString: pgUrl(), max: 2 })
  await pool.query(`CREATE SCHEMA ${schema}; SET search_path = ${schema};
    CREATE TABLE ${schema}.events (position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id text NOT NULL,
      type text NOT NULL, source text NOT NULL, time bigint NOT NULL, correlation_id text,
      recorded_at bigint NOT NULL, headers text NOT NULL, body bytea NOT NULL);
    ${sameIndexes.replaceAll('ON events', `ON ${schema}.events`)}`)
  const started = performance.now()
  for (let sent = 0; sent < events; sent += window) {
    const rows = Array.from({ length: window }, event)
    await pool.query(
      `INSERT INTO ${schema}.events (id, type, source, time, correlation_id, recorded_at, headers, body)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::text[],
         $8::bytea[])`,
      [
        rows.map((e) => e.envelope.id),
        rows.map((e) => e.envelope.headers.type),
        rows.map((e) => e.envelope.headers.source),
        rows.map((e) => Date.parse(e.envelope.headers.time)),
        rows.map(() => null),
        rows.map(() => Date.now()),
        rows.map((e) => JSON.stringify(e.envelope.headers)),
        rows.map(() => Buffer.from(body)),
      ],
    )
  }
  const appended = performance.now()
  let after = '0'
  for (;;) {
    const { rows } = await pool.query<{ position: string }>(
      `SELECT * FROM ${schema}.events WHERE position > $1 ORDER BY position LIMIT 1000`,
      [after],
    )
    if (rows.length === 0) break
    after = rows.at(-1)!.position
  }
  const done = performance.now()
  await pool.query(`DROP SCHEMA ${schema} CASCADE`)
  await pool.end()
  return { appendPerS: events / ((appended - started) / 1_000), readPerS: events / ((done - appended) / 1_000) }
}

export const rawPostgresEventAppend: BenchSide = async () => ({ perSecond: (await rawPostgresEvents()).appendPerS })
export const rawPostgresEventRead: BenchSide = async () => ({ perSecond: (await rawPostgresEvents()).readPerS })

/**
 * The console's search over a large history: 1,000,000 events (10,000 correlation ids of 100 events each, spread
 * over a simulated month), then 200 searches alternating by correlation id (newest first, a page of 100) and by
 * a one-minute time range at a random age. `perSecond` is searches per second; p50/p99 are per search.
 */
const searchEvents = 1_000_000
const flows = 10_000
const month = 30 * 24 * 3_600_000
const searchStart = Date.parse('2026-11-01T00:00:00Z')
const timeOf = (i: number) => searchStart + Math.floor((i / searchEvents) * month)

/** Search `i`: by correlation id when even, else a one-minute time range at an age spread over the month. */
function searchQuery(i: number): { correlationId?: string; since?: number; until?: number } {
  if (i % 2 === 0) return { correlationId: `c-${(i * 7_919) % flows}` }
  const since = searchStart + Math.floor((((i * 104_729) % 1_000) / 1_000) * month)
  return { since, until: since + 60_000 }
}

/** Runs the 200 searches one after another and reports their rate and latency. */
async function timedSearches(search: (query: ReturnType<typeof searchQuery>) => Promise<number> | number) {
  const samples: number[] = []
  let found = 0
  const started = performance.now()
  for (let i = 0; i < 200; i++) {
    const t = performance.now()
    found += await search(searchQuery(i))
    samples.push(performance.now() - t)
  }
  if (found === 0) throw new Error('the searches found nothing')
  return { perSecond: 200 / ((performance.now() - started) / 1_000), ...latencies(samples.sort((a, b) => a - b)) }
}

export const heraldSqliteEventSearch: BenchSide = async () => {
  const dir = tempDir()
  const store = createSqliteEventStore({ path: dir.path })
  for (let start = 0; start < searchEvents; start += 10_000) {
    await store.append(
      Array.from({ length: 10_000 }, (_, k) => {
        const i = start + k
        return {
          topic: 'order.placed',
          envelope: {
            id: uuidV7(),
            headers: {
              type: 'order.placed',
              source: 'bench',
              time: new Date(timeOf(i)).toISOString(),
              correlationid: `c-${i % flows}`,
            },
            body,
          },
        }
      }),
    )
  }
  const result = await timedSearches(
    async (query) => (await store.queryEvents({ ...query, newestFirst: true, limit: 100 })).items.length,
  )
  await store.close()
  dir.cleanup()
  return result
}

/** The baseline: the same million rows in a hand-written better-sqlite3 table with the same indexes, same queries. */
export const rawSqliteEventSearch: BenchSide = async () => {
  const dir = tempDir()
  const db = new Database(dir.path)
  db.pragma('journal_mode = WAL')
  db.exec(`CREATE TABLE events (position INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, type TEXT NOT NULL,
    source TEXT NOT NULL, time INTEGER NOT NULL, correlation_id TEXT, recorded_at INTEGER NOT NULL,
    headers TEXT NOT NULL, body BLOB NOT NULL); ${sameIndexes}`)
  const insert = db.prepare(
    'INSERT INTO events (id, type, source, time, correlation_id, recorded_at, headers, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  )
  const fill = db.transaction((from: number) => {
    for (let i = from; i < from + 10_000; i++) {
      const time = timeOf(i)
      const headers = {
        type: 'order.placed',
        source: 'bench',
        time: new Date(time).toISOString(),
        correlationid: `c-${i % flows}`,
      }
      insert.run(
        uuidV7(),
        'order.placed',
        'bench',
        time,
        `c-${i % flows}`,
        Date.now(),
        JSON.stringify(headers),
        Buffer.from(body),
      )
    }
  })
  for (let start = 0; start < searchEvents; start += 10_000) fill(start)
  const byCorrelation = db.prepare('SELECT * FROM events WHERE correlation_id = ? ORDER BY position DESC LIMIT 100')
  const byTime = db.prepare('SELECT * FROM events WHERE time >= ? AND time < ? ORDER BY position DESC LIMIT 100')
  const result = await timedSearches((q) =>
    q.correlationId !== undefined ? byCorrelation.all(q.correlationId).length : byTime.all(q.since, q.until).length,
  )
  db.close()
  dir.cleanup()
  return result
}
