import { type Clock, isoClock, systemClock } from './clock.js'
import { type Codec, createJsonCodec } from './codec.js'
import { checkRate } from './consumer/rate-limiter.js'
import {
  type CommandContract,
  type DataOf,
  type EventContract,
  type InputOf,
  type MessageContract,
  type ReplyInputOf,
  type ReplyOf,
  type RequestContract,
  upcast,
  validateNow,
  validateSchema,
} from './contract.js'
import { type Envelope, HeaderNames } from './envelope.js'
import { ConfigurationError, InvalidHeaderError, isHeraldError, poisonError } from './errors.js'
import type { EventStore } from './event-store/event-store.js'
import { type Message, toMessage } from './message.js'
import { attempts } from './middleware/attempts.js'
import { type KeyOrdering, maxKeyLength, resolveKeyOrdering } from './ordering.js'
import { createReplyChannel, type ReplyChannel, replyHeaders, replyTopicOf, replyType } from './replies.js'
import { type RetryPolicy, type RetryPolicyInput, resolveRetryPolicy } from './retry-policy.js'
import { sendPrepared } from './send-prepared.js'
import type { Delivery, Handler, PublishOptions, Subscription, Transport } from './transport.js'
import { uuidV7 } from './uuid-v7.js'

export interface PublishMessageOptions {
  /** Message id; a UUIDv7 unless given. Reuse an id to make a retried publish idempotent downstream. */
  readonly id?: string
  readonly correlationId?: string
  readonly causationId?: string
  /**
   * The key this message is ordered by (its `partitionkey` header); the contract's `key` unless given. Every group
   * handles one key's messages one at a time, in publish order (`ConsumerOptions.ordering`), and an outbox relay
   * sends them in the order they were staged. At most 512 characters.
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

/** Handles a request: what it returns is validated against the contract's reply schema and sent back. */
export type RequestHandler<C extends RequestContract> = (
  message: Message<DataOf<C>>,
  context: HandlerContext,
) => Promise<ReplyInputOf<C>>

export interface RequestOptions extends PublishMessageOptions {
  /** How long to wait for the reply. Default 10 s. */
  readonly timeoutMs?: number
}

export const defaultRequestTimeoutMs = 10_000

/** How a group consumes. Defaults in one place: {@link defaultConsumerOptions}. */
export interface ConsumerOptions {
  readonly maxInFlight?: number
  readonly retry?: RetryPolicyInput
  /** In-process retries of a failed attempt before it goes back for delayed redelivery. */
  readonly immediateRetries?: number
  readonly immediateRetryDelayMs?: number
  readonly handlerTimeoutMs?: number
  readonly shutdownTimeoutMs?: number
  /** Keyed messages: how many of one key at once (default 1, in order) and what a dead letter does to its key. */
  readonly ordering?: KeyOrdering
  /** Messages the group starts per second at most, across its consumers (see `SubscriptionSpec.maxPerSecond`). */
  readonly maxPerSecond?: number
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
  /**
   * Whose time the bus reads: the CloudEvents `time`, ids, `delayMs`, handler timeouts and immediate retries.
   * Default: the system's. Give the transport the same clock.
   */
  readonly clock?: Clock
}

/** Registers handlers for one group. Handlers must be registered before `start()`. */
export interface GroupRegistrar {
  on<C extends RequestContract>(contract: C, handler: RequestHandler<C>): GroupRegistrar
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
   * Sends a request (a command with a `reply` schema) and resolves with its handler's validated reply. Rejects
   * with `RequestTimeoutError` naming the command when none comes in `timeoutMs`, with `NoRouteError` when no
   * group handles it, and with the handler's error when the request was dead-lettered.
   */
  request<C extends RequestContract>(contract: C, data: InputOf<C>, options?: RequestOptions): Promise<ReplyOf<C>>
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
  on<C extends RequestContract>(contract: C, handler: RequestHandler<C>): Bus
  on<C extends MessageContract>(contract: C, handler: MessageHandler<C>): Bus
  /** Handlers in a named group (its own queue of work), with its own consumer options. */
  group(name: string, options?: ConsumerOptions): GroupRegistrar
  /** Subscribes every group. */
  start(): Promise<void>
  /** Stops every group, letting running handlers finish (up to each group's shutdown timeout). Idempotent. */
  stop(): Promise<void>
}

type AnyHandler = (message: Message<unknown>, context: HandlerContext) => Promise<unknown>

interface GroupState {
  readonly options: ConsumerOptions
  readonly handlers: Map<string, { contract: MessageContract; handler: AnyHandler }>
}

function resolveConsumer(
  base: ConsumerOptions,
  own: ConsumerOptions,
): Required<Omit<ConsumerOptions, 'retry' | 'ordering' | 'maxPerSecond'>> & {
  retry: RetryPolicy
  ordering: KeyOrdering | undefined
  maxPerSecond: number | undefined
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
  const ordering = own.ordering ?? base.ordering
  resolveKeyOrdering(ordering)
  const maxPerSecond = own.maxPerSecond ?? base.maxPerSecond
  if (maxPerSecond !== undefined) checkRate(maxPerSecond)
  return { ...merged, retry: resolveRetryPolicy(retryInput), ordering, maxPerSecond }
}

const noOptions: PublishMessageOptions = Object.freeze({})

/** The four ways a bus publishes, made once rather than per message. */
const publishOptionSets: readonly PublishOptions[] = [
  Object.freeze({ mandatory: false, withinHandler: false }),
  Object.freeze({ mandatory: true, withinHandler: false }),
  Object.freeze({ mandatory: false, withinHandler: true }),
  Object.freeze({ mandatory: true, withinHandler: true }),
]

function publishOptionsFor(mandatory: boolean, withinHandler: boolean): PublishOptions {
  return publishOptionSets[(mandatory ? 1 : 0) + (withinHandler ? 2 : 0)]!
}

// CR and LF split a header line in text protocols and stored rows; NUL ends a C string in brokers and drivers.
const unsafe = /[\r\n\0]/

function checkText(field: string, value: unknown): void {
  if (typeof value !== 'string') throw new InvalidHeaderError(field, `must be a string, not ${typeof value}`)
  if (unsafe.test(value)) throw new InvalidHeaderError(field, 'contains CR, LF or NUL')
}

function checkKey(key: unknown): void {
  checkText('partitionKey', key)
  const length = (key as string).length
  if (length === 0 || length > maxKeyLength)
    throw new InvalidHeaderError('partitionKey', `must be 1 to ${maxKeyLength} characters, not ${length}`)
}

/** What a caller passes that becomes a header: no CR, LF or NUL, and an id that is not empty. */
function checkPublishOptions(o: PublishMessageOptions): void {
  if (o.id !== undefined) {
    checkText('id', o.id)
    if (o.id.length === 0) throw new InvalidHeaderError('id', 'is empty')
  }
  if (o.correlationId !== undefined) checkText('correlationId', o.correlationId)
  if (o.causationId !== undefined) checkText('causationId', o.causationId)
  if (o.partitionKey !== undefined) checkKey(o.partitionKey)
  if (o.subject !== undefined) checkText('subject', o.subject)
  if (o.headers !== undefined) {
    for (const name in o.headers) {
      if (name.length === 0 || unsafe.test(name))
        throw new InvalidHeaderError(`header name ${JSON.stringify(name)}`, 'is empty or contains CR, LF or NUL')
      checkText(`header "${name}"`, o.headers[name])
    }
  }
}

interface Producer {
  produce(
    contract: MessageContract,
    data: unknown,
    options: PublishMessageOptions,
    parent: Message<unknown> | undefined,
  ): Promise<string>
  prepare(
    contract: MessageContract,
    data: unknown,
    options: PublishMessageOptions,
    parent: Message<unknown> | undefined,
  ): Promise<PreparedMessage>
}

/**
 * A handler's context. Its fields are read from the delivery only when the handler reads them (a delivery's signal
 * is made on first read), and its functions are made on first read too, bound, so `const { publish } = context`
 * works as well as `context.publish(...)`.
 */
class Context implements HandlerContext {
  constructor(
    readonly delivery: Delivery,
    readonly parent: Message<unknown>,
    readonly producer: Producer,
  ) {}

