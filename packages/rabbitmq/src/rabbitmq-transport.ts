import {
  assertTopicPattern,
  ConfigurationError,
  type DeadLetterStore,
  type Envelope,
  type ErrorInfo,
  type GroupInfo,
  type HealthCheck,
  InvalidHeaderError,
  type Scheduler,
  type Settlement,
  type TopologyAdmin,
  type TopologyDescriber,
  type Transport,
  TransportClosedError,
} from '@herald/core'
import { createConsumerSet, type PulledMessage, type PullSource } from '@herald/core/adapter'
import type { Channel, ConsumeMessage, Options } from 'amqplib'
import {
  attemptOf,
  carriedHeaders,
  copyOptions,
  encodingProblem,
  envelopeFrom,
  publishOptions,
  topicOf,
  X,
} from './amqp-message.js'
import { type BrokerConnection, type Generation, type Outgoing, openBrokerConnection } from './connection.js'
import { createDeadLetterBrowser } from './dead-letters.js'
import { createManagementClient, vhostOf } from './management.js'
import {
  declareGroupQueue,
  declareInfrastructure,
  delayEntry,
  delayedQueueKey,
  delayedTopicKey,
  delayLevels,
  maxDelayMs,
  namesFor,
  type QueueType,
  roundDelay,
  unbindGroupQueue,
} from './topology.js'

export interface RabbitMqTransportOptions {
  /** `amqp://user:pass@host:5672/vhost` */
  readonly url: string
  /** The topic exchange events and commands are published to. Default `herald`. */
  readonly exchange?: string
  /** Prefix of Herald's own exchanges and queues (delay levels, dead letters). Default `herald`. */
  readonly namespace?: string
  /** The queue of a group. Default: the group's name, so a topology can be declared exactly as designed. */
  readonly queueName?: (group: string) => string
  /** `quorum` (default; replicated, fsynced before confirm, delivery limit) or `classic`. */
  readonly queueType?: QueueType
  /**
   * The quorum queue's `x-delivery-limit`: a guard above Herald's own attempt count. A message the broker delivered
   * this many times without an outcome (crash loops) is moved to the dead-letter queue by the broker. Default 50.
   */
  readonly deliveryLimit?: number
  /** How long a publish waits for a connection, an unblocked broker and its confirm. Default 10 s. */
  readonly publishTimeoutMs?: number
  /** AMQP heartbeat: a dead peer is noticed after about two missed beats. Default 10 s. */
  readonly heartbeatSeconds?: number
  /** Delay before reconnecting after a lost connection, doubling per failed attempt up to `maxMs`. */
  readonly reconnect?: { readonly initialMs?: number; readonly maxMs?: number }
  /**
   * The broker's management HTTP API, `http://user:pass@host:15672` (the `rabbitmq_management` plugin). With it,
   * `listGroups` and `describeTopology` show every group bound to the exchange, from any process, with in-flight
   * counts and ack rates; without it, AMQP can only tell about the groups declared through this transport.
   */
  readonly managementUrl?: string
  /** Errors the transport survived (connection loss, a failed ack): the message comes back from the broker. */
  readonly onError?: (err: unknown) => void
}

export type RabbitMqTransport = Transport &
  Scheduler &
  DeadLetterStore &
  TopologyAdmin &
  TopologyDescriber &
  HealthCheck

interface Delivered extends PulledMessage {
  readonly message: ConsumeMessage
  readonly channel: Channel
}

interface Attached {
  readonly spec: { readonly group: string; readonly maxInFlight: number }
  attach(gen: Generation): Promise<void>
}

/** How long `close()` waits for the broker to answer channel closes before closing the connection anyway. */
const closeWaitMs = 5_000

