import type {
  DeadLetterStore,
  GroupInfo,
  GroupSettings,
  HealthCheck,
  Scheduler,
  TopologyAdmin,
  TopologyDescriber,
} from '../capabilities.js'
import { type Clock, type ClockTimer, systemClock } from '../clock.js'
import { createRateLimiters, pullConsumerOptions } from '../consumer/consumer-set.js'
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
import {
  defaultKeyOrdering,
  type HeldKey,
  type KeyAdmin,
  orderingKeyOf,
  type ResolvedKeyOrdering,
  resolveKeyOrdering,
} from '../ordering.js'
import { assertTopic, compileTopicPattern } from '../topic-pattern.js'
import type { Handler, PublishOptions, Subscription, SubscriptionSpec, Transport } from '../transport.js'
import { createDeque, type Deque } from './deque.js'

export interface InMemoryTransportOptions {
  /** Called with errors the consumers survived. Default: ignore. */
  readonly onError?: (err: unknown) => void
  /**
   * Messages a group may hold waiting before publishers are held back: a publish that takes a group past this
   * mark is queued, but its promise resolves only once the group is back within it. A publisher that awaits its
   * publishes (as every caller should) then holds at most its own unawaited publishes above the mark, so memory
   * stays bounded when publishers outrun consumers. Publishers are held back only while the group has a consumer
   * (with none, nothing would make room), and never for a publish made by a handler (`withinHandler`).
   * Default 1,000: enough to keep any consumer busy; a deeper queue only adds latency, and messages that wait
   * longer outlive the young generation and cost the garbage collector (docs/decisions/0011).
   */
  readonly maxQueueDepth?: number
  /** Whose time decides when delayed messages and retries are due. Default: the system's. */
  readonly clock?: Clock
}

/** An in-process transport with the same semantics as the durable ones, minus durability. */
export type InMemoryTransport = Transport &
  Scheduler &
  DeadLetterStore &
  TopologyAdmin &
  TopologyDescriber &
  KeyAdmin &
  HealthCheck & {
    /** Puts an envelope straight into a group's queue, bypassing the publisher: for poison-input tests. */
    injectRaw(group: string, topic: string, envelope: Envelope): void
  }

interface QueuedMessage {
  readonly envelope: Envelope
  readonly topic: string
  /** The key it is ordered by, if any. */
  readonly key: string | undefined
  /** When it became due (published, or its retry's backoff ended): its wait counts from here. */
  dueSince: number
  /** Deliveries so far, this one included once fetched: the queued message is itself what the consumer pulls. */
  attempt: number
  firstFailedAt: number | undefined
}

/**
 * One key of a group with messages not yet settled. `active` of them are in `ready`, in flight or waiting for a
 * retry; the rest wait in `waiting`, in publish order, for one of those to be acked or dead-lettered.
 */
interface KeyState {
  active: number
  readonly waiting: Deque<QueuedMessage>
  /** The dead letter holding the key (policy `hold`): nothing is admitted until it is redriven or purged. */
  heldBy: DeadLetter | undefined
}

interface GroupState {
  readonly patterns: Map<string, (topic: string) => boolean>
  readonly ready: Deque<QueuedMessage>
  ordering: ResolvedKeyOrdering
  /** Keys with messages not yet settled. */
  readonly keys: Map<string, KeyState>
  /** Messages in every key's `waiting`. */
  waitingOnKey: number
  readonly wake: WakeSignal
  /** While `ready` is past the mark: resolves, for every publish held back, once it is within it again. */
  room: { readonly promise: Promise<void>; readonly resolve: () => void } | undefined
  inFlight: number
  /** Consumers running: publishers are held back only while there is one to wait for. */
  consumers: number
  /** Delayed publishes and retries on a timer, not yet in `ready`. */
  scheduled: number
}

const delivered: Promise<void> = Promise.resolve()

type InMemoryPulled = QueuedMessage & PulledMessage

/**
 * Creates the in-memory transport. Messages live in this process only: they are lost when it exits, and a
 * delayed message or redelivery waits on a timer. Use it for tests and single-process tools.
 */
