import {
  assertTopic,
  assertTopicPattern,
  ConfigurationError,
  type DeadLetterStore,
  type Envelope,
  type GroupInfo,
  type GroupSettings,
  groupSettingsOf,
  type HealthCheck,
  type HeldKey,
  type KeyAdmin,
  NoRouteError,
  orderingKeyOf,
  type PublishOptions,
  type ResolvedKeyOrdering,
  resolveKeyOrdering,
  type Scheduler,
  type Settlement,
  type TopologyAdmin,
  type TopologyDescriber,
  type Transport,
  TransportClosedError,
  uuidV7,
} from '@herald/core'
import {
  type BatchOutcome,
  createCoalescer,
  createConsumerSet,
  type PulledMessage,
  type PullSource,
  parseStoredHeaders,
  storedHeadersText,
  succeeded,
  toBuffer,
  type WakeSignal,
} from '@herald/core/adapter'
import pg from 'pg'
import { createDeadLetterQueries } from './dead-letters.js'
import { startListener } from './listener.js'
import { migrate } from './migrate.js'
import { assertSchemaName } from './schema.js'
import { statements } from './statements.js'
import { topicPatternToRegex } from './topic-regex.js'

export interface PostgresTransportOptions {
  /** `postgres://user:password@host:port/database` */
  readonly connectionString: string
  /** Schema holding Herald's tables, created if missing. Default `herald`. */
  readonly schema?: string
  /** How long a claimed message stays invisible to other consumers; renewed while its handler runs. Default 30 s. */
  readonly leaseMs?: number
  /** Longest wait before looking for work again. Default 500 ms (NOTIFY usually wakes consumers sooner). */
  readonly pollIntervalMs?: number
  /** Send NOTIFY on publish and LISTEN for it, waking consumers in other processes at once. Default true. */
  readonly notify?: boolean
  /** Connections in the pool (the LISTEN connection is extra). Default 10. */
  readonly maxConnections?: number
  /** Errors the transport survived: a failed settle (the lease returns the message), a dropped LISTEN link. */
  readonly onError?: (err: unknown) => void
}

/** Publishing inside the application's own transaction: its business writes and its messages commit together. */
export interface TransactionalPublisher {
  /**
   * Routes `envelopes` into the queues as part of the transaction open on `client` (after `BEGIN`): they exist if
   * and only if that transaction commits, and consumers everywhere are woken by NOTIFY at commit. With `mandatory`,
   * rejects with `NoRouteError` when no group is bound (roll back or carry on: nothing was written).
   */
  publishInTransaction(
    client: pg.ClientBase,
    topic: string,
    envelopes: readonly Envelope[],
    options?: PublishOptions & { readonly deliverAt?: number },
  ): Promise<void>
}

export type PostgresTransport = Transport &
  Scheduler &
  DeadLetterStore &
  TopologyAdmin &
  TopologyDescriber &
  KeyAdmin &
  HealthCheck &
  TransactionalPublisher

interface PgPulled extends PulledMessage {
  readonly seq: string
  readonly token: string
  readonly key: string | null
}

interface ClaimedRow {
  seq: string
  message_id: string
  topic: string
  headers: string
  body: Buffer
  attempts: number
  order_key: string | null
}

interface PublishItem {
  readonly topic: string
  readonly envelopes: readonly Envelope[]
  readonly visibleAt: number | undefined
  readonly mandatory: boolean
}

interface Claim {
  readonly seq: string
  readonly token: string
}

function positive(field: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new ConfigurationError(field, 'must be a positive number')
  return value
}

/**
 * A durable transport on PostgreSQL. Publishing routes each message to every bound group's rows in one
 * statement (concurrent publishes share it: one commit); consumers claim rows with `FOR UPDATE SKIP LOCKED` and
 * a lease; retries, delays and dead letters are rows. NOTIFY wakes consumers early; polling is what they rely on.
 */
