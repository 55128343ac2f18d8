import type { OutboxStore, PreparedMessage } from '@herald/core'
import type { PendingTimeout, SagaEvent } from './decide.js'
import type { SagaStatus } from './define.js'

/** One saga instance as stored. */
export interface SagaInstance<S = unknown> {
  readonly saga: string
  readonly key: string
  readonly state: S
  readonly status: SagaStatus
  /** Why it compensated or failed. */
  readonly reason: string | undefined
  /** 1 after its first step; each step adds one. */
  readonly version: number
  readonly timeouts: Readonly<Record<string, PendingTimeout>>
  /** Recorded compensations, oldest first, validated and encoded when recorded. */
  readonly compensations: readonly PreparedMessage[]
  readonly startedAt: number
  readonly updatedAt: number
  readonly endedAt: number | undefined
}

/** One handled message in an instance's history. */
export interface SagaHistoryEntry {
  readonly at: number
  readonly messageId: string
  /** The message type, or `timeout <name>`. */
  readonly handled: string
  readonly outcome: 'transition' | 'ignored'
  readonly events: readonly SagaEvent[]
  /** The instance's status after it. */
  readonly status: SagaStatus | undefined
  /** Types of the messages it sent, in order. */
  readonly sent: readonly string[]
  /** Timeouts it requested, by name. */
  readonly timeouts: readonly string[]
  /** Why it was ignored, or why the saga ended. */
  readonly note: string | undefined
}

/** Everything one handled message changes, committed together or not at all. */
export interface SagaCommit {
  readonly saga: string
  readonly key: string
  /** The group that handled the message: its inbox record is `(group, messageId)`. */
  readonly group: string
  readonly messageId: string
  /** The version read before deciding; 0 when there was no instance. */
  readonly expectedVersion: number
  /** The instance after the step (its version is `expectedVersion + 1`); absent for a message that changed nothing. */
  readonly instance: Omit<SagaInstance, 'version'> | undefined
  /** What the step sends, timeouts included; staged in the store's outbox when it has one. */
  readonly messages: readonly PreparedMessage[]
  readonly history: SagaHistoryEntry
}

/**
 * `committed`; `duplicate`: this group handled this message id before, nothing was written; `conflict`: another
 * writer changed the instance since it was read, nothing was written (read again and decide again).
 */
export type CommitResult = 'committed' | 'duplicate' | 'conflict'

export interface SagaQuery {
  readonly saga?: string
  readonly key?: string
  readonly status?: SagaStatus
  /** Instances that started before this time (epoch ms): the old ones still running, say. */
  readonly startedBefore?: number
  /** Up to this many, most recently updated first. Default 100. */
  readonly limit?: number
}

/** Counts of instances by status, for one saga or all. */
export type SagaCounts = Readonly<Record<SagaStatus, number>>

/** Where sagas keep their instances, the inbox of what they handled, and the outbox of what they send. */
export interface SagaStore {
  /** Whose outbox a relay empties; absent when `commit` leaves sending to the caller (the in-memory store). */
  readonly outbox: OutboxStore | undefined
  load(saga: string, key: string): Promise<SagaInstance | undefined>
  commit(commit: SagaCommit): Promise<CommitResult>
  find(query?: SagaQuery): Promise<readonly SagaInstance[]>
  history(saga: string, key: string): Promise<readonly SagaHistoryEntry[]>
  counts(saga?: string): Promise<SagaCounts>
  close(): Promise<void>
}

export const defaultQueryLimit = 100

export function emptyCounts(): Record<SagaStatus, number> {
  return { running: 0, completed: 0, compensated: 0, failed: 0 }
}

/** An instance row as the SQL stores hold it: JSON columns as `json` decodes them, times as numbers or strings. */
export interface InstanceRow {
  saga: string
  key: string
  state: unknown
  status: SagaStatus
  reason: string | null
  version: number
  timeouts: unknown
  compensations: string
  started_at: number | string
  updated_at: number | string
  ended_at: number | string | null
}

