/**
 * The adapter toolkit: what a transport is built from (the pull consumer and its consumer set, rate limiters,
 * wake-ups, the coalescer, stored-row helpers). Applications import `@herald/core`; transports import this too.
 */
export {
  type BatchOutcome,
  type Coalescer,
  createCoalescer,
  succeeded,
} from './batching/coalescer.js'
export {
  type ConsumerSet,
  createConsumerSet,
  createRateLimiters,
  pullConsumerOptions,
  type StoppablePullSource,
} from './consumer/consumer-set.js'
export type { SettledListener, Settlement } from './consumer/pull-consumer.js'
export {
  type PullConsumerOptions,
  type PulledMessage,
  type PullSource,
  settlementOf,
  startPullConsumer,
} from './consumer/pull-consumer.js'
export {
  burstOf,
  createRateLimiter,
  type RateLimiter,
} from './consumer/rate-limiter.js'
export {
  createWakeSignal,
  type WakeSignal,
} from './consumer/wake-signal.js'
export {
  type DeadLetterRow,
  deadLetterFromRow,
  type EventRow,
  parseStoredHeaders,
  storedBody,
  storedEventFromRow,
  storedHeadersText,
  toBuffer,
} from './stored-row.js'
