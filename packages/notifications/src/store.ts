import type { ErrorInfo } from '@herald/core'
import type { Channel, StoredTemplate, TemplateStore } from './templates.js'

/**
 * Where a notification stands. `pending`: accepted, not yet delivered (it may be between retries); `sent`: the
 * provider accepted it (for in-app, it is in the user's inbox); `read`: the user opened it (in-app); `failed`: the
 * provider refused it for good or every attempt failed (its message is in the dead-letter queue with the reason);
 * `suppressed`: the user's preferences opted out of this channel and category, so nothing was sent.
 */
export type NotificationStatus = 'pending' | 'sent' | 'read' | 'failed' | 'suppressed'
export const notificationStatuses: readonly NotificationStatus[] = ['pending', 'sent', 'read', 'failed', 'suppressed']

/** One notification to one user on one channel: what was asked, and what became of it. */
export interface NotificationRecord {
  /** Also the id of the message that carries it, so a redelivery finds its record. */
  readonly id: string
  readonly user: string
  readonly channel: Channel
  /** The address on the channel: an email address, a phone number, a device token; the user for in-app. */
  readonly to: string
  /** What preferences opt out of, e.g. `marketing`, `billing`, `security`. */
  readonly category: string
  readonly template: string
  readonly locale: string
  readonly data: Readonly<Record<string, unknown>>
  readonly status: NotificationStatus
  /** Deliveries tried so far. */
  readonly attempts: number
  readonly lastError: ErrorInfo | undefined
  /** The provider's id for the accepted message (SMTP Message-ID, the vendor's message id). */
  readonly providerId: string | undefined
  /** What was rendered, kept once sent (in-app shows it; support reads it). */
  readonly subject: string | undefined
  readonly body: string | undefined
  /** The rule that created it, if a rule did. */
  readonly rule: string | undefined
  /** The batch it belongs to, if sent as one. */
  readonly batch: string | undefined
  readonly createdAt: number
  readonly updatedAt: number
  readonly sentAt: number | undefined
  readonly readAt: number | undefined
}

export type NewNotification = Pick<
  NotificationRecord,
  'id' | 'user' | 'channel' | 'to' | 'category' | 'template' | 'locale' | 'data' | 'rule' | 'batch'
>

export interface NotificationQuery {
  readonly user?: string
  readonly status?: NotificationStatus
  readonly channel?: Channel
  readonly batch?: string
  /** Newest first; at most this many (default 50, at most 1,000). */
  readonly limit?: number
  /** Records created before this time (epoch ms): the next page after the last record's `createdAt`. */
  readonly before?: number
}

export const defaultQueryLimit = 50
export const maxQueryLimit = 1_000

/** A user's choice for one channel and category. A category absent from the list is allowed. */
export interface Preference {
  readonly user: string
  readonly channel: Channel
  readonly category: string
  readonly enabled: boolean
}

/** What happened at a delivery attempt, as the worker records it. */
export type Outcome =
  | {
      readonly kind: 'sent'
      readonly providerId: string | undefined
      readonly subject: string | undefined
      readonly body: string
    }
  | { readonly kind: 'retrying'; readonly error: ErrorInfo }
  | { readonly kind: 'failed'; readonly error: ErrorInfo }
  | { readonly kind: 'suppressed' }

/** One event waiting in a digest. */
export interface DigestItem {
  readonly rule: string
  readonly user: string
  /** The event's id: an event is added to a user's digest of a rule once, however often it is delivered. */
  readonly eventId: string
  readonly to: string
  readonly locale: string
  readonly data: Readonly<Record<string, unknown>>
}

/** A window of one user's events for one rule, sent as one notification when the window ends. */
export interface Digest {
  readonly key: string
  readonly rule: string
  readonly user: string
  readonly to: string
  readonly locale: string
  readonly windowStart: number
  readonly windowEnd: number
  /** The events' data, in the order they were added. */
  readonly items: readonly Readonly<Record<string, unknown>>[]
}

export const digestKey = (rule: string, user: string, windowStart: number) => `${rule}:${user}:${windowStart}`

/** The start of the window `now` falls in: windows are aligned to the epoch, so every process agrees. */
export const digestWindow = (now: number, windowMs: number) => Math.floor(now / windowMs) * windowMs

