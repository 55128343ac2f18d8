/** Stable codes callers can branch on with {@link isHeraldError}. */
export type HeraldErrorCode =
  | 'CONFIGURATION'
  | 'VALIDATION_FAILED'
  | 'DECODE_FAILED'
  | 'ENVELOPE_INVALID'
  | 'UNKNOWN_TYPE'
  | 'NO_HANDLER'
  | 'UNSUPPORTED_VERSION'
  | 'UPCAST_FAILED'
  | 'MESSAGE_TOO_LARGE'
  | 'HEADER_INVALID'
  | 'NO_ROUTE'
  | 'PERMANENT'
  | 'HANDLER_TIMEOUT'
  | 'TRANSPORT_CLOSED'
  | 'NOT_SUPPORTED'
  | 'NOT_FOUND'
  | 'CONCURRENCY'
  | 'REPLAY_GAP'
  | 'PUBLISH_INDETERMINATE'
  | 'BROKER_BLOCKED'
  | 'ABORTED'
  | 'REQUEST_TIMEOUT'
  | 'SAGA_NOT_STARTED'

/** Why a message was dead-lettered. Stored with every dead letter; stable, so dashboards and alerts can key on it. */
export type DeadLetterReason =
  | 'handler_error'
  | 'handler_timeout'
  | 'permanent_error'
  | 'max_deliveries_exceeded'
  | 'decode_error'
  | 'envelope_invalid'
  | 'schema_validation'
  | 'unknown_type'
  | 'no_handler'
  | 'unsupported_version'
  | 'upcast_error'
  | 'too_large'

/** Base of every error Herald throws. `code` is stable; `message` says what happened and what to do. */
export class HeraldError extends Error {
  readonly code: HeraldErrorCode
  /** When set, a handler failing with this error is dead-lettered at once with this reason, never retried. */
  readonly deadLetterReason: DeadLetterReason | undefined
  readonly details: Readonly<Record<string, unknown>> | undefined

  constructor(
    code: HeraldErrorCode,
    message: string,
    options: { cause?: unknown; deadLetterReason?: DeadLetterReason; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'HeraldError'
    this.code = code
    this.deadLetterReason = options.deadLetterReason
    this.details = options.details
  }
}

/** True when `err` is a Herald error, optionally with the given code. Works across package copies. */
export function isHeraldError(err: unknown, code?: HeraldErrorCode): err is HeraldError {
  if (typeof err !== 'object' || err === null) return false
  const candidate = err as { code?: unknown; deadLetterReason?: unknown }
  if (!(err instanceof HeraldError) && !('deadLetterReason' in candidate)) return false
  return code === undefined || candidate.code === code
}

/** Throw from a handler to dead-letter the message at once: retrying cannot help. */
export class PermanentError extends HeraldError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('PERMANENT', message, { ...options, deadLetterReason: 'permanent_error' })
    this.name = 'PermanentError'
  }
}

export class ConfigurationError extends HeraldError {
  constructor(field: string, problem: string) {
    super('CONFIGURATION', `Invalid option "${field}": ${problem}`, { details: { field } })
    this.name = 'ConfigurationError'
  }
}

/** One problem found by a schema, with the path to the offending value. */
export interface ValidationIssue {
  readonly path: readonly (string | number)[]
  readonly message: string
}

export class ValidationError extends HeraldError {
  readonly issues: readonly ValidationIssue[]
  constructor(type: string, issues: readonly ValidationIssue[]) {
    const list = issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ')
    super('VALIDATION_FAILED', `Payload of "${type}" does not match its schema: ${list}`, {
      deadLetterReason: 'schema_validation',
      details: { type, issues },
    })
    this.name = 'ValidationError'
    this.issues = issues
  }
}

/**
 * A header name or value, or an id, subject or key that travels as one, holds a character no broker can carry
 * safely (CR, LF or NUL) or is empty where a value is needed. Nothing was sent.
 */
export class InvalidHeaderError extends HeraldError {
  constructor(field: string, problem: string) {
    super('HEADER_INVALID', `${field} ${problem}`, { details: { field } })
    this.name = 'InvalidHeaderError'
  }
}

