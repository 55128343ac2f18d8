import {
  assertTopic,
  assertTopicPattern,
  type BatchOutcome,
  ConfigurationError,
  compileTopicPattern,
  createCoalescer,
  createConsumerSet,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterReason,
  type DeadLetterStore,
  type Envelope,
  type ErrorInfo,
  type GroupInfo,
  type HealthCheck,
  matchesDeadLetterFilter,
  NoRouteError,
  type PulledMessage,
  type PullSource,
  parseStoredHeaders,
  type Scheduler,
  type Settlement,
  type TopologyAdmin,
  type Transport,
  TransportClosedError,
  toBuffer,
  uuidV7,
  type WakeSignal,
} from '@herald/core'
import { Redis } from 'ioredis'
import {
  ackLua,
  deadLetterLua,
  moveDueLua,
  publishLua,
  reclaimLua,
  redriveLua,
  releaseLua,
  renewLua,
  retryLua,
} from './scripts.js'

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

export type RedisTransport = Transport & Scheduler & DeadLetterStore & TopologyAdmin & HealthCheck

interface RedisPulled extends PulledMessage {
  readonly entryId: string
  /** Deliveries before this entry was (re)added: retries carry their count along. */
  readonly base: number
}

type Fields = Map<string, Buffer>

function toFields(list: readonly Buffer[]): Fields {
  const fields: Fields = new Map()
  for (let i = 0; i + 1 < list.length; i += 2) fields.set(list[i]!.toString(), list[i + 1]!)
  return fields
}

function text(fields: Fields, name: string): string | undefined {
  return fields.get(name)?.toString()
}

function positive(field: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new ConfigurationError(field, 'must be a positive number')
  return value
}

