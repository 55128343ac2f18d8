export {
  type Bus,
  type BusOptions,
  type ConsumerOptions,
  createBus,
  defaultConsumerOptions,
  defaultRequestTimeoutMs,
  type GroupRegistrar,
  type HandlerContext,
  type MessageHandler,
  type PreparedMessage,
  type PublishMessageOptions,
  type RequestHandler,
  type RequestOptions,
} from './bus.js'
export {
  countDeadLetters,
  type DeadLetterStore,
  type DurableTransport,
  type GroupInfo,
  type GroupSettings,
  type GroupTopology,
  type HealthCheck,
  type HealthReport,
  isDeadLetterStore,
  isHealthCheck,
  isScheduler,
  isTopologyAdmin,
  isTopologyDescriber,
  type Scheduler,
  type TopologyAdmin,
  type TopologyDescriber,
  type TopologyDescription,
} from './capabilities.js'
export { type Clock, type ClockTimer, isoClock, systemClock } from './clock.js'
export { type Codec, createJsonCodec, defaultMaxMessageBytes, type JsonCodecOptions } from './codec.js'
export type {
  SettledListener,
  Settlement,
} from './consumer/pull-consumer.js'
export {
  type CommandContract,
  type ContractOptions,
  type DataOf,
  defineCommand,
  defineEvent,
  type EventContract,
  type InputOf,
  type MessageContract,
  type ReplyInputOf,
  type ReplyOf,
  type RequestContract,
  type Upcaster,
  upcast,
  validateData,
  validateNow,
  validateSchema,
} from './contract.js'
export {
  compareDeadLetters,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterPage,
  type DeadLetterQuery,
  matchesDeadLetterFilter,
  pageOfDeadLetters,
} from './dead-letter.js'
export { type Envelope, HeaderNames } from './envelope.js'
export {
  BrokerBlockedError,
  ConcurrencyError,
  ConfigurationError,
  type DeadLetterReason,
  HandlerTimeoutError,
  HeraldError,
  type HeraldErrorCode,
  InvalidHeaderError,
  isHeraldError,
  MessageTooLargeError,
  NoRouteError,
  PermanentError,
  PublishIndeterminateError,
  poisonError,
  ReplayGapError,
  RequestTimeoutError,
  TransportClosedError,
  ValidationError,
  type ValidationIssue,
} from './errors.js'
export {
  matchesEventFilter,
  type Projection,
  type ProjectionOptions,
  type ReplayOptions,
  type ReplayProgress,
  replayEvents,
  startProjection,
} from './event-store/catch-up.js'
export {
  type AppendResult,
  assertExpectedVersion,
  assertStreamName,
  type EventFilter,
  type EventPage,
  type EventQuery,
  type EventStore,
  type EventToStore,
  type ExpectedVersion,
  eventFields,
  eventPageSize,
  maxEventPage,
  type RetentionOptions,
  type RetentionResult,
  type StoredEvent,
} from './event-store/event-store.js'
export { createInMemoryEventStore } from './event-store/in-memory-event-store.js'
export { type RecordEventsOptions, recordEvents } from './event-store/recorder.js'
export { createHybridTransport, type HybridTransport, type HybridTransportOptions } from './hybrid-transport.js'
export {
  createInMemoryTransport,
  type InMemoryTransport,
  type InMemoryTransportOptions,
} from './in-memory/in-memory-transport.js'
export { type Message, toMessage } from './message.js'
export { type AttemptOptions, attempts } from './middleware/attempts.js'
export {
  type AfterDeadLetter,
  defaultKeyOrdering,
  groupSettingsOf,
  type HeldKey,
  isKeyAdmin,
  type KeyAdmin,
  type KeyOrdering,
  maxKeyLength,
  orderingKeyOf,
  type ResolvedKeyOrdering,
  resolveKeyOrdering,
} from './ordering.js'
export {
  type OutboxRecord,
  type OutboxRelay,
  type OutboxRelayOptions,
  type OutboxStats,
  type OutboxStore,
  startOutboxRelay,
} from './outbox/relay.js'
export {
  type Backoff,
  backoffDelayMs,
  decideFailure,
  defaultRetryPolicy,
  type ErrorInfo,
  type FailureOutcome,
  type RetryPolicy,
  type RetryPolicyInput,
  resolveRetryPolicy,
  toErrorInfo,
} from './retry-policy.js'
export { sendPrepared } from './send-prepared.js'
export { sleep } from './sleep.js'
export type { StandardSchemaV1 } from './standard-schema.js'
export { assertTopic, assertTopicPattern, compileTopicPattern, matchesTopic } from './topic-pattern.js'
export {
  applyMiddleware,
  type CloseReport,
  type Delivery,
  type Handler,
  type Middleware,
  type PublishOptions,
  type Subscription,
  type SubscriptionSpec,
  type Transport,
} from './transport.js'
export { uuidV7 } from './uuid-v7.js'
