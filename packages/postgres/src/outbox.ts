import {
  ConfigurationError,
  type HandlerContext,
  HeaderNames,
  type Message,
  type MessageContract,
  type MessageHandler,
  type OutboxRecord,
  type OutboxStore,
  type PreparedMessage,
  uuidV7,
} from '@herald/core'
import { parseStoredHeaders, toBuffer } from '@herald/core/adapter'
import type pg from 'pg'
import { migrate } from './migrate.js'
import { assertSchemaName } from './schema.js'

const nowMs = '(extract(epoch from statement_timestamp()) * 1000)::bigint'

function checkedSchema(schema: string): string {
  try {
    assertSchemaName(schema)
  } catch (err) {
    throw new ConfigurationError('schema', (err as Error).message)
  }
  return schema
}

export interface PostgresOutbox extends OutboxStore {
  /**
   * Stages messages (from `bus.prepare` or `context.prepare`) in the transaction open on `client`: they exist,
   * and will be sent, if and only if it commits. Messages with one `partitionkey` are sent in staging order.
   */
  stage(client: pg.ClientBase, messages: readonly PreparedMessage[]): Promise<void>
}

interface OutboxRow {
  seq: string
  message_id: string
  topic: string
  headers: string
  body: Buffer
  mandatory: boolean
  deliver_at: string | null
  attempts: number
}

/**
 * The outbox on PostgreSQL, in Herald's schema of the application's own database. Creates its tables if missing.
 * Pass the store to `startOutboxRelay` with any transport as destination.
 */
export async function createPostgresOutbox(options: {
  readonly pool: pg.Pool
  readonly schema?: string
}): Promise<PostgresOutbox> {
  const s = checkedSchema(options.schema ?? 'herald')
  const { pool } = options
  await migrate(pool, s)
  const relayId = uuidV7()
  let claims = 0

  return {
    async stage(client, messages) {
      if (messages.length === 0) return
      const recordedAt = Date.now()
      await client.query(
        `INSERT INTO ${s}.outbox (message_id, topic, headers, body, mandatory, partition_key, deliver_at, created_at)
         SELECT t.id, t.topic, t.headers, t.body, t.mandatory, t.key, t.deliver_at, $8
         FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::boolean[], $6::text[], $7::bigint[])
           WITH ORDINALITY AS t(id, topic, headers, body, mandatory, key, deliver_at, ord)
         ORDER BY t.ord`,
        [
          messages.map((m) => m.envelope.id),
          messages.map((m) => m.topic),
          messages.map((m) => JSON.stringify(m.envelope.headers)),
          messages.map((m) => toBuffer(m.envelope.body)),
          messages.map((m) => m.mandatory),
          messages.map((m) => m.envelope.headers[HeaderNames.partitionKey] ?? null),
          messages.map((m) => m.deliverAt ?? null),
          recordedAt,
        ],
      )
    },

    async claim(max, leaseMs) {
      const token = `${relayId}:${++claims}`
      // Only the oldest message of a key, and only while no message of that key is claimed: order per key holds
      // across relays. SKIP LOCKED keeps two relays claiming at once from taking the same row.
      const result = await pool.query<OutboxRow>(
        `UPDATE ${s}.outbox o SET claim_token = $1, not_before = ${nowMs} + $2, attempts = o.attempts + 1
         FROM (
           SELECT c.seq FROM ${s}.outbox c
           WHERE c.not_before <= ${nowMs}
             AND (c.partition_key IS NULL OR NOT EXISTS (
               SELECT 1 FROM ${s}.outbox e WHERE e.partition_key = c.partition_key AND e.seq <> c.seq
                 AND (e.seq < c.seq OR (e.claim_token IS NOT NULL AND e.not_before > ${nowMs}))))
           ORDER BY c.seq LIMIT $3 FOR UPDATE SKIP LOCKED
         ) pick
         WHERE o.seq = pick.seq
         RETURNING o.seq, o.message_id, o.topic, o.headers, o.body, o.mandatory, o.deliver_at, o.attempts`,
        [token, leaseMs, max],
      )
      return result.rows
        .map(
          (row): OutboxRecord => ({
            seq: Number(row.seq),
            token,
            topic: row.topic,
            envelope: { id: row.message_id, headers: parseStoredHeaders(row.headers), body: row.body },
            mandatory: row.mandatory,
            attempts: row.attempts,
            ...(row.deliver_at === null ? {} : { deliverAt: Number(row.deliver_at) }),
          }),
        )
        .sort((a, b) => a.seq - b.seq)
    },

    async markSent(records) {
      if (records.length === 0) return
      await pool.query(
        `DELETE FROM ${s}.outbox o USING unnest($1::bigint[], $2::text[]) AS r(seq, token)
         WHERE o.seq = r.seq AND o.claim_token = r.token`,
        [records.map((r) => r.seq), records.map((r) => r.token)],
      )
    },

    async release(record, retryAt, error) {
      await pool.query(
        `UPDATE ${s}.outbox SET claim_token = NULL, not_before = $3, last_error = $4
         WHERE seq = $1 AND claim_token = $2`,
        [record.seq, record.token, retryAt, error],
      )
    },

    async stats() {
      const result = await pool.query<{ backlog: number; oldest: string | null }>(
        `SELECT count(*)::int AS backlog, MIN(created_at) AS oldest FROM ${s}.outbox`,
      )
      const row = result.rows[0]
      const oldest = row?.oldest === null || row?.oldest === undefined ? undefined : Number(row.oldest)
      return { backlog: row?.backlog ?? 0, lagMs: oldest === undefined ? 0 : Math.max(0, Date.now() - oldest) }
    },
  }
}

