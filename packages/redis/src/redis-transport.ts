import {
  assertTopic,
  assertTopicPattern,
  ConfigurationError,
  compileTopicPattern,
  type DeadLetter,
  type DeadLetterFilter,
  type DurableTransport,
  type Envelope,
  type GroupInfo,
  type GroupSettings,
  groupSettingsOf,
  type HeldKey,
  matchesDeadLetterFilter,
  NoRouteError,
  orderingKeyOf,
  resolveKeyOrdering,
  TransportClosedError,
  uuidV7,
} from '@herald/core'
import {
  type BatchOutcome,
  createCoalescer,
  createConsumerSet,
  storedHeadersText,
  succeeded,
  toBuffer,
} from '@herald/core/adapter'
import { Redis } from 'ioredis'
import { withScripts } from './scripts.js'
import { compareIds, deadLetterFrom, toFields } from './stream-entries.js'
import { createStreamSource } from './stream-source.js'

export type RedisDurability = 'strict' | 'relaxed'

export interface RedisTransportOptions {
  /** `redis://host:port/db` */
  readonly url: string
  /** Key prefix for everything Herald stores. Default `herald`. */
  readonly prefix?: string
  /** `strict` (default) refuses a server without AOF (`appendonly yes`); `relaxed` reports it to `onError`. */
  readonly durability?: RedisDurability
  /**
   * How long a delivered message may go unacknowledged before another consumer takes it; renewed while its
   * handler runs. Default 30 s. The taker measures it (XAUTOCLAIM's min idle time), so every consumer of a group
   * should use the same value.
   */
  readonly leaseMs?: number
  /** Longest a consumer blocks in XREADGROUP before checking delays and leases again. Default 500 ms. */
  readonly pollIntervalMs?: number
  /**
   * How long any command (a publish included) may wait for Redis before it fails; a publish that times out is
   * indeterminate (retry it with the same id). Without it, a hung server (paused, disk stalled) would hold every
   * publish forever. Default 10 s.
   */
  readonly commandTimeoutMs?: number
  /** Errors the transport survived (a failed settle is retried by lease expiry). */
  readonly onError?: (err: unknown) => void
}

export type RedisTransport = DurableTransport

