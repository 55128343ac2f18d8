import { ConfigurationError, poisonError, ValidationError, type ValidationIssue } from './errors.js'
import type { StandardSchemaV1 } from './standard-schema.js'
import { assertTopic } from './topic-pattern.js'

/** Turns the data of version `n` into the data of version `n + 1`. */
export type Upcaster = (data: unknown) => unknown

/**
 * A message type defined once and shared by its producers and consumers: its name, the topic it travels on,
 * the schema of its current version, and how to upgrade data written by older versions.
 */
export interface MessageContract<S extends StandardSchemaV1 = StandardSchemaV1> {
  readonly kind: 'event' | 'command'
  readonly type: string
  /** Routing key; the type unless given. */
  readonly topic: string
  /** Current schema version, from 1. */
  readonly version: number
  readonly schema: S
  /** `upcasters[n]` upgrades version `n` data to `n + 1`. */
  readonly upcasters: Readonly<Record<number, Upcaster>>
  /**
   * The key a message is ordered by, taken from its validated data: every group handles one key's messages one
   * at a time, in publish order (see `ConsumerOptions.ordering`). A publish's own `partitionKey` wins.
   */
  readonly key?: (data: never) => string
  /** Commands answered with a reply (`bus.request`): the reply's schema, validated by both sides. */
  readonly reply?: StandardSchemaV1
}

export type EventContract<S extends StandardSchemaV1 = StandardSchemaV1> = MessageContract<S> & {
  readonly kind: 'event'
}
export type CommandContract<S extends StandardSchemaV1 = StandardSchemaV1> = MessageContract<S> & {
  readonly kind: 'command'
}

/** A command its handler answers: `bus.request(contract, data)` resolves with the handler's validated reply. */
export type RequestContract<
  S extends StandardSchemaV1 = StandardSchemaV1,
  R extends StandardSchemaV1 = StandardSchemaV1,
> = CommandContract<S> & { readonly reply: R }

/** What a request's handler returns; what `bus.request` resolves with. */
export type ReplyInputOf<C extends RequestContract> = StandardSchemaV1.InferInput<C['reply']>
export type ReplyOf<C extends RequestContract> = StandardSchemaV1.InferOutput<C['reply']>

/** What a producer passes; what a handler receives. */
export type InputOf<C extends MessageContract> = StandardSchemaV1.InferInput<C['schema']>
export type DataOf<C extends MessageContract> = StandardSchemaV1.InferOutput<C['schema']>

export interface ContractOptions<S extends StandardSchemaV1> {
  readonly schema: S
  readonly version?: number
  readonly upcasters?: Readonly<Record<number, Upcaster>>
  readonly topic?: string
  /** Orders messages by this key (an order id, an account, a device): see `MessageContract.key`. */
  readonly key?: (data: StandardSchemaV1.InferOutput<S>) => string
}

function define<S extends StandardSchemaV1>(
  kind: 'event' | 'command',
  type: string,
  options: ContractOptions<S> & { readonly reply?: StandardSchemaV1 },
): MessageContract<S> {
  const version = options.version ?? 1
  if (!Number.isInteger(version) || version < 1)
    throw new ConfigurationError('version', `of "${type}" must be an integer >= 1`)
  const upcasters = options.upcasters ?? {}
  for (let v = 1; v < version; v++) {
    if (typeof upcasters[v] !== 'function') {
      throw new ConfigurationError(
        'upcasters',
        `"${type}" is at version ${version} but has no upcaster from version ${v}`,
      )
    }
  }
  const topic = options.topic ?? type
  assertTopic(topic)
  if (typeof options.schema?.['~standard']?.validate !== 'function') {
    throw new ConfigurationError('schema', `of "${type}" must implement Standard Schema (zod, valibot, arktype, ...)`)
  }
  if (options.key !== undefined && typeof options.key !== 'function')
    throw new ConfigurationError('key', `of "${type}" must be a function of the message's data`)
  if (options.reply !== undefined && typeof options.reply?.['~standard']?.validate !== 'function') {
    throw new ConfigurationError('reply', `of "${type}" must implement Standard Schema (zod, valibot, arktype, ...)`)
  }
  const contract: MessageContract<S> = { kind, type, topic, version, schema: options.schema, upcasters }
  return {
    ...contract,
    ...(options.key === undefined ? {} : { key: options.key as (data: never) => string }),
    ...(options.reply === undefined ? {} : { reply: options.reply }),
  }
}