function boundedBy(ms: number, work: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    work.then(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

function positive(field: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) throw new ConfigurationError(field, 'must be a positive number')
  return value
}

/**
 * Herald on RabbitMQ: a topic exchange, one durable (quorum) queue per group bound with its patterns, publisher
 * confirms, manual acks with a prefetch equal to the subscription's concurrency, retries and delayed messages
 * through TTL delay levels (no plugin), dead letters in a durable queue, and reconnection that re-declares
 * topology and restarts consumers. See docs/rabbitmq.md and decision 0008.
 */
export async function createRabbitMqTransport(options: RabbitMqTransportOptions): Promise<RabbitMqTransport> {
  const queueType = options.queueType ?? 'quorum'
  const deliveryLimit = positive('deliveryLimit', options.deliveryLimit ?? 50)
  const publishTimeoutMs = positive('publishTimeoutMs', options.publishTimeoutMs ?? 10_000)
  const onError = options.onError ?? (() => {})
  const queueFor = options.queueName ?? ((group: string) => group)
  const names = namesFor(options.namespace ?? 'herald', options.exchange ?? 'herald', queueFor)
  // Groups declared through this transport: re-declared on every reconnect, listed by `listGroups`.
  const groups = new Map<string, Set<string>>()
  const queueToGroup = new Map<string, string>()
  const management =
    options.managementUrl === undefined
      ? undefined
      : createManagementClient(options.managementUrl, vhostOf(options.url), publishTimeoutMs)

  /**
   * Groups and their patterns: from the broker's bindings on the exchange when the management API is configured
   * (every process's groups), with those declared here; otherwise only those declared here.
   */
  async function knownGroups(): Promise<[string, string[]][]> {
    const all = new Map<string, Set<string>>()
    for (const [group, patterns] of groups) all.set(group, new Set(patterns))
    if (management !== undefined) {
      for (const [queue, keys] of await management.queuesBoundTo(names.exchange)) {
        const group = queueToGroup.get(queue) ?? queue
        const known = all.get(group) ?? new Set()
        for (const key of keys) known.add(key)
        all.set(group, known)
      }
    }
    return [...all].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([g, p]) => [g, [...p].sort()])
  }
  const attached = new Set<Attached>()
  const channelCloses = new Set<Promise<void>>()
  let closed = false

  const consumers = createConsumerSet(onError)

  async function declare(channel: Channel, group: string, patterns: readonly string[]) {
    await declareGroupQueue(channel, names, group, patterns, queueType, deliveryLimit)
  }

  const connection: BrokerConnection = await openBrokerConnection({
    url: options.url,
    heartbeatSeconds: options.heartbeatSeconds ?? 10,
    publishTimeoutMs,
    reconnectDelayMs: { initial: options.reconnect?.initialMs ?? 100, max: options.reconnect?.maxMs ?? 2_000 },
    onError,
    async onConnect(gen) {
      const channel = await gen.model.createChannel()
      try {
        await declareInfrastructure(channel, names, queueType)
        for (const [group, patterns] of groups) await declare(channel, group, [...patterns])
      } finally {
        await channel.close().catch(() => {})
      }
      for (const consumer of attached) await consumer.attach(gen)
    },
  })

  function assertOpen(): void {
    if (closed) throw new TransportClosedError('rabbitmq')
  }

  /** Runs `work` on a short-lived channel of the current connection (declarations, browsing). */
  async function withChannel<T>(work: (channel: Channel) => Promise<T>): Promise<T> {
    const gen = await connection.current()
    const channel = await gen.model.createChannel()
    channel.on('error', () => {})
    try {
      return await work(channel)
    } finally {
      await channel.close().catch(() => {})
    }
  }

  function outgoing(topic: string, envelope: Envelope, mandatory: boolean, delayMs: number): Outgoing {
    const content = Buffer.from(envelope.body.buffer, envelope.body.byteOffset, envelope.body.byteLength)
    const options =
      delayMs <= 0 ? publishOptions(envelope, {}, mandatory) : publishOptions(envelope, { [X.topic]: topic })
    const problem = encodingProblem(options)
    if (problem !== undefined) throw new InvalidHeaderError(`message ${envelope.id}`, `cannot be sent: ${problem}`)
    if (delayMs <= 0) return { exchange: names.exchange, routingKey: topic, content, options, topic }
    return { exchange: delayEntry(names), routingKey: delayedTopicKey(delayMs, topic), content, options, topic }
  }

  /** The exchanges only Herald publishes to: its delay levels and the exchange they end in. */
  const ownExchanges = new Set([
    names.delayedExchange,
    ...Array.from({ length: delayLevels }, (_, l) => names.delayExchange(l)),
  ])

  /** Where Herald sends its own copies of a group's message: through its delay exchanges, so they are known. */
  function ownCopyTo(queue: string, delay: number): { exchange: string; routingKey: string } {
    return delay === 0
      ? { exchange: names.delayedExchange, routingKey: delayedQueueKey(0, queue) }
      : { exchange: delayEntry(names), routingKey: delayedQueueKey(delay, queue) }
  }

  function delayFor(deliverAt: number): number {
    const delay = roundDelay(deliverAt - Date.now())
    if (delay > maxDelayMs) throw new ConfigurationError('deliverAt', `must be within ${maxDelayMs} ms from now`)
    return delay
  }

  /** The copy of a delivered message that a retry or a dead letter sends on. */
  function moved(delivered: Delivered, extra: Record<string, string | number>): Options.Publish {
    return copyOptions(
      delivered.message,
      { ...carriedHeaders(delivered.message), [X.topic]: delivered.topic, ...extra },
      delivered.envelope.id,
    )
  }

  /**
   * A dead letter's copy when the message's own headers leave no room for Herald's: the other headers are left
   * out (the body, id, type and topic are kept), and the dead letter's error says so.
   */
  function slimmed(delivered: Delivered, extra: Record<string, string | number>, problem: string): Options.Publish {
    const kept: Record<string, string | number> = {}
    for (const name of ['cloudEvents:id', 'cloudEvents:type', 'cloudEvents:source', 'cloudEvents:time']) {
      const value = delivered.message.properties.headers?.[name]
      if (typeof value === 'string' && value.length <= 1_000) kept[name] = value
    }
    const why = `the message's other headers were left out: ${problem}`
    const error = extra[X.error] === '' ? undefined : (JSON.parse(String(extra[X.error])) as ErrorInfo)
    const noted: ErrorInfo = {
      name: error?.name ?? 'HeadersDropped',
      message: `${error?.message ?? ''} (${why})`.slice(0, 4_000),
    }
    return copyOptions(
      delivered.message,
      { ...kept, [X.topic]: delivered.topic, ...extra, [X.error]: JSON.stringify(noted) },
      delivered.envelope.id,
    )
  }

  function failureHeaders(delivered: Delivered, now: number): Record<string, string | number> {
    const first = Number(delivered.message.properties.headers?.[X.firstFailedAt] ?? now)
    return { [X.firstFailedAt]: Number.isFinite(first) ? first : now, [X.lastFailedAt]: now }
  }

  function retryCopy(delivered: Delivered, settlement: Settlement & { kind: 'retry' }, now: number): Options.Publish {
    return moved(delivered, {
      ...failureHeaders(delivered, now),
      [X.attempts]: delivered.attempt,
      [X.error]: JSON.stringify(settlement.error),
    })
  }

  /** A retry whose copy could never be sent is dead-lettered now, rather than failing to settle on every try. */
  function unsendableRetry(delivered: Delivered, options: Options.Publish): Settlement | undefined {
    const problem = encodingProblem(options)
    if (problem === undefined) return undefined
    const error = { name: 'InvalidHeaderError', message: `cannot be retried: ${problem}` }
    return { kind: 'dead-letter', reason: 'too_large', error, attempts: delivered.attempt }
  }

  /** What `settle` will store: observers hear of the dead letter an unsendable retry becomes, not of a retry. */
  function revise(delivered: Delivered, settlement: Settlement): Settlement {
    if (settlement.kind !== 'retry') return settlement
    return unsendableRetry(delivered, retryCopy(delivered, settlement, Date.now())) ?? settlement
  }

  async function settle(delivered: Delivered, queue: string, settlement: Settlement): Promise<void> {
    const { message, channel } = delivered
    const now = Date.now()
    switch (settlement.kind) {
      case 'ack':
        channel.ack(message)
        return
      case 'release':
        channel.nack(message, false, true)
        return
      case 'retry': {
        const delay = roundDelay(settlement.delayMs)
        const options = retryCopy(delivered, settlement, now)
        const revised = unsendableRetry(delivered, options)
        if (revised !== undefined) return settle(delivered, queue, revised)
        await connection.publish([
          { ...ownCopyTo(queue, delay), content: message.content, options, topic: delivered.topic },
        ])
        channel.ack(message)
        return
      }
      case 'dead-letter': {
        const { attempts } = settlement
        const extra = {
          ...failureHeaders(delivered, now),
          [X.attempts]: attempts,
          [X.group]: queueToGroup.get(queue) ?? queue,
          [X.reason]: settlement.reason,
          [X.deadLetteredAt]: now,
          [X.error]: settlement.error === undefined ? '' : JSON.stringify(settlement.error),
        }
        const full = moved(delivered, extra)
        const problem = encodingProblem(full)
        const options = problem === undefined ? full : slimmed(delivered, extra, problem)
        await connection.publish([
          {
            exchange: '',
            routingKey: names.deadLetterQueue,
            content: message.content,
            options,
            topic: delivered.topic,
          },
        ])
        channel.ack(message)
        return
      }
    }
  }

  /** A consumer's source: the broker pushes up to `maxInFlight` unacked deliveries, the loop takes them from here. */
  function sourceFor(spec: { readonly group: string; readonly maxInFlight: number }): {
    source: PullSource<Delivered> & { stop(): void }
    consumer: Attached
  } {
    const queue = queueFor(spec.group)
    let buffer: Delivered[] = []
    let channel: Channel | undefined
    let attachedTo: Generation | undefined
    let waiter: (() => void) | undefined
    let abortHooked = false
    const wake = () => {
      const wakeUp = waiter
      waiter = undefined
      wakeUp?.()
    }
    let stopped = false
    const consumer: Attached = {
      spec,
      async attach(gen) {
        // Subscribing and reconnecting may both attach: one channel per connection.
        if (stopped || attachedTo === gen) return
        attachedTo = gen
        const next = await gen.model.createChannel()
        next.on('error', onError)
        await next.prefetch(spec.maxInFlight)
        channel = next
        buffer = []
        next.once('close', () => {
          if (channel === next) channel = undefined
          buffer = buffer.filter((d) => d.channel !== next)
          if (attachedTo === gen) attachedTo = undefined
          // A channel closed under a live connection (a channel error) is re-opened; a lost connection reconnects.
          if (!stopped && gen.isOpen()) setTimeout(() => consumer.attach(gen).catch(onError), 100)
        })
        await next.consume(queue, (message) => {
          if (message === null) return // cancelled by the broker (queue deleted)
          const envelope = envelopeFrom(message)
          // Herald's bookkeeping headers count only on its own copies, which come through its delay exchanges
          // (the broker names the exchange a message came through; a publisher cannot).
          const own = ownExchanges.has(message.fields.exchange)
          buffer.push({
            envelope,
            topic: topicOf(message, own),
            attempt: attemptOf(message, own),
            message,
            channel: next,
          })
          wake()
        })
      },
    }
    attached.add(consumer)
    const source: PullSource<Delivered> & { stop(): void } = {
      async fetch(max) {
        return buffer.splice(0, max)
      },
      async settle(delivered, settlement) {
        // After a lost channel the broker has already put the message back: settling it there is impossible.
        if (delivered.channel !== channel) return
        await settle(delivered, queue, settlement)
      },
      revise,
      waitForWork(signal) {
        if (buffer.length > 0 || signal.aborted) return Promise.resolve()
        // The consumer's signal is the same for its whole life: hook it once, not once per wait.
        if (!abortHooked) {
          abortHooked = true
          signal.addEventListener('abort', () => wake(), { once: true })
        }
        // The broker pushes: wait for the next delivery (a plain callback, no timer: this runs once per delivery).
        return new Promise<void>((resolve) => {
          waiter = resolve
        })
      },
      stop() {
        stopped = true
        attached.delete(consumer)
        const current = channel
        channel = undefined
        buffer = []
        // The broker applies a channel's acks before it answers the channel's close: wait for that before the
        // connection goes, or the broker may drop the last acks with the connection and redeliver those messages.
        if (current !== undefined) {
          const closing = current.close().catch(() => {})
          channelCloses.add(closing)
          void closing.then(() => channelCloses.delete(closing))
        }
      },
    }
    return { source, consumer }
  }

  const transport: RabbitMqTransport = {
    name: 'rabbitmq',

    async publish(topic, envelopes, publishOpts = {}) {
      assertOpen()
      await connection.publish(envelopes.map((e) => outgoing(topic, e, publishOpts.mandatory === true, 0)))
    },

    async schedule(topic, envelopes, deliverAt) {
      assertOpen()
      const delay = delayFor(deliverAt)
      await connection.publish(envelopes.map((e) => outgoing(topic, e, false, delay)))
    },

    async subscribe(spec, handler) {
      assertOpen()
      await transport.declareGroup(spec.group, spec.patterns)
      const maxInFlight = spec.maxInFlight ?? 10
      let consumer: Attached | undefined
      const subscription = consumers.start(spec, handler, () => {
        const made = sourceFor({ group: spec.group, maxInFlight })
        consumer = made.consumer
        return made.source
      })
      await consumer?.attach(await connection.current())
      return subscription
    },

    async close() {
      if (closed) return
      closed = true
      await consumers.closeAll()
      // Channel closes are answered by a live broker at once; on a dead connection they may never be: bounded.
      await boundedBy(closeWaitMs, Promise.all([deadLetters.close(), ...channelCloses]))
      await connection.close()
    },

    async declareGroup(group, patterns) {
      assertOpen()
      if (group.length === 0) throw new ConfigurationError('group', 'must not be empty')
      for (const pattern of patterns) assertTopicPattern(pattern)
      await withChannel((channel) => declare(channel, group, patterns))
      const known = groups.get(group) ?? new Set()
      for (const pattern of patterns) known.add(pattern)
      groups.set(group, known)
      queueToGroup.set(queueFor(group), group)
    },

    async listGroups(): Promise<readonly GroupInfo[]> {
      assertOpen()
      const dead = await deadLetters.countByGroup()
      const result: GroupInfo[] = []
      for (const [group, patterns] of await knownGroups()) {
        const queue = queueFor(group)
        // AMQP counts ready messages exactly and at once; the management API adds the unacknowledged ones and the
        // ack rate, as of its last statistics sample (every 5 s by default).
        const ready = await withChannel(async (channel) => (await channel.checkQueue(queue)).messageCount)
        const figures = await management?.queue(queue)
        result.push({
          group,
          patterns,
          depth: ready + (figures?.unacknowledged ?? 0),
          deadLetters: dead.get(group) ?? 0,
          ...(figures === undefined ? {} : { inFlight: figures.unacknowledged }),
          ...(figures?.ackedPerS === undefined ? {} : { ackedPerS: figures.ackedPerS }),
        })
      }
      return result
    },

    async describeTopology() {
      assertOpen()
      return {
        transport: 'rabbitmq',
        entry: `topic exchange "${names.exchange}"`,
        groups: (await knownGroups()).map(([group, patterns]) => ({
          group,
          patterns,
          queue: `queue "${queueFor(group)}"`,
        })),
        delays: `${delayLevels} TTL levels: exchanges and queues "${names.delayExchange(0)}" … "${names.delayExchange(delayLevels - 1)}" (2^k ms each), then exchange "${names.delayedExchange}"`,
        deadLetters: `queue "${names.deadLetterQueue}"`,
      }
    },

    async unbindGroup(group, patterns) {
      assertOpen()
      await withChannel((channel) => unbindGroupQueue(channel, names, group, patterns))
      for (const pattern of patterns) groups.get(group)?.delete(pattern)
    },

    async deleteGroup(group) {
      assertOpen()
      await withChannel((channel) => channel.deleteQueue(queueFor(group)))
      groups.delete(group)
    },

    listDeadLetters: (query) => deadLetters.list(query),
    getDeadLetter: (id, group) => deadLetters.get(id, group),
    redriveDeadLetters: (filter) => deadLetters.redrive(filter),
    purgeDeadLetters: (filter) => deadLetters.purge(filter),

    async checkHealth() {
      if (closed) return { ok: false, details: { closed: true } }
      const status = connection.status()
      return {
        ok: status.connected && status.blocked === undefined,
        details: { exchange: names.exchange, queueType, ...status },
      }
    },
  }

  const deadLetters = createDeadLetterBrowser({
    queue: names.deadLetterQueue,
    openChannel: async () => (await connection.current()).model.createChannel(),
    publish: (messages) => connection.publish(messages),
    groupOfQueue: (queue) => queueToGroup.get(queue) ?? queue,
    redriveTo: (group) => ownCopyTo(queueFor(group), 0),
  })

  return transport
}
