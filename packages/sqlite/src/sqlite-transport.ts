import {
  assertTopic,
  assertTopicPattern,
  ConfigurationError,
  createConsumerSet,
  type DeadLetterStore,
  type Envelope,
  type GroupInfo,
  type HealthCheck,
  NoRouteError,
  type PulledMessage,
  type PullSource,
  parseStoredHeaders,
  type Scheduler,
  type Settlement,
  storedBody,
  type TopologyAdmin,
  type TopologyDescriber,
  type Transport,
  TransportClosedError,
  toBuffer,
  uuidV7,
  type WakeSignal,
} from '@herald/core'
import { createBindingsCache } from './bindings.js'
import { createDeadLetterQueries } from './dead-letters.js'
import { openDatabase, type SqliteDurability } from './open-database.js'
import { prepareStatements } from './statements.js'
import { createWriteBatcher } from './write-batcher.js'

export interface SqliteTransportOptions {
  /** Database file. Several processes may share it (same machine, local disk). */
  readonly path: string
  /** `strict` (default): WAL with synchronous=FULL, refusing to start otherwise. `relaxed`: synchronous=NORMAL. */
  readonly durability?: SqliteDurability
  /** How long a claimed message stays invisible to other consumers; renewed while its handler runs. Default 30 s. */
  readonly leaseMs?: number
  /** Longest wait before looking for work published by another process. Default 50 ms. */
  readonly pollIntervalMs?: number
  /** How long a write waits for another process's lock. Default 5 s. */
  readonly busyTimeoutMs?: number
  /** Errors the consumers survived (a failed settle is retried by lease expiry). Default: ignore. */
  readonly onError?: (err: unknown) => void
}

export type SqliteTransport = Transport & Scheduler & DeadLetterStore & TopologyAdmin & TopologyDescriber & HealthCheck

interface EncodedRow {
  readonly id: string
  readonly headers: string
  readonly body: Buffer
}

interface SqlitePulled extends PulledMessage {
  readonly seq: number
  readonly token: string
}

/** For operations of several statements: see `WriteBatcher.run`. */
const atomic = { atomic: true } as const

function positive(field: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new ConfigurationError(field, 'must be a positive number')
  return value
}

/**
 * The embedded durable transport. Publishing routes each message to every bound group's rows in one transaction
 * (concurrent publishes share it: one fsync); consumers claim rows with a lease, so a killed consumer's work
 * returns when the lease ends; retries, delays and dead letters are rows too, so all of it survives a restart.
 */
