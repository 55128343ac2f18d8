import type { DeadLetterStore, GroupInfo, Scheduler, TopologyAdmin } from '../capabilities.js'
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
import { NoRouteError, TransportClosedError } from '../errors.js'
import { resolveRetryPolicy } from '../retry-policy.js'
import { assertTopic, compileTopicPattern } from '../topic-pattern.js'
import type { Handler, PublishOptions, Subscription, SubscriptionSpec, Transport } from '../transport.js'
import { createDeque, type Deque } from './deque.js'

export interface InMemoryTransportOptions {
  /** Called with errors the consumers survived. Default: ignore. */
  readonly onError?: (err: unknown) => void
}

/** An in-process transport with the same semantics as the durable ones, minus durability. */
export type InMemoryTransport = Transport &
  Scheduler &
  DeadLetterStore &
  TopologyAdmin & {
    /** Puts an envelope straight into a group's queue, bypassing the publisher: for poison-input tests. */
    injectRaw(group: string, topic: string, envelope: Envelope): void
  }

interface QueuedMessage {
  readonly envelope: Envelope
  readonly topic: string
  deliveries: number
  firstFailedAt: number | undefined
}

interface GroupState {
  readonly patterns: Map<string, (topic: string) => boolean>
  readonly ready: Deque<QueuedMessage>
  readonly wake: WakeSignal
  inFlight: number
}

interface InMemoryPulled extends PulledMessage {
  readonly queued: QueuedMessage
}

/**
 * Creates the in-memory transport. Messages live in this process only: they are lost when it exits, and a
 * delayed message or redelivery waits on a timer. Use it for tests and single-process tools.
 */
export function createInMemoryTransport(options: InMemoryTransportOptions = {}): InMemoryTransport {
  const onError = options.onError ?? (() => {})
  const groups = new Map<string, GroupState>()
  const deadLetters: DeadLetter[] = []
  const subscriptions = new Set<Subscription>()
  const timers = new Set<ReturnType<typeof setTimeout>>()
  let closed = false

  function ensureGroup(name: string): GroupState {
    let group = groups.get(name)
    if (!group) {
      group = { patterns: new Map(), ready: createDeque(), wake: createWakeSignal(), inFlight: 0 }
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

  function route(topic: string, envelopes: readonly Envelope[], mandatory: boolean): () => void {
    if (closed) throw new TransportClosedError('in-memory')
    assertTopic(topic)
    const targets = [...groups.values()].filter((g) => [...g.patterns.values()].some((match) => match(topic)))
    if (targets.length === 0 && mandatory) throw new NoRouteError(topic)
    return () => {
      for (const group of targets)
        for (const envelope of envelopes) enqueue(group, { envelope, topic, deliveries: 0, firstFailedAt: undefined })
    }
  }

  function sourceFor(name: string, group: GroupState): PullSource<InMemoryPulled> {
    return {
      async fetch(max) {
        const taken = group.ready.take(max)
        group.inFlight += taken.length
        return taken.map((queued) => {
          queued.deliveries++
          return { envelope: queued.envelope, topic: queued.topic, attempt: queued.deliveries, queued }
        })
      },
      async settle(message, settlement: Settlement) {
        group.inFlight--
        const queued = message.queued
        const now = Date.now()
        switch (settlement.kind) {
          case 'ack':
            return
          case 'release':
            queued.deliveries--
            enqueue(group, queued, true)
            return
          case 'retry':
            queued.firstFailedAt ??= now
            later(settlement.delayMs, () => enqueue(group, queued))
            return
          case 'dead-letter':
            deadLetters.push({
              envelope: queued.envelope,
              topic: queued.topic,
              group: name,
              reason: settlement.reason,
              attempts: queued.deliveries,
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

    async publish(topic, envelopes, publishOptions: PublishOptions = {}) {
      route(topic, envelopes, publishOptions.mandatory === true)()
    },

    async schedule(topic, envelopes, deliverAt, publishOptions: PublishOptions = {}) {
      const deliver = route(topic, envelopes, publishOptions.mandatory === true)
      later(deliverAt - Date.now(), deliver)
    },

    async subscribe(spec: SubscriptionSpec, handler: Handler) {
      if (closed) throw new TransportClosedError('in-memory')
      const group = ensureGroup(spec.group)
      for (const pattern of spec.patterns) group.patterns.set(pattern, compileTopicPattern(pattern))
      const subscription = startPullConsumer(sourceFor(spec.group, group), handler, {
        group: spec.group,
        maxInFlight: spec.maxInFlight ?? 10,
        retry: resolveRetryPolicy(spec.retry),
        shutdownTimeoutMs: spec.shutdownTimeoutMs ?? 10_000,
        onError,
        onClosed: () => subscriptions.delete(subscription),
      })
      subscriptions.add(subscription)
      return subscription
    },

    async close() {
      if (closed) return
      closed = true
      await Promise.all([...subscriptions].map((s) => s.close()))
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
    },

    injectRaw(groupName, topic, envelope) {
      enqueue(ensureGroup(groupName), { envelope, topic, deliveries: 0, firstFailedAt: undefined })
    },

    async declareGroup(name, patterns) {
      const group = ensureGroup(name)
      for (const pattern of patterns) group.patterns.set(pattern, compileTopicPattern(pattern))
    },

    async listGroups(): Promise<readonly GroupInfo[]> {
      return [...groups.entries()].map(([name, g]) => ({
        group: name,
        patterns: [...g.patterns.keys()],
        depth: g.ready.length + g.inFlight,
        deadLetters: deadLetters.filter((d) => d.group === name).length,
      }))
    },

    async deleteGroup(name) {
      groups.delete(name)
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
          deliveries: 0,
          firstFailedAt: undefined,
        })
      }
      return taken.length
    },

    async purgeDeadLetters(filter) {
      return takeDeadLetters(filter).length
    },
  }
}
