import { ConfigurationError, type ErrorInfo } from '@herald/core'
import type pg from 'pg'
import {
  applyOutcome,
  clampLimit,
  type Digest,
  type DigestItem,
  digestKey,
  digestWindow,
  emptyCounts,
  isFinal,
  type NewNotification,
  type NotificationQuery,
  type NotificationRecord,
  type NotificationStatus,
  type NotificationStore,
} from './store.js'
import type { Channel, StoredTemplate } from './templates.js'

function schemaSql(s: string): string {
  return `
CREATE TABLE IF NOT EXISTS ${s}.notification (
  id text PRIMARY KEY,
  user_id text NOT NULL,
  channel text NOT NULL,
  recipient text NOT NULL,
  category text NOT NULL,
  template text NOT NULL,
  locale text NOT NULL,
  data jsonb NOT NULL,
  status text NOT NULL,
  attempts integer NOT NULL,
  last_error jsonb,
  provider_id text,
  subject text,
  body text,
  rule text,
  batch text,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  sent_at bigint,
  read_at bigint
);
CREATE INDEX IF NOT EXISTS notification_user ON ${s}.notification (user_id, created_at);
CREATE INDEX IF NOT EXISTS notification_status ON ${s}.notification (status, created_at);
CREATE INDEX IF NOT EXISTS notification_batch ON ${s}.notification (batch, status) WHERE batch IS NOT NULL;
CREATE TABLE IF NOT EXISTS ${s}.notification_preference (
  user_id text NOT NULL,
  channel text NOT NULL,
  category text NOT NULL,
  enabled boolean NOT NULL,
  PRIMARY KEY (user_id, channel, category)
);
CREATE TABLE IF NOT EXISTS ${s}.notification_digest (
  key text PRIMARY KEY,
  rule text NOT NULL,
  user_id text NOT NULL,
  recipient text NOT NULL,
  locale text NOT NULL,
  window_start bigint NOT NULL,
  window_end bigint NOT NULL,
  closed boolean NOT NULL
);
CREATE TABLE IF NOT EXISTS ${s}.notification_digest_item (
  seq bigserial,
  rule text NOT NULL,
  user_id text NOT NULL,
  event_id text NOT NULL,
  digest text NOT NULL,
  data jsonb NOT NULL,
  PRIMARY KEY (rule, user_id, event_id)
);
CREATE INDEX IF NOT EXISTS notification_digest_items ON ${s}.notification_digest_item (digest, seq);
CREATE TABLE IF NOT EXISTS ${s}.notification_template (
  name text NOT NULL,
  channel text NOT NULL,
  locale text NOT NULL,
  version integer NOT NULL,
  subject text,
  body text NOT NULL,
  format text NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (name, channel, locale, version)
);
`
}

interface Row {
  id: string
  user_id: string
  channel: string
  recipient: string
  category: string
  template: string
  locale: string
  data: Record<string, unknown>
  status: string
  attempts: number
  last_error: ErrorInfo | null
  provider_id: string | null
  subject: string | null
  body: string | null
  rule: string | null
  batch: string | null
  created_at: string
  updated_at: string
  sent_at: string | null
  read_at: string | null
}

const orUndefined = <T>(value: T | null): T | undefined => (value === null ? undefined : value)
const time = (value: string | null) => (value === null ? undefined : Number(value))

function fromRow(row: Row): NotificationRecord {
  return {
    id: row.id,
    user: row.user_id,
    channel: row.channel as Channel,
    to: row.recipient,
    category: row.category,
    template: row.template,
    locale: row.locale,
    data: row.data,
    status: row.status as NotificationStatus,
    attempts: row.attempts,
    lastError: orUndefined(row.last_error),
    providerId: orUndefined(row.provider_id),
    subject: orUndefined(row.subject),
    body: orUndefined(row.body),
    rule: orUndefined(row.rule),
    batch: orUndefined(row.batch),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    sentAt: time(row.sent_at),
    readAt: time(row.read_at),
  }
}

function templateFromRow(row: Record<string, unknown>): StoredTemplate {
  return {
    name: row.name as string,
    channel: row.channel as Channel,
    locale: row.locale as string,
    version: row.version as number,
    subject: orUndefined(row.subject as string | null),
    body: row.body as string,
    format: row.format as 'html' | 'text',
    createdAt: Number(row.created_at),
  }
}

/**
 * The notification service's records, preferences, templates and digests in Herald's schema of the application's
 * PostgreSQL database. The pool stays the caller's: `close` does not end it.
 */