export function createSqliteTransport(options: SqliteTransportOptions): SqliteTransport {
  const leaseMs = positive('leaseMs', options.leaseMs ?? 30_000)
  const pollIntervalMs = positive('pollIntervalMs', options.pollIntervalMs ?? 50)
  const busyTimeoutMs = positive('busyTimeoutMs', options.busyTimeoutMs ?? 5_000)
  const onError = options.onError ?? (() => {})
  const { db, settings } = openDatabase(options.path, options.durability ?? 'strict', busyTimeoutMs)
  const sql = prepareStatements(db)
  const writer = createWriteBatcher(db)
  const bindings = createBindingsCache(sql)
  const deadLetters = createDeadLetterQueries(db)
  const insertRow = (group: string, topic: string, row: EncodedRow, visibleAt: number, now: number) =>
    sql.insertMessage.run(group, row.id, topic, row.headers, row.body, visibleAt, now)
  const insertRows = db.transaction(
    (groups: readonly string[], topic: string, rows: readonly EncodedRow[], visibleAt: number, now: number) => {
      for (const group of groups) for (const row of rows) insertRow(group, topic, row, visibleAt, now)
    },
  )
  const consumers = createConsumerSet(onError)
  let closed = false

  function assertOpen(): void {
    if (closed) throw new TransportClosedError('sqlite')
  }

  async function insert(
    topic: string,
    envelopes: readonly Envelope[],
    visibleAt: number | undefined,
    mandatory: boolean,
  ) {
    assertOpen()
    assertTopic(topic)
    const rows = envelopes.map((e) => ({ id: e.id, headers: JSON.stringify(e.headers), body: toBuffer(e.body) }))
    const groups = await writer.run(() => {
      const groups = bindings.groupsFor(topic)
      if (groups.length === 0 && mandatory) throw new NoRouteError(topic)
      const now = Date.now()
      // Several rows go in through a nested transaction (a savepoint): a failure half-way stores none of them.
      if (groups.length * rows.length > 1) insertRows(groups, topic, rows, visibleAt ?? now, now)
      else if (groups[0] !== undefined && rows[0] !== undefined)
        insertRow(groups[0], topic, rows[0], visibleAt ?? now, now)
      return groups
    })
    consumers.wake(groups)
  }

  function sourceFor(group: string, wake: WakeSignal): PullSource<SqlitePulled> & { stop(): void } {
    const consumerId = uuidV7()
    const claimed = new Map<number, string>()
    let claims = 0
    const renewTimer = setInterval(() => {
      if (claimed.size === 0) return
      const leaseUntil = Date.now() + leaseMs
      const held = [...claimed]
      writer
        .run(() => {
          for (const [seq, token] of held) sql.renew.run(leaseUntil, seq, token)
        })
        .catch(onError)
    }, leaseMs / 3)
    renewTimer.unref()

    return {
      async fetch(max) {
        if (sql.hasVisible.get(group, Date.now()) === undefined) return []
        const token = `${consumerId}:${++claims}`
        // Never this consumer's own live claims: after a wall-clock step forward longer than the lease they look
        // expired, but their handlers are still running here.
        const live = JSON.stringify([...new Set(claimed.values())])
        const rows = await writer.run(() => {
          const now = Date.now()
          return sql.claim.all({ token, leaseUntil: now + leaseMs, group, now, limit: max, live })
        })
        rows.sort((a, b) => a.seq - b.seq)
        return rows.map((row) => {
          claimed.set(row.seq, token)
          return {
            seq: row.seq,
            token,
            topic: row.topic,
            attempt: row.attempts,
            envelope: { id: row.message_id, headers: parseStoredHeaders(row.headers), body: storedBody(row.body) },
          }
        })
      },
      async settle(message, settlement: Settlement) {
        const { seq, token } = message
        const now = Date.now()
        // Whatever the outcome, this claim is no longer renewed: if storing it failed, the lease runs out and the
        // message is delivered again. A newer claim of the same row (after a lease was lost) keeps its renewal.
        if (claimed.get(seq) === token) claimed.delete(seq)
        await writer.run(
          () => {
            switch (settlement.kind) {
              case 'ack':
                return sql.ack.run(seq, token)
              case 'release':
                return sql.release.run(now, seq, token)
              case 'retry':
                return sql.retry.run(now + settlement.delayMs, now, JSON.stringify(settlement.error), seq, token)
              case 'dead-letter': {
                const error = settlement.error === undefined ? null : JSON.stringify(settlement.error)
                const moved = sql.deadLetter.run({ seq, token, reason: settlement.reason, now, error })
                if (moved.changes > 0) sql.ack.run(seq, token)
                return moved
              }
            }
            // Only dead-lettering runs two statements; a savepoint for every ack would cost two more statements each.
          },
          settlement.kind === 'dead-letter' ? atomic : undefined,
        )
        if (settlement.kind === 'release' || settlement.kind === 'retry') wake.notify()
      },
      async waitForWork(signal) {
        const due = sql.nextVisibleAt.get(group)?.due
        const wait = due === null || due === undefined ? pollIntervalMs : Math.min(pollIntervalMs, due - Date.now())
        await wake.wait(Math.max(1, wait), signal)
      },
      stop() {
        clearInterval(renewTimer)
      },
    }
  }

  const transport: SqliteTransport = {
    name: 'sqlite',

    publish(topic, envelopes, publishOptions = {}) {
      return insert(topic, envelopes, undefined, publishOptions.mandatory === true)
    },

    schedule(topic, envelopes, deliverAt, publishOptions = {}) {
      return insert(topic, envelopes, deliverAt, publishOptions.mandatory === true)
    },

    async subscribe(spec, handler) {
      assertOpen()
      await transport.declareGroup(spec.group, spec.patterns)
      return consumers.start(spec, handler, (wake) => sourceFor(spec.group, wake))
    },

    async close() {
      if (closed) return
      closed = true
      await consumers.closeAll()
      await writer.flush()
      db.close()
    },

    async declareGroup(group, patterns) {
      assertOpen()
      if (group.length === 0) throw new ConfigurationError('group', 'must not be empty')
      for (const pattern of patterns) assertTopicPattern(pattern)
      await writer.run(() => {
        const now = Date.now()
        const added = patterns.reduce((n, pattern) => n + sql.insertBinding.run(group, pattern, now).changes, 0)
        if (added > 0) sql.bumpBindingsVersion.run()
      }, atomic)
    },

    async listGroups(): Promise<readonly GroupInfo[]> {
      assertOpen()
      const now = Date.now()
      const depths = new Map(sql.groupDepths.all({ now }).map((r) => [r.group_name, r]))
      const dead = new Map(sql.groupDeadLetters.all().map((r) => [r.group_name, r.count]))
      return [...bindings.patternsByGroup()].map(([group, patterns]) => {
        const row = depths.get(group)
        return {
          group,
          patterns,
          depth: row?.depth ?? 0,
          deadLetters: dead.get(group) ?? 0,
          inFlight: row?.in_flight ?? 0,
          scheduled: row?.scheduled ?? 0,
          oldestDueAgeMs: row?.oldest_due == null ? 0 : Math.max(0, now - row.oldest_due),
        }
      })
    },

    async describeTopology() {
      assertOpen()
      return {
        transport: 'sqlite',
        entry: `${options.path}: publish inserts one herald_queue row per bound group, in the publishing transaction`,
        groups: [...bindings.patternsByGroup()].map(([group, patterns]) => ({
          group,
          patterns,
          queue: `herald_queue rows with group_name = '${group}'`,
        })),
        delays: 'herald_queue rows whose visible_at is in the future (delays and retry backoff)',
        deadLetters: 'herald_dead_letters',
      }
    },

    async unbindGroup(group, patterns) {
      assertOpen()
      await writer.run(() => {
        const removed = patterns.reduce((n, pattern) => n + sql.deleteBinding.run(group, pattern).changes, 0)
        if (removed > 0) sql.bumpBindingsVersion.run()
      }, atomic)
    },

    async deleteGroup(group) {
      assertOpen()
      await writer.run(() => {
        sql.deleteBindings.run(group)
        sql.deleteGroupRows.run(group)
        sql.bumpBindingsVersion.run()
      }, atomic)
    },

    async listDeadLetters(query = {}) {
      assertOpen()
      return deadLetters.list(query)
    },

    async getDeadLetter(id, group) {
      assertOpen()
      return deadLetters.get(id, group)
    },

    async redriveDeadLetters(filter) {
      assertOpen()
      const count = await writer.run(() => deadLetters.redrive(filter, Date.now()), atomic)
      consumers.wakeAll()
      return count
    },

    async purgeDeadLetters(filter) {
      assertOpen()
      return writer.run(() => deadLetters.purge(filter))
    },

    async checkHealth() {
      if (closed) return { ok: false, details: { closed: true } }
      try {
        db.prepare('SELECT 1').get()
        return { ok: true, details: { path: options.path, ...settings } }
      } catch (err) {
        return { ok: false, details: { error: String(err) } }
      }
    },
  }
  return transport
}
