import type { SettledListener } from './consumer/pull-consumer.js'
import type { Envelope } from './envelope.js'
import type { KeyOrdering } from './ordering.js'
import type { RetryPolicyInput } from './retry-policy.js'

export interface PublishOptions {
  /** Reject with `NoRouteError` (and store nothing) when no group is bound to the topic. Commands use it. */
  readonly mandatory?: boolean
  /**
   * Published by a handler while it handles a message. A transport that holds publishers back while consumers
   * catch up (the in-memory one) lets such a publish through: its handler's own consumer may be the one that has
   * to make room, and would otherwise wait for itself.
   */
  readonly withinHandler?: boolean
}

/** What a consumer asks of a transport. Bindings of a group outlive its consumers: messages wait for the next one. */
export interface SubscriptionSpec {
  /** The durable queue of work. Consumers of one group compete; every group bound to a topic gets a copy. */
  readonly group: string
  /** AMQP topic patterns bound to the group (`trip.event.*`, `order.#`). */
  readonly patterns: readonly string[]
  /** Handlers running at once for this consumer; also bounds messages fetched ahead. Default 10. */
  readonly maxInFlight?: number
  /** When delivery attempts run out and how long to wait between them. */
  readonly retry?: RetryPolicyInput
  /** How long `close()` waits for running handlers before abandoning them (not acked, redelivered later). Default 10 s. */
  readonly shutdownTimeoutMs?: number
  /** How the group handles keyed messages: one at a time per key by default. Stored with the group's bindings. */
  readonly ordering?: KeyOrdering
  /**
   * Messages the group starts per second at most. Every transport holds the consumers of this process to it
   * together; a transport whose store can (SQLite, PostgreSQL, Redis) holds every process to it together.
   */
  readonly maxPerSecond?: number
  /**
   * Told how each delivery ended, once per delivery, as the consumer hands the outcome to the store: acked,
   * retried (with its delay), dead-lettered (with its reason; deliveries that never reached a handler included),
   * or released at shutdown. If storing it then fails, the message is delivered and reported again. For
   * observers (metrics, logs, spans); what it throws goes to the transport's `onError`.
   */
  readonly onSettled?: SettledListener
}

/** Facts about one delivery of an envelope. */
export interface Delivery {
  readonly topic: string
  readonly group: string
  /** 1 on first delivery; counted by the transport when the message is handed out, so crashes count too. */
  readonly attempt: number
  /** Aborted when the consumer shuts down past its timeout, or the delivery is abandoned. */
  readonly signal: AbortSignal
}

/** Resolve to acknowledge; reject to retry (or dead-letter, per the error and the retry policy). */
export type Handler = (envelope: Envelope, delivery: Delivery) => Promise<void>

/** Wraps a handler: changes the envelope before `next`, or the outcome after it. */
export type Middleware = (next: Handler) => Handler

/** Counts reported when a consumer has stopped. */
export interface CloseReport {
  /** Handlers that finished (and were settled) during shutdown. */
  readonly drained: number
  /** Handlers still running at the shutdown timeout: their messages were neither acked nor dead-lettered. */
  readonly abandoned: number
}

export interface Subscription {
  readonly group: string
  /** Stops taking deliveries, waits for running handlers up to the shutdown timeout, settles them. Idempotent. */
  close(): Promise<CloseReport>
}

/**
 * The port every transport implements. Publishing is safe to call concurrently; a message is handed to one
 * consumer per bound group at a time, at least once; a consumer never calls its handler after `close()` resolves.
 */
export interface Transport {
  /** Short name used in logs and errors (`in-memory`, `sqlite`). */
  readonly name: string
  /** Resolves once the transport has durably accepted every envelope (for an in-memory transport: queued). */
  publish(topic: string, envelopes: readonly Envelope[], options?: PublishOptions): Promise<void>
  /** Binds the group to its patterns (durably) and starts a consumer calling `handler` per delivery. */
  subscribe(spec: SubscriptionSpec, handler: Handler): Promise<Subscription>
  /** Closes every subscription (draining running handlers), then connections. Idempotent. */
  close(): Promise<void>
}

/** Compose middleware so the first in the list is the outermost. */
export function applyMiddleware(handler: Handler, middleware: readonly Middleware[]): Handler {
  return middleware.reduceRight<Handler>((next, wrap) => wrap(next), handler)
}
