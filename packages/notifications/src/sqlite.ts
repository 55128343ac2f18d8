import type { ErrorInfo } from '@herald/core'
import Database from 'better-sqlite3'
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
  type Preference,
  pendingRecord,
} from './store.js'
import type { Channel, StoredTemplate } from './templates.js'

const schemaSql = `
CREATE TABLE IF NOT EXISTS herald_notification (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  channel TEXT NOT NULL,
  recipient TEXT NOT NULL,
  category TEXT NOT NULL,
  template TEXT NOT NULL,
  locale TEXT NOT NULL,
  data TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  last_error TEXT,
  provider_id TEXT,
  subject TEXT,
  body TEXT,
  rule TEXT,
  batch TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  sent_at INTEGER,
  read_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS herald_notification_user ON herald_notification (user_id, created_at);
CREATE INDEX IF NOT EXISTS herald_notification_status ON herald_notification (status, created_at);
CREATE INDEX IF NOT EXISTS herald_notification_batch ON herald_notification (batch, status) WHERE batch IS NOT NULL;
CREATE TABLE IF NOT EXISTS herald_notification_preference (
  user_id TEXT NOT NULL,
  channel TEXT NOT NULL,
  category TEXT NOT NULL,
  enabled INTEGER NOT NULL,
  PRIMARY KEY (user_id, channel, category)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS herald_notification_digest (
  key TEXT PRIMARY KEY,
  rule TEXT NOT NULL,
  user_id TEXT NOT NULL,
  recipient TEXT NOT NULL,
  locale TEXT NOT NULL,
  window_start INTEGER NOT NULL,
  window_end INTEGER NOT NULL,
  closed INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS herald_notification_digest_item (
  rule TEXT NOT NULL,
  user_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  digest TEXT NOT NULL,
  seq INTEGER NOT NULL,
  data TEXT NOT NULL,
  PRIMARY KEY (rule, user_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS herald_notification_digest_items ON herald_notification_digest_item (digest, seq);
CREATE TABLE IF NOT EXISTS herald_notification_template (
  name TEXT NOT NULL,
  channel TEXT NOT NULL,
  locale TEXT NOT NULL,
  version INTEGER NOT NULL,
  subject TEXT,
  body TEXT NOT NULL,
  format TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (name, channel, locale, version)
) WITHOUT ROWID;
`

interface Row {
  id: string
  user_id: string
  channel: string
  recipient: string
  category: string
  template: string
  locale: string
  data: string
  status: string
  attempts: number
  last_error: string | null
  provider_id: string | null
  subject: string | null
  body: string | null
  rule: string | null
  batch: string | null
  created_at: number
  updated_at: number
  sent_at: number | null
  read_at: number | null
}

interface DigestRow {
  key: string
  rule: string
  user_id: string
  recipient: string
  locale: string
  window_start: number
  window_end: number
  closed: number
}

interface TemplateRow {
  name: string
  channel: string
  locale: string
  version: number
  subject: string | null
  body: string
  format: string
  created_at: number
}

const orUndefined = <T>(value: T | null): T | undefined => (value === null ? undefined : value)

function fromRow(row: Row): NotificationRecord {
  return {
    id: row.id,
    user: row.user_id,
    channel: row.channel as Channel,
    to: row.recipient,
    category: row.category,
    template: row.template,
    locale: row.locale,
    data: JSON.parse(row.data) as Record<string, unknown>,
    status: row.status as NotificationStatus,
    attempts: row.attempts,
    lastError: row.last_error === null ? undefined : (JSON.parse(row.last_error) as ErrorInfo),
    providerId: orUndefined(row.provider_id),
    subject: orUndefined(row.subject),
    body: orUndefined(row.body),
    rule: orUndefined(row.rule),
    batch: orUndefined(row.batch),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    sentAt: orUndefined(row.sent_at),
    readAt: orUndefined(row.read_at),
  }
}

function toRow(r: NotificationRecord): Row {
  return {
    id: r.id,
    user_id: r.user,
    channel: r.channel,
    recipient: r.to,
    category: r.category,
    template: r.template,
    locale: r.locale,
    data: JSON.stringify(r.data),
    status: r.status,
    attempts: r.attempts,
    last_error: r.lastError === undefined ? null : JSON.stringify(r.lastError),
    provider_id: r.providerId ?? null,
    subject: r.subject ?? null,
    body: r.body ?? null,
    rule: r.rule ?? null,
    batch: r.batch ?? null,
    created_at: r.createdAt,
    updated_at: r.updatedAt,
    sent_at: r.sentAt ?? null,
    read_at: r.readAt ?? null,
  }
}

function templateFromRow(row: TemplateRow): StoredTemplate {
  return {
    name: row.name,
    channel: row.channel as Channel,
    locale: row.locale,
    version: row.version,
    subject: orUndefined(row.subject),
    body: row.body,
    format: row.format as 'html' | 'text',
    createdAt: row.created_at,
  }
}

