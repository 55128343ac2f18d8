import { sleep } from '@herald/core'
import { createWakeSignal } from '@herald/core/adapter'
import { createPostgresTransport } from '@herald/postgres'
import pg from 'pg'
import { type BenchSide, heraldThroughput, keyedBusThroughput } from '../measure.js'

const messages = 30_000
const window = 1_000
const encoder = new TextEncoder()
let runs = 0

/** The server `npm run bench` started for this session (bench/src/main.ts). */
function serverUrl(): string {
  const url = process.env.HERALD_BENCH_PG_URL
  if (!url) throw new Error('HERALD_BENCH_PG_URL is not set: run through `npm run bench`')
  return url
}

/** A schema of its own per run, so runs never see each other's rows. */
function freshSchema(side: string): string {
  return `bench_${side}_${process.pid}_${++runs}`
}

/** Herald on PostgreSQL (synchronous_commit=on): publish confirmed, claimed, handled, acked. */
export const heraldPostgres: BenchSide = async () => {
  const transport = await createPostgresTransport({ connectionString: serverUrl(), schema: freshSchema('herald') })
  return heraldThroughput(transport, messages, window)
}

/** The same bus with every message keyed, 1,000 keys. */
export const heraldPostgresKeyed: BenchSide = async () => {
  const transport = await createPostgresTransport({ connectionString: serverUrl(), schema: freshSchema('keyed') })
  return keyedBusThroughput(transport, messages, window, 1_000)
}

/**
 * The baseline: a hand-written `pg` queue, the usual SKIP LOCKED pattern. One INSERT of 1,000 rows per window,
 * claims of 100 with `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`, one DELETE per claim,
 * two claim loops.
 */
export const rawPostgres: BenchSide = async () => {
  const schema = freshSchema('raw')
  const pool = new pg.Pool({ connectionString: serverUrl(), max: 4 })
  await pool.query(`CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.queue (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body bytea NOT NULL,
      visible_at timestamptz NOT NULL DEFAULT now(), lease text);
    CREATE INDEX ON ${schema}.queue (visible_at, id);`)
  const body = Buffer.from(encoder.encode('{"n":1}'))
  const wake = createWakeSignal()
  const never = new AbortController().signal
  const started = performance.now()
  let consumed = 0
  // Two claim loops, so one claims while the other deletes: the pipelining a careful hand-written consumer has.
  const consumeLoop = async () => {
    while (consumed < messages) {
      const { rows } = await pool.query<{ id: string; body: Buffer }>(
        `UPDATE ${schema}.queue SET lease = 'c', visible_at = now() + interval '30 seconds'
         WHERE id IN (SELECT id FROM ${schema}.queue WHERE visible_at <= now() ORDER BY visible_at, id
                      LIMIT 100 FOR UPDATE SKIP LOCKED)
         RETURNING id, body`,
      )
      if (rows.length === 0) {
        await wake.wait(50, never)
        continue
      }
      await Promise.all(rows.map(async () => {}))
      await pool.query(`DELETE FROM ${schema}.queue WHERE id = ANY($1)`, [rows.map((r) => r.id)])
      consumed += rows.length
    }
    wake.notify()
  }
  const consuming = Promise.all([consumeLoop(), consumeLoop()])
  for (let sent = 0; sent < messages; sent += window) {
    await pool.query(`INSERT INTO ${schema}.queue (body) SELECT unnest($1::bytea[])`, [
      Array.from({ length: window }, () => body),
    ])
    wake.notify()
  }
  await consuming
  const seconds = (performance.now() - started) / 1_000
  await pool.query(`DROP SCHEMA ${schema} CASCADE`)
  await pool.end()
  await sleep(0)
  return { perSecond: messages / seconds }
}