/** Defines an event: published to every group bound to its topic; having no subscriber is fine. */
export function defineEvent<S extends StandardSchemaV1>(type: string, options: ContractOptions<S>): EventContract<S> {
  return define('event', type, options) as EventContract<S>
}

/**
 * Defines a command: sent to the one group that handles it; sending fails loudly when none is bound. With a
 * `reply` schema it is a request: its handler returns the reply and `bus.request` resolves with it.
 */
export function defineCommand<S extends StandardSchemaV1, R extends StandardSchemaV1>(
  type: string,
  options: ContractOptions<S> & { readonly reply: R },
): RequestContract<S, R>
export function defineCommand<S extends StandardSchemaV1>(type: string, options: ContractOptions<S>): CommandContract<S>
export function defineCommand<S extends StandardSchemaV1>(
  type: string,
  options: ContractOptions<S> & { readonly reply?: StandardSchemaV1 },
): CommandContract<S> {
  return define('command', type, options) as CommandContract<S>
}

function toIssues(issues: ReadonlyArray<StandardSchemaV1.Issue>): ValidationIssue[] {
  return issues.map((issue) => ({
    message: issue.message,
    path: (issue.path ?? []).map((segment) => {
      const key = typeof segment === 'object' && segment !== null ? segment.key : segment
      return typeof key === 'number' ? key : String(key)
    }),
  }))
}

/** Validates `value` against any Standard Schema; `label` names it in the `ValidationError`. */
export function validateSchema<T>(schema: StandardSchemaV1<unknown, T>, value: unknown, label: string): T | Promise<T> {
  const result = schema['~standard'].validate(value)
  const settle = (settled: StandardSchemaV1.Result<T>): T => {
    if (settled.issues !== undefined) throw new ValidationError(label, toIssues(settled.issues))
    return settled.value
  }
  return result instanceof Promise ? result.then(settle) : settle(result)
}

/** Validates `data` against the contract's schema; throws `ValidationError` with every issue's path. */
export async function validateData<C extends MessageContract>(contract: C, data: unknown): Promise<DataOf<C>> {
  return validateNow(contract, data)
}

/**
 * The same, without a promise when the schema validates synchronously (zod, valibot and arktype do for schemas
 * without async refinements): a validated message costs no microtask. Throws `ValidationError` at once, or
 * returns a promise that rejects with it.
 */
export function validateNow<C extends MessageContract>(contract: C, data: unknown): DataOf<C> | Promise<DataOf<C>> {
  const result = contract.schema['~standard'].validate(data)
  if (result instanceof Promise) return result.then((settled) => checked(contract, settled))
  return checked(contract, result)
}

function checked<C extends MessageContract>(contract: C, result: StandardSchemaV1.Result<unknown>): DataOf<C> {
  if (result.issues !== undefined) throw new ValidationError(contract.type, toIssues(result.issues))
  return result.value as DataOf<C>
}

/**
 * Brings data written at `fromVersion` up to the contract's version. A newer version than the contract knows is
 * never guessed at: it fails with reason `unsupported_version`; a throwing upcaster with `upcast_error`.
 */
export function upcast(contract: MessageContract, data: unknown, fromVersion: number): unknown {
  if (fromVersion > contract.version) {
    throw poisonError(
      'UNSUPPORTED_VERSION',
      'unsupported_version',
      `"${contract.type}" version ${fromVersion} is newer than this consumer knows (up to ${contract.version}); deploy the newer contract, then redrive`,
      { received: fromVersion, known: contract.version },
    )
  }
  let current = data
  for (let v = fromVersion; v < contract.version; v++) {
    try {
      current = contract.upcasters[v]?.(current)
    } catch (err) {
      throw poisonError(
        'UPCAST_FAILED',
        'upcast_error',
        `Upcasting "${contract.type}" from version ${v} failed: ${String(err)}`,
        {
          from: v,
        },
      )
    }
  }
  return current
}
