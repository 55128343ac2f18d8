import type { Subscription, Transport } from '../transport.js'
import type { EventStore } from './event-store.js'

export interface RecordEventsOptions {
  readonly transport: Transport
  readonly store: EventStore
  /** The recorder's group: it receives a copy of everything it matches. Default `herald_event_store`. */
  readonly group?: string
  /** Topic patterns to keep. Default `['#']`: every event and command. */
  readonly patterns?: readonly string[]
  readonly maxInFlight?: number
}

/**
 * Keeps every message the transport carries in an event store, from its own group, whoever published it:
 * services that publish through an outbox relay or another process are recorded too. At least once: a
 * redelivered message is stored again (`getEvent` returns the first copy).
 */
export function recordEvents(options: RecordEventsOptions): Promise<Subscription> {
  const { store } = options
  return options.transport.subscribe(
    {
      group: options.group ?? 'herald_event_store',
      patterns: options.patterns ?? ['#'],
      maxInFlight: options.maxInFlight ?? 32,
    },
    async (envelope, delivery) => {
      await store.append([{ topic: delivery.topic, envelope }])
    },
  )
}
