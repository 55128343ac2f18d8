import {
  type Bus,
  type Clock,
  type ConsumerOptions,
  defineCommand,
  type HandlerContext,
  HeaderNames,
  HeraldError,
  type Message,
  type OutboxRelay,
  type OutboxRelayOptions,
  PermanentError,
  type PreparedMessage,
  type StandardSchemaV1,
  sendPrepared,
  sleep,
  startOutboxRelay,
  systemClock,
  validateSchema,
} from '@herald/core'
import { decide, type Incoming, type SagaEvent, type Transition } from './decide.js'
import type { Saga, SagaMessage } from './define.js'
import type { SagaCommit, SagaCounts, SagaHistoryEntry, SagaInstance, SagaQuery, SagaStore } from './store.js'

/** What a saga's timeout message carries. Its id is the token the instance waits for, so a forged one is ignored. */
export interface TimeoutData {
  readonly key: string
  readonly name: string
  readonly dueAt: number
  readonly data: unknown
}

const timeoutSchema: StandardSchemaV1<TimeoutData> = {
  '~standard': {
    version: 1,
    vendor: 'herald',
    validate(value) {
      const v = value as Partial<TimeoutData> | null
      if (
        typeof v === 'object' &&
        v !== null &&
        typeof v.key === 'string' &&
        typeof v.name === 'string' &&
        typeof v.dueAt === 'number'
      ) {
        return { value: { key: v.key, name: v.name, dueAt: v.dueAt, data: v.data ?? null } }
      }
      return { issues: [{ message: 'a saga timeout needs key, name (strings) and dueAt (a number)' }] }
    },
  },
}

/** The command that carries a saga's timeouts, on a topic of the saga's own. */
export function timeoutContract(saga: Pick<Saga<unknown>, 'name'>) {
  return defineCommand('herald.saga.timeout', { topic: `saga.${saga.name}.timeout`, schema: timeoutSchema })
}

/** Thrown (and so retried with the group's backoff) when a message finds no instance and cannot start one. */
export class SagaNotStartedError extends HeraldError {
  constructor(saga: string, key: string, type: string) {
    super(
      'SAGA_NOT_STARTED',
      `Saga "${saga}" has no instance "${key}" for "${type}" yet; retried until a message that starts it arrives`,
      { details: { saga, key, type } },
    )
    this.name = 'SagaNotStartedError'
  }
}

export interface SagaEventReport {
  readonly saga: string
  readonly key: string
  readonly event: SagaEvent
}

export interface SagaHostOptions {
  readonly store: SagaStore
  // biome-ignore lint/suspicious/noExplicitAny: a host runs sagas of any state type
  readonly sagas: readonly Saga<any>[]
  /** Consumer options of every saga's group. */
  readonly consumer?: ConsumerOptions
  /** How the relay sends what sagas stage in the store's outbox. */
  readonly relay?: Omit<OutboxRelayOptions, 'store' | 'transport'>
  /** Whose time timeouts are due by and instances are stamped with; give the bus's own. Default: the system's. */
  readonly clock?: Clock
  /** Called after each committed step, once per event it caused (started, completed, timed out, ...). */
  readonly onEvent?: (report: SagaEventReport) => void
}

/** The sagas of one bus: their handlers are on the bus's groups; `start()` starts the relay that sends their messages. */
export interface SagaHost {
  /** Starts sending what the sagas committed. Call with (or after) `bus.start()`. */
  start(): Promise<void>
  /** Stops the relay after its current round. Stop the bus first, so no step commits after. */
  stop(): Promise<void>
  instance<S = unknown>(saga: Saga<S>, key: string): Promise<SagaInstance<S> | undefined>
  find(query?: SagaQuery): Promise<readonly SagaInstance[]>
  history(saga: Pick<Saga<unknown>, 'name'>, key: string): Promise<readonly SagaHistoryEntry[]>
  counts(saga?: Pick<Saga<unknown>, 'name'>): Promise<SagaCounts>
}

/** A per-key queue in this process, so steps of one instance here never race each other into a conflict. */
function createKeyedLock() {
  const tails = new Map<string, Promise<void>>()
  return async function run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = tails.get(key)
    let release!: () => void
    const mine = new Promise<void>((resolve) => {
      release = resolve
    })
    const tail = previous === undefined ? mine : previous.then(() => mine)
    tails.set(key, tail)
    if (previous !== undefined) await previous
    try {
      return await work()
    } finally {
      release()
      if (tails.get(key) === tail) tails.delete(key)
    }
  }
}

function checkState<S>(saga: Saga<S>, state: unknown, label: string): S | Promise<S> {
  return validateSchema(saga.stateSchema, state, `saga ${saga.name} state after ${label}`)
}

/**
 * Registers every saga's handlers on the bus (each saga in its own group), so call it before `bus.start()`.
 * Each message a saga handles is one step: read the instance, decide, then commit the new state, the messages and
 * timeouts the step sends, and the message's inbox record together. A step that lost a race with another process
 * reads again and decides again; it is never dead-lettered for it.
 */