  get group(): string {
    return this.delivery.group
  }

  get topic(): string {
    return this.delivery.topic
  }

  get attempt(): number {
    return this.delivery.attempt
  }

  get signal(): AbortSignal {
    return this.delivery.signal
  }

  get publish(): HandlerContext['publish'] {
    return (contract, data, o = noOptions) => this.producer.produce(contract, data, o, this.parent)
  }

  get send(): HandlerContext['send'] {
    return (contract, data, o = noOptions) => this.producer.produce(contract, data, o, this.parent)
  }

  get prepare(): HandlerContext['prepare'] {
    return (contract, data, o = noOptions) => this.producer.prepare(contract, data, o, this.parent)
  }
}

/** Creates a bus. Nothing is subscribed until `start()`. */
export function createBus(options: BusOptions): Bus {
  const { transport } = options
  if (!options.service) throw new ConfigurationError('service', 'is required: it names the source and default group')
  if (unsafe.test(options.service)) throw new ConfigurationError('service', 'must not contain CR, LF or NUL')
  const codec = options.codec ?? createJsonCodec()
  const clock = options.clock ?? systemClock
  // The CloudEvents `time` of the current millisecond, formatted once per millisecond rather than once per message.
  const isoNow = isoClock(clock)
  const baseConsumer = options.consumer ?? {}
  // Validated now, so a bad default fails at construction rather than at start().
  resolveConsumer(baseConsumer, {})
  const groups = new Map<string, GroupState>()
  const knownTypes = new Set((options.contracts ?? []).map((c) => c.type))
  const subscriptions: Subscription[] = []
  let replies: ReplyChannel | undefined
  let started = false
  let stopping: Promise<void> | undefined

  /** Validates, encodes and wraps a message. Synchronous unless the schema validates asynchronously. */
  function prepareNow(
    contract: MessageContract,
    data: unknown,
    publishOptions: PublishMessageOptions,
    parent: Message<unknown> | undefined,
  ): PreparedMessage | Promise<PreparedMessage> {
    const value = validateNow(contract, data)
    if (value instanceof Promise) return value.then((valid) => build(contract, valid, publishOptions, parent))
    return build(contract, value, publishOptions, parent)
  }

  function build(
    contract: MessageContract,
    value: unknown,
    publishOptions: PublishMessageOptions,
    parent: Message<unknown> | undefined,
  ): PreparedMessage {
    checkPublishOptions(publishOptions)
    const body = codec.encode(value)
    const id = publishOptions.id ?? uuidV7(clock.now())
    // The caller's headers first: Herald's own names below always win.
    const headers: Record<string, string> = publishOptions.headers === undefined ? {} : { ...publishOptions.headers }
    headers[HeaderNames.specVersion] = '1.0'
    headers[HeaderNames.type] = contract.type
    headers[HeaderNames.source] = options.service
    headers[HeaderNames.time] = isoNow()
    headers[HeaderNames.dataContentType] = codec.contentType
    headers[HeaderNames.schemaVersion] = String(contract.version)
    headers[HeaderNames.kind] = contract.kind
    headers[HeaderNames.correlationId] = publishOptions.correlationId ?? parent?.correlationId ?? id
    const causationId = publishOptions.causationId ?? parent?.id
    if (causationId !== undefined) headers[HeaderNames.causationId] = causationId
    const key = publishOptions.partitionKey ?? keyOf(contract, value)
    if (key !== undefined) headers[HeaderNames.partitionKey] = key
    if (publishOptions.subject !== undefined) headers[HeaderNames.subject] = publishOptions.subject
    if (parent !== undefined) {
      for (const name of [HeaderNames.traceParent, HeaderNames.traceState]) {
        const inherited = parent.headers[name]
        if (inherited !== undefined && headers[name] === undefined) headers[name] = inherited
      }
    }
    const deliverAt =
      publishOptions.deliverAt !== undefined
        ? Number(publishOptions.deliverAt)
        : publishOptions.delayMs !== undefined
          ? clock.now() + publishOptions.delayMs
          : undefined
    const envelope: Envelope = { id, headers, body }
    const mandatory = contract.kind === 'command'
    return deliverAt === undefined
      ? { topic: contract.topic, envelope, mandatory }
      : { topic: contract.topic, envelope, mandatory, deliverAt }
  }

  function keyOf(contract: MessageContract, value: unknown): string | undefined {
    if (contract.key === undefined) return undefined
    const key = (contract.key as (data: unknown) => unknown)(value)
    checkKey(key)
    return key as string
  }

  function prepare(
    contract: MessageContract,
    data: unknown,
    publishOptions: PublishMessageOptions,
    parent: Message<unknown> | undefined,
  ): Promise<PreparedMessage> {
    try {
      return Promise.resolve(prepareNow(contract, data, publishOptions, parent))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  function produce(
    contract: MessageContract,
    data: unknown,
    publishOptions: PublishMessageOptions,
    parent: Message<unknown> | undefined,
  ): Promise<string> {
    try {
      const prepared = prepareNow(contract, data, publishOptions, parent)
      if (prepared instanceof Promise) return prepared.then((ready) => deliver(contract, ready, parent !== undefined))
      return deliver(contract, prepared, parent !== undefined)
    } catch (err) {
      return Promise.reject(err)
    }
  }

  function deliver(contract: MessageContract, prepared: PreparedMessage, withinHandler: boolean): Promise<string> {
    const { topic, envelope } = prepared
    const sent =
      prepared.deliverAt === undefined
        ? transport.publish(topic, [envelope], publishOptionsFor(prepared.mandatory, withinHandler))
        : sendPrepared(transport, prepared, { withinHandler, clock })
    const audit = options.audit
    if (audit !== undefined && (contract.kind === 'event' || audit.commands === true)) {
      return sent.then(() => audit.store.append([{ topic, envelope }])).then(() => envelope.id)
    }
    return sent.then(() => envelope.id)
  }

  const producer: Producer = { produce, prepare }

  function dispatcherFor(state: GroupState): Handler {
    return (envelope, delivery) => {
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
      const { contract, handler } = registration
      // A request's reply address is checked before its handler runs: a forged one dead-letters it untouched.
      if (contract.reply !== undefined)
        return answer(replyTopicOf(envelope), contract, handler, envelope, raw, version, delivery)
      const data = validateNow(contract, version === contract.version ? raw : upcast(contract, raw, version))
      if (data instanceof Promise) {
        return data.then((valid) => {
          const message = toMessage(envelope, valid)
          return handler(message, new Context(delivery, message, producer)) as Promise<void>
        })
      }
      const message = toMessage(envelope, data)
      return handler(message, new Context(delivery, message, producer)) as Promise<void>
    }
  }

  /** Runs a request's handler and sends its reply (or, when it failed for good, why) to `replyTo`, if it has one. */
  async function answer(
    replyTo: string | undefined,
    contract: MessageContract,
    handler: AnyHandler,
    envelope: Envelope,
    raw: unknown,
    version: number,
    delivery: Delivery,
  ): Promise<void> {
    const data = await validateNow(contract, version === contract.version ? raw : upcast(contract, raw, version))
    const message = toMessage(envelope, data)
    const done = handler(message, new Context(delivery, message, producer))
    if (replyTo === undefined) {
      await done
      return
    }
    try {
      await reply(replyTo, contract, message, await done)
    } catch (err) {
      await replyFailure(replyTo, message, err)
    }
  }

  function replyEnvelope(request: Message<unknown>, body: Uint8Array, failure?: string): Envelope {
    const headers: Record<string, string> = {
      [HeaderNames.specVersion]: '1.0',
      [HeaderNames.type]: replyType,
      [HeaderNames.source]: options.service,
      [HeaderNames.time]: isoNow(),
      [HeaderNames.dataContentType]: codec.contentType,
      [HeaderNames.correlationId]: request.correlationId,
      [HeaderNames.causationId]: request.id,
      [replyHeaders.inReplyTo]: request.id,
    }
    if (failure !== undefined) headers[replyHeaders.failed] = failure
    return { id: uuidV7(clock.now()), headers, body }
  }

  async function reply(topic: string, contract: MessageContract, request: Message<unknown>, value: unknown) {
    const valid = await validateSchema(contract.reply!, value, `reply to ${contract.type}`)
    await transport.publish(topic, [replyEnvelope(request, codec.encode(valid))], publishOptionsFor(false, true))
  }

  /** A request that failed for good tells its requester why; one that will be retried says nothing yet. */
  async function replyFailure(topic: string, request: Message<unknown>, err: unknown): Promise<never> {
    if (isHeraldError(err) && err.deadLetterReason !== undefined) {
      const why = `${err.deadLetterReason}: ${err.message}`.replace(/[\r\n\0]/g, ' ').slice(0, 500)
      await transport
        .publish(topic, [replyEnvelope(request, new Uint8Array(0), why)], publishOptionsFor(false, true))
        .catch(() => {})
    }
    throw err
  }

  async function request(contract: RequestContract, data: unknown, requestOptions: RequestOptions): Promise<unknown> {
    if (contract.reply === undefined) {
      throw new ConfigurationError(
        'contract',
        `"${contract.type}" has no reply schema: define it with { schema, reply }`,
      )
    }
    const { timeoutMs = defaultRequestTimeoutMs, ...publishOptions } = requestOptions
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new ConfigurationError('timeoutMs', 'must be > 0')
    replies ??= createReplyChannel({ transport, codec, clock })
    const channel = replies
    await channel.ready()
    const headers = { ...publishOptions.headers, [replyHeaders.replyTo]: channel.topic }
    const prepared = await prepare(contract, data, { ...publishOptions, headers }, undefined)
    const answer = channel.expect(prepared.envelope.id, contract, timeoutMs)
    try {
      await deliver(contract, prepared, false)
    } catch (err) {
      channel.cancel(prepared.envelope.id)
      throw err
    }
    return answer
  }

  function registrar(state: GroupState): GroupRegistrar {
    const self: GroupRegistrar = {
      on(contract: MessageContract, handler: AnyHandler) {
        if (started) throw new ConfigurationError('handlers', 'must be registered before bus.start()')
        if (state.handlers.has(contract.type)) {
          throw new ConfigurationError('handlers', `"${contract.type}" already has a handler in this group`)
        }
        state.handlers.set(contract.type, { contract, handler })
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
    publish: (contract, data, o = noOptions) => produce(contract, data, o, undefined),
    send: (contract, data, o = noOptions) => produce(contract, data, o, undefined),
    request: (contract, data, o = noOptions) => request(contract, data, o) as Promise<ReplyOf<typeof contract>>,
    prepare: (contract, data, o = noOptions) => prepare(contract, data, o, undefined),
    on(contract: MessageContract, handler: AnyHandler) {
      group(options.service).on(contract, handler as MessageHandler<MessageContract>)
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
          clock,
        })(dispatcherFor(state))
        subscriptions.push(
          await transport.subscribe(
            {
              group: name,
              patterns,
              maxInFlight: consumer.maxInFlight,
              retry: consumer.retry,
              shutdownTimeoutMs: consumer.shutdownTimeoutMs,
              ...(consumer.ordering === undefined ? {} : { ordering: consumer.ordering }),
              ...(consumer.maxPerSecond === undefined ? {} : { maxPerSecond: consumer.maxPerSecond }),
            },
            handler,
          ),
        )
      }
    },
    stop() {
      stopping ??= Promise.all([...subscriptions.map((s) => s.close()), replies?.close()]).then(() => undefined)
      return stopping
    },
  }
  return bus
}