/**
 * The notification service's records, preferences and templates in one SQLite file (the application's own
 * database or one beside it). Writes are single statements or short transactions, safe with several processes.
 */
export function createSqliteNotificationStore(options: { readonly path: string }): NotificationStore {
  const db = new Database(options.path)
  db.pragma('busy_timeout = 5000')
  db.pragma('journal_mode = WAL')
  db.exec(schemaSql)

  const columns: (keyof Row)[] = [
    'id',
    'user_id',
    'channel',
    'recipient',
    'category',
    'template',
    'locale',
    'data',
    'status',
    'attempts',
    'last_error',
    'provider_id',
    'subject',
    'body',
    'rule',
    'batch',
    'created_at',
    'updated_at',
    'sent_at',
    'read_at',
  ]
  const insert = db.prepare(
    `INSERT INTO herald_notification (${columns.join(', ')}) VALUES (${columns.map((c) => `@${c}`).join(', ')})
     ON CONFLICT (id) DO NOTHING`,
  )
  const byId = db.prepare<[string], Row>('SELECT * FROM herald_notification WHERE id = ?')
  const update = db.prepare(
    `UPDATE herald_notification SET status = @status, attempts = @attempts, last_error = @last_error,
       provider_id = @provider_id, subject = @subject, body = @body, updated_at = @updated_at, sent_at = @sent_at
     WHERE id = @id`,
  )
  const settle = db.transaction((id: string, next: (r: NotificationRecord) => NotificationRecord | undefined) => {
    const row = byId.get(id)
    if (row === undefined) return undefined
    const record = fromRow(row)
    const changed = next(record)
    if (changed === undefined) return record
    update.run(toRow(changed))
    return changed
  })
  const unread = db.prepare<[string], { n: number }>(
    `SELECT count(*) AS n FROM herald_notification WHERE user_id = ? AND channel = 'in_app' AND status = 'sent'`,
  )
  const upsertPreference = db.prepare(
    `INSERT INTO herald_notification_preference (user_id, channel, category, enabled) VALUES (?, ?, ?, ?)
     ON CONFLICT (user_id, channel, category) DO UPDATE SET enabled = excluded.enabled`,
  )
  const preferencesOf = db.prepare<[string], { user_id: string; channel: string; category: string; enabled: number }>(
    'SELECT * FROM herald_notification_preference WHERE user_id = ? ORDER BY channel, category',
  )
  const newestVersion = db.prepare<[string, string, string], { v: number | null }>(
    'SELECT max(version) AS v FROM herald_notification_template WHERE name = ? AND channel = ? AND locale = ?',
  )
  const insertTemplate = db.prepare(
    `INSERT INTO herald_notification_template (name, channel, locale, version, subject, body, format, created_at)
     VALUES (@name, @channel, @locale, @version, @subject, @body, @format, @created_at)`,
  )
  const saveTemplate = db.transaction((template: Omit<StoredTemplate, 'version' | 'createdAt'>, now: number) => {
    const version = (newestVersion.get(template.name, template.channel, template.locale)?.v ?? 0) + 1
    insertTemplate.run({ ...template, subject: template.subject ?? null, version, created_at: now })
    return { ...template, version, createdAt: now }
  })
  const templateAt = db.prepare<[string, string, string, number], TemplateRow>(
    'SELECT * FROM herald_notification_template WHERE name = ? AND channel = ? AND locale = ? AND version = ?',
  )
  const templateNewest = db.prepare<[string, string, string], TemplateRow>(
    `SELECT * FROM herald_notification_template WHERE name = ? AND channel = ? AND locale = ?
     ORDER BY version DESC LIMIT 1`,
  )
  const templatesNewest = db.prepare<[], TemplateRow>(
    `SELECT t.* FROM herald_notification_template t
     JOIN (SELECT name, channel, locale, max(version) AS version FROM herald_notification_template
           GROUP BY name, channel, locale) n USING (name, channel, locale, version)
     ORDER BY t.name, t.channel, t.locale`,
  )

  const itemOf = db.prepare<[string, string, string], { digest: string; window_end: number }>(
    `SELECT i.digest, d.window_end FROM herald_notification_digest_item i JOIN herald_notification_digest d ON d.key = i.digest
     WHERE i.rule = ? AND i.user_id = ? AND i.event_id = ?`,
  )
  const digestByKey = db.prepare<[string], DigestRow>('SELECT * FROM herald_notification_digest WHERE key = ?')
  const insertDigest = db.prepare(
    `INSERT INTO herald_notification_digest (key, rule, user_id, recipient, locale, window_start, window_end, closed)
     VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (key) DO NOTHING`,
  )
  const insertItem = db.prepare(
    `INSERT INTO herald_notification_digest_item (rule, user_id, event_id, digest, seq, data)
     VALUES (?, ?, ?, ?, (SELECT count(*) FROM herald_notification_digest_item WHERE digest = ?), ?)`,
  )
  const itemsOf = db.prepare<[string], { data: string }>(
    'SELECT data FROM herald_notification_digest_item WHERE digest = ? ORDER BY seq',
  )
  const closeDigestRow = db.prepare('UPDATE herald_notification_digest SET closed = 1 WHERE key = ?')
  const addToDigest = db.transaction((item: DigestItem, windowMs: number, now: number) => {
    const existing = itemOf.get(item.rule, item.user, item.eventId)
    if (existing !== undefined) return { key: existing.digest, windowEnd: existing.window_end }
    let windowStart = digestWindow(now, windowMs)
    while (digestByKey.get(digestKey(item.rule, item.user, windowStart))?.closed === 1) windowStart += windowMs
    const key = digestKey(item.rule, item.user, windowStart)
    insertDigest.run(key, item.rule, item.user, item.to, item.locale, windowStart, windowStart + windowMs)
    insertItem.run(item.rule, item.user, item.eventId, key, key, JSON.stringify(item.data))
    return { key, windowEnd: windowStart + windowMs }
  })
  const closeDigest = db.transaction((key: string): Digest | undefined => {
    closeDigestRow.run(key)
    const row = digestByKey.get(key)
    if (row === undefined) return undefined
    return {
      key,
      rule: row.rule,
      user: row.user_id,
      to: row.recipient,
      locale: row.locale,
      windowStart: row.window_start,
      windowEnd: row.window_end,
      items: itemsOf.all(key).map((i) => JSON.parse(i.data) as Record<string, unknown>),
    }
  })

  function createOne(input: NewNotification, now: number) {
    const record = pendingRecord(input, now)
    const created = insert.run(toRow(record)).changes === 1
    if (created) return { record, created }
    const existing = byId.get(input.id)
    return { record: existing === undefined ? record : fromRow(existing), created }
  }
  const createMany = db.transaction((inputs: readonly NewNotification[], now: number) =>
    inputs.map((input) => createOne(input, now)),
  )

  function where(q: NotificationQuery): { sql: string; params: unknown[] } {
    const clauses: string[] = []
    const params: unknown[] = []
    const add = (clause: string, value: unknown) => {
      if (value === undefined) return
      clauses.push(clause)
      params.push(value)
    }
    add('user_id = ?', q.user)
    add('status = ?', q.status)
    add('channel = ?', q.channel)
    add('batch = ?', q.batch)
    add('created_at < ?', q.before)
    return { sql: clauses.length === 0 ? '' : `WHERE ${clauses.join(' AND ')}`, params }
  }

  return {
    templates: {
      async save(template, now) {
        return saveTemplate(template, now)
      },
      async get(name, channel, locale, version) {
        const row =
          version === undefined
            ? templateNewest.get(name, channel, locale)
            : templateAt.get(name, channel, locale, version)
        return row === undefined ? undefined : templateFromRow(row)
      },
      async list() {
        return templatesNewest.all().map(templateFromRow)
      },
    },
    async create(input, now) {
      return createOne(input, now)
    },
    async createMany(inputs, now) {
      return createMany(inputs, now)
    },
    async get(id) {
      const row = byId.get(id)
      return row === undefined ? undefined : fromRow(row)
    },
    async settle(id, attempt, outcome, now) {
      return settle(id, (record) => (isFinal(record.status) ? undefined : applyOutcome(record, attempt, outcome, now)))
    },
    async query(query = {}) {
      const { sql, params } = where(query)
      const rows = db
        .prepare(`SELECT * FROM herald_notification ${sql} ORDER BY created_at DESC, id DESC LIMIT ?`)
        .all(...params, clampLimit(query.limit)) as Row[]
      return rows.map(fromRow)
    },
    async counts(filter = {}) {
      const { sql, params } = where(filter)
      const counts = emptyCounts()
      const rows = db
        .prepare(`SELECT status, count(*) AS n FROM herald_notification ${sql} GROUP BY status`)
        .all(...params) as { status: NotificationStatus; n: number }[]
      for (const row of rows) counts[row.status] = row.n
      return counts
    },
    async markRead(user, ids, now = Date.now()) {
      const base = `UPDATE herald_notification SET status = 'read', read_at = ?, updated_at = ?
        WHERE user_id = ? AND channel = 'in_app' AND status = 'sent'`
      if (ids === undefined) return db.prepare(base).run(now, now, user).changes
      if (ids.length === 0) return 0
      return db.prepare(`${base} AND id IN (${ids.map(() => '?').join(', ')})`).run(now, now, user, ...ids).changes
    },
    async unreadCount(user) {
      return unread.get(user)?.n ?? 0
    },
    async addToDigest(item, windowMs, now) {
      return addToDigest(item, windowMs, now)
    },
    async closeDigest(key) {
      return closeDigest(key)
    },
    async setPreference(p: Preference) {
      upsertPreference.run(p.user, p.channel, p.category, p.enabled ? 1 : 0)
    },
    async preferences(user) {
      return preferencesOf.all(user).map((row) => ({
        user: row.user_id,
        channel: row.channel as Channel,
        category: row.category,
        enabled: row.enabled === 1,
      }))
    },
    async close() {
      db.close()
    },
  }
}
