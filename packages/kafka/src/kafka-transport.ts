import {
  assertTopic,
  assertTopicPattern,
  ConfigurationError,
  compareDeadLetters,
  compileTopicPattern,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterPage,
  type DeadLetterQuery,
  type DurableTransport,
  type Envelope,
  type GroupInfo,
  type GroupSettings,
  groupSettingsOf,
  matchesDeadLetterFilter,
  NoRouteError,
  orderingKeyOf,
  type PublishOptions,
  pageOfDeadLetters,
  resolveKeyOrdering,
  TransportClosedError,
  uuidV7,
} from '@herald/core'
import { createConsumerSet } from '@herald/core/adapter'
import { Admin, Consumer } from '@platformatic/kafka'
import { createGroupSource } from './group-source.js'
import { latestByKey, readLog } from './log-reader.js'
import { kafkaNames } from './names.js'
import { createProducer, type Outgoing } from './producer.js'
import { deadLetterKey, deadLetterOf, H, outgoing } from './records.js'

export interface KafkaTransportOptions {
  /** `host:port` of one or more brokers. */
  readonly brokers: readonly string[]
  /** Prefix of every topic and consumer group Herald creates. Default `herald`. */
  readonly prefix?: string
  /** Partitions of each topic Herald creates. Default 6. */
  readonly partitions?: number
  /** Replicas of each topic Herald creates. Default 3, or the number of brokers when fewer. */
  readonly replicas?: number
  /** How long a publish keeps trying (through a leader's failover) before it is indeterminate. Default 30 s. */
  readonly publishTimeoutMs?: number
  /** Kafka consumer-group session: a consumer silent this long loses its partitions. Default 10 s. */
  readonly sessionTimeoutMs?: number
  /** How often finished offsets are committed. Default 200 ms. */
  readonly commitIntervalMs?: number
  /** How often bindings and the list of topics are read again (new topics for `*.x` patterns). Default 2 s. */
  readonly refreshMs?: number
  /** Errors the transport survived. */
  readonly onError?: (err: unknown) => void
  /** The wall clock for due times. Default `Date.now`. */
  readonly now?: () => number
}

/** Every capability of a durable transport; `listHeldKeys` is always empty (a Kafka group goes on after a dead letter). */
export type KafkaTransport = DurableTransport

interface Binding {
  readonly patterns: readonly string[]
  readonly settings: GroupSettings
}

function positiveInteger(field: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0)) throw new ConfigurationError(field, 'must be a positive integer')
  return value
}

const settingsPattern = ''

/**
 * Herald on Apache Kafka. Groups are Kafka consumer groups; a Herald topic is written to the Kafka topic of its
 * first word (see `names.ts`); keys are Kafka keys, so a key's messages share a partition and keep their order.
 * Bindings live in a compacted topic, so publishers know whether anyone listens (commands) and a new group starts
 * at the end of the topics it binds rather than at their beginning. Dead letters live in another compacted topic,
 * keyed by group and id, so purging one is writing its tombstone.
 */