export async function createPostgresTransport(options: PostgresTransportOptions): Promise<PostgresTransport> {
  const schema = options.schema ?? 'herald'
  try {
    assertSchemaName(schema)
  } catch (err) {
    throw new ConfigurationError('schema', (err as Error).message)
  }
  const leaseMs = positive('leaseMs', options.leaseMs ?? 30_000)
  const pollIntervalMs = positive('pollIntervalMs', options.pollIntervalMs ?? 500)
  const maxConnections = positive('maxConnections', options.maxConnections ?? 10)
  const onError = options.onError ?? (() => {})
  const channel = options.notify === false ? undefined : `herald_${schema}`

  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: maxConnections,
    application_name: 'herald',
  })
  // An idle pooled connection that breaks (server restart, terminated backend) must not crash the process.
  pool.on('error', onError)
  try {
    await migrate(pool, schema)
  } catch (err) {
    await pool.end()
    throw err
  }

  const sql = statements(schema, channel)
  const deadLetters = createDeadLetterQueries(pool, sql)
  const consumers = createConsumerSet(onError)
  let closed = false

  function assertOpen(): void {
    if (closed) throw new TransportClosedError('postgres')
  }

  const listener =
    channel === undefined
      ? undefined
      : startListener({
          connectionString: options.connectionString,
          channel,
          onNotify: (group) => consumers.wake([group]),
          onConnected: () => consumers.wakeAll(),
          onError,
        })

  const publisher = createCoalescer<PublishItem, readonly string[]>(publishBatch, { maxBatch: 500, maxConcurrent: 4 })
  const acker = createCoalescer<Claim, void>(ackBatch, { maxBatch: 1_000, maxConcurrent: 2 })
  const keyedAcker = createCoalescer<Claim, void>(ackKeyedBatch, { maxBatch: 1_000, maxConcurrent: 2 })

  async function publishBatch(items: readonly PublishItem[]): Promise<BatchOutcome<readonly string[]>> {
    const routes = await runPublish(pool, items)
    return items.map((item, i) => {
      const groups = routes[i] ?? []
      if (groups.length === 0 && item.mandatory) return { ok: false, error: new NoRouteError(item.topic) }
      return { ok: true, value: groups }
    })
  }

  /** Runs the publish statement for `items` on `client`; returns the groups each item was routed to. */
  async function runPublish(client: pg.Pool | pg.ClientBase, items: readonly PublishItem[]): Promise<string[][]> {
    const itemIndex: number[] = []
    const topics: string[] = []
    const ids: string[] = []
    const headers: string[] = []
    const bodies: Buffer[] = []
    const visibleAt: (number | null)[] = []
    const keys: (string | null)[] = []
    items.forEach((item, i) => {
      for (const envelope of item.envelopes) {
        itemIndex.push(i)
        topics.push(item.topic)
        ids.push(envelope.id)
        headers.push(storedHeadersText(envelope))
        bodies.push(toBuffer(envelope.body))
        visibleAt.push(item.visibleAt ?? null)
        keys.push(orderingKeyOf(envelope) ?? null)
      }
    })
    const result = await client.query<{ item: number; group_name: string }>({
      ...sql.publish,
      values: [itemIndex, topics, ids, headers, bodies, visibleAt, keys],
    })
    const routes = items.map((): string[] => [])
    for (const row of result.rows) routes[row.item]?.push(row.group_name)
    return routes
  }

  async function ackBatch(claims: readonly Claim[]): Promise<BatchOutcome<void>> {
    await pool.query({ ...sql.ack, values: [claims.map((c) => c.seq), claims.map((c) => c.token)] })
    return claims.map(() => succeeded)
  }

  /** Acks keyed rows and admits each key's next row, in one function call (one transaction). */
  async function ackKeyedBatch(claims: readonly Claim[]): Promise<BatchOutcome<void>> {
    await pool.query({ ...sql.ackKeyed, values: [claims.map((c) => c.seq), claims.map((c) => c.token)] })
    return claims.map(() => succeeded)
  }

  async function insert(
    topic: string,
    envelopes: readonly Envelope[],
    visibleAt: number | undefined,
    mandatory: boolean,
  ) {
    assertOpen()
    assertTopic(topic)
    if (envelopes.length === 0) return
    const groups = await publisher.submit({ topic, envelopes, visibleAt, mandatory })
    consumers.wake(groups)
  }

  function sourceFor(
    group: string,
    ordering: ResolvedKeyOrdering,
    maxPerSecond: number | undefined,
    wake: WakeSignal,
  ): PullSource<PgPulled> & { stop(): void } {
    // With a rate limit a claim may find rows but no tokens: then wait for the next token, not the next row.
    let rateWaitUntil = 0
    const holdKeys = ordering.afterDeadLetter === 'hold'
    const consumerId = uuidV7()
    const claimed = new Map<string, string>()
    let claims = 0
    const renewTimer = setInterval(() => {
      if (claimed.size === 0) return
      const held = [...claimed]
      pool
        .query({ ...sql.renew, values: [held.map(([seq]) => seq), held.map(([, token]) => token), leaseMs] })
        .catch(onError)
    }, leaseMs / 3)
    renewTimer.unref()

    return {
      async fetch(max) {
        const token = `${consumerId}:${++claims}`
        const result = await pool.query<ClaimedRow>({
          ...sql.claim,
          values: [group, token, leaseMs, max, maxPerSecond ?? null],
        })
        if (maxPerSecond !== undefined && result.rows.length === 0)
          rateWaitUntil = Date.now() + Math.ceil(1_000 / maxPerSecond)
        const rows = result.rows.sort((a, b) => Number(a.seq) - Number(b.seq))
        return rows.map((row) => {
          claimed.set(row.seq, token)
          return {
            seq: row.seq,
            token,
            topic: row.topic,
            key: row.order_key,
            attempt: row.attempts,
            envelope: { id: row.message_id, headers: parseStoredHeaders(row.headers, row.message_id), body: row.body },
          }
        })
      },
      async settle(message, settlement: Settlement) {
        const { seq, token } = message
        // Whatever the outcome, this claim is no longer renewed: if storing it fails, the lease runs out and the
        // message is delivered again (renewing it would hold it, and its key, for ever).
        if (claimed.get(seq) === token) claimed.delete(seq)
        switch (settlement.kind) {
          case 'ack':
            await (message.key === null ? acker : keyedAcker).submit({ seq, token })
            break
          case 'release':
            await pool.query({ ...sql.release, values: [seq, token] })
            break
          case 'retry':
            await pool.query({
              ...sql.retry,
              values: [seq, token, settlement.delayMs, JSON.stringify(settlement.error)],
            })
            break
          case 'dead-letter': {
            const error = settlement.error === undefined ? null : JSON.stringify(settlement.error)
            const { reason, attempts } = settlement
            if (message.key === null)
              await pool.query({ ...sql.deadLetter, values: [seq, token, reason, error, attempts] })
            else await pool.query({ ...sql.deadLetterKeyed, values: [seq, token, reason, error, holdKeys, attempts] })
            break
          }
        }
        // A keyed ack or dead letter may have put the key's next row in play.
        if (settlement.kind === 'release' || settlement.kind === 'retry' || message.key !== null) wake.notify()
      },
      async waitForWork(signal) {
        let wait = pollIntervalMs
        try {
          const result = await pool.query<{ wait: string | null }>({ ...sql.nextVisible, values: [group] })
          const due = result.rows[0]?.wait
          if (due !== null && due !== undefined) wait = Math.min(pollIntervalMs, Number(due))
        } catch (err) {
          onError(err)
        }
        await wake.wait(Math.max(1, wait, rateWaitUntil - Date.now()), signal)
      },
      stop() {
        clearInterval(renewTimer)
      },
    }
  }

  const transport: PostgresTransport = {
    name: 'postgres',

    async publishInTransaction(client, topic, envelopes, publishOptions = {}) {
      assertOpen()
      assertTopic(topic)
      if (envelopes.length === 0) return
      const mandatory = publishOptions.mandatory === true
      const item = { topic, envelopes, visibleAt: publishOptions.deliverAt, mandatory }
      const [groups = []] = await runPublish(client, [item])
      if (groups.length === 0 && mandatory) throw new NoRouteError(topic)
    },

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
      await Promise.all([publisher.flush(), acker.flush(), keyedAcker.flush()])
      await listener?.close()
      await pool.end()
    },

    async declareGroup(group, patterns, settings?: GroupSettings) {
      assertOpen()
      if (group.length === 0) throw new ConfigurationError('group', 'must not be empty')
      for (const pattern of patterns) assertTopicPattern(pattern)
      const ordering = settings?.ordering === undefined ? undefined : resolveKeyOrdering(settings.ordering)
      await pool.query({ ...sql.declareGroup, values: [group, patterns, patterns.map(topicPatternToRegex)] })
      if (ordering !== undefined)
        await pool.query({
          ...sql.groupSettings,
          values: [group, ordering.concurrency, ordering.afterDeadLetter, settings?.maxPerSecond ?? null],
        })
    },

    async listGroups(): Promise<readonly GroupInfo[]> {
      assertOpen()
      const now = Date.now()
      const result = await pool.query<{
        group_name: string
        patterns: string[]
        depth: number
        dead: number
        scheduled: number
        in_flight: number
        waiting_on_key: number
        held_keys: number
        oldest_due: number | null
      }>({ ...sql.listGroups, values: [now] })
      return result.rows.map((row) => ({
        group: row.group_name,
        patterns: row.patterns,
        depth: row.depth,
        deadLetters: row.dead,
        inFlight: row.in_flight,
        scheduled: row.scheduled,
        waitingOnKey: row.waiting_on_key,
        heldKeys: row.held_keys,
        oldestDueAgeMs: row.oldest_due === null ? 0 : Math.max(0, now - row.oldest_due),
      }))
    },

    async describeTopology() {
      const groups = await transport.listGroups()
      return {
        transport: 'postgres',
        entry: `${schema}.queue: publish inserts one row per bound group (routed in SQL by ${schema}.bindings)`,
        groups: groups.map((g) => ({
          group: g.group,
          patterns: g.patterns,
          queue: `${schema}.queue rows with group_name = '${g.group}'`,
        })),
        delays: `${schema}.queue rows whose visible_at is in the future (delays and retry backoff)`,
        deadLetters: `${schema}.dead_letters`,
      }
    },

    async unbindGroup(group, patterns) {
      assertOpen()
      await pool.query({ ...sql.unbindGroup, values: [group, patterns] })
    },

    async deleteGroup(group) {
      assertOpen()
      await pool.query({ ...sql.deleteGroup, values: [group] })
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
      const { count, groups } = await deadLetters.redrive(filter)
      consumers.wake(groups)
      return count
    },

    async purgeDeadLetters(filter) {
      assertOpen()
      const count = await deadLetters.purge(filter)
      consumers.wakeAll()
      return count
    },

    async listHeldKeys(group): Promise<readonly HeldKey[]> {
      assertOpen()
      const result = await pool.query<{ group_name: string; order_key: string; held_by: string; waiting: number }>({
        ...sql.heldKeys,
        values: [group ?? null],
      })
      return result.rows.map((r) => ({
        group: r.group_name,
        key: r.order_key,
        deadLetterId: r.held_by,
        waiting: r.waiting,
      }))
    },

    async releaseKey(group, key) {
      assertOpen()
      const result = await pool.query<{ released: boolean }>({ ...sql.releaseKey, values: [group, key] })
      const released = result.rows[0]?.released === true
      if (released) consumers.wake([group])
      return released
    },

    async checkHealth() {
      if (closed) return { ok: false, details: { closed: true } }
      try {
        await pool.query('SELECT 1')
        return {
          ok: true,
          details: { schema, totalConnections: pool.totalCount, idleConnections: pool.idleCount, notify: !!channel },
        }
      } catch (err) {
        return { ok: false, details: { error: String(err) } }
      }
    },
  }
  return transport
}
