import type { DeadLetterStore, GroupInfo, HealthCheck, Scheduler, TopologyAdmin } from '../capabilities.js'
import { pullConsumerOptions } from '../consumer/consumer-set.js'
import { type PulledMessage, type PullSource, type Settlement, startPullConsumer } from '../consumer/pull-consumer.js'
import { createWakeSignal, type WakeSignal } from '../consumer/wake-signal.js'
import {
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterPage,
  type DeadLetterQuery,
  matchesDeadLetterFilter,
} from '../dead-letter.js'
import type { Envelope } from '../envelope.js'
import { ConfigurationError, NoRouteError, TransportClosedError } from '../errors.js'
import { assertTopic, compileTopicPattern } from '../topic-pattern.js'
import type { Handler, PublishOptions, Subscription, SubscriptionSpec, Transport } from '../transport.js'
import { createDeque, type Deque } from './deque.js'

export interface InMemoryTransportOptions {
  /** Called with errors the consumers survived. Default: ignore. */
  readonly onError?: (err: unknown) => void
  /**
   * Messages a group may hold waiting; a publish to a full group waits for room (backpressure), so memory stays
   * bounded when publishers outrun consumers. Default 10,000.
   */
  readonly maxQueueDepth?: number
}

/** An in-process transport with the same semantics as the durable ones, minus durability. */
export type InMemoryTransport = Transport &
  Scheduler &
  DeadLetterStore &
  TopologyAdmin &
  HealthCheck & {
    /** Puts an envelope straight into a group's queue, bypassing the publisher: for poison-input tests. */
    injectRaw(group: string, topic: string, envelope: Envelope): void
  }

interface QueuedMessage {
  readonly envelope: Envelope
  readonly topic: string
  /** When it became due (published, or its retry's backoff ended): its wait counts from here. */
  dueSince: number
  /** Deliveries so far, this one included once fetched: the queued message is itself what the consumer pulls. */
  attempt: number
  firstFailedAt: number | undefined
}

interface GroupState {
  readonly patterns: Map<string, (topic: string) => boolean>
  readonly ready: Deque<QueuedMessage>
  readonly wake: WakeSignal
  /** Publishes waiting for room in `ready`, first come first served. */
  roomWaiters: Deque<WaitingPublish>
  inFlight: number
  /** Delayed publishes and retries on a timer, not yet in `ready`. */
  scheduled: number
}

/** A publish on its way through its target groups; one object, no closures, while it waits for room. */
interface WaitingPublish {
  readonly targets: readonly GroupState[]
  readonly topic: string
  readonly envelopes: readonly Envelope[]
  /** The next target group to enqueue into. */
  next: number
  resolve?: () => void
}

const delivered: Promise<void> = Promise.resolve()

type InMemoryPulled = QueuedMessage & PulledMessage

/**
 * Creates the in-memory transport. Messages live in this process only: they are lost when it exits, and a
 * delayed message or redelivery waits on a timer. Use it for tests and single-process tools.
 */