export class MessageTooLargeError extends HeraldError {
  readonly size: number
  readonly limit: number
  constructor(size: number, limit: number) {
    super(
      'MESSAGE_TOO_LARGE',
      `Message of ${size} bytes exceeds the limit of ${limit} bytes; raise maxMessageBytes or store the payload elsewhere and send a reference`,
      { deadLetterReason: 'too_large', details: { size, limit } },
    )
    this.name = 'MessageTooLargeError'
    this.size = size
    this.limit = limit
  }
}

export class NoRouteError extends HeraldError {
  constructor(topic: string) {
    super(
      'NO_ROUTE',
      `No group is bound to "${topic}", so the message would be lost; start the handling service (or declare its group) first`,
      { details: { topic } },
    )
    this.name = 'NoRouteError'
  }
}

export class HandlerTimeoutError extends HeraldError {
  constructor(timeoutMs: number) {
    super('HANDLER_TIMEOUT', `Handler did not finish within ${timeoutMs} ms; its signal was aborted`, {
      details: { timeoutMs },
    })
    this.name = 'HandlerTimeoutError'
  }
}

/** `bus.request` had no reply in time. The request may still be handled: requests are at least once, like sends. */
export class RequestTimeoutError extends HeraldError {
  constructor(type: string, timeoutMs: number, requestId: string) {
    super(
      'REQUEST_TIMEOUT',
      `No reply to "${type}" within ${timeoutMs} ms (request ${requestId}); is a group handling it running?`,
      { details: { type, timeoutMs, requestId } },
    )
    this.name = 'RequestTimeoutError'
  }
}

export class TransportClosedError extends HeraldError {
  constructor(transport: string) {
    super('TRANSPORT_CLOSED', `Transport "${transport}" is closed; create a new one to publish or subscribe`)
    this.name = 'TransportClosedError'
  }
}

/**
 * The broker did not confirm a publish in time (or the connection dropped before it did): the message may or may
 * not be stored. Publish it again with the same id; consumers dedupe by id (see the inbox).
 */
export class PublishIndeterminateError extends HeraldError {
  constructor(transport: string, why: string, timeoutMs: number) {
    super(
      'PUBLISH_INDETERMINATE',
      `${transport}: publish not confirmed within ${timeoutMs} ms (${why}); it may or may not have been stored: publish it again with the same message id`,
      { details: { transport, why, timeoutMs } },
    )
    this.name = 'PublishIndeterminateError'
  }
}

/** The broker refuses publishes (a memory or disk alarm): nothing was sent; retry once the alarm clears. */
export class BrokerBlockedError extends HeraldError {
  constructor(transport: string, reason: string, timeoutMs: number) {
    super(
      'BROKER_BLOCKED',
      `${transport}: the broker blocked publishing (${reason}) for ${timeoutMs} ms; nothing was sent: free memory or disk on the broker, then publish again`,
      { details: { transport, reason, timeoutMs } },
    )
    this.name = 'BrokerBlockedError'
  }
}

/** An append to a stream found it at another version than the caller expected: reload, decide again, retry. */
export class ConcurrencyError extends HeraldError {
  readonly stream: string
  readonly expected: number | 'no-stream'
  readonly actual: number
  constructor(stream: string, expected: number | 'no-stream', actual: number) {
    super(
      'CONCURRENCY',
      `Stream "${stream}" is at version ${actual}, not ${expected} as expected: another writer appended first; reload the stream and retry`,
      { details: { stream, expected, actual } },
    )
    this.name = 'ConcurrencyError'
    this.stream = stream
    this.expected = expected
    this.actual = actual
  }
}

/** A catch-up reader's checkpoint points into events that retention has deleted: it would silently skip them. */
export class ReplayGapError extends HeraldError {
  readonly firstMissing: number
  constructor(reader: string, firstMissing: number, retainedFrom: number) {
    super(
      'REPLAY_GAP',
      `"${reader}" needs events from position ${firstMissing}, but retention deleted everything below ${retainedFrom}; rebuild it from a snapshot or reset its checkpoint`,
      { details: { reader, firstMissing, retainedFrom } },
    )
    this.name = 'ReplayGapError'
    this.firstMissing = firstMissing
  }
}

/** A message that can never be handled as it is (bad bytes, bad envelope, unknown type): dead-lettered at once. */
export function poisonError(
  code: HeraldErrorCode,
  reason: DeadLetterReason,
  message: string,
  details?: Record<string, unknown>,
): HeraldError {
  return new HeraldError(
    code,
    message,
    details === undefined ? { deadLetterReason: reason } : { deadLetterReason: reason, details },
  )
}
