import { createSqliteOutbox, type SqliteDurability } from '@herald/sqlite'
import Database from 'better-sqlite3'
import type { SagaStatus } from './define.js'
import {
  defaultQueryLimit,
  emptyCounts,
  type HistoryRow,
  historyFromRow,
  type InstanceRow,
  instanceFromRow,
  messagesToJson,
  type SagaStore,
} from './store.js'

const schemaSql = `
CREATE TABLE IF NOT EXISTS herald_saga (
  saga TEXT NOT NULL,
  key TEXT NOT NULL,
  state TEXT NOT NULL,
  status TEXT NOT NULL,
  reason TEXT,
  version INTEGER NOT NULL,
  timeouts TEXT NOT NULL,
  compensations TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  ended_at INTEGER,
  PRIMARY KEY (saga, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS herald_saga_status ON herald_saga (saga, status, updated_at);
CREATE INDEX IF NOT EXISTS herald_saga_updated ON herald_saga (updated_at);
CREATE TABLE IF NOT EXISTS herald_saga_history (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  saga TEXT NOT NULL,
  key TEXT NOT NULL,
  at INTEGER NOT NULL,
  message_id TEXT NOT NULL,
  handled TEXT NOT NULL,
  outcome TEXT NOT NULL,
  events TEXT NOT NULL,
  status TEXT,
  sent TEXT NOT NULL,
  timeouts TEXT NOT NULL,
  note TEXT
);
CREATE INDEX IF NOT EXISTS herald_saga_history_key ON herald_saga_history (saga, key, seq);
`

const parsed = (value: unknown) => JSON.parse(value as string) as never
const fromRow = (row: InstanceRow) => instanceFromRow(row, parsed)

/** Thrown inside the transaction to roll it back when another writer changed the instance. */
const conflict = Symbol('conflict')

/**
 * Sagas on SQLite: instances, their history, the inbox of handled messages and the outbox of what steps send, in
 * one database file (the application's own, or one of its own), so each step commits in one transaction.
 */
export function createSqliteSagaStore(options: {
  readonly path: string
  readonly durability?: SqliteDurability
}): SagaStore {
  const outbox = createSqliteOutbox(options)
  const db = new Database(options.path)
  db.pragma('busy_timeout = 5000')
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${options.durability === 'relaxed' ? 'NORMAL' : 'FULL'}`)
  db.exec(schemaSql)

  const load = db.prepare<[string, string], InstanceRow>('SELECT * FROM herald_saga WHERE saga = ? AND key = ?')
  const recordInbox = db.prepare<[string, string, number]>(
    'INSERT OR IGNORE INTO herald_inbox (group_name, message_id, handled_at) VALUES (?, ?, ?)',
  )
  const columns = 'state, status, reason, timeouts, compensations, updated_at, ended_at'
  const insert = db.prepare(
    `INSERT INTO herald_saga (saga, key, version, started_at, ${columns})
     VALUES (@saga, @key, 1, @startedAt, @state, @status, @reason, @timeouts, @compensations, @updatedAt, @endedAt)
     ON CONFLICT DO NOTHING`,
  )
  const update = db.prepare(
    `UPDATE herald_saga SET version = version + 1, state = @state, status = @status, reason = @reason,
       timeouts = @timeouts, compensations = @compensations, updated_at = @updatedAt, ended_at = @endedAt
     WHERE saga = @saga AND key = @key AND version = @expected`,
  )
  const addHistory = db.prepare(
    `INSERT INTO herald_saga_history (saga, key, at, message_id, handled, outcome, events, status, sent, timeouts, note)
     VALUES (@saga, @key, @at, @messageId, @handled, @outcome, @events, @status, @sent, @timeouts, @note)`,
  )
  const history = db.prepare<[string, string], HistoryRow>(
    'SELECT * FROM herald_saga_history WHERE saga = ? AND key = ? ORDER BY seq',
  )
  const counts = db.prepare<[string | null, string | null], { status: SagaStatus; n: number }>(
    'SELECT status, COUNT(*) AS n FROM herald_saga WHERE (? IS NULL OR saga = ?) GROUP BY status',
  )

  const commit = db.transaction((c: Parameters<SagaStore['commit']>[0]) => {
    if (recordInbox.run(c.group, c.messageId, c.history.at).changes === 0) return 'duplicate' as const
    if (c.instance !== undefined) {
      const i = c.instance
      const row = {
        saga: c.saga,
        key: c.key,
        state: JSON.stringify(i.state),
        status: i.status,
        reason: i.reason ?? null,
        timeouts: JSON.stringify(i.timeouts),
        compensations: messagesToJson(i.compensations),
        startedAt: i.startedAt,
        updatedAt: i.updatedAt,
        endedAt: i.endedAt ?? null,
      }
      const changed = c.expectedVersion === 0 ? insert.run(row) : update.run({ ...row, expected: c.expectedVersion })
      if (changed.changes === 0) throw conflict
    }
    outbox.stage(db, c.messages)
    const h = c.history
    addHistory.run({
      saga: c.saga,
      key: c.key,
      at: h.at,
      messageId: h.messageId,
      handled: h.handled,
      outcome: h.outcome,
      events: JSON.stringify(h.events),
      status: h.status ?? null,
      sent: JSON.stringify(h.sent),
      timeouts: JSON.stringify(h.timeouts),
      note: h.note ?? null,
    })
    return 'committed' as const
  })

  return {
    outbox,
    async load(saga, key) {
      const row = load.get(saga, key)
      return row === undefined ? undefined : fromRow(row)
    },
    async commit(c) {
      try {
        return commit.immediate(c)
      } catch (err) {
        if (err === conflict) return 'conflict'
        throw err
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
          where.push(`${column} = ?`)
          params.push(value)
        }
      }
      if (query.startedBefore !== undefined) {
        where.push('started_at < ?')
        params.push(query.startedBefore)
      }
      const sql = `SELECT * FROM herald_saga ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY updated_at DESC LIMIT ?`
      return db
        .prepare<unknown[], InstanceRow>(sql)
        .all(...params, query.limit ?? defaultQueryLimit)
        .map(fromRow)
    },
    async history(saga, key) {
      return history.all(saga, key).map((r) => historyFromRow(r, parsed))
    },
    async counts(saga) {
      const result = emptyCounts()
      for (const row of counts.all(saga ?? null, saga ?? null)) result[row.status] = row.n
      return result
    },
    async close() {
      db.close()
      await outbox.close()
    },
  }
}
