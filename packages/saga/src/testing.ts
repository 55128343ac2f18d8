import { deepStrictEqual } from 'node:assert/strict'
import { ConfigurationError, type Message, validateNow } from '@herald/core'
import { decide, type Incoming, type InstanceView, type SagaEvent } from './decide.js'
import type { Saga, SagaMessage, SagaStatus } from './define.js'

/** A timeout firing, for `given` and `when`: the instance's pending timeout of that name. */
export interface TimeoutFiring {
  readonly timeout: string
  readonly data?: unknown
}

export function timeout(name: string, data?: unknown): TimeoutFiring {
  return data === undefined ? { timeout: name } : { timeout: name, data }
}

type Input = SagaMessage | TimeoutFiring

/** What one message did, in plain data. */
export interface StepResult<S> {
  /** Set when the message changed nothing: `ended`, `stale_timeout` or `no_instance`; `missing` when it would be retried. */
  readonly ignored: string | undefined
  readonly state: S | undefined
  readonly status: SagaStatus | undefined
  /** What the step sends, in order: its own messages, then any compensations, newest first. */
  readonly messages: readonly { readonly type: string; readonly data: unknown }[]
  /** Timeouts it requested. */
  readonly timeouts: readonly { readonly name: string; readonly afterMs: number }[]
  /** Names of the timeouts pending after it. */
  readonly pending: readonly string[]
  readonly events: readonly SagaEvent[]
}

export type Expected<S> = Partial<StepResult<S>>

export interface SagaSpecWhen<S> {
  /** Checks the fields given (and only those) against what the step did; throws an assertion error with a diff. */
  then(expected: Expected<S>): StepResult<S>
  /** The step must throw; `match` is a substring of its message or a predicate. */
  thenThrows(match: string | ((err: unknown) => boolean)): unknown
  result(): StepResult<S>
}

export interface SagaSpec<S> {
  given(history?: readonly Input[]): { when(input: Input): SagaSpecWhen<S> }
}

let ids = 0

function toMessage(m: SagaMessage): Message<unknown> {
  const data = validateNow(m.contract, m.data)
  if (data instanceof Promise) {
    throw new ConfigurationError(
      'schema',
      `of "${m.contract.type}" validates asynchronously; sagaSpec runs steps synchronously`,
    )
  }
  const id = `spec-${++ids}`
  return {
    id,
    type: m.contract.type,
    data,
    source: 'saga-spec',
    time: new Date(0).toISOString(),
    correlationId: id,
    causationId: undefined,
    subject: undefined,
    partitionKey: undefined,
    headers: {},
  }
}

function isTimeout(input: Input): input is TimeoutFiring {
  return typeof (input as TimeoutFiring).timeout === 'string'
}

/**
 * Given/When/Then for a saga's pure handlers, with no store and no transport:
 * `sagaSpec(saga).given([message(OrderPlaced, …)]).when(timeout('payment')).then({ status: 'compensated' })`.
 * Every message must belong to one instance (one key).
 */
export function sagaSpec<S>(saga: Saga<S>): SagaSpec<S> {
  let key: string | undefined

  function incomingOf(input: Input, instance: InstanceView<S, SagaMessage> | undefined): Incoming {
    if (isTimeout(input)) {
      const pending = instance?.timeouts[input.timeout]
      return {
        kind: 'timeout',
        name: input.timeout,
        token: pending?.token ?? 'not-pending',
        dueAt: pending?.dueAt ?? 0,
        data: input.data ?? null,
      }
    }
    const entry = saga.handlers.get(input.contract.type)
    if (entry === undefined)
      throw new ConfigurationError('when', `saga "${saga.name}" does not handle "${input.contract.type}"`)
    const message = toMessage(input)
    const own = entry.correlate(message.data)
    if (key !== undefined && own !== key) {
      throw new ConfigurationError('given', `every message must be for one instance: "${own}" is not "${key}"`)
    }
    key = own
    return { kind: 'message', message }
  }

  function run(
    instance: InstanceView<S, SagaMessage> | undefined,
    input: Input,
  ): { instance: InstanceView<S, SagaMessage> | undefined; result: StepResult<S> } {
    const decision = decide(saga, instance, incomingOf(input, instance))
    if (decision.kind !== 'transition') {
      const ignored = decision.kind === 'missing' ? 'missing' : decision.reason
      return {
        instance,
        result: {
          ignored,
          state: instance?.state,
          status: instance?.status,
          messages: [],
          timeouts: [],
          pending: Object.keys(instance?.timeouts ?? {}),
          events: [],
        },
      }
    }
    const checked = saga.stateSchema['~standard'].validate(decision.state)
    if (checked instanceof Promise)
      throw new ConfigurationError('state', 'validates asynchronously; sagaSpec is synchronous')
    if (checked.issues !== undefined) {
      throw new ConfigurationError(
        'state',
        `after ${decision.label}: ${checked.issues.map((i) => i.message).join('; ')}`,
      )
    }
    const timeouts = { ...decision.keptTimeouts }
    for (const t of decision.requestedTimeouts) timeouts[t.name] = { token: `timeout-${++ids}`, dueAt: t.afterMs }
    const sent = [...decision.messages, ...decision.compensationsToSend]
    return {
      instance: {
        state: checked.value,
        status: decision.status,
        timeouts,
        compensations: [...decision.keptCompensations, ...decision.recordCompensations],
      },
      result: {
        ignored: undefined,
        state: checked.value,
        status: decision.status,
        messages: sent.map((m: SagaMessage) => ({ type: m.contract.type, data: m.data })),
        timeouts: decision.requestedTimeouts.map((t) => ({ name: t.name, afterMs: t.afterMs })),
        pending: Object.keys(timeouts),
        events: decision.events,
      },
    }
  }

  return {
    given(history = []) {
      key = undefined
      let instance: InstanceView<S, SagaMessage> | undefined
      for (const input of history) instance = run(instance, input).instance
      const settled = instance
      return {
        when(input) {
          const result = () => run(settled, input).result
          return {
            result,
            // biome-ignore lint/suspicious/noThenProperty: the Given/When/Then style names it; awaiting it throws a clear error
            then(expected) {
              if (typeof expected === 'function') {
                throw new ConfigurationError(
                  'then',
                  'takes the expected result; a saga spec is not a promise, do not await it',
                )
              }
              const actual = result()
              const picked = Object.fromEntries(Object.keys(expected).map((k) => [k, actual[k as keyof StepResult<S>]]))
              deepStrictEqual(picked, expected)
              return actual
            },
            thenThrows(match) {
              try {
                result()
              } catch (err) {
                const ok = typeof match === 'string' ? String((err as Error)?.message).includes(match) : match(err)
                if (!ok) throw err
                return err
              }
              throw new Error(
                `expected the step to throw ${typeof match === 'string' ? `"${match}"` : 'a matching error'}`,
              )
            },
          }
        },
      }
    },
  }
}