export async function createPostgresNotificationStore(options: {
  readonly pool: pg.Pool
  readonly schema?: string
}): Promise<NotificationStore> {
  const { pool } = options
  const s = options.schema ?? 'herald'
  if (!/^[a-z_][a-z0-9_]*$/.test(s)) throw new ConfigurationError('schema', `"${s}" must be a lower-case identifier`)
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${s}`)
  await pool.query(schemaSql(s))

  async function transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect()
    try {
      await client.query('BEGIN')
      const result = await work(client)
      await client.query('COMMIT')
      return result
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  async function createOne(db: pg.Pool | pg.PoolClient, input: NewNotification, now: number) {
    const inserted = await db.query<Row>(
      `INSERT INTO ${s}.notification (id, user_id, channel, recipient, category, template, locale, data, status,
         attempts, rule, batch, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $10, $11, $11)
       ON CONFLICT (id) DO NOTHING RETURNING *`,
      [
        input.id,
        input.user,
        input.channel,
        input.to,
        input.category,
        input.template,
        input.locale,
        JSON.stringify(input.data),
        input.rule ?? null,
        input.batch ?? null,
        now,
      ],
    )
    const created = inserted.rows[0]
    if (created !== undefined) return { record: fromRow(created), created: true }
    const existing = await db.query<Row>(`SELECT * FROM ${s}.notification WHERE id = $1`, [input.id])
    return { record: fromRow(existing.rows[0] as Row), created: false }
  }

  function where(q: NotificationQuery, params: unknown[]): string {
    const clauses: string[] = []
    const add = (column: string, op: string, value: unknown) => {
      if (value === undefined) return
      params.push(value)
      clauses.push(`${column} ${op} $${params.length}`)
    }
    add('user_id', '=', q.user)
    add('status', '=', q.status)
    add('channel', '=', q.channel)
    add('batch', '=', q.batch)
    add('created_at', '<', q.before)
    return clauses.length === 0 ? '' : `WHERE ${clauses.join(' AND ')}`
  }

  return {
    templates: {
      async save(template, now) {
        return transaction(async (client) => {
          // One writer per name, channel and locale at a time, so versions never collide.
          await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
            `${s}.template:${template.name}:${template.channel}:${template.locale}`,
          ])
          const newest = await client.query<{ v: number | null }>(
            `SELECT max(version) AS v FROM ${s}.notification_template WHERE name = $1 AND channel = $2 AND locale = $3`,
            [template.name, template.channel, template.locale],
          )
          const version = (newest.rows[0]?.v ?? 0) + 1
          await client.query(
            `INSERT INTO ${s}.notification_template (name, channel, locale, version, subject, body, format, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
            [
              template.name,
              template.channel,
              template.locale,
              version,
              template.subject ?? null,
              template.body,
              template.format,
              now,
            ],
          )
          return { ...template, version, createdAt: now }
        })
      },
      async get(name, channel, locale, version) {
        const result =
          version === undefined
            ? await pool.query(
                `SELECT * FROM ${s}.notification_template WHERE name = $1 AND channel = $2 AND locale = $3
                 ORDER BY version DESC LIMIT 1`,
                [name, channel, locale],
              )
            : await pool.query(
                `SELECT * FROM ${s}.notification_template WHERE name = $1 AND channel = $2 AND locale = $3 AND version = $4`,
                [name, channel, locale, version],
              )
        const row = result.rows[0]
        return row === undefined ? undefined : templateFromRow(row)
      },
      async list() {
        const result = await pool.query(
          `SELECT DISTINCT ON (name, channel, locale) * FROM ${s}.notification_template
           ORDER BY name, channel, locale, version DESC`,
        )
        return result.rows.map(templateFromRow)
      },
    },
    create: (input, now) => createOne(pool, input, now),
    createMany: (inputs, now) =>
      transaction(async (client) => {
        const results = []
        for (const input of inputs) results.push(await createOne(client, input, now))
        return results
      }),
    async get(id) {
      const result = await pool.query<Row>(`SELECT * FROM ${s}.notification WHERE id = $1`, [id])
      const row = result.rows[0]
      return row === undefined ? undefined : fromRow(row)
    },
    settle: (id, attempt, outcome, now) =>
      transaction(async (client) => {
        const result = await client.query<Row>(`SELECT * FROM ${s}.notification WHERE id = $1 FOR UPDATE`, [id])
        const row = result.rows[0]
        if (row === undefined) return undefined
        const record = fromRow(row)
        if (isFinal(record.status)) return record
        const next = applyOutcome(record, attempt, outcome, now)
        await client.query(
          `UPDATE ${s}.notification SET status = $2, attempts = $3, last_error = $4, provider_id = $5, subject = $6,
             body = $7, updated_at = $8, sent_at = $9 WHERE id = $1`,
          [
            id,
            next.status,
            next.attempts,
            next.lastError === undefined ? null : JSON.stringify(next.lastError),
            next.providerId ?? null,
            next.subject ?? null,
            next.body ?? null,
            next.updatedAt,
            next.sentAt ?? null,
          ],
        )
        return next
      }),
    async query(query = {}) {
      const params: unknown[] = []
      const clause = where(query, params)
      params.push(clampLimit(query.limit))
      const result = await pool.query<Row>(
        `SELECT * FROM ${s}.notification ${clause} ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
        params,
      )
      return result.rows.map(fromRow)
    },
    async counts(filter = {}) {
      const params: unknown[] = []
      const result = await pool.query<{ status: NotificationStatus; n: string }>(
        `SELECT status, count(*) AS n FROM ${s}.notification ${where(filter, params)} GROUP BY status`,
        params,
      )
      const counts = emptyCounts()
      for (const row of result.rows) counts[row.status] = Number(row.n)
      return counts
    },
    async markRead(user, ids, now = Date.now()) {
      if (ids !== undefined && ids.length === 0) return 0
      const base = `UPDATE ${s}.notification SET status = 'read', read_at = $1, updated_at = $1
        WHERE user_id = $2 AND channel = 'in_app' AND status = 'sent'`
      const result =
        ids === undefined
          ? await pool.query(base, [now, user])
          : await pool.query(`${base} AND id = ANY($3)`, [now, user, [...ids]])
      return result.rowCount ?? 0
    },
    async unreadCount(user) {
      const result = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${s}.notification WHERE user_id = $1 AND channel = 'in_app' AND status = 'sent'`,
        [user],
      )
      return Number(result.rows[0]?.n ?? 0)
    },
    addToDigest: (item: DigestItem, windowMs, now) =>
      transaction(async (client) => {
        const itemOf = () =>
          client.query<{ digest: string; window_end: string }>(
            `SELECT i.digest, d.window_end FROM ${s}.notification_digest_item i
             JOIN ${s}.notification_digest d ON d.key = i.digest
             WHERE i.rule = $1 AND i.user_id = $2 AND i.event_id = $3`,
            [item.rule, item.user, item.eventId],
          )
        const existing = (await itemOf()).rows[0]
        if (existing !== undefined) return { key: existing.digest, windowEnd: Number(existing.window_end) }
        let windowStart = digestWindow(now, windowMs)
        for (;;) {
          const key = digestKey(item.rule, item.user, windowStart)
          await client.query(
            `INSERT INTO ${s}.notification_digest (key, rule, user_id, recipient, locale, window_start, window_end, closed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, false) ON CONFLICT (key) DO NOTHING`,
            [key, item.rule, item.user, item.to, item.locale, windowStart, windowStart + windowMs],
          )
          // Locks the digest against a concurrent close: an item is either in it before it closes, or in the next.
          const digest = await client.query<{ closed: boolean }>(
            `SELECT closed FROM ${s}.notification_digest WHERE key = $1 FOR UPDATE`,
            [key],
          )
          if (digest.rows[0]?.closed === true) {
            windowStart += windowMs
            continue
          }
          const inserted = await client.query(
            `INSERT INTO ${s}.notification_digest_item (rule, user_id, event_id, digest, data)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
            [item.rule, item.user, item.eventId, key, JSON.stringify(item.data)],
          )
          if (inserted.rowCount === 0) {
            const raced = (await itemOf()).rows[0] as { digest: string; window_end: string }
            return { key: raced.digest, windowEnd: Number(raced.window_end) }
          }
          return { key, windowEnd: windowStart + windowMs }
        }
      }),
    closeDigest: (key) =>
      transaction(async (client): Promise<Digest | undefined> => {
        const result = await client.query(
          `UPDATE ${s}.notification_digest SET closed = true WHERE key = $1 RETURNING *`,
          [key],
        )
        const row = result.rows[0]
        if (row === undefined) return undefined
        const items = await client.query<{ data: Record<string, unknown> }>(
          `SELECT data FROM ${s}.notification_digest_item WHERE digest = $1 ORDER BY seq`,
          [key],
        )
        return {
          key,
          rule: row.rule,
          user: row.user_id,
          to: row.recipient,
          locale: row.locale,
          windowStart: Number(row.window_start),
          windowEnd: Number(row.window_end),
          items: items.rows.map((i) => i.data),
        }
      }),
    async setPreference(p) {
      await pool.query(
        `INSERT INTO ${s}.notification_preference (user_id, channel, category, enabled) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, channel, category) DO UPDATE SET enabled = excluded.enabled`,
        [p.user, p.channel, p.category, p.enabled],
      )
    },
    async preferences(user) {
      const result = await pool.query<{ user_id: string; channel: string; category: string; enabled: boolean }>(
        `SELECT * FROM ${s}.notification_preference WHERE user_id = $1 ORDER BY channel, category`,
        [user],
      )
      return result.rows.map((row) => ({
        user: row.user_id,
        channel: row.channel as Channel,
        category: row.category,
        enabled: row.enabled,
      }))
    },
    async close() {},
  }
}