/** Defines every script on a connection: `run(name, args)` sends EVALSHA, falling back to EVAL once. */
function withScripts(redis: Redis) {
  const scripts = {
    publish: publishLua,
    moveDue: moveDueLua,
    reclaim: reclaimLua,
    ack: ackLua,
    renew: renewLua,
    retry: retryLua,
    release: releaseLua,
    deadLetter: deadLetterLua,
    redrive: redriveLua,
  }
  for (const [name, lua] of Object.entries(scripts)) redis.defineCommand(`herald_${name}`, { numberOfKeys: 0, lua })
  // The Buffer variant keeps binary bodies intact in replies.
  return (
    name: keyof typeof scripts,
    args: readonly (string | number | Buffer)[],
    buffers = false,
  ): Promise<unknown> => {
    const method = `herald_${name}${buffers ? 'Buffer' : ''}`
    const command = (redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[method]
    if (command === undefined) throw new Error(`script ${name} not defined`)
    return command.call(redis, ...args)
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
  // destroyed and reconnected; commandTimeout alone would fail each command and keep the dead socket (case 47).
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
      item.envelopes.flatMap((e) => [e.id, item.topic, JSON.stringify(e.headers), toBuffer(e.body)]),
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
        routed[i] === 0 && item.mandatory
          ? { ok: false, error: new NoRouteError(item.topic) }
          : { ok: true, value: undefined },
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

  /** The lowest and highest of some stream entry ids (`<ms>-<seq>`), compared as numbers. */
  function idRange(ids: readonly string[]): [string, string] {
    const key = (id: string): [number, number] => {
      const dash = id.indexOf('-')
      return [Number(id.slice(0, dash)), Number(id.slice(dash + 1))]
    }
    let lowest = ids[0] as string
    let highest = lowest
    let [lowMs, lowSeq] = key(lowest)
    let [highMs, highSeq] = [lowMs, lowSeq]
    for (const id of ids) {
      const [ms, seq] = key(id)
      if (ms < lowMs || (ms === lowMs && seq < lowSeq)) [lowest, lowMs, lowSeq] = [id, ms, seq]
      if (ms > highMs || (ms === highMs && seq > highSeq)) [highest, highMs, highSeq] = [id, ms, seq]
    }
    return [lowest, highest]
  }

  function sourceFor(group: string): PullSource<RedisPulled> & { stop(): void } {
    const consumer = uuidV7()
    // A blocking read legitimately waits up to pollIntervalMs: its timeout allows for that.
    const reader = redis.duplicate({
      commandTimeout: commandTimeout + pollIntervalMs,
      socketTimeout: commandTimeout + pollIntervalMs,
    })
    reader.on('error', onError)
    blocking.add(reader)
    const held = new Set<string>()
    // Acks of one turn go in one script call.
    const acker = createCoalescer<string, void>(
      async (ids) => {
        const [lowest, highest] = idRange(ids)
        await run('ack', [prefix, group, consumer, lowest, highest, ...ids])
        return ids.map(() => ({ ok: true, value: undefined }))
      },
      { maxBatch: 500, maxConcurrent: 2 },
    )
    let lastReclaim = 0
    // When the group's next delayed message is due (by the last look), and when we last looked.
    let nextDueAt = 0
    let lastMove = 0
    let stopped = false
    // A retry due before the current blocking read ends wakes that read when it falls due (CLIENT UNBLOCK on
    // the reader's connection id), so a short backoff is not stretched to the poll interval.
    let readerId: number | undefined
    reader.on('ready', () => {
      reader.client('ID').then((id) => {
        readerId = Number(id)
      }, onError)
    })
    let blockEndsAt = 0
    let wakeAt = Number.POSITIVE_INFINITY
    let wakeTimer: ReturnType<typeof setTimeout> | undefined
    function wakeReaderAt(at: number): void {
      if (at >= blockEndsAt || at >= wakeAt) return
      clearTimeout(wakeTimer)
      wakeAt = at
      wakeTimer = setTimeout(
        () => {
          wakeAt = Number.POSITIVE_INFINITY
          if (readerId !== undefined && Date.now() < blockEndsAt)
            redis.call('CLIENT', 'UNBLOCK', readerId, 'TIMEOUT').catch(onError)
        },
        Math.max(0, at - Date.now()),
      )
      wakeTimer.unref()
    }
    const renewTimer = setInterval(() => {
      if (held.size > 0) run('renew', [prefix, group, consumer, ...held]).catch(onError)
    }, leaseMs / 3)
    renewTimer.unref()

    function pulled(entryId: string, fields: Fields, deliveries: number): RedisPulled {
      const base = Number(text(fields, 'a') ?? '0')
      held.add(entryId)
      return {
        entryId,
        base,
        topic: text(fields, 't') ?? '',
        attempt: base + deliveries,
        envelope: {
          id: text(fields, 'i') ?? '',
          headers: parseStoredHeaders(text(fields, 'h') ?? ''),
          body: fields.get('b') ?? Buffer.alloc(0),
        },
      }
    }

    return {
      async fetch(max) {
        const now = Date.now()
        // Look at the delayed set when something there is due, or every poll interval for what other
        // processes scheduled; not on every fetch.
        if (now >= nextDueAt || now - lastMove >= pollIntervalMs) {
          lastMove = now
          const untilDue = (await run('moveDue', [prefix, group, now, 1_000])) as number
          nextDueAt = untilDue < 0 ? Number.POSITIVE_INFINITY : now + Math.max(1, untilDue)
        }
        const untilDue = nextDueAt - now
        if (now - lastReclaim >= leaseMs / 4) {
          lastReclaim = now
          const flat = (await run('reclaim', [prefix, group, consumer, leaseMs, max], true)) as (Buffer | Buffer[])[]
          const taken: RedisPulled[] = []
          for (let i = 0; i + 2 < flat.length; i += 3) {
            const fields = toFields(flat[i + 2] as Buffer[])
            taken.push(pulled(String(flat[i]), fields, Number(String(flat[i + 1]))))
          }
          if (taken.length > 0) return taken
        }
        if (stopped) return []
        const block = Math.max(1, Math.min(pollIntervalMs, untilDue))
        blockEndsAt = Date.now() + block
        const reply = (await reader
          .callBuffer('XREADGROUP', [
            'GROUP',
            'herald',
            consumer,
            'COUNT',
            max,
            'BLOCK',
            block,
            'STREAMS',
            streamKey(group),
            '>',
          ])
          .finally(() => {
            blockEndsAt = 0
          })) as [Buffer, [Buffer, Buffer[]][]][] | null
        const entries = reply?.[0]?.[1] ?? []
        return entries.map(([id, list]) => pulled(id.toString(), toFields(list), 1))
      },
      async settle(message, settlement: Settlement) {
        const { entryId } = message
        const now = Date.now()
        switch (settlement.kind) {
          case 'ack':
            await acker.submit(entryId)
            break
          case 'release':
            await run('release', [prefix, group, consumer, entryId, message.attempt - 1])
            break
          case 'retry':
            nextDueAt = Math.min(nextDueAt, now + settlement.delayMs)
            wakeReaderAt(now + settlement.delayMs)
            await run('retry', [
              prefix,
              group,
              consumer,
              entryId,
              message.attempt,
              now + settlement.delayMs,
              now,
              JSON.stringify(settlement.error),
              uuidV7(),
            ])
            break
          case 'dead-letter': {
            // The claim that found the attempts used up delivered nothing: do not count it.
            const attempts = settlement.reason === 'max_deliveries_exceeded' ? message.attempt - 1 : message.attempt
            const error = settlement.error === undefined ? '' : JSON.stringify(settlement.error)
            await run('deadLetter', [prefix, group, consumer, entryId, settlement.reason, attempts, now, error])
            break
          }
        }
        held.delete(entryId)
      },
      async waitForWork() {
        // fetch() already blocked in XREADGROUP; look again at once.
      },
      stop() {
        stopped = true
        clearInterval(renewTimer)
        clearTimeout(wakeTimer)
        blocking.delete(reader)
        reader.disconnect()
      },
    }
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
      await transport.declareGroup(spec.group, spec.patterns)
      return consumers.start(spec, handler, (_wake: WakeSignal) => sourceFor(spec.group))
    },

    async close() {
      if (closed) return
      closed = true
      await consumers.closeAll()
      await publisher.flush()
      for (const reader of blocking) reader.disconnect()
      await redis.quit().catch(() => {})
    },

    async declareGroup(group, patterns) {
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
          const [[, length], [, delayed], [, notDue], [, earliest], [, info]] = (await redis
            .multi()
            .xlen(streamKey(group))
            .zcard(`${prefix}:d:${group}`)
            .zcount(`${prefix}:d:${group}`, `(${now}`, '+inf')
            .zrange(`${prefix}:d:${group}`, '0', '0', 'WITHSCORES')
            .xinfo('GROUPS', streamKey(group))
            .exec()
            .catch(() => [[], [], [], [], [null, []]])) as [
            [unknown, number],
            [unknown, number],
            [unknown, number],
            [unknown, string[]],
            [unknown, unknown[][]],
          ]
          // The oldest due message: the first entry no consumer has read yet (its id is its enqueue time), or a
          // delayed one already due but not yet moved to the stream.
          const fields = (info ?? []).map((row) => {
            const map = new Map<string, unknown>()
            for (let i = 0; i + 1 < row.length; i += 2) map.set(String(row[i]), row[i + 1])
            return map
          })
          const lastRead = fields.find((f) => f.get('name') === 'herald')?.get('last-delivered-id')
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
            depth: (length ?? 0) + (delayed ?? 0),
            deadLetters: dead.get(group) ?? 0,
            scheduled: notDue ?? 0,
            oldestDueAgeMs: Number.isFinite(oldest) ? Math.max(0, now - oldest) : 0,
          }
        }),
      )
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
        .del(streamKey(group), `${prefix}:d:${group}`, `${prefix}:dd:${group}`, `${prefix}:db:${group}`)
        .exec()
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
      for (let i = 0; i < ids.length; i += 500) count += await redis.xdel(`${prefix}:dlq`, ...ids.slice(i, i + 500))
      return count
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

/** Stream ids compare as (milliseconds, sequence). */
function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number)
  const [bm = 0, bs = 0] = b.split('-').map(Number)
  return am - bm || as - bs
}

function deadLetterFrom(fields: Fields): DeadLetter {
  const error = text(fields, 'e')
  return {
    envelope: {
      id: text(fields, 'i') ?? '',
      headers: parseStoredHeaders(text(fields, 'h') ?? ''),
      body: fields.get('b') ?? Buffer.alloc(0),
    },
    topic: text(fields, 't') ?? '',
    group: text(fields, 'g') ?? '',
    reason: (text(fields, 'r') ?? 'handler_error') as DeadLetterReason,
    attempts: Number(text(fields, 'n') ?? '0'),
    error: error === undefined || error === '' ? undefined : (JSON.parse(error) as ErrorInfo),
    firstFailedAt: Number(text(fields, 'ff') ?? '0'),
    lastFailedAt: Number(text(fields, 'lf') ?? '0'),
    deadLetteredAt: Number(text(fields, 'at') ?? '0'),
  }
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
