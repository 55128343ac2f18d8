import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { uuidV7 } from '@herald/core'
import { createWakeSignal } from '@herald/core/adapter'
import { createSqliteTransport } from '@herald/sqlite'
import Database from 'better-sqlite3'
import {
  atFixedRate,
  type BenchSide,
  counter,
  heraldLatency,
  heraldThroughput,
  keyedBusThroughput,
  latencies,
  type Measurement,
  sinceSent,
} from '../measure.js'

const window = 1_000
const encoder = new TextEncoder()

function tempDb(): { path: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-'))
  return { path: join(dir, 'bench.db'), cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Herald on SQLite, durable (WAL, synchronous=FULL): publish confirmed, delivered, handled, acked. */
export const heraldSqliteOver =
  (messages: number): BenchSide =>
  async () => {
    const db = tempDb()
    const measured = await heraldThroughput(createSqliteTransport({ path: db.path }), messages, window)
    db.cleanup()
    return measured
  }

/** Latency at a fixed 2,000 msg/s, publish call to handler start. */
export const heraldSqliteLatency: BenchSide = async () => {
  const db = tempDb()
  const measured = await heraldLatency(createSqliteTransport({ path: db.path }), 6_000, 2_000)
  db.cleanup()
  return measured
}

interface RawQueue {
  readonly db: Database.Database
  insert(bodies: readonly Uint8Array[]): void
  claim(limit: number): { id: number; headers: string; body: Buffer }[]
  remove(ids: readonly number[]): void
}

/** The baseline: a hand-written better-sqlite3 queue with the same pragmas, batched inserts, claims and deletes. */
function openRawQueue(path: string): RawQueue {
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  // The same message Herald stores: an id, a topic and headers beside the body (a queue of bare bodies would be
  // no use to a consumer that must tell messages apart).
  db.exec(`CREATE TABLE queue (id INTEGER PRIMARY KEY, message_id TEXT NOT NULL, topic TEXT NOT NULL,
             headers TEXT NOT NULL, body BLOB NOT NULL, visible_at INTEGER NOT NULL, lease TEXT);
           CREATE INDEX queue_due ON queue (visible_at, id);`)
  const insert = db.prepare('INSERT INTO queue (message_id, topic, headers, body, visible_at) VALUES (?, ?, ?, ?, ?)')
  const claim = db.prepare<[number, number, number], { id: number; headers: string; body: Buffer }>(
    `UPDATE queue SET lease = 'c', visible_at = ? WHERE id IN
       (SELECT id FROM queue WHERE visible_at <= ? ORDER BY visible_at, id LIMIT ?)
     RETURNING id, message_id, topic, headers, body`,
  )
  const remove = db.prepare('DELETE FROM queue WHERE id = ?')
  return {
    db,
    insert: db.transaction((bodies: readonly Uint8Array[]) => {
      const now = Date.now()
      for (const body of bodies)
        insert.run(uuidV7(), 'bench.tick', JSON.stringify({ type: 'bench.tick' }), Buffer.from(body), now)
    }).immediate,
    claim: db.transaction((limit: number) => {
      const now = Date.now()
      return claim.all(now + 30_000, now, limit)
    }).immediate,
    remove: db.transaction((ids: readonly number[]) => {
      for (const id of ids) remove.run(id)
    }).immediate,
  }
}

async function rawConsumer(queue: RawQueue, total: number, wait: () => Promise<void>, handle: (body: Buffer) => void) {
  let consumed = 0
  while (consumed < total) {
    const rows = queue.claim(100)
    if (rows.length === 0) {
      await wait()
      continue
    }
    await Promise.all(
      rows.map(async (row) => {
        JSON.parse(row.headers) // a consumer reads the type before handling, as Herald does
        return handle(row.body)
      }),
    )
    queue.remove(rows.map((r) => r.id))
    consumed += rows.length
  }
}

export const rawSqliteOver =
  (messages: number): BenchSide =>
  async () => {
    const db = tempDb()
    const queue = openRawQueue(db.path)
    const body = encoder.encode('{"n":1}')
    const started = performance.now()
    const wake = createWakeSignal()
    const never = new AbortController().signal
    const done = counter(messages)
    const consuming = rawConsumer(
      queue,
      messages,
      () => wake.wait(50, never),
      () => done.hit(),
    )
    for (let sent = 0; sent < messages; sent += window) {
      queue.insert(Array.from({ length: window }, () => body))
      wake.notify()
      await new Promise((resolve) => setImmediate(resolve))
    }
    await consuming
    const seconds = (performance.now() - started) / 1_000
    queue.db.close()
    db.cleanup()
    return { perSecond: messages / seconds, rssGrowthMb: done.rssGrowthMb }
  }

export const heraldSqlite = heraldSqliteOver(30_000)
export const rawSqlite = rawSqliteOver(30_000)

export const rawSqliteLatency: BenchSide = async (): Promise<Measurement> => {
  const db = tempDb()
  const queue = openRawQueue(db.path)
  const total = 6_000
  const samples: number[] = []
  const wake = createWakeSignal()
  const never = new AbortController().signal
  const consuming = rawConsumer(
    queue,
    total,
    () => wake.wait(50, never),
    (body) => {
      samples.push(sinceSent(body))
    },
  )
  const started = performance.now()
  await atFixedRate(total, 2_000, async (bodies) => {
    queue.insert(bodies)
    wake.notify()
  })
  await consuming
  const perSecond = total / ((performance.now() - started) / 1_000)
  queue.db.close()
  db.cleanup()
  return { perSecond, ...latencies(samples) }
}

/** The same bus with every message keyed, 1,000 keys. */
export const heraldSqliteKeyed: BenchSide = async () => {
  const db = tempDb()
  const measured = await keyedBusThroughput(createSqliteTransport({ path: db.path }), 30_000, window, 1_000)
  db.cleanup()
  return measured
}
