import type { Envelope, Transport } from '@herald/core'

/** What a transport's conformance file provides: fresh, isolated state per test. */
export interface TransportHarness {
  /** Opens a transport (a new connection) on this test's store. The suite closes what it opens. */
  create(): Promise<Transport>
  /** Writes an envelope straight into a group's queue, bypassing every check of the publisher. */
  injectRaw(group: string, topic: string, envelope: Envelope): Promise<void>
  /** Removes this test's store. */
  cleanup(): Promise<void>
}

/** Differences between transports, as flags: the suite never asks for a transport by name. */
export interface TransportFeatures {
  /** Messages, retries, delays and dead letters survive closing every transport and opening new ones. */
  readonly persistent: boolean
  /**
   * Messages without a key keep publish order (default true). False where the store spreads them over partitions
   * (Kafka): there publish order holds per key, which the ordering cases then check with one key.
   */
  readonly orderWithoutKey?: boolean
  /**
   * Messages already queued for a pattern stay queued when the pattern is unbound (default true). False where a
   * group reads shared logs rather than a queue of its own (Kafka): they are no longer the group's.
   */
  readonly unbindKeepsQueued?: boolean
}

export type HarnessFactory = () => Promise<TransportHarness>