export function createInMemoryTransport(options: InMemoryTransportOptions = {}): InMemoryTransport {
  const onError = options.onError ?? (() => {})
  const maxQueueDepth = options.maxQueueDepth ?? 1_000
  const clock = options.clock ?? systemClock
  if (!(Number.isInteger(maxQueueDepth) && maxQueueDepth > 0)) {
    throw new ConfigurationError('maxQueueDepth', 'must be a positive integer')
  }
  // Groups per topic, cleared whenever a binding changes.
  const routes = new Map<string, GroupState[]>()
  const groups = new Map<string, GroupState>()
  const deadLetters: DeadLetter[] = []
  // Each dead letter's place in arrival order: the listing cursor, stable while others are redriven or purged.
  const deadLetterSeq = new WeakMap<DeadLetter, number>()
  let lastDeadLetterSeq = 0
  const subscriptions = new Set<Subscription>()
  const rateFor = createRateLimiters()
  const timers = new Set<ClockTimer>()
  let closed = false

  function ensureGroup(name: string): GroupState {
    let group = groups.get(name)
    if (!group) {
      group = {
        patterns: new Map(),
        ready: createDeque(),
        ordering: defaultKeyOrdering,
        keys: new Map(),
        waitingOnKey: 0,
        wake: createWakeSignal(),
        room: undefined,
        inFlight: 0,
        consumers: 0,
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

  /**
   * Queues a message that is new to its group. A keyed message goes to `ready` while its key has fewer than the
   * group's per-key concurrency in play, else it waits behind them.
   */
  function admit(group: GroupState, message: QueuedMessage): void {
    const key = message.key
    if (key === undefined) {
      enqueue(group, message)
      return
    }
    let state = group.keys.get(key)
    if (state === undefined) {
      state = { active: 0, waiting: createDeque(), heldBy: undefined }
      group.keys.set(key, state)
    }
    if (state.heldBy === undefined && state.active < group.ordering.concurrency) {
      state.active++
      enqueue(group, message)
    } else {
      state.waiting.push(message)
      group.waitingOnKey++
    }
  }

  /** A keyed message was acked or dead-lettered: its key admits its next message, unless `heldBy` holds it. */
  function keyDone(group: GroupState, key: string, heldBy?: DeadLetter): void {
    const state = group.keys.get(key)
    if (state === undefined) return
    state.active--
    if (heldBy !== undefined) state.heldBy = heldBy
    admitWaiting(group, key, state)
  }

  function admitWaiting(group: GroupState, key: string, state: KeyState): void {
    while (state.heldBy === undefined && state.active < group.ordering.concurrency) {
      const next = state.waiting.shift()
      if (next === undefined) break
      group.waitingOnKey--
      state.active++
      enqueue(group, next)
    }
    if (state.active === 0 && state.waiting.length === 0 && state.heldBy === undefined) group.keys.delete(key)
  }

  function later(ms: number, fn: () => void): void {
    const timer = clock.setTimer(() => {
      timers.delete(timer)
      fn()
    }, ms)
    timers.add(timer)
  }

  /**
   * Runs `fn` no earlier than `deliverAt` by the wall clock. The timer is monotonic, so if the wall clock was set
   * back meanwhile it fires early by the wall clock: then it waits again for what is left.
   */
  function at(deliverAt: number, fn: () => void): void {
    later(deliverAt - clock.now(), () => {
      if (clock.now() < deliverAt) at(deliverAt, fn)
      else fn()
    })
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
   * Enqueues into every target group. Returns what the publisher waits for: nothing while every group is within
   * its mark, else the room of each group it took past it. The messages are queued either way; holding back the
   * publisher (one shared promise per full group, nothing per publish) is what keeps memory bounded.
   */
  function deliver(
    targets: readonly GroupState[],
    topic: string,
    envelopes: readonly Envelope[],
    holdBack: boolean,
  ): Promise<void> {
    let wait: Promise<void> | undefined
    const now = clock.now()
    for (const group of targets) {
      for (const envelope of envelopes) {
        const key = orderingKeyOf(envelope)
        admit(group, { envelope, topic, key, attempt: 0, firstFailedAt: undefined, dueSince: now })
      }
      if (holdBack && queued(group) > maxQueueDepth && group.consumers > 0 && !closed) {
        const room = roomIn(group)
        wait = wait === undefined ? room : Promise.all([wait, room]).then(() => {})
      }
    }
    return wait ?? delivered
  }

  function queued(group: GroupState): number {
    return group.ready.length + group.waitingOnKey
  }

  function roomIn(group: GroupState): Promise<void> {
    if (group.room === undefined) {
      let resolve!: () => void
      const promise = new Promise<void>((r) => {
        resolve = r
      })
      group.room = { promise, resolve }
    }
    return group.room.promise
  }

  /** Lets the publishers held back by a group carry on once it is within its mark, or at once with `always`. */
  function releasePublishers(group: GroupState, always = false): void {
    if (group.room !== undefined && (always || queued(group) <= maxQueueDepth)) {
      group.room.resolve()
      group.room = undefined
    }
  }

  function sourceFor(name: string, group: GroupState): PullSource<InMemoryPulled> {
    return {
      async fetch(max) {
        const taken = group.ready.take(max)
        group.inFlight += taken.length
        releasePublishers(group)
        for (const queued of taken) queued.attempt++
        return taken
      },
      settle(message, settlement: Settlement) {
        group.inFlight--
        // An ack (nearly every settlement) needs nothing more, not even the time.
        if (settlement.kind === 'ack') {
          if (message.key !== undefined) keyDone(group, message.key)
          return
        }
        const queued = message
        const now = clock.now()
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
              queued.dueSince = clock.now()
              enqueue(group, queued)
            })
            return
          case 'dead-letter': {
            const letter: DeadLetter = {
              envelope: queued.envelope,
              topic: queued.topic,
              group: name,
              reason: settlement.reason,
              attempts: settlement.attempts,
              error: settlement.error,
              firstFailedAt: queued.firstFailedAt ?? now,
              lastFailedAt: now,
              deadLetteredAt: now,
            }
            deadLetterSeq.set(letter, ++lastDeadLetterSeq)
            deadLetters.push(letter)
            if (queued.key !== undefined)
              keyDone(group, queued.key, group.ordering.afterDeadLetter === 'hold' ? letter : undefined)
          }
        }
      },
      waitForWork(signal) {
        return group.wake.wait(60_000, signal)
      },
    }
  }

  /** The key state a dead letter holds, if it holds one. */
  function heldBy(letter: DeadLetter): { group: GroupState; key: string; state: KeyState } | undefined {
    const key = orderingKeyOf(letter.envelope)
    const group = groups.get(letter.group)
    const state = key === undefined ? undefined : group?.keys.get(key)
    return state?.heldBy === letter && group !== undefined && key !== undefined ? { group, key, state } : undefined
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
      return deliver(targets, topic, envelopes, publishOptions?.withinHandler !== true)
    },

    async schedule(topic, envelopes, deliverAt, publishOptions: PublishOptions = {}) {
      const targets = route(topic, publishOptions.mandatory === true)
      for (const group of targets) group.scheduled += envelopes.length
      at(deliverAt, () => {
        for (const group of targets) group.scheduled -= envelopes.length
        // Nobody awaits a scheduled delivery: it joins the queue even past the mark, as it was held in memory anyway.
        void deliver(targets, topic, envelopes, false)
      })
    },

    async subscribe(spec: SubscriptionSpec, handler: Handler) {
      if (closed) throw new TransportClosedError('in-memory')
      const group = ensureGroup(spec.group)
      bind(group, spec.patterns)
      group.ordering = resolveKeyOrdering(spec.ordering)
      group.consumers++
      const subscription = startPullConsumer(
        sourceFor(spec.group, group),
        handler,
        pullConsumerOptions(
          spec,
          onError,
          () => {
            subscriptions.delete(subscription)
            // The last consumer gone: nobody will make room, so publishers it held back carry on.
            if (--group.consumers === 0) releasePublishers(group, true)
          },
          rateFor(spec),
        ),
      )
      subscriptions.add(subscription)
      return subscription
    },

    async close() {
      if (closed) return
      closed = true
      await Promise.all([...subscriptions].map((s) => s.close()))
      for (const timer of timers) timer.cancel()
      timers.clear()
      // Publishers still held back complete (into a transport that delivers no more).
      for (const group of groups.values()) releasePublishers(group, true)
    },

    injectRaw(groupName, topic, envelope) {
      admit(ensureGroup(groupName), {
        envelope,
        topic,
        key: orderingKeyOf(envelope),
        attempt: 0,
        firstFailedAt: undefined,
        dueSince: clock.now(),
      })
    },

    async declareGroup(name, patterns, settings?: GroupSettings) {
      const group = ensureGroup(name)
      bind(group, patterns)
      if (settings?.ordering !== undefined) group.ordering = resolveKeyOrdering(settings.ordering)
    },

    async listGroups(): Promise<readonly GroupInfo[]> {
      const now = clock.now()
      return [...groups.entries()].map(([name, g]) => ({
        group: name,
        patterns: [...g.patterns.keys()],
        depth: g.ready.length + g.inFlight + g.scheduled + g.waitingOnKey,
        deadLetters: deadLetters.filter((d) => d.group === name).length,
        inFlight: g.inFlight,
        scheduled: g.scheduled,
        waitingOnKey: g.waitingOnKey,
        heldKeys: [...g.keys.values()].filter((k) => k.heldBy !== undefined).length,
        oldestDueAgeMs: g.ready.length === 0 ? 0 : Math.max(0, now - (g.ready.peek()?.dueSince ?? now)),
      }))
    },

    async describeTopology() {
      return {
        transport: 'in-memory',
        entry: 'this process: publish routes to every group whose patterns match',
        groups: [...groups.entries()].map(([name, g]) => ({
          group: name,
          patterns: [...g.patterns.keys()],
          queue: `in-process queue "${name}"`,
        })),
        delays: 'in-process timers (lost with the process)',
        deadLetters: 'an in-process list (lost with the process)',
      }
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
      // Nobody will drain a deleted group: publishers it held back carry on.
      if (group !== undefined) releasePublishers(group, true)
    },

    async listDeadLetters(query: DeadLetterQuery = {}): Promise<DeadLetterPage> {
      const limit = query.limit ?? 50
      const after = query.cursor === undefined ? 0 : Number(query.cursor)
      const selected = deadLetters.filter(
        (d) => (deadLetterSeq.get(d) ?? 0) > after && matchesDeadLetterFilter(d, query),
      )
      const items = selected.slice(0, limit)
      const last = items.at(-1)
      return selected.length > limit && last !== undefined
        ? { items, nextCursor: String(deadLetterSeq.get(last)) }
        : { items }
    },

    async getDeadLetter(id, group) {
      return deadLetters.find((d) => d.envelope.id === id && (group === undefined || d.group === group))
    },

    async redriveDeadLetters(filter) {
      const taken = takeDeadLetters(filter)
      for (const letter of taken) {
        const queued: QueuedMessage = {
          envelope: letter.envelope,
          topic: letter.topic,
          key: orderingKeyOf(letter.envelope),
          attempt: 0,
          firstFailedAt: undefined,
          dueSince: clock.now(),
        }
        // The dead letter holding its key goes first; any other goes behind its key's messages, like a publish.
        const held = heldBy(letter)
        if (held === undefined) admit(ensureGroup(letter.group), queued)
        else {
          held.state.heldBy = undefined
          held.state.active++
          enqueue(held.group, queued, true)
        }
      }
      return taken.length
    },

    async purgeDeadLetters(filter) {
      const taken = takeDeadLetters(filter)
      for (const letter of taken) {
        const held = heldBy(letter)
        if (held === undefined) continue
        held.state.heldBy = undefined
        admitWaiting(held.group, held.key, held.state)
      }
      return taken.length
    },

    async listHeldKeys(groupName?: string): Promise<readonly HeldKey[]> {
      const held: HeldKey[] = []
      for (const [name, group] of groups) {
        if (groupName !== undefined && name !== groupName) continue
        for (const [key, state] of group.keys) {
          if (state.heldBy !== undefined)
            held.push({ group: name, key, deadLetterId: state.heldBy.envelope.id, waiting: state.waiting.length })
        }
      }
      return held
    },

    async releaseKey(groupName, key) {
      const group = groups.get(groupName)
      const state = group?.keys.get(key)
      if (group === undefined || state?.heldBy === undefined) return false
      state.heldBy = undefined
      admitWaiting(group, key, state)
      return true
    },
  }
}
