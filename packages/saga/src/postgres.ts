import { ConfigurationError } from '@herald/core'
import { createPostgresOutbox } from '@herald/postgres'
import type pg from 'pg'
import type { SagaStatus } from './define.js'
import {
  type CommitResult,
  defaultQueryLimit,
  emptyCounts,
  type HistoryRow,
  historyFromRow,
  type InstanceRow,
  instanceFromRow,
  messagesToJson,
  type SagaStore,
} from './store.js'

function schemaSql(s: string): string {
  return `
CREATE TABLE IF NOT EXISTS ${s}.saga (
  saga text NOT NULL,
  key text NOT NULL,
  state jsonb NOT NULL,
  status text NOT NULL,
  reason text,
  version integer NOT NULL,
  timeouts jsonb NOT NULL,
  compensations text NOT NULL,
  started_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  ended_at bigint,
  PRIMARY KEY (saga, key)
);
CREATE INDEX IF NOT EXISTS saga_status ON ${s}.saga (saga, status, updated_at);
CREATE INDEX IF NOT EXISTS saga_updated ON ${s}.saga (updated_at);
CREATE TABLE IF NOT EXISTS ${s}.saga_history (
  seq bigserial PRIMARY KEY,
  saga text NOT NULL,
  key text NOT NULL,
  at bigint NOT NULL,
  message_id text NOT NULL,
  handled text NOT NULL,
  outcome text NOT NULL,
  events jsonb NOT NULL,
  status text,
  sent jsonb NOT NULL,
  timeouts jsonb NOT NULL,
  note text
);
CREATE INDEX IF NOT EXISTS saga_history_key ON ${s}.saga_history (saga, key, seq);
`
}

const asIs = (value: unknown) => value as never
const fromRow = (row: InstanceRow) => instanceFromRow(row, asIs)

/** Rolls the step's transaction back: another writer changed the instance. */
class Conflict extends Error {}

/**
 * Sagas on PostgreSQL, in Herald's schema of the application's database: instances, history, the inbox and the
 * outbox, so each step commits in one transaction.
 */
export async function createPostgresSagaStore(options: {
  readonly pool: pg.Pool
  readonly schema?: string
}): Promise<SagaStore> {
  const { pool } = options
  const s = options.schema ?? 'herald'
  if (!/^[a-z_][a-z0-9_]*$/.test(s)) throw new ConfigurationError('schema', `"${s}" must be a lower-case identifier`)
  const outbox = await createPostgresOutbox({ pool, schema: s })
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    // Two processes starting at once would otherwise race to create the same tables.
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('${s}.saga'))`)
    await client.query(schemaSql(s))
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }

  return {
    outbox,
    async load(saga, key) {
      const { rows } = await pool.query<InstanceRow>(`SELECT * FROM ${s}.saga WHERE saga = $1 AND key = $2`, [
        saga,
        key,
      ])
      return rows[0] === undefined ? undefined : fromRow(rows[0])
    },

    async commit(c): Promise<CommitResult> {
      const tx = await pool.connect()
      try {
        await tx.query('BEGIN')
        // A duplicate arriving at once waits here on the first one's row, then finds it.
        const recorded = await tx.query(
          `INSERT INTO ${s}.inbox (group_name, message_id, handled_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
          [c.group, c.messageId, c.history.at],
        )
        if (recorded.rowCount !== 1) {
          await tx.query('ROLLBACK')
          return 'duplicate'
        }
        if (c.instance !== undefined) {
          const i = c.instance
          const values = [
            c.saga,
            c.key,
            JSON.stringify(i.state),
            i.status,
            i.reason ?? null,
            JSON.stringify(i.timeouts),
            messagesToJson(i.compensations),
            i.updatedAt,
            i.endedAt ?? null,
          ]
          const changed =
            c.expectedVersion === 0
              ? await tx.query(
                  `INSERT INTO ${s}.saga (saga, key, state, status, reason, timeouts, compensations, updated_at,
                     ended_at, version, started_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10) ON CONFLICT DO NOTHING`,
                  [...values, i.startedAt],
                )
              : await tx.query(
                  `UPDATE ${s}.saga SET state = $3, status = $4, reason = $5, timeouts = $6, compensations = $7,
                     updated_at = $8, ended_at = $9, version = version + 1
                   WHERE saga = $1 AND key = $2 AND version = $10`,
                  [...values, c.expectedVersion],
                )
          if (changed.rowCount !== 1) throw new Conflict()
        }
        await outbox.stage(tx, c.messages)
        const h = c.history
        await tx.query(
          `INSERT INTO ${s}.saga_history (saga, key, at, message_id, handled, outcome, events, status, sent,
             timeouts, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
          [
            c.saga,
            c.key,
            h.at,
            h.messageId,
            h.handled,
            h.outcome,
            JSON.stringify(h.events),
            h.status ?? null,
            JSON.stringify(h.sent),
            JSON.stringify(h.timeouts),
            h.note ?? null,
          ],
        )
        await tx.query('COMMIT')
        return 'committed'
      } catch (err) {
        await tx.query('ROLLBACK').catch(() => {})
        if (err instanceof Conflict) return 'conflict'
        // Two first steps at once: the loser's insert of the same instance waited, then found it.
        if ((err as { code?: string }).code === '23505') return 'conflict'
        throw err
      } finally {
        tx.release()
      }
    },

    async find(query = {}) {
      const where: string[] = []
      const params: unknown[] = []
      for (const [column, value] of [
        ['saga', query.saga],
        ['key', query.key],
        ['status', query.status],
      ] as const) {
        if (value !== undefined) {
          params.push(value)
          where.push(`${column} = $${params.length}`)
        }
      }
      if (query.startedBefore !== undefined) {
        params.push(query.startedBefore)
        where.push(`started_at < $${params.length}`)
      }
      params.push(query.limit ?? defaultQueryLimit)
      const { rows } = await pool.query<InstanceRow>(
        `SELECT * FROM ${s}.saga ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY updated_at DESC LIMIT $${params.length}`,
        params,
      )
      return rows.map(fromRow)
    },

    async history(saga, key) {
      const { rows } = await pool.query<HistoryRow>(
        `SELECT * FROM ${s}.saga_history WHERE saga = $1 AND key = $2 ORDER BY seq`,
        [saga, key],
      )
      return rows.map((r) => historyFromRow(r, asIs))
    },

    async counts(saga) {
      const { rows } = await pool.query<{ status: SagaStatus; n: string }>(
        `SELECT status, COUNT(*) AS n FROM ${s}.saga WHERE ($1::text IS NULL OR saga = $1) GROUP BY status`,
        [saga ?? null],
      )
      const result = emptyCounts()
      for (const row of rows) result[row.status] = Number(row.n)
      return result
    },

    async close() {},
  }
}