function positive(field: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new ConfigurationError(field, 'must be a positive number')
  return value
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * A body as a command argument. Text (a JSON body) goes as a string, which Redis stores as the same UTF-8 bytes:
 * a command whose arguments are all strings is written as one string, with no per-argument buffer copies.
 * Anything that is not valid UTF-8 goes as bytes.
 */
function bodyArgument(body: Uint8Array): string | Buffer {
  try {
    return utf8.decode(body)
  } catch {
    return toBuffer(body)
  }
}

/**
 * A durable transport on Redis Streams. Each group has its own stream; publishing routes a message to every bound
 * group's stream in one Lua script, checked against the bindings version so no binding change slips between. A
 * consumer group per stream hands out entries; an ack deletes the entry, so a stream holds only work in progress
 * (no trimming can lose anything). Leases are the pending list's idle time, taken back with XAUTOCLAIM; retries
 * and delays wait in a sorted set and are moved in by a script when due.
 */
export async function createRedisTransport(options: RedisTransportOptions): Promise<RedisTransport> {
  const prefix = options.prefix ?? 'herald'
  const leaseMs = positive('leaseMs', options.leaseMs ?? 30_000)
  const pollIntervalMs = positive('pollIntervalMs', options.pollIntervalMs ?? 500)
  const onError = options.onError ?? (() => {})
  const commandTimeout = positive('commandTimeoutMs', options.commandTimeoutMs ?? 10_000)
  // RESP2: reply shapes (XREADGROUP, script results) stay plain arrays whatever the server supports.
  // socketTimeout: a connection that answers nothing for that long (a half-open network, a frozen server) is
  // destroyed and reconnected; commandTimeout alone would fail each command and keep the dead socket (`half-open-connection-detected`).
  const redis = new Redis(options.url, {
    lazyConnect: true,
    maxRetriesPerRequest: 2,
    protocol: 2,
    commandTimeout,
    socketTimeout: commandTimeout,
  })
  redis.on('error', onError)
  await redis.connect()
  try {
    await checkDurability(redis, options.durability ?? 'strict', onError)
  } catch (err) {
    redis.disconnect()
    throw err
  }
  const run = withScripts(redis)
  const consumers = createConsumerSet(onError)
  const blocking = new Set<Redis>()
  let bindings: { version: string; byGroup: Map<string, string[]>; routes: Map<string, string[]> } | undefined
  let closed = false

  const streamKey = (group: string) => `${prefix}:q:${group}`
  const sourceContext = { redis, run, prefix, leaseMs, pollIntervalMs, commandTimeout, onError, blocking }

  function assertOpen(): void {
    if (closed) throw new TransportClosedError('redis')
  }

  async function loadBindings() {
    const [[, version], [, members]] = (await redis
      .multi()
      .get(`${prefix}:v`)
      .smembers(`${prefix}:bindings`)
      .exec()) as [[unknown, string | null], [unknown, string[]]]
    const byGroup = new Map<string, string[]>()
    for (const member of members) {
      const [group, pattern] = member.split('\n') as [string, string]
      byGroup.set(group, [...(byGroup.get(group) ?? []), pattern].sort())
    }
    bindings = { version: version ?? '0', byGroup, routes: new Map() }
    return bindings
  }

  function groupsFor(current: NonNullable<typeof bindings>, topic: string): string[] {
    let groups = current.routes.get(topic)
    if (groups === undefined) {
      groups = [...current.byGroup]
        .filter(([, patterns]) => patterns.some((p) => compileTopicPattern(p)(topic)))
        .map(([group]) => group)
      current.routes.set(topic, groups)
    }
    return groups
  }

  interface PublishItem {
    readonly topic: string
    readonly envelopes: readonly Envelope[]
    readonly dueAt: number
    readonly mandatory: boolean
  }

  // The publishes of one event-loop turn go in one script call: one round trip, one Lua run.
  const publisher = createCoalescer<PublishItem, void>(publishBatch, { maxBatch: 200, maxConcurrent: 4 })

  async function publishBatch(items: readonly PublishItem[]): Promise<BatchOutcome<void>> {
    const messages = items.map((item) =>
      item.envelopes.flatMap((e) => [
        e.id,
        item.topic,
        storedHeadersText(e),
        bodyArgument(e.body),
        orderingKeyOf(e) ?? '',
      ]),
    )
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = bindings ?? (await loadBindings())
      const args: (string | number | Buffer)[] = [prefix, current.version, uuidV7(), items.length]
      items.forEach((item, i) => {
        const groups = groupsFor(current, item.topic)
        args.push(item.dueAt, groups.length, ...groups, item.envelopes.length, ...messages[i]!)
      })
      const routed = (await run('publish', args)) as number[] | number
      if (routed === -1 || !Array.isArray(routed)) {
        await loadBindings()
        continue
      }
      return items.map((item, i) =>
        routed[i] === 0 && item.mandatory ? { ok: false, error: new NoRouteError(item.topic) } : succeeded,
      )
    }
    throw new Error('Redis bindings kept changing while publishing; try again')
  }

  async function insert(topic: string, envelopes: readonly Envelope[], dueAt: number, mandatory: boolean) {
    assertOpen()
    assertTopic(topic)
    if (envelopes.length === 0) return
    await publisher.submit({ topic, envelopes, dueAt, mandatory })
  }

  async function scanDeadLetters(visit: (entryId: string, letter: DeadLetter) => boolean | undefined) {
    let start = '-'
    for (;;) {
      const entries = (await redis.callBuffer('XRANGE', [`${prefix}:dlq`, start, '+', 'COUNT', 500])) as [
        Buffer,
        Buffer[],
      ][]
      for (const [id, list] of entries) if (visit(id.toString(), deadLetterFrom(toFields(list))) === false) return
      if (entries.length < 500) return
      start = `(${entries.at(-1)![0].toString()}`
    }
  }

  const transport: RedisTransport = {
    name: 'redis',

    publish(topic, envelopes, publishOptions = {}) {
      return insert(topic, envelopes, 0, publishOptions.mandatory === true)
    },

    schedule(topic, envelopes, deliverAt, publishOptions = {}) {
      return insert(topic, envelopes, Math.max(1, deliverAt), publishOptions.mandatory === true)
    },

    async subscribe(spec, handler) {
      assertOpen()
      const { ordering, settings } = groupSettingsOf(spec)
      await transport.declareGroup(spec.group, spec.patterns, settings)
      return consumers.start(spec, handler, () =>
        createStreamSource(sourceContext, spec.group, ordering, spec.maxPerSecond),
      )
    },

    async close() {
      if (closed) return
      closed = true
      await consumers.closeAll()
      await publisher.flush()
      for (const reader of blocking) reader.disconnect()
      await redis.quit().catch(() => {})
    },

    async declareGroup(group, patterns, settings?: GroupSettings) {
      assertOpen()
      if (group.length === 0 || group.includes('\n')) {
        throw new ConfigurationError('group', 'must be non-empty and on one line')
      }
      for (const pattern of patterns) assertTopicPattern(pattern)
      try {
        await redis.call('XGROUP', 'CREATE', streamKey(group), 'herald', '0', 'MKSTREAM')
      } catch (err) {
        if (!String(err).includes('BUSYGROUP')) throw err
      }
      const added =
        patterns.length === 0 ? 0 : await redis.sadd(`${prefix}:bindings`, ...patterns.map((p) => `${group}\n${p}`))
      if (added > 0) await redis.incr(`${prefix}:v`)
      if (settings?.ordering !== undefined)
        await redis.hset(`${prefix}:kc`, group, resolveKeyOrdering(settings.ordering).concurrency)
      await loadBindings()
    },

    async listGroups(): Promise<readonly GroupInfo[]> {
      assertOpen()
      const current = await loadBindings()
      const dead = new Map<string, number>()
      await scanDeadLetters((_, letter) => {
        dead.set(letter.group, (dead.get(letter.group) ?? 0) + 1)
        return true
      })
      return Promise.all(
        [...current.byGroup].sort().map(async ([group, patterns]) => {
          const now = Date.now()
          const [[, length], [, delayed], [, notDue], [, earliest], [, info], [, waiting], [, heldKeys]] = (await redis
            .multi()
            .xlen(streamKey(group))
            .zcard(`${prefix}:d:${group}`)
            .zcount(`${prefix}:d:${group}`, `(${now}`, '+inf')
            .zrange(`${prefix}:d:${group}`, '0', '0', 'WITHSCORES')
            .xinfo('GROUPS', streamKey(group))
            .hget(`${prefix}:kn`, group)
            .hlen(`${prefix}:kh:${group}`)
            .exec()
            .catch(() => [[], [], [], [], [null, []], [null, null], [null, 0]])) as [
            [unknown, number],
            [unknown, number],
            [unknown, number],
            [unknown, string[]],
            [unknown, unknown[][]],
            [unknown, string | null],
            [unknown, number],
          ]
          const waitingOnKey = Math.max(0, Number(waiting ?? 0) || 0)
          // The oldest due message: the first entry no consumer has read yet (its id is its enqueue time), or a
          // delayed one already due but not yet moved to the stream.
          const fields = (info ?? []).map((row) => {
            const map = new Map<string, unknown>()
            for (let i = 0; i + 1 < row.length; i += 2) map.set(String(row[i]), row[i + 1])
            return map
          })
          const own = fields.find((f) => f.get('name') === 'herald')
          const lastRead = own?.get('last-delivered-id')
          const next =
            lastRead === undefined ? [] : await redis.xrange(streamKey(group), `(${String(lastRead)}`, '+', 'COUNT', 1)
          const dueSince = [
            next[0] === undefined ? Number.POSITIVE_INFINITY : Number(next[0][0].split('-')[0]),
            earliest?.[1] !== undefined && Number(earliest[1]) <= now ? Number(earliest[1]) : Number.POSITIVE_INFINITY,
          ]
          const oldest = Math.min(...dueSince)
          return {
            group,
            patterns,
            depth: (length ?? 0) + (delayed ?? 0) + waitingOnKey,
            deadLetters: dead.get(group) ?? 0,
            // Entries delivered to a consumer and not acknowledged (the group's pending entries list).
            inFlight: Number(own?.get('pending') ?? 0),
            scheduled: notDue ?? 0,
            waitingOnKey,
            heldKeys: heldKeys ?? 0,
            oldestDueAgeMs: Number.isFinite(oldest) ? Math.max(0, now - oldest) : 0,
          }
        }),
      )
    },

    async describeTopology() {
      assertOpen()
      const current = await loadBindings()
      return {
        transport: 'redis',
        entry: `publish runs a script that XADDs to the stream of every group bound in ${prefix}:bindings`,
        groups: [...current.byGroup].sort().map(([group, patterns]) => ({
          group,
          patterns: [...patterns],
          queue: `stream ${streamKey(group)}, consumer group "herald"`,
        })),
        delays: `sorted sets ${prefix}:d:<group> (due time as score), moved to the stream when due`,
        deadLetters: `stream ${prefix}:dlq`,
      }
    },

    async unbindGroup(group, patterns) {
      assertOpen()
      if (patterns.length === 0) return
      const removed = await redis.srem(`${prefix}:bindings`, ...patterns.map((p) => `${group}\n${p}`))
      if (removed > 0) await redis.incr(`${prefix}:v`)
      await loadBindings()
    },

    async deleteGroup(group) {
      assertOpen()
      const current = await loadBindings()
      const members = (current.byGroup.get(group) ?? []).map((p) => `${group}\n${p}`)
      const multi = redis.multi()
      if (members.length > 0) multi.srem(`${prefix}:bindings`, ...members)
      await multi
        .incr(`${prefix}:v`)
        .del(
          streamKey(group),
          `${prefix}:d:${group}`,
          `${prefix}:dd:${group}`,
          `${prefix}:db:${group}`,
          `${prefix}:a:${group}`,
        )
        .exec()
      await run('dropKeys', [prefix, group])
      await loadBindings()
    },

    async listDeadLetters(query = {}) {
      assertOpen()
      const limit = query.limit ?? 50
      const items: { entryId: string; letter: DeadLetter }[] = []
      const after = query.cursor
      await scanDeadLetters((entryId, letter) => {
        if (after !== undefined && compareIds(entryId, after) <= 0) return true
        if (!matchesDeadLetterFilter(letter, query)) return true
        items.push({ entryId, letter })
        return items.length <= limit
      })
      const page = items.slice(0, limit)
      const last = page.at(-1)
      return items.length > limit && last !== undefined
        ? { items: page.map((i) => i.letter), nextCursor: last.entryId }
        : { items: page.map((i) => i.letter) }
    },

    async getDeadLetter(id, group) {
      assertOpen()
      let found: DeadLetter | undefined
      await scanDeadLetters((_, letter) => {
        if (letter.envelope.id === id && (group === undefined || letter.group === group)) found = letter
        return found === undefined
      })
      return found
    },

    async redriveDeadLetters(filter) {
      assertOpen()
      const ids = await selectDeadLetters(filter)
      let count = 0
      for (let i = 0; i < ids.length; i += 200)
        count += (await run('redrive', [prefix, ...ids.slice(i, i + 200)])) as number
      return count
    },

    async purgeDeadLetters(filter) {
      assertOpen()
      const ids = await selectDeadLetters(filter)
      let count = 0
      for (let i = 0; i < ids.length; i += 500)
        count += (await run('purge', [prefix, ...ids.slice(i, i + 500)])) as number
      return count
    },

    async listHeldKeys(group) {
      assertOpen()
      const current = await loadBindings()
      const held: HeldKey[] = []
      for (const name of [...current.byGroup.keys()].sort()) {
        if (group !== undefined && name !== group) continue
        const entries = await redis.hgetall(`${prefix}:kh:${name}`)
        for (const [key, deadLetterId] of Object.entries(entries).sort(([a], [b]) => (a < b ? -1 : 1))) {
          const waiting = await redis.llen(`${prefix}:kw:${name}\n${key}`)
          held.push({ group: name, key, deadLetterId, waiting })
        }
      }
      return held
    },

    async releaseKey(group, key) {
      assertOpen()
      return ((await run('releaseKey', [prefix, group, key])) as number) === 1
    },

    async checkHealth() {
      if (closed) return { ok: false, details: { closed: true } }
      try {
        const info = await redis.info('persistence')
        return { ok: true, details: { prefix, aofEnabled: /aof_enabled:1/.test(info) } }
      } catch (err) {
        return { ok: false, details: { error: String(err) } }
      }
    },
  }

  async function selectDeadLetters(filter: DeadLetterFilter): Promise<string[]> {
    const ids: string[] = []
    await scanDeadLetters((entryId, letter) => {
      if (matchesDeadLetterFilter(letter, filter)) ids.push(entryId)
      return true
    })
    return ids
  }

  return transport
}

/** Reads the server's persistence settings: without AOF, an acknowledged publish can vanish in a crash. */
async function checkDurability(redis: Redis, durability: RedisDurability, onError: (err: unknown) => void) {
  const info = await redis.info('persistence')
  if (/aof_enabled:1/.test(info)) return
  const error = new ConfigurationError(
    'durability',
    "Redis has AOF off (appendonly no), so a crash loses acknowledged messages; set 'appendonly yes' (and appendfsync always or everysec), or pass durability: 'relaxed'",
  )
  if (durability === 'strict') throw error
  onError(error)
}
