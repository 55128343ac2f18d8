import { type Codec, createJsonCodec } from './codec.js'
import {
  type CommandContract,
  type DataOf,
  type EventContract,
  type InputOf,
  type MessageContract,
  upcast,
  validateData,
} from './contract.js'
import { type Envelope, HeaderNames } from './envelope.js'
import { ConfigurationError, poisonError } from './errors.js'
import type { EventStore } from './event-store/event-store.js'
import { type Message, toMessage } from './message.js'
import { attempts } from './middleware/attempts.js'
import { type RetryPolicy, type RetryPolicyInput, resolveRetryPolicy } from './retry-policy.js'
import { sendPrepared } from './send-prepared.js'
import type { Delivery, Handler, Subscription, Transport } from './transport.js'
import { uuidV7 } from './uuid-v7.js'

export interface PublishMessageOptions {
  /** Message id; a UUIDv7 unless given. Reuse an id to make a retried publish idempotent downstream. */
  readonly id?: string
  readonly correlationId?: string
  readonly causationId?: string
  /**
   * Carried in the message's partition-key header. An outbox relay sends one key's messages in the order they were
   * staged; consumers do not order by key yet (competing consumers may handle one key's messages in any order).
   */
  readonly partitionKey?: string
  readonly subject?: string
  readonly headers?: Readonly<Record<string, string>>
  /** Deliver no earlier than this many ms from now (durable on durable transports). */
  readonly delayMs?: number
  /** Deliver no earlier than this time. */
  readonly deliverAt?: Date | number
}

/** Handed to a handler with its message. Publishing through it carries the flow's correlation and causation. */
export interface HandlerContext {
  readonly group: string
  readonly topic: string
  /** 1 on first delivery. Immediate in-process retries do not count; redeliveries do. */
  readonly attempt: number
  /** Aborted on handler timeout or shutdown. */
  readonly signal: AbortSignal
  publish<C extends EventContract>(contract: C, data: InputOf<C>, options?: PublishMessageOptions): Promise<string>
  send<C extends CommandContract>(contract: C, data: InputOf<C>, options?: PublishMessageOptions): Promise<string>
  /** Validates and encodes a message carrying this flow's ids, without sending it: for an outbox. */
  prepare<C extends MessageContract>(
    contract: C,
    data: InputOf<C>,
    options?: PublishMessageOptions,
  ): Promise<PreparedMessage>
}

/** A validated, encoded message not yet sent: what an outbox stores and its relay sends. */
export interface PreparedMessage {
  readonly topic: string
  readonly envelope: Envelope
  /** Commands: reject when no group is bound. */
  readonly mandatory: boolean
  /** Epoch ms; absent for immediate delivery. */
  readonly deliverAt?: number
}

export type MessageHandler<C extends MessageContract> = (
  message: Message<DataOf<C>>,
  context: HandlerContext,
) => Promise<void>

/** How a group consumes. Defaults in one place: {@link defaultConsumerOptions}. */
export interface ConsumerOptions {
  readonly maxInFlight?: number
  readonly retry?: RetryPolicyInput
  /** In-process retries of a failed attempt before it goes back for delayed redelivery. */
  readonly immediateRetries?: number
  readonly immediateRetryDelayMs?: number
  readonly handlerTimeoutMs?: number
  readonly shutdownTimeoutMs?: number
}

export const defaultConsumerOptions = {
  maxInFlight: 10,
  immediateRetries: 2,
  immediateRetryDelayMs: 50,
  handlerTimeoutMs: 30_000,
  shutdownTimeoutMs: 10_000,
} as const

export interface BusOptions {
  readonly transport: Transport
  /** This service's name: the CloudEvents `source` of what it publishes and its default group. */
  readonly service: string
  readonly codec?: Codec
  /** Contracts this service knows but does not handle: their messages dead-letter as `no_handler`, not `unknown_type`. */
  readonly contracts?: readonly MessageContract[]
  readonly consumer?: ConsumerOptions
  /**
   * Records what this bus publishes in an event store (the audit log): `publish` resolves once the event is both
   * sent and recorded. If recording fails, `publish` rejects although the message may have been sent: retry with
   * the same `id` (consumers see a duplicate id, never a second event). Commands are recorded with `commands: true`.
   */
  readonly audit?: { readonly store: EventStore; readonly commands?: boolean }
}

/** Registers handlers for one group. Handlers must be registered before `start()`. */
export interface GroupRegistrar {
  on<C extends MessageContract>(contract: C, handler: MessageHandler<C>): GroupRegistrar
}