/** A handler that also gets the client of the transaction its inbox record is written in. */
export type TransactionalHandler<C extends MessageContract> = (
  message: Parameters<MessageHandler<C>>[0],
  context: HandlerContext,
  client: pg.PoolClient,
) => Promise<void>

export interface PostgresInbox {
  /**
   * Wraps a handler so its effect happens once per message id and group: the handler runs in a transaction that
   * first records the id; a redelivered id finds the record and is acked without running the handler again. If
   * the handler throws, the transaction (and the record) rolls back, so the retry runs it again.
   */
  handler<C extends MessageContract>(handle: TransactionalHandler<C>): MessageHandler<C>
  /** Deletes records older than `olderThanMs`; a message redelivered after that would be handled again. */
  purge(olderThanMs: number): Promise<number>
}

/** The inbox on PostgreSQL, in Herald's schema of the application's database, written through `pool`. */
export async function createPostgresInbox(options: {
  readonly pool: pg.Pool
  readonly schema?: string
}): Promise<PostgresInbox> {
  const s = checkedSchema(options.schema ?? 'herald')
  const { pool } = options
  await migrate(pool, s)
  return {
    handler<C extends MessageContract>(handle: TransactionalHandler<C>): MessageHandler<C> {
      return async (message: Message<unknown>, context) => {
        const client = await pool.connect()
        try {
          await client.query('BEGIN')
          // A concurrent duplicate waits here on the first one's uncommitted row, then finds it (or, if the
          // first rolled back, takes over).
          const recorded = await client.query(
            `INSERT INTO ${s}.inbox (group_name, message_id, handled_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING`,
            [context.group, message.id, Date.now()],
          )
          if (recorded.rowCount === 1) await handle(message as Parameters<MessageHandler<C>>[0], context, client)
          await client.query('COMMIT')
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {})
          throw err
        } finally {
          client.release()
        }
      }
    },
    async purge(olderThanMs) {
      const result = await pool.query(`DELETE FROM ${s}.inbox WHERE handled_at < $1`, [Date.now() - olderThanMs])
      return result.rowCount ?? 0
    },
  }
}
