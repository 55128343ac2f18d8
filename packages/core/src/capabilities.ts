import type { DeadLetter, DeadLetterFilter, DeadLetterPage, DeadLetterQuery } from './dead-letter.js'
import type { Envelope } from './envelope.js'
import type { KeyAdmin, KeyOrdering } from './ordering.js'
import type { PublishOptions, Transport } from './transport.js'

/** Durable delayed delivery: the envelopes are routed now and handed out no earlier than `deliverAt` (epoch ms). */
export interface Scheduler {
  schedule(topic: string, envelopes: readonly Envelope[], deliverAt: number, options?: PublishOptions): Promise<void>
}

/** The dead-letter queue as data: list, inspect, redrive (back to the same group, attempts reset), purge. */
export interface DeadLetterStore {
  listDeadLetters(query?: DeadLetterQuery): Promise<DeadLetterPage>
  /** The dead letter of message `id`; with several groups holding one, pass `group`. */
  getDeadLetter(id: string, group?: string): Promise<DeadLetter | undefined>
  /** Moves the selected dead letters back to their group's queue, same id, attempt count reset. Returns the count. */
  redriveDeadLetters(filter: DeadLetterFilter): Promise<number>
  /** Deletes the selected dead letters. Returns the count. */
  purgeDeadLetters(filter: DeadLetterFilter): Promise<number>
}

/** How many dead letters `store` holds (matching `filter`), counted in pages of 1,000. */
export async function countDeadLetters(store: DeadLetterStore, filter: DeadLetterFilter = {}): Promise<number> {
  let count = 0
  for (let cursor: string | undefined, first = true; first || cursor !== undefined; first = false) {
    const page = await store.listDeadLetters({ ...filter, limit: 1_000, ...(cursor === undefined ? {} : { cursor }) })
    count += page.items.length
    cursor = page.nextCursor
  }
  return count
}

export interface GroupInfo {
  readonly group: string
  readonly patterns: readonly string[]
  /** Messages waiting or being handled. */
  readonly depth: number
  readonly deadLetters: number
  /** Of `depth`, messages claimed by a consumer whose outcome is not stored yet. Absent where the transport cannot tell. */
  readonly inFlight?: number
  /** Of `depth`, messages not yet due: delayed publishes and retries waiting for their backoff. Absent where the transport cannot tell per group. */
  readonly scheduled?: number
  /** Messages acknowledged per second, where the store measures it (RabbitMQ's management API). */
  readonly ackedPerS?: number
  /** Of `depth`, keyed messages waiting for an earlier message of their key. Absent where the transport cannot tell. */
  readonly waitingOnKey?: number
  /** Keys held by a dead letter (ordering policy `hold`). Absent where the transport does not order keys. */
  readonly heldKeys?: number
  /** How long the oldest message that is due has been waiting (0 when none): the group's consumer lag in time. Absent where the transport cannot tell. */
  readonly oldestDueAgeMs?: number
}

/** Declares, lists and deletes groups without consuming. */
/** What a group keeps beside its bindings: publishers need it to queue keyed messages. */
export interface GroupSettings {
  readonly ordering?: KeyOrdering
  /** The group's rate limit, where the store enforces it across processes (SQLite, PostgreSQL). */
  readonly maxPerSecond?: number
}

export interface TopologyAdmin {
  /** Binds the group to `patterns` (added to those it has); `settings`, when given, replace the group's. */
  declareGroup(group: string, patterns: readonly string[], settings?: GroupSettings): Promise<void>
  listGroups(): Promise<readonly GroupInfo[]>
  /** Removes these patterns from the group's bindings (the messaging API's "delete topic"); queued work stays. */
  unbindGroup(group: string, patterns: readonly string[]): Promise<void>
  /** Removes the group's bindings and its waiting messages. */
  deleteGroup(group: string): Promise<void>
}

/** Where one group's messages wait, and what is bound to it. */
export interface GroupTopology {
  readonly group: string
  readonly patterns: readonly string[]
  /** The queue, stream or table rows that hold the group's messages, in the transport's own names. */
  readonly queue: string
}

/** What is bound to what on a transport, in its own names: for operators, `herald topology` and the dashboard. */
export interface TopologyDescription {
  readonly transport: string
  /** Where messages are published: an exchange, a table, a set of streams. */
  readonly entry: string
  readonly groups: readonly GroupTopology[]
  /** Where delayed messages and retries wait until due. */
  readonly delays: string
  /** Where dead letters are kept. */
  readonly deadLetters: string
}

export interface TopologyDescriber {
  describeTopology(): Promise<TopologyDescription>
}

export interface HealthReport {
  readonly ok: boolean
  readonly details: Readonly<Record<string, unknown>>
}

export interface HealthCheck {
  checkHealth(): Promise<HealthReport>
}

/** Every capability a durable, key-ordering transport offers (SQLite, PostgreSQL, Redis). */
export type DurableTransport = Transport &
  Scheduler &
  DeadLetterStore &
  TopologyAdmin &
  TopologyDescriber &
  KeyAdmin &
  HealthCheck

function hasMethods(value: unknown, names: readonly string[]): boolean {
  if (typeof value !== 'object' || value === null) return false
  const record = value as Record<string, unknown>
  return names.every((n) => typeof record[n] === 'function')
}

export function isScheduler(transport: Transport): transport is Transport & Scheduler {
  return hasMethods(transport, ['schedule'])
}
export function isDeadLetterStore(transport: Transport): transport is Transport & DeadLetterStore {
  return hasMethods(transport, ['listDeadLetters', 'getDeadLetter', 'redriveDeadLetters', 'purgeDeadLetters'])
}
export function isTopologyAdmin(transport: Transport): transport is Transport & TopologyAdmin {
  return hasMethods(transport, ['declareGroup', 'listGroups', 'unbindGroup', 'deleteGroup'])
}
export function isTopologyDescriber(transport: Transport): transport is Transport & TopologyDescriber {
  return hasMethods(transport, ['describeTopology'])
}
export function isHealthCheck(transport: Transport): transport is Transport & HealthCheck {
  return hasMethods(transport, ['checkHealth'])
}