/** The typed API over one transport: publish events, send commands, handle both. */
export interface Bus {
  readonly transport: Transport
  /** Publishes an event to every bound group. Validates first; throws `ValidationError` and sends nothing if invalid. */
  publish<C extends EventContract>(contract: C, data: InputOf<C>, options?: PublishMessageOptions): Promise<string>
  /** Sends a command to the group that handles it; rejects with `NoRouteError` when none is bound. */
  send<C extends CommandContract>(contract: C, data: InputOf<C>, options?: PublishMessageOptions): Promise<string>
  /**
   * Validates and encodes a message exactly as `publish`/`send` would, without sending it: stage it in an outbox
   * inside your own transaction and let the relay send it.
   */
  prepare<C extends MessageContract>(
    contract: C,
    data: InputOf<C>,
    options?: PublishMessageOptions,
  ): Promise<PreparedMessage>
  /** Handlers in the service's own group. */
  on<C extends MessageContract>(contract: C, handler: MessageHandler<C>): Bus
  /** Handlers in a named group (its own queue of work), with its own consumer options. */
  group(name: string, options?: ConsumerOptions): GroupRegistrar
  /** Subscribes every group. */
  start(): Promise<void>
  /** Stops every group, letting running handlers finish (up to each group's shutdown timeout). Idempotent. */
  stop(): Promise<void>
}

interface GroupState {
  readonly options: ConsumerOptions
  readonly handlers: Map<string, { contract: MessageContract; handler: MessageHandler<MessageContract> }>
}

function resolveConsumer(
  base: ConsumerOptions,
  own: ConsumerOptions,
): Required<Omit<ConsumerOptions, 'retry'>> & {
  retry: RetryPolicy
} {
  const merged = { ...defaultConsumerOptions, ...base, ...own }
  for (const field of ['maxInFlight', 'handlerTimeoutMs', 'shutdownTimeoutMs'] as const) {
    if (!(Number.isInteger(merged[field]) && merged[field] > 0))
      throw new ConfigurationError(field, 'must be a positive integer')
  }
  if (!(Number.isInteger(merged.immediateRetries) && merged.immediateRetries >= 0))
    throw new ConfigurationError('immediateRetries', 'must be an integer >= 0')
  const retryInput: RetryPolicyInput = {
    maxAttempts: own.retry?.maxAttempts ?? base.retry?.maxAttempts,
    backoff: { ...base.retry?.backoff, ...own.retry?.backoff },
  }
  return { ...merged, retry: resolveRetryPolicy(retryInput) }
}

