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
import { parseStoredHeaders, storedBody, toBuffer } from '@herald/core/adapter'
import type Database from 'better-sqlite3'
import { openDatabase, type SqliteDurability } from './open-database.js'
import { schemaSql } from './schema.js'
import { createWriteBatcher } from './write-batcher.js'

export interface SqliteOutbox extends OutboxStore {
  /**
   * Stages messages (from `bus.prepare` or `context.prepare`) on the application's own connection, inside its
   * open transaction (`db.transaction(() => { …; outbox.stage(db, messages) })()`): they exist, and will be sent,
   * if and only if it commits. Synchronous, like every better-sqlite3 transaction.
   */
  stage(db: Database.Database, messages: readonly PreparedMessage[]): void
  close(): Promise<void>
}

interface OutboxRow {
  seq: number
  message_id: string
  topic: string
  headers: string
  body: Buffer
  mandatory: number
  deliver_at: number | null
  attempts: number
}

const stageSql = `INSERT INTO herald_outbox (message_id, topic, headers, body, mandatory, partition_key, deliver_at,
  created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

/**
 * The outbox on SQLite, in the application's database file. The relay's claims go through a connection of its
 * own; `stage` uses the application's connection so that it joins the application's transaction.
 */
export function createSqliteOutbox(options: {
  readonly path: string
  readonly durability?: SqliteDurability
}): SqliteOutbox {
  const { db } = openDatabase(options.path, options.durability ?? 'strict', 5_000)
  const writer = createWriteBatcher(db)
  const relayId = uuidV7()
  let claims = 0
  const staging = new WeakMap<Database.Database, Database.Statement>()
  // Only the oldest message of a key, and only while no message of that key is claimed: see OutboxStore.claim.
  const claim = db.prepare<{ token: string; now: number; lease: number; limit: number }, OutboxRow>(
    `UPDATE herald_outbox SET claim_token = @token, not_before = @now + @lease, attempts = attempts + 1
     WHERE seq IN (
       SELECT c.seq FROM herald_outbox c
       WHERE c.not_before <= @now
         AND (c.partition_key IS NULL OR NOT EXISTS (
           SELECT 1 FROM herald_outbox e WHERE e.partition_key = c.partition_key AND e.seq <> c.seq
             AND (e.seq < c.seq OR (e.claim_token IS NOT NULL AND e.not_before > @now))))
       ORDER BY c.seq LIMIT @limit)
     RETURNING seq, message_id, topic, headers, body, mandatory, deliver_at, attempts`,
  )
  const markSent = db.prepare<[number, string]>('DELETE FROM herald_outbox WHERE seq = ? AND claim_token = ?')
  const release = db.prepare<[number, string, number, string]>(
    'UPDATE herald_outbox SET claim_token = NULL, not_before = ?, last_error = ? WHERE seq = ? AND claim_token = ?',
  )
  const stats = db.prepare<[], { backlog: number; oldest: number | null }>(
    'SELECT COUNT(*) AS backlog, MIN(created_at) AS oldest FROM herald_outbox',
  )

  return {
    stage(target, messages) {
      let insert = staging.get(target)
      if (insert === undefined) {
        // The outbox's own connection created the table at open; `target` must be the same database file.
        insert = target.prepare(stageSql)
        staging.set(target, insert)
      }
      const now = Date.now()
      for (const m of messages) {
        insert.run(
          m.envelope.id,
          m.topic,
          JSON.stringify(m.envelope.headers),
          toBuffer(m.envelope.body),
          m.mandatory ? 1 : 0,
          m.envelope.headers[HeaderNames.partitionKey] ?? null,
          m.deliverAt ?? null,
          now,
        )
      }
    },

    async claim(max, leaseMs) {
      const token = `${relayId}:${++claims}`
      const rows = await writer.run(() => claim.all({ token, now: Date.now(), lease: leaseMs, limit: max }))
      return rows
        .map(
          (row): OutboxRecord => ({
            seq: row.seq,
            token,
            topic: row.topic,
            envelope: { id: row.message_id, headers: parseStoredHeaders(row.headers), body: storedBody(row.body) },
            mandatory: row.mandatory === 1,
            attempts: row.attempts,
            ...(row.deliver_at === null ? {} : { deliverAt: row.deliver_at }),
          }),
        )
        .sort((a, b) => a.seq - b.seq)
    },

    async markSent(records) {
      await writer.run(() => {
        for (const r of records) markSent.run(r.seq, r.token)
      })
    },

    async release(record, retryAt, error) {
      await writer.run(() => release.run(retryAt, error, record.seq, record.token))
    },

    async stats() {
      const row = stats.get()
      const oldest = row?.oldest ?? undefined
      return { backlog: row?.backlog ?? 0, lagMs: oldest === undefined ? 0 : Math.max(0, Date.now() - oldest) }
    },

    async close() {
      await writer.flush()
      db.close()
    },
  }
}

/** A handler whose database work runs synchronously in the inbox's transaction, on the application's connection. */
export type SqliteTransactionalHandler<C extends MessageContract> = (
  message: Parameters<MessageHandler<C>>[0],
  context: HandlerContext,
  db: Database.Database,
) => void

export interface SqliteInbox {
  /**
   * Wraps a handler so its effect happens once per message id and group: the id is recorded and the handler runs
   * in one transaction; a redelivered id finds the record and is acked without running the handler. If the
   * handler throws, everything rolls back and the retry runs it again. The handler must be synchronous
   * (better-sqlite3 transactions cannot span an `await`): do async work before or after, not inside.
   */
  handler<C extends MessageContract>(handle: SqliteTransactionalHandler<C>): MessageHandler<C>
  /** Deletes records older than `olderThanMs`; a message redelivered after that would be handled again. */
  purge(olderThanMs: number): number
}

/** The inbox on SQLite, written through the application's own connection. */
export function createSqliteInbox(options: { readonly db: Database.Database }): SqliteInbox {
  const { db } = options
  db.exec(schemaSql)
  const record = db.prepare<[string, string, number]>(
    'INSERT OR IGNORE INTO herald_inbox (group_name, message_id, handled_at) VALUES (?, ?, ?)',
  )
  const purge = db.prepare<[number]>('DELETE FROM herald_inbox WHERE handled_at < ?')
  return {
    handler<C extends MessageContract>(handle: SqliteTransactionalHandler<C>): MessageHandler<C> {
      const run = db.transaction((message: Message<unknown>, context: HandlerContext) => {
        if (record.run(context.group, message.id, Date.now()).changes === 0) return
        const result: unknown = handle(message as Parameters<MessageHandler<C>>[0], context, db)
        if (result instanceof Promise) {
          result.catch(() => {})
          throw new ConfigurationError('handler', 'a SQLite inbox handler must be synchronous (it returned a promise)')
        }
      })
      return async (message, context) => {
        run.immediate(message, context)
      }
    },
    purge(olderThanMs) {
      return purge.run(Date.now() - olderThanMs).changes
    },
  }
}