/** Records, preferences and templates of the notification service: in memory, SQLite or PostgreSQL. */
export interface NotificationStore {
  readonly templates: TemplateStore
  /** Stores a new pending record; when one with this id exists, leaves it as it is. Returns the stored record. */
  create(
    record: NewNotification,
    now: number,
  ): Promise<{ readonly record: NotificationRecord; readonly created: boolean }>
  /** {@link create} for many, in one transaction where the store has them. Results in the order given. */
  createMany(
    records: readonly NewNotification[],
    now: number,
  ): Promise<{ readonly record: NotificationRecord; readonly created: boolean }[]>
  get(id: string): Promise<NotificationRecord | undefined>
  /**
   * Records one attempt's outcome. A record already `sent`, `read` or `suppressed` is never changed back: a late
   * redelivery of a delivered notification cannot turn it into a failure.
   */
  settle(id: string, attempt: number, outcome: Outcome, now: number): Promise<NotificationRecord | undefined>
  query(query?: NotificationQuery): Promise<NotificationRecord[]>
  /** Counts by status, for one user, one batch or everything. */
  counts(filter?: { readonly user?: string; readonly batch?: string }): Promise<Record<NotificationStatus, number>>
  /** Marks the user's in-app notifications read: the ids given, or all. Returns how many changed. */
  markRead(user: string, ids?: readonly string[], now?: number): Promise<number>
  unreadCount(user: string): Promise<number>
  /**
   * Adds an event to the user's open digest of the rule: the window `now` falls in, or the next one when that
   * window is already closed. An event added before stays where it is. Returns the digest's key and window end.
   */
  addToDigest(
    item: DigestItem,
    windowMs: number,
    now: number,
  ): Promise<{ readonly key: string; readonly windowEnd: number }>
  /** Closes a digest (later events go to the next window) and returns it with its items; idempotent. */
  closeDigest(key: string): Promise<Digest | undefined>
  setPreference(preference: Preference): Promise<void>
  preferences(user: string): Promise<Preference[]>
  close(): Promise<void>
}

export function emptyCounts(): Record<NotificationStatus, number> {
  return { pending: 0, sent: 0, read: 0, failed: 0, suppressed: 0 }
}

export function clampLimit(limit: number | undefined): number {
  return Math.min(maxQueryLimit, Math.max(1, Math.floor(limit ?? defaultQueryLimit)))
}

/** A new notification as every store first records it. */
export function pendingRecord(input: NewNotification, now: number): NotificationRecord {
  return {
    ...input,
    status: 'pending',
    attempts: 0,
    lastError: undefined,
    providerId: undefined,
    subject: undefined,
    body: undefined,
    createdAt: now,
    updatedAt: now,
    sentAt: undefined,
    readAt: undefined,
  }
}

/** Whether an outcome may replace a record's status (see {@link NotificationStore.settle}). */
export function isFinal(status: NotificationStatus): boolean {
  return status === 'sent' || status === 'read' || status === 'suppressed'
}

/** The record after an outcome: one rule for every store. */
export function applyOutcome(
  record: NotificationRecord,
  attempt: number,
  outcome: Outcome,
  now: number,
): NotificationRecord {
  const attempts = Math.max(record.attempts, attempt)
  switch (outcome.kind) {
    case 'sent':
      return {
        ...record,
        status: 'sent',
        attempts,
        providerId: outcome.providerId,
        subject: outcome.subject,
        body: outcome.body,
        sentAt: now,
        updatedAt: now,
      }
    case 'retrying':
      return { ...record, status: 'pending', attempts, lastError: outcome.error, updatedAt: now }
    case 'failed':
      return { ...record, status: 'failed', attempts, lastError: outcome.error, updatedAt: now }
    case 'suppressed':
      return { ...record, status: 'suppressed', updatedAt: now }
  }
}

