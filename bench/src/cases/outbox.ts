import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createBus,
  createInMemoryTransport,
  defineEvent,
  type OutboxStore,
  type PreparedMessage,
  type StandardSchemaV1,
  startOutboxRelay,
} from '@herald/core'
import { createPostgresOutbox } from '@herald/postgres'
import { createSqliteOutbox } from '@herald/sqlite'
import Database from 'better-sqlite3'
import pg from 'pg'
import type { BenchSide } from '../measure.js'

const messages = 20_000
const perTransaction = 100
let runs = 0

const anything: StandardSchemaV1<{ n: number }> = {
  '~standard': { version: 1, vendor: 'bench', validate: (value) => ({ value: value as { n: number } }) },
}
const OrderPlaced = defineEvent('order.placed', { schema: anything })

const pgUrl = () => {
  const url = process.env.HERALD_BENCH_PG_URL
  if (!url) throw new Error('HERALD_BENCH_PG_URL is not set: run through `npm run bench`')
  return url
}

async function prepared(): Promise<PreparedMessage[]> {
  const bus = createBus({ transport: createInMemoryTransport(), service: 'bench' })
  return Promise.all(Array.from({ length: messages }, (_, n) => bus.prepare(OrderPlaced, { n })))
}

/** Both sides relay into the same destination: an in-memory transport with one consumer, done when all arrived. */
async function destination() {
  const transport = createInMemoryTransport()
  let handled = 0
  let done!: () => void
  const all = new Promise<void>((resolve) => {
    done = resolve
  })
  await transport.subscribe({ group: 'bench', patterns: ['#'], maxInFlight: 100 }, async () => {
    if (++handled === messages) done()
  })
  const send = (topic: string, id: string, headers: Record<string, string>, body: Uint8Array) =>
    transport.publish(topic, [{ id, headers, body }])
  return { transport, all, send }
}

/** Relays a staged backlog; the rate is from relay start to the last message handled. */
async function relayBacklog(store: OutboxStore): Promise<number> {
  const { transport, all } = await destination()
  const started = performance.now()
  const relay = startOutboxRelay({ store, transport, batchSize: 500, pollIntervalMs: 10 })
  await all
  const perSecond = messages / ((performance.now() - started) / 1_000)
  await relay.stop()
  await transport.close()
  return perSecond
}

export const heraldPostgresOutbox: BenchSide = async () => {
  const schema = `bench_outbox_${process.pid}_${++runs}`
  const pool = new pg.Pool({ connectionString: pgUrl(), max: 4 })
  const outbox = await createPostgresOutbox({ pool, schema })
  const all = await prepared()
  for (let i = 0; i < all.length; i += perTransaction) {
    const client = await pool.connect()
    await client.query('BEGIN')
    await outbox.stage(client, all.slice(i, i + perTransaction))
    await client.query('COMMIT')
    client.release()
  }
  const perSecond = await relayBacklog(outbox)
  await pool.query(`DROP SCHEMA ${schema} CASCADE`)
  await pool.end()
  return { perSecond }
}

/**
 * The baseline: a hand-written `pg` relay. In one transaction, `SELECT … LIMIT 500 FOR UPDATE SKIP LOCKED`,
 * publish each row to the same destination, `DELETE … WHERE id = ANY`, COMMIT. No ordering per key, no leases.
 */
export const rawPostgresOutbox: BenchSide = async () => {
  const schema = `bench_raw_outbox_${process.pid}_${++runs}`
  const pool = new pg.Pool({ connectionString: pgUrl(), max: 4 })
  await pool.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.outbox (id bigint GENERATED ALWAYS AS IDENTITY
    PRIMARY KEY, topic text NOT NULL, headers text NOT NULL, body bytea NOT NULL)`)
  const all = await prepared()
  for (let i = 0; i < all.length; i += perTransaction) {
    const batch = all.slice(i, i + perTransaction)
    await pool.query(
      `INSERT INTO ${schema}.outbox (topic, headers, body) SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])`,
      [
        batch.map((m) => m.topic),
        batch.map((m) => JSON.stringify(m.envelope.headers)),
        batch.map((m) => Buffer.from(m.envelope.body)),
      ],
    )
  }
  const { transport, all: arrived, send } = await destination()
  const started = performance.now()
  const client = await pool.connect()
  for (let relayed = 0; relayed < messages; ) {
    await client.query('BEGIN')
    const { rows } = await client.query<{ id: string; topic: string; headers: string; body: Buffer }>(
      `SELECT id, topic, headers, body FROM ${schema}.outbox ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED`,
    )
    await Promise.all(rows.map((row) => send(row.topic, row.id, JSON.parse(row.headers), row.body)))
    await client.query(`DELETE FROM ${schema}.outbox WHERE id = ANY($1)`, [rows.map((r) => r.id)])
    await client.query('COMMIT')
    relayed += rows.length
  }
  await arrived
  const perSecond = messages / ((performance.now() - started) / 1_000)
  client.release()
  await transport.close()
  await pool.query(`DROP SCHEMA ${schema} CASCADE`)
  await pool.end()
  return { perSecond }
}

export const heraldSqliteOutbox: BenchSide = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-outbox-'))
  const path = join(dir, 'app.db')
  const app = new Database(path)
  app.pragma('journal_mode = WAL')
  const outbox = createSqliteOutbox({ path })
  const all = await prepared()
  for (let i = 0; i < all.length; i += perTransaction) {
    app.transaction(() => outbox.stage(app, all.slice(i, i + perTransaction))).immediate()
  }
  const perSecond = await relayBacklog(outbox)
  await outbox.close()
  app.close()
  rmSync(dir, { recursive: true, force: true })
  return { perSecond }
}

/** The baseline: a hand-written better-sqlite3 relay: select 500, publish them to the same destination, delete them. */
export const rawSqliteOutbox: BenchSide = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-outbox-'))
  const db = new Database(join(dir, 'app.db'))
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.exec(
    'CREATE TABLE outbox (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, headers TEXT NOT NULL, body BLOB NOT NULL)',
  )
  const insert = db.prepare('INSERT INTO outbox (topic, headers, body) VALUES (?, ?, ?)')
  const all = await prepared()
  for (let i = 0; i < all.length; i += perTransaction) {
    db.transaction(() => {
      for (const m of all.slice(i, i + perTransaction))
        insert.run(m.topic, JSON.stringify(m.envelope.headers), Buffer.from(m.envelope.body))
    }).immediate()
  }
  const { transport, all: arrived, send } = await destination()
  const select = db.prepare<[], { id: number; topic: string; headers: string; body: Buffer }>(
    'SELECT id, topic, headers, body FROM outbox ORDER BY id LIMIT 500',
  )
  const remove = db.prepare<[number]>('DELETE FROM outbox WHERE id = ?')
  const removeAll = db.transaction((ids: number[]) => {
    for (const id of ids) remove.run(id)
  })
  const started = performance.now()
  for (let relayed = 0; relayed < messages; ) {
    const rows = select.all()
    await Promise.all(rows.map((row) => send(row.topic, String(row.id), JSON.parse(row.headers), row.body)))
    removeAll.immediate(rows.map((r) => r.id))
    relayed += rows.length
  }
  await arrived
  const perSecond = messages / ((performance.now() - started) / 1_000)
  await transport.close()
  db.close()
  rmSync(dir, { recursive: true, force: true })
  return { perSecond }
}
