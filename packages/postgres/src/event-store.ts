import {
  type AppendResult,
  assertExpectedVersion,
  assertStreamName,
  ConfigurationError,
  type EventFilter,
  type EventPage,
  type EventQuery,
  type EventStore,
  type EventToStore,
  eventFields,
  eventPageSize,
  type RetentionOptions,
} from '@herald/core'
import { type BatchOutcome, createCoalescer, type EventRow, storedEventFromRow, toBuffer } from '@herald/core/adapter'
import pg from 'pg'
import { migrate } from './migrate.js'
import { assertSchemaName } from './schema.js'

export interface PostgresEventStoreOptions {
  readonly connectionString: string
  /** Schema holding Herald's tables (shared with the transport). Default `herald`. */
  readonly schema?: string
  /** Connections in the pool. Default 5. */
  readonly maxConnections?: number
  readonly onError?: (err: unknown) => void
}

/** The filter as SQL conditions on numbered parameters starting after `offset`. */
function where(filter: EventFilter, offset: number): { sql: string; params: unknown[] } {
  const conditions: string[] = []
  const params: unknown[] = []
  const add = (condition: (p: string) => string, value: unknown) => {
    params.push(value)
    conditions.push(condition(`$${offset + params.length}`))
  }
  // Exact types, and types under a prefix as a range of the type index ('/' is the character after '.').
  const typeConditions: string[] = []
  const param = (value: unknown) => {
    params.push(value)
    return `$${offset + params.length}`
  }
  if (filter.types !== undefined) typeConditions.push(`type = ANY(${param(filter.types)}::text[])`)
  for (const under of filter.typesUnder ?? [])
    typeConditions.push(
      `type = ${param(under)} OR (type > ${param(`${under}.`)} COLLATE "C" AND type < ${param(`${under}/`)} COLLATE "C")`,
    )
  if (typeConditions.length > 0) conditions.push(`(${typeConditions.join(' OR ')})`)
  if (filter.source !== undefined) add((p) => `source = ${p}`, filter.source)
  if (filter.correlationId !== undefined) add((p) => `correlation_id = ${p}`, filter.correlationId)
  if (filter.stream !== undefined) add((p) => `stream = ${p}`, filter.stream)
  if (filter.since !== undefined) add((p) => `time >= ${p}`, filter.since)
  if (filter.until !== undefined) add((p) => `time < ${p}`, filter.until)
  return { sql: conditions.map((c) => ` AND ${c}`).join(''), params }
}

/** The insert's parameters ($1..$9 as arrays, one element per event). */
function insertValues(events: readonly EventToStore[], stream: string | null, fromVersion: number): unknown[] {
  const recordedAt = Date.now()
  const columns: unknown[][] = [[], [], [], [], [], [], [], [], []]
  events.forEach(({ topic, envelope }, i) => {
    const fields = eventFields(envelope, recordedAt)
    const row = [
      envelope.id,
      topic,
      fields.type,
      fields.source,
      fields.time,
      fields.correlationId ?? null,
      stream === null ? null : fromVersion + i + 1,
      JSON.stringify(envelope.headers),
      toBuffer(envelope.body),
    ]
    for (const [c, value] of row.entries()) columns[c]!.push(value)
  })
  return [...columns, stream, recordedAt]
}

/**
 * The event store on PostgreSQL. Every append takes the store's advisory lock before drawing positions and holds it
 * to commit, so positions become visible in order (no reader skips a late commit); appends without a stream made
 * in one event-loop turn share one statement. Appends to a stream check the version after taking the lock.
 */