/** For tests and one-process tools: everything lives in this process and is lost with it. */
export function createInMemoryNotificationStore(): NotificationStore {
  const records = new Map<string, NotificationRecord>()
  const prefs = new Map<string, Preference>()
  const digests = new Map<string, Omit<Digest, 'items'> & { closed: boolean; items: Record<string, unknown>[] }>()
  const digested = new Map<string, string>()
  const templates: StoredTemplate[] = []
  const templateKey = (t: { name: string; channel: Channel; locale: string }) =>
    `${t.name}\u0000${t.channel}\u0000${t.locale}`

  const matches = (r: NotificationRecord, q: NotificationQuery) =>
    (q.user === undefined || r.user === q.user) &&
    (q.status === undefined || r.status === q.status) &&
    (q.channel === undefined || r.channel === q.channel) &&
    (q.batch === undefined || r.batch === q.batch) &&
    (q.before === undefined || r.createdAt < q.before)

  function create(input: NewNotification, now: number): { record: NotificationRecord; created: boolean } {
    const existing = records.get(input.id)
    if (existing !== undefined) return { record: existing, created: false }
    const record = pendingRecord(input, now)
    records.set(record.id, record)
    return { record, created: true }
  }

  return {
    templates: {
      async save(template, now) {
        const versions = templates.filter((t) => templateKey(t) === templateKey(template))
        const stored: StoredTemplate = { ...template, version: versions.length + 1, createdAt: now }
        templates.push(stored)
        return stored
      },
      async get(name, channel, locale, version) {
        const versions = templates.filter((t) => templateKey(t) === templateKey({ name, channel, locale }))
        return version === undefined ? versions.at(-1) : versions.find((t) => t.version === version)
      },
      async list() {
        const newest = new Map<string, StoredTemplate>()
        for (const t of templates) newest.set(templateKey(t), t)
        return [...newest.values()]
      },
    },
    create: async (input, now) => create(input, now),
    async createMany(inputs, now) {
      return inputs.map((input) => create(input, now))
    },
    async get(id) {
      return records.get(id)
    },
    async settle(id, attempt, outcome, now) {
      const record = records.get(id)
      if (record === undefined || isFinal(record.status)) return record
      const next = applyOutcome(record, attempt, outcome, now)
      records.set(id, next)
      return next
    },
    async query(query = {}) {
      return [...records.values()]
        .filter((r) => matches(r, query))
        .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1))
        .slice(0, clampLimit(query.limit))
    },
    async counts(filter = {}) {
      const counts = emptyCounts()
      for (const r of records.values()) if (matches(r, filter)) counts[r.status]++
      return counts
    },
    async markRead(user, ids, now = Date.now()) {
      let changed = 0
      const wanted = ids === undefined ? undefined : new Set(ids)
      for (const r of records.values()) {
        if (r.user !== user || r.channel !== 'in_app' || r.status !== 'sent') continue
        if (wanted !== undefined && !wanted.has(r.id)) continue
        records.set(r.id, { ...r, status: 'read', readAt: now, updatedAt: now })
        changed++
      }
      return changed
    },
    async unreadCount(user) {
      let count = 0
      for (const r of records.values()) if (r.user === user && r.channel === 'in_app' && r.status === 'sent') count++
      return count
    },
    async addToDigest(item, windowMs, now) {
      const itemKey = `${item.rule}\u0000${item.user}\u0000${item.eventId}`
      const existing = digests.get(digested.get(itemKey) ?? '')
      if (existing !== undefined) return { key: existing.key, windowEnd: existing.windowEnd }
      let windowStart = digestWindow(now, windowMs)
      while (digests.get(digestKey(item.rule, item.user, windowStart))?.closed === true) windowStart += windowMs
      const key = digestKey(item.rule, item.user, windowStart)
      let digest = digests.get(key)
      if (digest === undefined) {
        const { rule, user, to, locale } = item
        digest = {
          key,
          rule,
          user,
          to,
          locale,
          windowStart,
          windowEnd: windowStart + windowMs,
          closed: false,
          items: [],
        }
        digests.set(key, digest)
      }
      digest.items.push({ ...item.data })
      digested.set(itemKey, key)
      return { key, windowEnd: digest.windowEnd }
    },
    async closeDigest(key) {
      const digest = digests.get(key)
      if (digest === undefined) return undefined
      digest.closed = true
      const { closed: _closed, items, ...rest } = digest
      return { ...rest, items: [...items] }
    },
    async setPreference(preference) {
      prefs.set(`${preference.user}\u0000${preference.channel}\u0000${preference.category}`, preference)
    },
    async preferences(user) {
      return [...prefs.values()].filter((p) => p.user === user)
    },
    async close() {},
  }
}
