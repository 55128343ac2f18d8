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
}

export type HarnessFactory = () => Promise<TransportHarness>
