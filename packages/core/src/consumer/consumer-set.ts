import { resolveRetryPolicy } from '../retry-policy.js'
import type { Handler, Subscription, SubscriptionSpec } from '../transport.js'
import { type PullConsumerOptions, type PulledMessage, type PullSource, startPullConsumer } from './pull-consumer.js'
import { createWakeSignal, type WakeSignal } from './wake-signal.js'

/** The pull consumer's options for a subscription, with the port's documented defaults. */
export function pullConsumerOptions(
  spec: SubscriptionSpec,
  onError: (err: unknown) => void,
  onClosed: () => void,
): PullConsumerOptions {
  return {
    group: spec.group,
    maxInFlight: spec.maxInFlight ?? 10,
    retry: resolveRetryPolicy(spec.retry),
    shutdownTimeoutMs: spec.shutdownTimeoutMs ?? 10_000,
    onError,
    onClosed,
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
        pullConsumerOptions(spec, onError, () => {
          source.stop?.()
          listeners.delete(wake)
          subscriptions.delete(subscription)
        }),
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
