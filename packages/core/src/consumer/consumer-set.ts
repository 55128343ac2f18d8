import { resolveRetryPolicy } from '../retry-policy.js'
import type { Handler, Subscription, SubscriptionSpec } from '../transport.js'
import { type PullConsumerOptions, type PulledMessage, type PullSource, startPullConsumer } from './pull-consumer.js'
import { checkRate, createRateLimiter, type RateLimiter } from './rate-limiter.js'
import { createWakeSignal, type WakeSignal } from './wake-signal.js'

/** The pull consumer's options for a subscription, with the port's documented defaults. */
export function pullConsumerOptions(
  spec: SubscriptionSpec,
  onError: (err: unknown) => void,
  onClosed: () => void,
  rate?: RateLimiter,
): PullConsumerOptions {
  return {
    group: spec.group,
    maxInFlight: spec.maxInFlight ?? 10,
    retry: resolveRetryPolicy(spec.retry),
    shutdownTimeoutMs: spec.shutdownTimeoutMs ?? 10_000,
    onError,
    onClosed,
    ...(rate === undefined ? {} : { rate }),
    ...(spec.onSettled === undefined ? {} : { onSettled: spec.onSettled }),
  }
}

/** One limiter per group and rate: the consumers of a group in one process share it. */
export function createRateLimiters(): (spec: SubscriptionSpec) => RateLimiter | undefined {
  const limiters = new Map<string, RateLimiter>()
  return (spec) => {
    if (spec.maxPerSecond === undefined) return undefined
    checkRate(spec.maxPerSecond)
    let limiter = limiters.get(spec.group)
    if (limiter?.perSecond !== spec.maxPerSecond) {
      limiter = createRateLimiter(spec.maxPerSecond)
      limiters.set(spec.group, limiter)
    }
    return limiter
  }
}

/** A source that may hold timers or connections to release when its consumer stops. */
export type StoppablePullSource<M extends PulledMessage> = PullSource<M> & { stop?(): void }

/** The consumers of a pull-based transport and the wake-ups that reach them, by group. */
export interface ConsumerSet {
  /** Starts a consumer for `spec` on the source `sourceFor` builds around the consumer's wake signal. */
  start<M extends PulledMessage>(
    spec: SubscriptionSpec,
    handler: Handler,
    sourceFor: (wake: WakeSignal) => StoppablePullSource<M>,
  ): Subscription
  /** Wakes this process's consumers of these groups (work was just published or released for them). */
  wake(groups: Iterable<string>): void
  wakeAll(): void
  /** Closes every consumer, draining running handlers. */
  closeAll(): Promise<void>
}

export function createConsumerSet(onError: (err: unknown) => void): ConsumerSet {
  const wakes = new Map<string, Set<WakeSignal>>()
  const subscriptions = new Set<Subscription>()
  const rateFor = createRateLimiters()
  const set: ConsumerSet = {
    start(spec, handler, sourceFor) {
      const wake = createWakeSignal()
      const listeners = wakes.get(spec.group) ?? new Set()
      listeners.add(wake)
      wakes.set(spec.group, listeners)
      const source = sourceFor(wake)
      const subscription = startPullConsumer(
        source,
        handler,
        pullConsumerOptions(
          spec,
          onError,
          () => {
            source.stop?.()
            listeners.delete(wake)
            subscriptions.delete(subscription)
          },
          rateFor(spec),
        ),
      )
      subscriptions.add(subscription)
      return subscription
    },
    wake(groups) {
      for (const group of groups) for (const wake of wakes.get(group) ?? []) wake.notify()
    },
    wakeAll() {
      set.wake(wakes.keys())
    },
    async closeAll() {
      await Promise.all([...subscriptions].map((s) => s.close()))
    },
  }
  return set
}
