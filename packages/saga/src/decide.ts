import { type Message, PermanentError } from '@herald/core'
import type { Saga, SagaMessage, SagaStatus, SagaStep, TimeoutRequest } from './define.js'

/** A timeout waiting to fire; `token` is the id of the message that will carry it. */
export interface PendingTimeout {
  readonly token: string
  readonly dueAt: number
}

/**
 * An instance as a decision needs it. `T` is how recorded compensations are kept: prepared messages in a store,
 * plain {@link SagaMessage}s in the testing helper.
 */
export interface InstanceView<S, T> {
  readonly state: S
  readonly status: SagaStatus
  readonly timeouts: Readonly<Record<string, PendingTimeout>>
  readonly compensations: readonly T[]
}

/** Counted in metrics and kept in history. */
export type SagaEvent = 'started' | 'completed' | 'timed_out' | 'compensated' | 'failed'

/** What arrived: a message of a type the saga handles, or one of its own timeouts. */
export type Incoming =
  | { readonly kind: 'message'; readonly message: Message<unknown> }
  | {
      readonly kind: 'timeout'
      readonly name: string
      readonly token: string
      readonly dueAt: number
      readonly data: unknown
    }

/** Why a message changed nothing. */
export type IgnoreReason = 'ended' | 'stale_timeout' | 'no_instance'

export interface Transition<S, T> {
  readonly kind: 'transition'
  /** Not yet validated: the caller checks it against the saga's schema. */
  readonly state: S
  readonly status: SagaStatus
  readonly reason: string | undefined
  /** The step's own messages, then (when it compensates) its own compensations, newest first. */
  readonly messages: readonly SagaMessage[]
  /** Recorded compensations to send now, newest first: the saga compensates. */
  readonly compensationsToSend: readonly T[]
  /** New compensations to record (a running saga only). */
  readonly recordCompensations: readonly SagaMessage[]
  /** Recorded compensations kept as they were: all of them while running, none once ended. */
  readonly keptCompensations: readonly T[]
  readonly requestedTimeouts: readonly TimeoutRequest[]
  readonly keptTimeouts: Readonly<Record<string, PendingTimeout>>
  readonly events: readonly SagaEvent[]
  /** What was handled: the message type, or `timeout <name>`. */
  readonly label: string
}

export type Decision<S, T> =
  | { readonly kind: 'ignore'; readonly reason: IgnoreReason }
  /** No instance, and the message cannot start one: retry it later (it may have overtaken its start). */
  | { readonly kind: 'missing' }
  | Transition<S, T>

/**
 * The whole of a saga's logic, with no store and no transport: what `incoming` does to `instance`. The runner
 * commits what it returns; the testing helper compares it with what a test expects.
 */
export function decide<S, T>(
  saga: Saga<S>,
  instance: InstanceView<S, T> | undefined,
  incoming: Incoming,
): Decision<S, T> {
  if (incoming.kind === 'timeout') {
    if (instance === undefined) return { kind: 'ignore', reason: 'no_instance' }
    if (instance.status !== 'running') return { kind: 'ignore', reason: 'ended' }
    if (instance.timeouts[incoming.name]?.token !== incoming.token) return { kind: 'ignore', reason: 'stale_timeout' }
    const handler = saga.timeouts.get(incoming.name)
    if (handler === undefined)
      throw new PermanentError(`Saga "${saga.name}" has no handler for timeout "${incoming.name}"`)
    const step = handler(instance.state, { name: incoming.name, data: incoming.data, dueAt: incoming.dueAt })
    const { [incoming.name]: _fired, ...rest } = instance.timeouts
    return apply(saga, instance, step, rest, ['timed_out'], `timeout ${incoming.name}`)
  }
  const { message } = incoming
  const entry = saga.handlers.get(message.type)
  if (entry === undefined) throw new PermanentError(`Saga "${saga.name}" does not handle "${message.type}"`)
  if (instance === undefined) {
    if (!entry.starts)
      return entry.whenMissing === 'ignore' ? { kind: 'ignore', reason: 'no_instance' } : { kind: 'missing' }
    const step = entry.handle(undefined, message)
    if (step.state === undefined) {
      throw new PermanentError(`Saga "${saga.name}": the step that starts it ("${message.type}") must return a state`)
    }
    return apply(saga, undefined, step, {}, ['started'], message.type)
  }
  if (instance.status !== 'running') return { kind: 'ignore', reason: 'ended' }
  return apply(saga, instance, entry.handle(instance.state, message), instance.timeouts, [], message.type)
}

function apply<S, T>(
  saga: Saga<S>,
  instance: InstanceView<S, T> | undefined,
  step: SagaStep<S>,
  timeouts: Readonly<Record<string, PendingTimeout>>,
  events: SagaEvent[],
  label: string,
): Transition<S, T> {
  if (step === null || typeof step !== 'object') {
    throw new PermanentError(`Saga "${saga.name}": the handler of ${label} returned ${String(step)}, not a step`)
  }
  const endings = [step.complete === true, step.compensate !== undefined, step.fail !== undefined]
  if (endings.filter(Boolean).length > 1) {
    throw new PermanentError(`Saga "${saga.name}": a step either completes, compensates or fails (${label} did more)`)
  }
  const status: SagaStatus = step.complete
    ? 'completed'
    : step.compensate !== undefined
      ? 'compensated'
      : step.fail !== undefined
        ? 'failed'
        : 'running'
  const requested = step.timeouts ?? []
  for (const t of requested) {
    if (!saga.timeouts.has(t.name)) {
      throw new PermanentError(`Saga "${saga.name}" requested timeout "${t.name}" but has no onTimeout for it`)
    }
    if (!(Number.isFinite(t.afterMs) && t.afterMs >= 0)) {
      throw new PermanentError(`Saga "${saga.name}": timeout "${t.name}" needs afterMs >= 0, not ${t.afterMs}`)
    }
  }
  const state = step.state ?? (instance as InstanceView<S, T>).state
  const own = step.compensation ?? []
  if (status !== 'running') {
    // An ended saga waits for nothing: its timeouts lapse (one that still fires is ignored) and nothing is recorded.
    const compensating = status === 'compensated'
    return {
      kind: 'transition',
      state,
      status,
      reason: step.compensate ?? step.fail,
      messages: compensating ? [...(step.messages ?? []), ...[...own].reverse()] : (step.messages ?? []),
      compensationsToSend: compensating ? [...(instance?.compensations ?? [])].reverse() : [],
      recordCompensations: [],
      keptCompensations: [],
      requestedTimeouts: [],
      keptTimeouts: {},
      events: [...events, status],
      label,
    }
  }
  const kept: Record<string, PendingTimeout> = { ...timeouts }
  for (const name of step.cancelTimeouts ?? []) delete kept[name]
  for (const t of requested) delete kept[t.name]
  return {
    kind: 'transition',
    state,
    status,
    reason: undefined,
    messages: step.messages ?? [],
    compensationsToSend: [],
    recordCompensations: own,
    keptCompensations: instance?.compensations ?? [],
    requestedTimeouts: requested,
    keptTimeouts: kept,
    events,
    label,
  }
}