export async function createKafkaTransport(options: KafkaTransportOptions): Promise<KafkaTransport> {
  if (options.brokers.length === 0) throw new ConfigurationError('brokers', 'name at least one broker (host:port)')
  for (const broker of options.brokers) {
    // Not echoed: a malformed entry may hold a credential pasted from a URL.
    if (!/^[^\s:@/]+:\d{1,5}$/.test(broker)) throw new ConfigurationError('brokers', 'each broker is host:port')
  }
  const names = kafkaNames(options.prefix ?? 'herald')
  const onError = options.onError ?? (() => {})
  const now = options.now ?? Date.now
  const brokers = [...options.brokers]
  const partitions = positiveInteger('partitions', options.partitions ?? 6)
  const replicas = positiveInteger('replicas', options.replicas ?? Math.min(3, brokers.length))
  const sessionTimeoutMs = positiveInteger('sessionTimeoutMs', options.sessionTimeoutMs ?? 10_000)
  const commitIntervalMs = positiveInteger('commitIntervalMs', options.commitIntervalMs ?? 200)
  const refreshMs = positiveInteger('refreshMs', options.refreshMs ?? 2_000)
  const clientId = `herald-${uuidV7().slice(-12)}`
  const admin = new Admin({ clientId: `${clientId}-admin`, bootstrapBrokers: brokers, retries: 3, retryDelay: 250 })
  // Reads Herald's compacted topics with plain fetches: it never joins its group.
  const reader = new Consumer({
    groupId: `${names.consumerGroup('reader')}-${clientId}`,
    clientId: `${clientId}-reader`,
    bootstrapBrokers: brokers,
  })
  // A client reports some failures only as an 'error' event on itself; unheard, that is an uncaught exception.
  admin.on('error', onError)
  reader.on('error', onError)
  const producer = createProducer({
    clientId: `${clientId}-producer`,
    brokers,
    admin,
    partitions,
    replicas,
    publishTimeoutMs: options.publishTimeoutMs ?? 30_000,
    onError,
  })
  const compacted = { 'cleanup.policy': 'compact', 'min.insync.replicas': String(Math.min(2, replicas)) }
  try {
    await producer.ensureTopics([names.bindings, names.deadLetters], compacted)
  } catch (err) {
    await Promise.allSettled([producer.close(), admin.close(), reader.close()])
    throw err
  }
  const consumers = createConsumerSet(onError)
  const closing = new Set<Promise<void>>()
  let bindings = new Map<string, Binding>()
  let routes: { patterns: readonly string[]; test: (topic: string) => boolean }[] = []
  let closed = false

  async function loadBindings(): Promise<Map<string, Binding>> {
    const latest = latestByKey(await readLog(reader, names.bindings))
    const loaded = new Map<string, { patterns: string[]; settings: GroupSettings }>()
    for (const [key, record] of latest) {
      const split = key.indexOf('\u0000')
      const group = key.slice(0, split)
      const pattern = key.slice(split + 1)
      const entry = loaded.get(group) ?? { patterns: [], settings: {} }
      if (pattern === settingsPattern) entry.settings = JSON.parse(record.value?.toString() ?? '{}') as GroupSettings
      else entry.patterns.push(pattern)
      loaded.set(group, entry)
    }
    const next = new Map<string, Binding>()
    for (const [group, entry] of loaded) next.set(group, { patterns: entry.patterns.sort(), settings: entry.settings })
    // Keep each group's array when unchanged: sources compare it by identity.
    for (const [group, binding] of next) {
      const old = bindings.get(group)
      if (old !== undefined && old.patterns.join('\n') === binding.patterns.join('\n')) next.set(group, old)
    }
    bindings = next
    routes = [...next.values()].flatMap((b) =>
      b.patterns.map((p) => ({ patterns: b.patterns, test: compileTopicPattern(p) })),
    )
    return next
  }

  const refresh = setInterval(() => {
    if (!closed) loadBindings().catch(onError)
  }, refreshMs)

  function check(): void {
    if (closed) throw new TransportClosedError('kafka')
  }

  async function routed(topic: string): Promise<boolean> {
    if (routes.some((r) => r.test(topic))) return true
    await loadBindings()
    return routes.some((r) => r.test(topic))
  }

  async function messageTopics(): Promise<string[]> {
    return (await admin.listTopics()).filter((t) => names.isMessageTopic(t))
  }

  /** The Kafka topics a set of patterns reads. */
  async function topicsFor(patterns: readonly string[]): Promise<string[]> {
    const topics = new Set<string>()
    let all = false
    for (const pattern of patterns) {
      const of = names.topicsOf(pattern)
      if (of === 'all') all = true
      else for (const t of of) topics.add(t)
    }
    if (all) for (const t of await messageTopics()) topics.add(t)
    return [...topics]
  }

  async function write(records: readonly Outgoing[]): Promise<void> {
    check()
    await producer.send(records)
  }

  function records(topic: string, envelopes: readonly Envelope[], extra?: Record<string, string>): Outgoing[] {
    const kafkaTopic = names.topicOf(topic)
    return envelopes.map((e) => outgoing(kafkaTopic, topic, e, orderingKeyOf(e), extra))
  }

  async function publishTo(
    topic: string,
    envelopes: readonly Envelope[],
    publishOptions: PublishOptions | undefined,
    extra?: Record<string, string>,
  ): Promise<void> {
    check()
    assertTopic(topic)
    if (publishOptions?.mandatory === true && !(await routed(topic))) throw new NoRouteError(topic)
    await write(records(topic, envelopes, extra))
  }

  /**
   * A new group starts at the end of every topic it binds that exists now, so it gets only what is published
   * after it was bound; topics created later are read from their beginning.
   */
  async function startAtEnd(group: string, topics: readonly string[]): Promise<void> {
    if (topics.length === 0) return
    const ends = await reader.listOffsets({ topics: [...topics] })
    const alter = [...ends]
      .map(([name, offsets]) => ({
        name,
        partitionOffsets: offsets.map((offset, partition) => ({ partition, offset })).filter((p) => p.offset > 0n),
      }))
      .filter((t) => t.partitionOffsets.length > 0)
    if (alter.length === 0) return
    await admin.alterConsumerGroupOffsets({ groupId: names.consumerGroup(group), topics: alter })
  }

  async function declareGroup(group: string, patterns: readonly string[], settings?: GroupSettings): Promise<void> {
    check()
    for (const pattern of patterns) assertTopicPattern(pattern)
    const current = await loadBindings()
    const existing = current.get(group)
    const topics = await topicsFor(patterns)
    await producer.ensureTopics([...topics, names.groupTopic(group)])
    if (existing === undefined) await startAtEnd(group, topics)
    const wanted: Outgoing[] = []
    const bind = (pattern: string, value: string): Outgoing => ({
      topic: names.bindings,
      key: Buffer.from(`${group}\u0000${pattern}`),
      value: Buffer.from(value),
      headers: {},
    })
    if (existing === undefined || settings !== undefined)
      wanted.push(bind(settingsPattern, JSON.stringify(settings ?? existing?.settings ?? {})))
    for (const pattern of patterns) if (!existing?.patterns.includes(pattern)) wanted.push(bind(pattern, '1'))
    if (wanted.length > 0) await write(wanted)
    await loadBindings()
  }

  async function allDeadLetters(): Promise<DeadLetter[]> {
    const latest = latestByKey(await readLog(reader, names.deadLetters))
    return [...latest.values()].map((r) => deadLetterOf(r.headers, r.value)).sort(compareDeadLetters)
  }

  function tombstone(topic: string, key: string): Outgoing {
    return { topic, key: Buffer.from(key), value: undefined, headers: {} }
  }

  const transport: KafkaTransport = {
    name: 'kafka',

    publish: (topic, envelopes, publishOptions) => publishTo(topic, envelopes, publishOptions),

    schedule: (topic, envelopes, deliverAt, publishOptions) =>
      publishTo(topic, envelopes, publishOptions, { [H.due]: String(Math.ceil(deliverAt)) }),

    async subscribe(spec, handler) {
      check()
      await declareGroup(spec.group, spec.patterns, groupSettingsOf(spec))
      const ordering = resolveKeyOrdering(spec.ordering)
      if (ordering.afterDeadLetter === 'hold') {
        throw new ConfigurationError(
          'ordering.afterDeadLetter',
          'Kafka groups go on after a dead letter; "hold" is not supported',
        )
      }
      const empty: readonly string[] = []
      const group = spec.group
      let source: ReturnType<typeof createGroupSource> | undefined
      const subscription = consumers.start(spec, handler, (wake) => {
        source = createGroupSource({
          group,
          names,
          brokers,
          clientId: `${clientId}-${group}`,
          patterns: () => bindings.get(group)?.patterns ?? empty,
          topics: () => topicsFor(bindings.get(group)?.patterns ?? spec.patterns),
          ordering,
          producer,
          maxBuffered: Math.max(1_000, 4 * (spec.maxInFlight ?? 10)),
          sessionTimeoutMs,
          commitIntervalMs,
          topicRefreshMs: refreshMs,
          wake,
          onError,
          now,
          onStopping: (stopping) => {
            closing.add(stopping)
            stopping.catch(onError).finally(() => closing.delete(stopping))
          },
        })
        return source
      })
      // Live once the consumer has joined its group and been given its partitions.
      await source?.ready
      return subscription
    },

    async listDeadLetters(query: DeadLetterQuery = {}): Promise<DeadLetterPage> {
      return pageOfDeadLetters(await allDeadLetters(), query)
    },

    async getDeadLetter(id, group) {
      return (await allDeadLetters()).find((l) => l.envelope.id === id && (group === undefined || l.group === group))
    },

    async redriveDeadLetters(filter: DeadLetterFilter) {
      const chosen = (await allDeadLetters()).filter((l) => matchesDeadLetterFilter(l, filter) && l.group !== '')
      for (let i = 0; i < chosen.length; i += 500) {
        const batch = chosen.slice(i, i + 500)
        // The copy first, then the tombstone: a crash between them leaves a dead letter that was also redriven.
        await write(
          batch.map((l) => outgoing(names.groupTopic(l.group), l.topic, l.envelope, orderingKeyOf(l.envelope))),
        )
        await write(batch.map((l) => tombstone(names.deadLetters, deadLetterKey(l.group, l.envelope.id))))
      }
      return chosen.length
    },

    async purgeDeadLetters(filter: DeadLetterFilter) {
      const chosen = (await allDeadLetters()).filter((l) => matchesDeadLetterFilter(l, filter))
      if (chosen.length > 0)
        await write(chosen.map((l) => tombstone(names.deadLetters, deadLetterKey(l.group, l.envelope.id))))
      return chosen.length
    },

    declareGroup,

    async listGroups(): Promise<readonly GroupInfo[]> {
      check()
      const current = await loadBindings()
      const letters = await allDeadLetters()
      const infos: GroupInfo[] = []
      for (const [group, binding] of current) {
        const topics = [...(await topicsFor(binding.patterns)), names.groupTopic(group)]
        let depth = 0
        try {
          const ends = await reader.listOffsets({ topics })
          // A group that never committed has no offsets to list: it reads from each topic's start.
          const committed = await admin
            .listConsumerGroupOffsets({ groups: [names.consumerGroup(group)] })
            .then(([g]) => g?.topics ?? [])
            .catch(() => [])
          const at = new Map<string, bigint>()
          for (const t of committed) {
            for (const p of t.partitions) at.set(`${t.name}:${p.partitionIndex}`, p.committedOffset)
          }
          for (const [topic, offsets] of ends) {
            offsets.forEach((end, partition) => {
              const stored = at.get(`${topic}:${partition}`) ?? 0n
              const from = stored < 0n ? 0n : stored
              if (end > from) depth += Number(end - from)
            })
          }
        } catch (err) {
          onError(err)
        }
        infos.push({
          group,
          patterns: binding.patterns,
          depth,
          deadLetters: letters.filter((l) => l.group === group).length,
        })
      }
      return infos.sort((a, b) => (a.group < b.group ? -1 : 1))
    },

    async unbindGroup(group, patterns) {
      check()
      const existing = (await loadBindings()).get(group)
      const gone = patterns.filter((p) => existing?.patterns.includes(p))
      if (gone.length > 0) await write(gone.map((p) => tombstone(names.bindings, `${group}\u0000${p}`)))
      await loadBindings()
    },

    async deleteGroup(group) {
      check()
      const existing = (await loadBindings()).get(group)
      if (existing === undefined) return
      await write([settingsPattern, ...existing.patterns].map((p) => tombstone(names.bindings, `${group}\u0000${p}`)))
      await admin.deleteGroups({ groups: [names.consumerGroup(group)] }).catch(onError)
      await loadBindings()
    },

    async describeTopology() {
      const current = await loadBindings()
      return {
        transport: 'kafka',
        entry: `${names.topicOf('x').slice(0, -1)}<first word of the topic>`,
        groups: [...current].map(([group, b]) => ({ group, patterns: b.patterns, queue: names.consumerGroup(group) })),
        delays: `held by each group's consumer until due (${H.due} header); retries in ${names.groupTopic('x').slice(0, -1)}<group>`,
        deadLetters: names.deadLetters,
      }
    },

    async listHeldKeys() {
      // Kafka groups go on after a dead letter (policy "continue"): no key is ever held.
      return []
    },

    async releaseKey() {
      return false
    },

    async checkHealth() {
      try {
        const metadata = await admin.metadata({ topics: [names.bindings], forceUpdate: true })
        return { ok: true, details: { brokers: metadata.brokers.size } }
      } catch (err) {
        return { ok: false, details: { error: String(err) } }
      }
    },

    async close() {
      if (closed) return
      closed = true
      clearInterval(refresh)
      await consumers.closeAll()
      await Promise.all([...closing])
      await producer.close().catch(onError)
      await Promise.allSettled([admin.close(), reader.close()])
    },
  }
  await loadBindings()
  return transport
}
