import {
  assertTopic,
  assertTopicPattern,
  type Clock,
  ConfigurationError,
  type DurableTransport,
  type Envelope,
  type GroupInfo,
  type GroupSettings,
  groupSettingsOf,
  NoRouteError,
  orderingKeyOf,
  type ResolvedKeyOrdering,
  resolveKeyOrdering,
  type Settlement,
  systemClock,
  TransportClosedError,
  uuidV7,
} from '@herald/core'
import {
  burstOf,
  createConsumerSet,
  type PulledMessage,
  type PullSource,
  parseStoredHeaders,
  storedBody,
  storedHeadersText,
  toBuffer,
  type WakeSignal,
} from '@herald/core/adapter'
import { createBindingsCache } from './bindings.js'
import { createDeadLetterQueries } from './dead-letters.js'
import { createKeyQueue } from './keys.js'
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
  /**
   * Whose wall clock leases, due times and rate limits are judged by. Default: the system's. Every process on one
   * file must agree on the time (docs/sqlite.md); a test passes a manual clock to step it.
   */
  readonly clock?: Clock
}

export type SqliteTransport = DurableTransport

interface EncodedRow {
  readonly id: string
  readonly headers: string
  readonly body: Buffer
  readonly key: string | undefined
}

interface SqlitePulled extends PulledMessage {
  readonly seq: number
  readonly token: string
  readonly key: string | null
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
  const clock = options.clock ?? systemClock
  const pollIntervalMs = positive('pollIntervalMs', options.pollIntervalMs ?? 50)
  const busyTimeoutMs = positive('busyTimeoutMs', options.busyTimeoutMs ?? 5_000)
  const onError = options.onError ?? (() => {})
  const { db, settings } = openDatabase(options.path, options.durability ?? 'strict', busyTimeoutMs)
  const sql = prepareStatements(db)
  const writer = createWriteBatcher(db)
  const bindings = createBindingsCache(sql)
  const keys = createKeyQueue(db)
  const deadLetters = createDeadLetterQueries(db, keys, bindings.keyConcurrency)
  const insertRow = (group: string, topic: string, row: EncodedRow, visibleAt: number, now: number) => {
    if (row.key === undefined) sql.insertMessage.run(group, row.id, topic, row.headers, row.body, visibleAt, now)
    else keys.insert(group, row.key, { ...row, topic }, visibleAt, now, bindings.keyConcurrency(group))
  }
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
    const rows = envelopes.map((e) => ({
      id: e.id,
      headers: storedHeadersText(e),
      body: toBuffer(e.body),
      key: orderingKeyOf(e),
    }))
    const groups = await writer.run(() => {
      const groups = bindings.groupsFor(topic)
      if (groups.length === 0 && mandatory) throw new NoRouteError(topic)
      const now = clock.now()
      // Several rows, or one keyed row (two tables), go in through a nested transaction (a savepoint): a failure
      // half-way stores none of them.
      const single = groups.length * rows.length === 1 && rows[0]?.key === undefined
      if (!single) insertRows(groups, topic, rows, visibleAt ?? now, now)
      else if (groups[0] !== undefined && rows[0] !== undefined)
        insertRow(groups[0], topic, rows[0], visibleAt ?? now, now)
      return groups
    })
    consumers.wake(groups)
  }

  function sourceFor(
    group: string,
    ordering: ResolvedKeyOrdering,
    maxPerSecond: number | undefined,
    wake: WakeSignal,
  ): PullSource<SqlitePulled> & { stop(): void } {
    const holdKeys = ordering.afterDeadLetter === 'hold'
    // With a rate limit, the group's token bucket in herald_groups holds every process to it: a claim takes no
    // more rows than there are tokens, in the same transaction. Until the next token, this consumer waits.
    let rateWaitUntil = 0
    function tokensAt(now: number, perSecond: number): number {
      const burst = burstOf(perSecond)
      const bucket = sql.rateBucket.get(group)
      if (bucket?.tokens == null || bucket.at == null) return burst
      // A clock set back (another process's, or this one's) adds nothing rather than taking away.
      return Math.min(burst, bucket.tokens + (Math.max(0, now - bucket.at) * perSecond) / 1_000)
    }
    const consumerId = uuidV7()
    const claimed = new Map<number, string>()
    let claims = 0
    const renewTimer = setInterval(() => {
      if (claimed.size === 0) return
      const leaseUntil = clock.now() + leaseMs
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
        const checked = clock.now()
        const joining = sql.hasJoining.get(group, checked) !== undefined
        if (!joining && sql.hasVisible.get(group, checked) === undefined) return []
        const token = `${consumerId}:${++claims}`
        // Never this consumer's own live claims: after a wall-clock step forward longer than the lease they look
        // expired, but their handlers are still running here.
        const live = JSON.stringify([...new Set(claimed.values())])
        const rows = await writer.run(
          () => {
            const now = clock.now()
            if (joining) keys.joinDue(group, now, bindings.keyConcurrency(group))
            if (maxPerSecond === undefined)
              return sql.claim.all({ token, leaseUntil: now + leaseMs, group, now, limit: max, live })
            const tokens = tokensAt(now, maxPerSecond)
            const limit = Math.min(max, Math.floor(tokens))
            if (limit === 0) {
              rateWaitUntil = now + Math.ceil(((1 - tokens) * 1_000) / maxPerSecond)
              return []
            }
            const taken = sql.claim.all({ token, leaseUntil: now + leaseMs, group, now, limit, live })
            sql.spendRate.run(tokens - taken.length, now, group)
            return taken
          },
          joining || maxPerSecond !== undefined ? atomic : undefined,
        )
        rows.sort((a, b) => a.seq - b.seq)
        return rows.map((row) => {
          claimed.set(row.seq, token)
          return {
            seq: row.seq,
            token,
            topic: row.topic,
            key: row.order_key,
            attempt: row.attempts,
            envelope: {
              id: row.message_id,
              headers: parseStoredHeaders(row.headers, row.message_id),
              body: storedBody(row.body),
            },
          }
        })
      },
      async settle(message, settlement: Settlement) {
        const { seq, token } = message
        const now = clock.now()
        // Whatever the outcome, this claim is no longer renewed: if storing it failed, the lease runs out and the
        // message is delivered again. A newer claim of the same row (after a lease was lost) keeps its renewal.
        if (claimed.get(seq) === token) claimed.delete(seq)
        const key = message.key
        await writer.run(
          () => {
            switch (settlement.kind) {
              case 'ack': {
                const acked = sql.ack.run(seq, token)
                // Only the claim that deleted the row frees its key's place: a stale one deleted nothing.
                if (key !== null && acked.changes > 0)
                  keys.settled(group, key, undefined, now, bindings.keyConcurrency(group))
                return
              }
              case 'release':
                return sql.release.run(now, seq, token)
              case 'retry':
                return sql.retry.run(now + settlement.delayMs, now, JSON.stringify(settlement.error), seq, token)
              case 'dead-letter': {
                const error = settlement.error === undefined ? null : JSON.stringify(settlement.error)
                const { reason, attempts } = settlement
                const moved = sql.deadLetter.run({ seq, token, reason, attempts, now, error })
                if (moved.changes === 0) return
                sql.ack.run(seq, token)
                if (key !== null) {
                  const heldBy = holdKeys ? message.envelope.id : undefined
                  keys.settled(group, key, heldBy, now, bindings.keyConcurrency(group))
                }
                return
              }
            }
            // Only dead-lettering and keyed acks run several statements; a savepoint for every ack would cost two
            // more statements each.
          },
          settlement.kind === 'dead-letter' || key !== null ? atomic : undefined,
        )
        if (settlement.kind === 'release' || settlement.kind === 'retry' || key !== null) wake.notify()
      },
      async waitForWork(signal) {
        const visible = sql.nextVisibleAt.get(group)?.due ?? Number.POSITIVE_INFINITY
        const joins = sql.nextJoinAt.get(group)?.due ?? Number.POSITIVE_INFINITY
        const now = clock.now()
        const wait = Math.max(Math.min(pollIntervalMs, Math.min(visible, joins) - now), rateWaitUntil - now)
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
      const { ordering, settings } = groupSettingsOf(spec)
      await transport.declareGroup(spec.group, spec.patterns, settings)
      return consumers.start(spec, handler, (wake) => sourceFor(spec.group, ordering, spec.maxPerSecond, wake))
    },

    async close() {
      if (closed) return
      closed = true
      await consumers.closeAll()
      await writer.flush()
      db.close()
    },

    async declareGroup(group, patterns, settings?: GroupSettings) {
      assertOpen()
      if (group.length === 0) throw new ConfigurationError('group', 'must not be empty')
      for (const pattern of patterns) assertTopicPattern(pattern)
      const ordering = settings?.ordering === undefined ? undefined : resolveKeyOrdering(settings.ordering)
      await writer.run(() => {
        const now = clock.now()
        let changed = patterns.reduce((n, pattern) => n + sql.insertBinding.run(group, pattern, now).changes, 0)
        if (ordering !== undefined && bindings.keyConcurrency(group) !== ordering.concurrency) changed++
        if (ordering !== undefined) {
          const rate = settings?.maxPerSecond ?? null
          sql.upsertGroupSettings.run(group, ordering.concurrency, ordering.afterDeadLetter, rate)
        }
        if (changed > 0) sql.bumpBindingsVersion.run()
      }, atomic)
    },

    async listGroups(): Promise<readonly GroupInfo[]> {
      assertOpen()
      const now = clock.now()
      const depths = new Map(sql.groupDepths.all({ now }).map((r) => [r.group_name, r]))
      const dead = new Map(sql.groupDeadLetters.all().map((r) => [r.group_name, r.count]))
      const held = keys.heldCounts()
      return [...bindings.patternsByGroup()].map(([group, patterns]) => {
        const row = depths.get(group)
        return {
          group,
          patterns,
          depth: row?.depth ?? 0,
          deadLetters: dead.get(group) ?? 0,
          inFlight: row?.in_flight ?? 0,
          scheduled: row?.scheduled ?? 0,
          waitingOnKey: row?.waiting_on_key ?? 0,
          heldKeys: held.get(group) ?? 0,
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
        sql.deleteGroupSettings.run(group)
        keys.deleteGroup(group)
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
      const count = await writer.run(() => deadLetters.redrive(filter, clock.now()), atomic)
      consumers.wakeAll()
      return count
    },

    async purgeDeadLetters(filter) {
      assertOpen()
      const count = await writer.run(() => deadLetters.purge(filter, clock.now()), atomic)
      consumers.wakeAll()
      return count
    },

    async listHeldKeys(group) {
      assertOpen()
      return keys.listHeld(group)
    },

    async releaseKey(group, key) {
      assertOpen()
      const released = await writer.run(
        () => keys.release(group, key, clock.now(), bindings.keyConcurrency(group)),
        atomic,
      )
      if (released) consumers.wake([group])
      return released
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