/** Creates a bus. Nothing is subscribed until `start()`. */
export function createBus(options: BusOptions): Bus {
  const { transport } = options
  if (!options.service) throw new ConfigurationError('service', 'is required: it names the source and default group')
  const codec = options.codec ?? createJsonCodec()
  const baseConsumer = options.consumer ?? {}
  // Validated now, so a bad default fails at construction rather than at start().
  resolveConsumer(baseConsumer, {})
  const groups = new Map<string, GroupState>()
  const knownTypes = new Set((options.contracts ?? []).map((c) => c.type))
  const subscriptions: Subscription[] = []
  let started = false
  let stopping: Promise<void> | undefined

  async function prepare(
    contract: MessageContract,
    data: unknown,
    publishOptions: PublishMessageOptions,
    parent: Message<unknown> | undefined,
  ): Promise<PreparedMessage> {
    const value = await validateData(contract, data)
    const body = codec.encode(value)
    const id = publishOptions.id ?? uuidV7()
    const headers: Record<string, string> = {
      ...publishOptions.headers,
      [HeaderNames.specVersion]: '1.0',
      [HeaderNames.type]: contract.type,
      [HeaderNames.source]: options.service,
      [HeaderNames.time]: new Date().toISOString(),
      [HeaderNames.dataContentType]: codec.contentType,
      [HeaderNames.schemaVersion]: String(contract.version),
      [HeaderNames.kind]: contract.kind,
      [HeaderNames.correlationId]: publishOptions.correlationId ?? parent?.correlationId ?? id,
    }
    const causationId = publishOptions.causationId ?? parent?.id
    if (causationId !== undefined) headers[HeaderNames.causationId] = causationId
    if (publishOptions.partitionKey !== undefined) headers[HeaderNames.partitionKey] = publishOptions.partitionKey
    if (publishOptions.subject !== undefined) headers[HeaderNames.subject] = publishOptions.subject
    for (const name of [HeaderNames.traceParent, HeaderNames.traceState]) {
      const inherited = parent?.headers[name]
      if (inherited !== undefined && headers[name] === undefined) headers[name] = inherited
    }
    const deliverAt =
      publishOptions.deliverAt !== undefined
        ? Number(publishOptions.deliverAt)
        : publishOptions.delayMs !== undefined
          ? Date.now() + publishOptions.delayMs
          : undefined
    return {
      topic: contract.topic,
      envelope: { id, headers, body },
      mandatory: contract.kind === 'command',
      ...(deliverAt === undefined ? {} : { deliverAt }),
    }
  }

  async function produce(
    contract: MessageContract,
    data: unknown,
    publishOptions: PublishMessageOptions,
    parent: Message<unknown> | undefined,
  ): Promise<string> {
    const prepared = await prepare(contract, data, publishOptions, parent)
    await sendPrepared(transport, prepared, { withinHandler: parent !== undefined })
    const { topic, envelope } = prepared
    const audit = options.audit
    if (audit !== undefined && (contract.kind === 'event' || audit.commands === true)) {
      await audit.store.append([{ topic, envelope }])
    }
    return envelope.id
  }

  function contextFor(delivery: Delivery, parent: Message<unknown>): HandlerContext {
    return {
      group: delivery.group,
      topic: delivery.topic,
      attempt: delivery.attempt,
      signal: delivery.signal,
      publish: (contract, data, o = {}) => produce(contract, data, o, parent),
      send: (contract, data, o = {}) => produce(contract, data, o, parent),
      prepare: (contract, data, o = {}) => prepare(contract, data, o, parent),
    }
  }

  function dispatcherFor(state: GroupState): Handler {
    return async (envelope, delivery) => {
      if (typeof envelope.id !== 'string' || envelope.id.length === 0) {
        throw poisonError('ENVELOPE_INVALID', 'envelope_invalid', 'Envelope has no id')
      }
      const type = envelope.headers[HeaderNames.type]
      if (!type) throw poisonError('ENVELOPE_INVALID', 'envelope_invalid', 'Envelope has no "type" header')
      const registration = state.handlers.get(type)
      if (registration === undefined) {
        if (knownTypes.has(type)) {
          throw poisonError('NO_HANDLER', 'no_handler', `Group "${delivery.group}" has no handler for "${type}"`)
        }
        throw poisonError('UNKNOWN_TYPE', 'unknown_type', `No contract is registered for type "${type}"`)
      }
      const raw = codec.decode(envelope.body)
      const versionHeader = envelope.headers[HeaderNames.schemaVersion]
      // A message from a plain client without a version is taken as version 1.
      const version = versionHeader === undefined ? 1 : Number(versionHeader)
      if (!Number.isInteger(version) || version < 1) {
        throw poisonError(
          'DECODE_FAILED',
          'decode_error',
          `Header "${HeaderNames.schemaVersion}" is "${versionHeader}", not an integer >= 1`,
        )
      }
      const data = await validateData(registration.contract, upcast(registration.contract, raw, version))
      const message = toMessage(envelope, data)
      await registration.handler(message, contextFor(delivery, message))
    }
  }

  function registrar(state: GroupState): GroupRegistrar {
    const self: GroupRegistrar = {
      on(contract, handler) {
        if (started) throw new ConfigurationError('handlers', 'must be registered before bus.start()')
        if (state.handlers.has(contract.type)) {
          throw new ConfigurationError('handlers', `"${contract.type}" already has a handler in this group`)
        }
        state.handlers.set(contract.type, { contract, handler: handler as MessageHandler<MessageContract> })
        knownTypes.add(contract.type)
        return self
      },
    }
    return self
  }

  function group(name: string, consumer: ConsumerOptions = {}): GroupRegistrar {
    let state = groups.get(name)
    if (state === undefined) {
      resolveConsumer(baseConsumer, consumer)
      state = { options: consumer, handlers: new Map() }
      groups.set(name, state)
    }
    return registrar(state)
  }

  const bus: Bus = {
    transport,
    publish: (contract, data, o = {}) => produce(contract, data, o, undefined),
    send: (contract, data, o = {}) => produce(contract, data, o, undefined),
    prepare: (contract, data, o = {}) => prepare(contract, data, o, undefined),
    on(contract, handler) {
      group(options.service).on(contract, handler)
      return bus
    },
    group,
    async start() {
      if (started) return
      started = true
      for (const [name, state] of groups) {
        const consumer = resolveConsumer(baseConsumer, state.options)
        const patterns = [...new Set([...state.handlers.values()].map((h) => h.contract.topic))]
        const handler = attempts({
          retries: consumer.immediateRetries,
          retryDelayMs: consumer.immediateRetryDelayMs,
          timeoutMs: consumer.handlerTimeoutMs,
        })(dispatcherFor(state))
        subscriptions.push(
          await transport.subscribe(
            {
              group: name,
              patterns,
              maxInFlight: consumer.maxInFlight,
              retry: consumer.retry,
              shutdownTimeoutMs: consumer.shutdownTimeoutMs,
            },
            handler,
          ),
        )
      }
    },
    stop() {
      stopping ??= Promise.all(subscriptions.map((s) => s.close())).then(() => undefined)
      return stopping
    },
  }
  return bus
}
