import {
  ConfigurationError,
  type DataOf,
  type InputOf,
  type Message,
  type MessageContract,
  type PublishMessageOptions,
  type StandardSchemaV1,
} from '@herald/core'

/** A message a step sends (commands) or publishes (events): built with {@link message}, sent once the step commits. */
export interface SagaMessage<C extends MessageContract = MessageContract> {
  readonly contract: C
  readonly data: InputOf<C>
  readonly options?: SagaMessageOptions
}

/** What a step may say about a message it sends; ids, correlation and causation are the saga's to set. */
export type SagaMessageOptions = Pick<PublishMessageOptions, 'partitionKey' | 'subject' | 'headers' | 'delayMs'>

/** A message for a step to send, typed from its contract. */
export function message<C extends MessageContract>(
  contract: C,
  data: InputOf<C>,
  options?: SagaMessageOptions,
): SagaMessage<C> {
  return options === undefined ? { contract, data } : { contract, data, options }
}

/** Asks for a timeout: in `afterMs`, the saga's `onTimeout(name)` handler runs, unless it was cancelled first. */
export interface TimeoutRequest {
  readonly name: string
  readonly afterMs: number
  /** Handed to the timeout's handler; JSON. */
  readonly data?: unknown
}

/** A timeout that fired, as its handler sees it. */
export interface SagaTimeout {
  readonly name: string
  readonly data: unknown
  /** Epoch ms it was due. */
  readonly dueAt: number
}

/**
 * What a handler decides: a pure function of the state and the message returns it, and the saga commits all of it
 * at once (state, messages, timeouts and the handled message's record) or none of it.
 */
export interface SagaStep<S> {
  /** The new state; the state is unchanged when absent. A saga's first step must give it. */
  readonly state?: S
  /** Sent (commands) or published (events) once the step commits, in this order. */
  readonly messages?: readonly SagaMessage[]
  /** How to undo this step: sent, last recorded first, if the saga later compensates. */
  readonly compensation?: readonly SagaMessage[]
  /** Requested timeouts; asking again for a pending name replaces it. */
  readonly timeouts?: readonly TimeoutRequest[]
  /** Pending timeouts to cancel, by name: if one still arrives it is ignored. */
  readonly cancelTimeouts?: readonly string[]
  /** The saga is done: it ends `completed`, its pending timeouts lapse and later messages are ignored. */
  readonly complete?: boolean
  /**
   * The saga fails and undoes itself: every recorded compensation is sent, newest first, after this step's own
   * messages, and it ends `compensated` with this reason.
   */
  readonly compensate?: string
  /** The saga fails with nothing to undo: it ends `failed` with this reason, compensations unsent. */
  readonly fail?: string
}

export type SagaStatus = 'running' | 'completed' | 'compensated' | 'failed'

/** What a saga does when a message for it finds no instance and cannot start one. */
export type WhenMissing = 'retry' | 'ignore'

export interface SagaHandlerEntry<S> {
  readonly contract: MessageContract
  readonly correlate: (data: unknown) => string
  readonly starts: boolean
  readonly whenMissing: WhenMissing
  readonly handle: (state: S | undefined, message: Message<unknown>) => SagaStep<S>
}

export type TimeoutHandler<S> = (state: S, timeout: SagaTimeout) => SagaStep<S>

/** A saga's definition: what starts it, how each message finds its instance, and the pure handlers. */
export interface Saga<S> {
  readonly name: string
  readonly stateSchema: StandardSchemaV1<unknown, S>
  /** The group its messages are handled in; `saga.<name>` unless given. */
  readonly group: string
  /** By message type. */
  readonly handlers: ReadonlyMap<string, SagaHandlerEntry<S>>
  readonly timeouts: ReadonlyMap<string, TimeoutHandler<S>>
}

export interface SagaBuilder<S> extends Saga<S> {
  /**
   * A message type that starts an instance: `correlate` takes its key from the data; `handle` gets `undefined`
   * for a new instance (and must return a state), or the state when the instance exists already.
   */
  startedBy<C extends MessageContract>(
    contract: C,
    correlate: (data: DataOf<C>) => string,
    handle: (state: S | undefined, message: Message<DataOf<C>>) => SagaStep<S>,
  ): SagaBuilder<S>
  /**
   * A message type handled by a running instance. One that finds no instance is retried with the group's backoff
   * until the instance starts (default, for messages that can overtake the one that starts it), or ignored.
   */
  on<C extends MessageContract>(
    contract: C,
    correlate: (data: DataOf<C>) => string,
    handle: (state: S, message: Message<DataOf<C>>) => SagaStep<S>,
    options?: { readonly whenMissing?: WhenMissing },
  ): SagaBuilder<S>
  /** Runs when a timeout of this name fires for a running instance that still waits for it. */
  onTimeout(name: string, handle: TimeoutHandler<S>): SagaBuilder<S>
}

// Saga names become topics, group names and keys in stores.
const namePattern = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/

/** Defines a saga (a process manager) whose state `schema` validates after every step. */
export function defineSaga<Schema extends StandardSchemaV1>(
  name: string,
  options: { readonly state: Schema; readonly group?: string },
): SagaBuilder<StandardSchemaV1.InferOutput<Schema>> {
  type S = StandardSchemaV1.InferOutput<Schema>
  if (!namePattern.test(name)) {
    throw new ConfigurationError('name', `saga "${name}" must be lower-case words of a-z, 0-9 and "-", joined by "."`)
  }
  if (typeof options.state?.['~standard']?.validate !== 'function') {
    throw new ConfigurationError(
      'state',
      `of saga "${name}" must implement Standard Schema (zod, valibot, arktype, ...)`,
    )
  }
  const handlers = new Map<string, SagaHandlerEntry<S>>()
  const timeouts = new Map<string, TimeoutHandler<S>>()

  function add(entry: SagaHandlerEntry<S>): void {
    if (handlers.has(entry.contract.type)) {
      throw new ConfigurationError('handlers', `saga "${name}" already handles "${entry.contract.type}"`)
    }
    handlers.set(entry.contract.type, entry)
  }

  const builder: SagaBuilder<S> = {
    name,
    stateSchema: options.state as StandardSchemaV1<unknown, S>,
    group: options.group ?? `saga.${name}`,
    handlers,
    timeouts,
    startedBy(contract, correlate, handle) {
      add({
        contract,
        correlate: correlate as (data: unknown) => string,
        starts: true,
        whenMissing: 'retry',
        handle: handle as SagaHandlerEntry<S>['handle'],
      })
      return builder
    },
    on(contract, correlate, handle, handlerOptions = {}) {
      add({
        contract,
        correlate: correlate as (data: unknown) => string,
        starts: false,
        whenMissing: handlerOptions.whenMissing ?? 'retry',
        handle: handle as SagaHandlerEntry<S>['handle'],
      })
      return builder
    },
    onTimeout(timeoutName, handle) {
      if (timeouts.has(timeoutName)) {
        throw new ConfigurationError('timeouts', `saga "${name}" already handles timeout "${timeoutName}"`)
      }
      timeouts.set(timeoutName, handle)
      return builder
    },
  }
  return builder
}