export async function createPostgresEventStore(options: PostgresEventStoreOptions): Promise<EventStore> {
  const schema = options.schema ?? 'herald'
  try {
    assertSchemaName(schema)
  } catch (err) {
    throw new ConfigurationError('schema', (err as Error).message)
  }
  const s = schema
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections ?? 5,
    application_name: 'herald-events',
  })
  pool.on('error', options.onError ?? (() => {}))
  try {
    await migrate(pool, schema)
  } catch (err) {
    await pool.end()
    throw err
  }
  const lock = `pg_advisory_xact_lock(hashtext('herald-events:${s}'))`
  const insertSql = (lockInline: boolean) =>
    `${lockInline ? `WITH lock AS MATERIALIZED (SELECT ${lock}) ` : ''}
     INSERT INTO ${s}.events (message_id, topic, type, source, time, correlation_id, stream, stream_version,
       headers, body, recorded_at)
     SELECT t.id, t.topic, t.type, t.source, t.time, t.correlation_id, $10, t.version, t.headers, t.body, $11
     FROM ${lockInline ? 'lock, ' : ''}unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
       $7::int[], $8::text[], $9::bytea[]) WITH ORDINALITY
       AS t(id, topic, type, source, time, correlation_id, version, headers, body, ord)
     ORDER BY t.ord
     RETURNING position`
  // The lock is drawn in the statement's first row, before the first position: see the note on the class.
  const appendStatement = { name: `herald:${s}:events-append`, text: insertSql(true) }
  const streamInsert = { name: `herald:${s}:events-stream-append`, text: insertSql(false) }

  let closed = false
  const appender = createCoalescer<readonly EventToStore[], number[]>(appendBatch, { maxBatch: 200, maxConcurrent: 2 })

  async function appendBatch(batches: readonly (readonly EventToStore[])[]): Promise<BatchOutcome<number[]>> {
    const result = await pool.query<{ position: string }>({
      ...appendStatement,
      values: insertValues(batches.flat(), null, 0),
    })
    const positions = result.rows.map((r) => Number(r.position)).sort((a, b) => a - b)
    let next = 0
    return batches.map((batch) => {
      const mine = positions.slice(next, next + batch.length)
      next += batch.length
      return { ok: true, value: mine }
    })
  }

  return {
    async append(events) {
      if (events.length === 0) return []
      return appender.submit(events)
    },

    async appendToStream(stream, events, appendOptions = {}): Promise<AppendResult> {
      assertStreamName(stream)
      const client = await pool.connect()
      try {
        // After the lock, this transaction's statements see every append committed before it.
        await client.query(`BEGIN; SELECT ${lock}`)
        const current = await client.query<{ version: number | null }>(
          `SELECT MAX(stream_version) AS version FROM ${s}.events WHERE stream = $1`,
          [stream],
        )
        const actual = current.rows[0]?.version ?? 0
        assertExpectedVersion(stream, appendOptions.expectedVersion ?? 'any', actual)
        const inserted =
          events.length === 0
            ? { rows: [] }
            : await client.query<{ position: string }>({
                ...streamInsert,
                values: insertValues(events, stream, actual),
              })
        await client.query('COMMIT')
        return {
          version: actual + events.length,
          positions: inserted.rows.map((r) => Number(r.position)).sort((a, b) => a - b),
        }
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {})
        throw err
      } finally {
        client.release()
      }
    },

    async readStream(stream, readOptions = {}) {
      const result = await pool.query<EventRow>(
        `SELECT * FROM ${s}.events WHERE stream = $1 AND stream_version >= $2 ORDER BY stream_version LIMIT $3`,
        [stream, readOptions.fromVersion ?? 1, readOptions.limit ?? null],
      )
      return result.rows.map(storedEventFromRow)
    },

    async getEvent(id) {
      const result = await pool.query<EventRow>(
        `SELECT * FROM ${s}.events WHERE message_id = $1 ORDER BY position LIMIT 1`,
        [id],
      )
      const row = result.rows[0]
      return row === undefined ? undefined : storedEventFromRow(row)
    },

    async queryEvents(query: EventQuery = {}): Promise<EventPage> {
      const limit = eventPageSize(query)
      const order = query.newestFirst === true ? 'DESC' : ''
      // Position bounds only when given, so the planner is free to use the filter's index (see the SQLite store).
      const params: unknown[] = [limit + 1]
      let positions = ''
      for (const [bound, op] of [
        [query.after, '>'],
        [query.before, '<'],
      ] as const) {
        if (bound === undefined) continue
        params.push(bound)
        positions += ` AND position ${op} $${params.length}`
      }
      const filter = where(query, params.length)
      const result = await pool.query<EventRow>(
        `SELECT * FROM ${s}.events WHERE true${positions}${filter.sql} ORDER BY position ${order} LIMIT $1`,
        [...params, ...filter.params],
      )
      const rows = result.rows
      const items = rows.slice(0, limit).map(storedEventFromRow)
      const last = items.at(-1)
      return rows.length > limit && last !== undefined ? { items, nextCursor: last.position } : { items }
    },

    async headPosition() {
      // The highest committed position, never the sequence (which counts uncommitted and rolled-back draws).
      const result = await pool.query<{ head: string | null }>(`SELECT MAX(position) AS head FROM ${s}.events`)
      return Number(result.rows[0]?.head ?? 0)
    },

    async deleteEvents(retention: RetentionOptions) {
      const result = await pool.query<{ deleted: number; truncated: string }>(
        `WITH deleted AS (
           DELETE FROM ${s}.events WHERE recorded_at < $1 AND ($3 OR stream IS NULL)
             AND (NOT $2 OR NOT EXISTS (SELECT 1 FROM ${s}.checkpoints)
                  OR position <= (SELECT MIN(position) FROM ${s}.checkpoints))
           RETURNING position
         ), bumped AS (
           UPDATE ${s}.meta SET value = GREATEST(value, COALESCE((SELECT MAX(position) FROM deleted), 0))
           WHERE key = 'events_truncated_through' RETURNING value
         )
         SELECT (SELECT count(*) FROM deleted)::int AS deleted, (SELECT value FROM bumped) AS truncated`,
        [retention.recordedBefore, retention.respectCheckpoints !== false, retention.includeStreams === true],
      )
      const row = result.rows[0]
      return { deleted: row?.deleted ?? 0, truncatedThrough: Number(row?.truncated ?? 0) }
    },

    async truncatedThrough() {
      const result = await pool.query<{ value: string }>(
        `SELECT value FROM ${s}.meta WHERE key = 'events_truncated_through'`,
      )
      return Number(result.rows[0]?.value ?? 0)
    },

    async loadCheckpoint(name) {
      const result = await pool.query<{ position: string }>(`SELECT position FROM ${s}.checkpoints WHERE name = $1`, [
        name,
      ])
      const row = result.rows[0]
      return row === undefined ? undefined : Number(row.position)
    },

    async saveCheckpoint(name, position) {
      await pool.query(
        `INSERT INTO ${s}.checkpoints (name, position, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at`,
        [name, position, Date.now()],
      )
    },

    async deleteCheckpoint(name) {
      await pool.query(`DELETE FROM ${s}.checkpoints WHERE name = $1`, [name])
    },

    async close() {
      if (closed) return
      closed = true
      await appender.flush()
      await pool.end()
    },
  }
}