export interface HistoryRow {
  at: number | string
  message_id: string
  handled: string
  outcome: 'transition' | 'ignored'
  events: unknown
  status: SagaStatus | null
  sent: unknown
  timeouts: unknown
  note: string | null
}

/** SQLite keeps JSON columns as text; PostgreSQL's driver hands jsonb back parsed. */
type JsonColumn = (value: unknown) => never

export function instanceFromRow(row: InstanceRow, json: JsonColumn): SagaInstance {
  return {
    saga: row.saga,
    key: row.key,
    state: json(row.state),
    status: row.status,
    reason: row.reason ?? undefined,
    version: row.version,
    timeouts: json(row.timeouts),
    compensations: messagesFromJson(row.compensations),
    startedAt: Number(row.started_at),
    updatedAt: Number(row.updated_at),
    endedAt: row.ended_at === null ? undefined : Number(row.ended_at),
  }
}

export function historyFromRow(row: HistoryRow, json: JsonColumn): SagaHistoryEntry {
  return {
    at: Number(row.at),
    messageId: row.message_id,
    handled: row.handled,
    outcome: row.outcome,
    events: json(row.events),
    status: row.status ?? undefined,
    sent: json(row.sent),
    timeouts: json(row.timeouts),
    note: row.note ?? undefined,
  }
}

/** A prepared message as JSON: how SQL stores keep recorded compensations. */
interface StoredMessage {
  readonly topic: string
  readonly id: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  readonly mandatory: boolean
}

export function messagesToJson(messages: readonly PreparedMessage[]): string {
  return JSON.stringify(
    messages.map(
      (m): StoredMessage => ({
        topic: m.topic,
        id: m.envelope.id,
        headers: m.envelope.headers,
        body: Buffer.from(m.envelope.body).toString('base64'),
        mandatory: m.mandatory,
      }),
    ),
  )
}

export function messagesFromJson(text: string): PreparedMessage[] {
  return (JSON.parse(text) as StoredMessage[]).map((m) => ({
    topic: m.topic,
    envelope: { id: m.id, headers: m.headers, body: Buffer.from(m.body, 'base64') },
    mandatory: m.mandatory,
  }))
}

/** The in-memory store, for tests and one-process demos: nothing survives the process, and messages are sent by the runner after commit. */
export function createInMemorySagaStore(): SagaStore {
  const instances = new Map<string, SagaInstance>()
  const histories = new Map<string, SagaHistoryEntry[]>()
  const inbox = new Set<string>()
  const id = (saga: string, key: string) => `${saga}\n${key}`

  return {
    outbox: undefined,
    async load(saga, key) {
      return instances.get(id(saga, key))
    },
    async commit(c) {
      const handled = `${c.group}\n${c.messageId}`
      if (inbox.has(handled)) return 'duplicate'
      const current = instances.get(id(c.saga, c.key))
      if (c.instance !== undefined) {
        if ((current?.version ?? 0) !== c.expectedVersion) return 'conflict'
        instances.set(id(c.saga, c.key), { ...c.instance, version: c.expectedVersion + 1 })
      }
      inbox.add(handled)
      const history = histories.get(id(c.saga, c.key)) ?? []
      history.push(c.history)
      histories.set(id(c.saga, c.key), history)
      return 'committed'
    },
    async find(query = {}) {
      return [...instances.values()]
        .filter(
          (i) =>
            (query.saga === undefined || i.saga === query.saga) &&
            (query.key === undefined || i.key === query.key) &&
            (query.status === undefined || i.status === query.status) &&
            (query.startedBefore === undefined || i.startedAt < query.startedBefore),
        )
        .sort((a, b) => b.updatedAt - a.updatedAt)
        .slice(0, query.limit ?? defaultQueryLimit)
    },
    async history(saga, key) {
      return histories.get(id(saga, key)) ?? []
    },
    async counts(saga) {
      const counts = emptyCounts()
      for (const i of instances.values()) if (saga === undefined || i.saga === saga) counts[i.status]++
      return counts
    },
    async close() {},
  }
}