export function createInMemoryTransport(options: InMemoryTransportOptions = {}): InMemoryTransport {
  const onError = options.onError ?? (() => {})
  const maxQueueDepth = options.maxQueueDepth ?? 10_000
  if (!(Number.isInteger(maxQueueDepth) && maxQueueDepth > 0)) {
    throw new ConfigurationError('maxQueueDepth', 'must be a positive integer')
  }
  // Groups per topic, cleared whenever a binding changes.
  const routes = new Map<string, GroupState[]>()
  const groups = new Map<string, GroupState>()
  const deadLetters: DeadLetter[] = []
  const subscriptions = new Set<Subscription>()
  const timers = new Set<ReturnType<typeof setTimeout>>()
  let closed = false

  function ensureGroup(name: string): GroupState {
    let group = groups.get(name)
    if (!group) {
      group = {
        patterns: new Map(),
        ready: createDeque(),
        wake: createWakeSignal(),
        roomWaiters: createDeque(),
        inFlight: 0,
        scheduled: 0,
      }
      groups.set(name, group)
    }
    return group
  }

  function enqueue(group: GroupState, message: QueuedMessage, front = false): void {
    if (front) group.ready.unshift(message)
    else group.ready.push(message)
    group.wake.notify()
  }

  function later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      timers.delete(timer)
      fn()
    }, ms)
    timers.add(timer)
  }

  function bind(group: GroupState, patterns: readonly string[]): void {
    for (const pattern of patterns) group.patterns.set(pattern, compileTopicPattern(pattern))
    routes.clear()
  }

  function route(topic: string, mandatory: boolean): GroupState[] {
    if (closed) throw new TransportClosedError('in-memory')
    let targets = routes.get(topic)
    if (targets === undefined) {
      assertTopic(topic)
      targets = [...groups.values()].filter((g) => [...g.patterns.values()].some((match) => match(topic)))
      routes.set(topic, targets)
    }
    if (targets.length === 0 && mandatory) throw new NoRouteError(topic)
    return targets
  }

  /**
   * Enqueues into every target group from `publish.next` on. Returns false when a group is full (or others wait
   * for it): the publish then waits in that group's line and `makeRoom` carries it on.
   */
  function deliver(publish: WaitingPublish): boolean {
    const { targets, topic, envelopes } = publish
    for (; publish.next < targets.length; publish.next++) {
      const group = targets[publish.next]!
      if ((group.ready.length >= maxQueueDepth || group.roomWaiters.length > 0) && !closed) {
        group.roomWaiters.push(publish)
        return false
      }
      enqueueAll(group, topic, envelopes)
    }
    return true
  }

  function enqueueAll(group: GroupState, topic: string, envelopes: readonly Envelope[]): void {
    const now = Date.now()
    for (const envelope of envelopes)
      enqueue(group, { envelope, topic, attempt: 0, firstFailedAt: undefined, dueSince: now })
  }

  /** Admits as many waiting publishers as there is room for, oldest first (not all of them to fight over it). */
  function makeRoom(group: GroupState): void {
    let room = maxQueueDepth - group.ready.length
    while (room > 0 || closed) {
      const waiting = group.roomWaiters.shift()
      if (waiting === undefined) return
      room -= waiting.envelopes.length
      admit(group, waiting)
    }
  }

  /** Puts a waiting publish into the group it waited for, then on into its remaining groups. */
  function admit(group: GroupState, waiting: WaitingPublish): void {
    enqueueAll(group, waiting.topic, waiting.envelopes)
    waiting.next++
    if (deliver(waiting)) waiting.resolve?.()
  }

  function sourceFor(name: string, group: GroupState): PullSource<InMemoryPulled> {
    return {
      async fetch(max) {
        const taken = group.ready.take(max)
        group.inFlight += taken.length
        makeRoom(group)
        for (const queued of taken) queued.attempt++
        return taken
      },
      settle(message, settlement: Settlement) {
        group.inFlight--
        // An ack (nearly every settlement) needs nothing more, not even the time.
        if (settlement.kind === 'ack') return
        const queued = message
        const now = Date.now()
        switch (settlement.kind) {
          case 'release':
            queued.attempt--
            enqueue(group, queued, true)
            return
          case 'retry':
            queued.firstFailedAt ??= now
            group.scheduled++
            later(settlement.delayMs, () => {
              group.scheduled--
              queued.dueSince = Date.now()
              enqueue(group, queued)
            })
            return
          case 'dead-letter':
            deadLetters.push({
              envelope: queued.envelope,
              topic: queued.topic,
              group: name,
              reason: settlement.reason,
              attempts: queued.attempt,
              error: settlement.error,
              firstFailedAt: queued.firstFailedAt ?? now,
              lastFailedAt: now,
              deadLetteredAt: now,
            })
        }
      },
      waitForWork(signal) {
        return group.wake.wait(60_000, signal)
      },
    }
  }

  function takeDeadLetters(filter: DeadLetterFilter): DeadLetter[] {
    const taken: DeadLetter[] = []
    for (let i = deadLetters.length - 1; i >= 0; i--) {
      const letter = deadLetters[i]
      if (letter && matchesDeadLetterFilter(letter, filter)) {
        taken.unshift(letter)
        deadLetters.splice(i, 1)
      }
    }
    return taken
  }

  return {
    name: 'in-memory',

    publish(topic, envelopes, publishOptions?: PublishOptions) {
      let targets: GroupState[]
      try {
        targets = route(topic, publishOptions?.mandatory === true)
      } catch (err) {
        return Promise.reject(err)
      }
      const publish: WaitingPublish = { targets, topic, envelopes, next: 0 }
      // Room everywhere (the usual case): done, with no promise of its own.
      if (deliver(publish)) return delivered
      return new Promise<void>((resolve) => {
        publish.resolve = resolve
      })
    },

    async schedule(topic, envelopes, deliverAt, publishOptions: PublishOptions = {}) {
      const targets = route(topic, publishOptions.mandatory === true)
      for (const group of targets) group.scheduled += envelopes.length
      later(deliverAt - Date.now(), () => {
        for (const group of targets) group.scheduled -= envelopes.length
        deliver({ targets, topic, envelopes, next: 0 })
      })
    },

    async subscribe(spec: SubscriptionSpec, handler: Handler) {
      if (closed) throw new TransportClosedError('in-memory')
      const group = ensureGroup(spec.group)
      bind(group, spec.patterns)
      const subscription = startPullConsumer(
        sourceFor(spec.group, group),
        handler,
        pullConsumerOptions(spec, onError, () => subscriptions.delete(subscription)),
      )
      subscriptions.add(subscription)
      return subscription
    },

    async close() {
      if (closed) return
      closed = true
      await Promise.all([...subscriptions].map((s) => s.close()))
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      // Publishers still waiting for room complete (into a transport that delivers no more).
      for (const group of groups.values()) makeRoom(group)
    },

    injectRaw(groupName, topic, envelope) {
      enqueue(ensureGroup(groupName), {
        envelope,
        topic,
        attempt: 0,
        firstFailedAt: undefined,
        dueSince: Date.now(),
      })
    },

    async declareGroup(name, patterns) {
      bind(ensureGroup(name), patterns)
    },

    async listGroups(): Promise<readonly GroupInfo[]> {
      const now = Date.now()
      return [...groups.entries()].map(([name, g]) => ({
        group: name,
        patterns: [...g.patterns.keys()],
        depth: g.ready.length + g.inFlight + g.scheduled,
        deadLetters: deadLetters.filter((d) => d.group === name).length,
        scheduled: g.scheduled,
        oldestDueAgeMs: g.ready.length === 0 ? 0 : Math.max(0, now - (g.ready.peek()?.dueSince ?? now)),
      }))
    },

    async unbindGroup(name, patterns) {
      const group = groups.get(name)
      if (group === undefined) return
      for (const pattern of patterns) group.patterns.delete(pattern)
      routes.clear()
    },

    async checkHealth() {
      return { ok: !closed, details: { groups: groups.size, deadLetters: deadLetters.length } }
    },

    async deleteGroup(name) {
      const group = groups.get(name)
      groups.delete(name)
      routes.clear()
      if (group !== undefined)
        for (const waiting of group.roomWaiters.take(Number.MAX_SAFE_INTEGER)) admit(group, waiting)
    },

    async listDeadLetters(query: DeadLetterQuery = {}): Promise<DeadLetterPage> {
      const limit = query.limit ?? 50
      const offset = query.cursor === undefined ? 0 : Number(query.cursor)
      const selected = deadLetters.filter((d) => matchesDeadLetterFilter(d, query))
      const items = selected.slice(offset, offset + limit)
      const next = offset + limit
      return next < selected.length ? { items, nextCursor: String(next) } : { items }
    },

    async getDeadLetter(id, group) {
      return deadLetters.find((d) => d.envelope.id === id && (group === undefined || d.group === group))
    },

    async redriveDeadLetters(filter) {
      const taken = takeDeadLetters(filter)
      for (const letter of taken) {
        enqueue(ensureGroup(letter.group), {
          envelope: letter.envelope,
          topic: letter.topic,
          attempt: 0,
          firstFailedAt: undefined,
          dueSince: Date.now(),
        })
      }
      return taken.length
    },

    async purgeDeadLetters(filter) {
      return takeDeadLetters(filter).length
    },
  }
}