export function registerSagas(bus: Bus, options: SagaHostOptions): SagaHost {
  const { store } = options
  const clock = options.clock ?? systemClock
  const lock = createKeyedLock()
  let relay: OutboxRelay | undefined

  async function prepareAll(
    context: HandlerContext,
    messages: readonly SagaMessage[],
    partitionKey?: string,
  ): Promise<PreparedMessage[]> {
    const prepared: PreparedMessage[] = []
    for (const m of messages) {
      const own = m.options ?? {}
      const keyed = partitionKey !== undefined && own.partitionKey === undefined ? { ...own, partitionKey } : own
      prepared.push(await context.prepare(m.contract, m.data, keyed))
    }
    return prepared
  }

  async function commitOf<S>(
    saga: Saga<S>,
    key: string,
    stored: SagaInstance | undefined,
    decision: Transition<S, PreparedMessage>,
    message: Message<unknown>,
    context: HandlerContext,
  ): Promise<SagaCommit> {
    const state = await checkState(saga, decision.state, decision.label)
    const now = clock.now()
    const messages = await prepareAll(context, decision.messages)
    messages.push(...decision.compensationsToSend)
    // Compensations carry the instance as their key unless they have their own, so a group handles them in order.
    const recorded = await prepareAll(context, decision.recordCompensations, `${saga.name}:${key}`)
    const timeouts = { ...decision.keptTimeouts }
    const contract = timeoutContract(saga)
    for (const t of decision.requestedTimeouts) {
      const dueAt = now + t.afterMs
      const prepared = await context.prepare(
        contract,
        { key, name: t.name, dueAt, data: t.data ?? null },
        { deliverAt: dueAt, partitionKey: `${saga.name}:${key}` },
      )
      timeouts[t.name] = { token: prepared.envelope.id, dueAt }
      messages.push(prepared)
    }
    const ended = decision.status !== 'running'
    return {
      saga: saga.name,
      key,
      group: context.group,
      messageId: message.id,
      expectedVersion: stored?.version ?? 0,
      instance: {
        saga: saga.name,
        key,
        state,
        status: decision.status,
        reason: decision.reason,
        timeouts,
        compensations: [...decision.keptCompensations, ...recorded],
        startedAt: stored?.startedAt ?? now,
        updatedAt: now,
        endedAt: ended ? now : undefined,
      },
      messages,
      history: {
        at: now,
        messageId: message.id,
        handled: decision.label,
        outcome: 'transition',
        events: decision.events,
        status: decision.status,
        sent: messages
          .filter((m) => m.topic !== contract.topic)
          .map((m) => m.envelope.headers[HeaderNames.type] ?? m.topic),
        timeouts: decision.requestedTimeouts.map((t) => t.name),
        note: decision.reason,
      },
    }
  }

  async function step<S>(
    saga: Saga<S>,
    key: string,
    incoming: Incoming,
    message: Message<unknown>,
    context: HandlerContext,
  ): Promise<void> {
    for (let round = 1; ; round++) {
      const stored = (await store.load(saga.name, key)) as SagaInstance<S> | undefined
      const decision = decide<S, PreparedMessage>(saga, stored, incoming)
      if (decision.kind === 'missing') throw new SagaNotStartedError(saga.name, key, message.type)
      const commit: SagaCommit =
        decision.kind === 'ignore'
          ? {
              saga: saga.name,
              key,
              group: context.group,
              messageId: message.id,
              expectedVersion: stored?.version ?? 0,
              instance: undefined,
              messages: [],
              history: {
                at: clock.now(),
                messageId: message.id,
                handled: incoming.kind === 'timeout' ? `timeout ${incoming.name}` : message.type,
                outcome: 'ignored',
                events: [],
                status: stored?.status,
                sent: [],
                timeouts: [],
                note: decision.reason,
              },
            }
          : await commitOf(saga, key, stored, decision, message, context)
      const result = await store.commit(commit)
      if (result === 'conflict') {
        // Another process stepped this instance first: read again, after a pause that grows with the contention.
        if (context.signal.aborted) throw new HeraldError('ABORTED', `Saga "${saga.name}" step for "${key}" aborted`)
        await sleep(Math.random() * Math.min(round, 20) * 2, context.signal)
        continue
      }
      if (result === 'committed') {
        if (decision.kind === 'transition' && options.onEvent !== undefined) {
          for (const event of decision.events) options.onEvent({ saga: saga.name, key, event })
        }
        if (store.outbox === undefined) {
          for (const m of commit.messages) await sendPrepared(bus.transport, m, { withinHandler: true, clock })
        } else relay?.notify()
      }
      return
    }
  }

  for (const saga of options.sagas) {
    const group = bus.group(saga.group, options.consumer)
    for (const entry of saga.handlers.values()) {
      group.on(entry.contract, async (message, context) => {
        const key = entry.correlate(message.data)
        if (typeof key !== 'string' || key.length === 0) {
          throw new PermanentError(`Saga "${saga.name}" found no key in "${message.type}" (got ${String(key)})`)
        }
        await lock(`${saga.name}\n${key}`, () =>
          step(saga, key, { kind: 'message', message: message as Message<unknown> }, message, context),
        )
      })
    }
    if (saga.timeouts.size > 0) {
      group.on(timeoutContract(saga), async (message, context) => {
        const { key, name, dueAt, data } = message.data
        const incoming: Incoming = { kind: 'timeout', name, token: message.id, dueAt, data }
        await lock(`${saga.name}\n${key}`, () => step(saga, key, incoming, message as Message<unknown>, context))
      })
    }
  }

  return {
    async start() {
      if (store.outbox !== undefined && relay === undefined) {
        relay = startOutboxRelay({ ...options.relay, store: store.outbox, transport: bus.transport })
      }
    },
    async stop() {
      await relay?.stop()
      relay = undefined
    },
    instance: <S>(saga: Saga<S>, key: string) => store.load(saga.name, key) as Promise<SagaInstance<S> | undefined>,
    find: (query) => store.find(query),
    history: (saga, key) => store.history(saga.name, key),
    counts: (saga) => store.counts(saga?.name),
  }
}
