import { type PreparedMessage, startOutboxRelay, type Transport } from '@herald/core'
import Database from 'better-sqlite3'
import { createSqliteOutbox } from './outbox.js'

/** What one handled message changes: rows to write, messages to send. Both happen, or neither. */
export interface Plan {
  readonly write?: () => void
  readonly send?: ReadonlyArray<Promise<PreparedMessage>>
}

/**
 * A service's own database (SQLite, one file per service), with an outbox, its relay to `transport`, and a record
 * of handled messages: the inbox and the outbox of docs/outbox-inbox.md in one object, for handlers that decide
 * synchronously from their rows.
 * Every state change goes through `apply`, which makes it once per message and sends what it decided at least
 * once: the rows, the staged messages and the handled record commit in one transaction, and the outbox relay
 * sends the messages after. A service killed at any point loses nothing and does nothing twice.
 */
export interface ServiceState {
  readonly db: Database.Database
  /**
   * Applies the plan `decide` makes from the current rows, once per `key` (a group and message id). Changes
   * run one at a time, so a decision never reads rows another change is about to write.
   */
  apply(key: string, decide: () => Plan | undefined): Promise<void>
  close(): Promise<void>
}

export function openServiceState(options: {
  readonly path: string
  readonly transport: Transport
  readonly schema: string
  readonly onError?: (err: unknown) => void
}): ServiceState {
  const outbox = createSqliteOutbox({ path: options.path })
  const db = new Database(options.path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.pragma('busy_timeout = 5000')
  db.exec(`CREATE TABLE IF NOT EXISTS handled_messages (key TEXT PRIMARY KEY, handled_at INTEGER NOT NULL);
    ${options.schema}`)
  const relay = startOutboxRelay({
    store: outbox,
    transport: options.transport,
    pollIntervalMs: 100,
    ...(options.onError === undefined ? {} : { onError: options.onError }),
  })
  const seen = db.prepare<[string], { key: string }>('SELECT key FROM handled_messages WHERE key = ?')
  const record = db.prepare<[string, number]>('INSERT INTO handled_messages (key, handled_at) VALUES (?, ?)')
  let queue: Promise<unknown> = Promise.resolve()

  async function change(key: string, decide: () => Plan | undefined): Promise<void> {
    if (seen.get(key) !== undefined) return
    const plan = decide()
    const messages = await Promise.all(plan?.send ?? [])
    db.transaction(() => {
      record.run(key, Date.now())
      plan?.write?.()
      if (messages.length > 0) outbox.stage(db, messages)
    }).immediate()
    if (messages.length > 0) relay.notify()
  }

  return {
    db,
    apply(key, decide) {
      const result = queue.then(() => change(key, decide))
      queue = result.catch(() => {})
      return result
    },
    async close() {
      await queue
      await relay.stop()
      await outbox.close()
      db.close()
    },
  }
}
