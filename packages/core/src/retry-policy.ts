import { ConfigurationError, type DeadLetterReason, isHeraldError } from './errors.js'

/** Exponential backoff: `min(maxMs, initialMs * factor^(n-1))`, spread by ±`jitter` (a fraction, 0.2 = ±20%). */
export interface Backoff {
  readonly initialMs: number
  readonly factor: number
  readonly maxMs: number
  readonly jitter: number
}

/** Durable redelivery: how many deliveries a message gets, and the delay before each redelivery. */
export interface RetryPolicy {
  /** Deliveries in total, the first included. At least 1. */
  readonly maxAttempts: number
  readonly backoff: Backoff
}

export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 5,
  backoff: { initialMs: 1_000, factor: 2, maxMs: 60_000, jitter: 0.2 },
}

/** Validates a policy at construction, naming the bad field. */
/** A retry policy where every field may be left to its default. */
export interface RetryPolicyInput {
  readonly maxAttempts?: number | undefined
  readonly backoff?: Partial<Backoff> | undefined
}

export function resolveRetryPolicy(policy: RetryPolicyInput = {}): RetryPolicy {
  const backoff = { ...defaultRetryPolicy.backoff, ...policy.backoff }
  const resolved = { maxAttempts: policy.maxAttempts ?? defaultRetryPolicy.maxAttempts, backoff }
  if (!Number.isInteger(resolved.maxAttempts) || resolved.maxAttempts < 1)
    throw new ConfigurationError('retry.maxAttempts', 'must be an integer >= 1')
  if (!(backoff.initialMs >= 0)) throw new ConfigurationError('retry.backoff.initialMs', 'must be >= 0')
  if (!(backoff.factor >= 1)) throw new ConfigurationError('retry.backoff.factor', 'must be >= 1')
  if (!(backoff.maxMs >= backoff.initialMs)) throw new ConfigurationError('retry.backoff.maxMs', 'must be >= initialMs')
  if (!(backoff.jitter >= 0 && backoff.jitter < 1))
    throw new ConfigurationError('retry.backoff.jitter', 'must be in [0, 1)')
  return resolved
}

/** Delay before redelivery number `failedAttempt + 1`. Never negative; jitter spreads retries of a burst apart. */
export function backoffDelayMs(backoff: Backoff, failedAttempt: number, random: () => number = Math.random): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** Math.max(0, failedAttempt - 1))
  const spread = base * backoff.jitter * (2 * random() - 1)
  return Math.max(0, Math.round(base + spread))
}

/** A failure, as stored with a retry or a dead letter. Stacks are cut to keep records small. */
export interface ErrorInfo {
  readonly name: string
  readonly message: string
  readonly code?: string
  readonly stack?: string
  readonly details?: Readonly<Record<string, unknown>>
}

const maxStackChars = 4_000

export function toErrorInfo(err: unknown): ErrorInfo {
  if (!(err instanceof Error)) return { name: 'NonError', message: String(err) }
  const info: { -readonly [K in keyof ErrorInfo]: ErrorInfo[K] } = { name: err.name, message: err.message }
  if (err.stack !== undefined) info.stack = err.stack.slice(0, maxStackChars)
  if (isHeraldError(err)) {
    info.code = err.code
    if (err.details !== undefined) info.details = err.details
  }
  return info
}

/** What a transport must do with a message whose handler failed. */
export type FailureOutcome =
  | { readonly kind: 'retry'; readonly delayMs: number; readonly error: ErrorInfo }
  | { readonly kind: 'dead-letter'; readonly reason: DeadLetterReason; readonly error: ErrorInfo | undefined }

/**
 * The one place the failure model is decided, shared by every transport: errors that carry a dead-letter
 * reason (poison input, `PermanentError`) dead-letter at once; others retry with backoff until `maxAttempts`.
 */
export function decideFailure(
  err: unknown,
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): FailureOutcome {
  const error = toErrorInfo(err)
  if (isHeraldError(err) && err.deadLetterReason !== undefined) {
    return { kind: 'dead-letter', reason: err.deadLetterReason, error }
  }
  if (attempt >= policy.maxAttempts) {
    const reason = isHeraldError(err, 'HANDLER_TIMEOUT') ? 'handler_timeout' : 'handler_error'
    return { kind: 'dead-letter', reason, error }
  }
  return { kind: 'retry', delayMs: backoffDelayMs(policy.backoff, attempt, random), error }
}
