import {
  type DeadLetterStore,
  type Envelope,
  type Handler,
  HeraldError,
  isDeadLetterStore,
  type Subscription,
  type SubscriptionSpec,
  type Transport,
  uuidV7,
} from '@herald/core'
import { expect } from 'vitest'
import type { TransportHarness } from '../harness.js'
import { createHistory, type History } from '../history.js'
import { waitFor } from '../wait-for.js'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Message counts are multiplied by 10 under HERALD_SOAK=1. */
export const scale = (n: number): number => (process.env.HERALD_SOAK === '1' ? n * 10 : n)

export const fastRetry = { maxAttempts: 5, backoff: { initialMs: 20, factor: 2, maxMs: 200, jitter: 0.2 } }

/** Per-test helpers over one harness: unique names, envelopes, recorded publishing and consuming. */
export interface SuiteContext {
  readonly harness: TransportHarness
  readonly history: History
  /** Opens a transport; closed after the test. */
  open(): Promise<Transport>
  /** A name unique to this test, e.g. for a topic (`t-…`) or group (`g-…`). */
  unique(prefix: string): string
  envelope(payload: unknown, headers?: Record<string, string>): Envelope
  payloadOf(envelope: Envelope): unknown
  /** Publishes each envelope in its own call, concurrently, recording attempted/ok/failed. */
  publishAll(transport: Transport, topic: string, envelopes: readonly Envelope[]): Promise<void>
  /** Subscribes, recording each delivery and each handler that resolved. `behave` may throw or wait. */
  consume(transport: Transport, spec: SubscriptionSpec, behave?: Handler): Promise<Subscription>
  waitUntil(condition: () => boolean, what: string, timeoutMs?: number): Promise<void>
  waitForCompleted(ids: readonly string[], timeoutMs?: number): Promise<void>
  deadLetters(transport: Transport): DeadLetterStore
  /** Prints the checker's line for this case and asserts lost, unexpected and definiteButDelivered are empty. */
  report(caseName: string, options?: { duplicates?: number | 'any' }): void
  dispose(): Promise<void>
}

export function createSuiteContext(transportName: string, harness: TransportHarness): SuiteContext {
  const history = createHistory()
  const opened: Transport[] = []
  const runId = uuidV7().slice(-8)
  let counter = 0

  const context: SuiteContext = {
    harness,
    history,
    async open() {
      const transport = await harness.create()
      opened.push(transport)
      return transport
    },
    unique: (prefix) => `${prefix}-${runId}-${++counter}`,
    envelope(payload, headers = {}) {
      return {
        id: uuidV7(),
        headers: { type: 'test.message', ...headers },
        body: encoder.encode(JSON.stringify(payload)),
      }
    },
    payloadOf: (envelope) => JSON.parse(decoder.decode(envelope.body)),
    async publishAll(transport, topic, envelopes) {
      await Promise.all(
        envelopes.map(async (envelope) => {
          history.attempted(envelope.id)
          try {
            await transport.publish(topic, [envelope])
            history.ok(envelope.id)
          } catch (err) {
            if (err instanceof HeraldError) history.failed(envelope.id)
            else history.indeterminate(envelope.id)
            throw err
          }
        }),
      )
    },
    consume(transport, spec, behave) {
      return transport.subscribe(spec, async (envelope, delivery) => {
        history.delivered(envelope.id)
        if (behave) await behave(envelope, delivery)
        history.completed(envelope.id)
      })
    },
    waitUntil(condition, what, timeoutMs = 60_000) {
      return waitFor(condition, history.onChange, { what, timeoutMs, describe: history.summary })
    },
    waitForCompleted(ids, timeoutMs) {
      return context.waitUntil(() => ids.every((id) => history.isCompleted(id)), `${ids.length} completions`, timeoutMs)
    },
    deadLetters(transport) {
      if (!isDeadLetterStore(transport)) throw new Error(`${transport.name} has no dead-letter store`)
      return transport
    },
    report(caseName, options = {}) {
      console.log(`[${transportName}] ${caseName}: ${history.summary()}`)
      const result = history.check()
      expect(result.lost, 'lost').toEqual([])
      expect(result.unexpected, 'unexpected').toEqual([])
      expect(result.definiteButDelivered, 'definiteButDelivered').toEqual([])
      if (options.duplicates !== 'any') expect(result.duplicates, 'duplicates').toBe(options.duplicates ?? 0)
    },
    async dispose() {
      await Promise.all(opened.map((t) => t.close()))
      await harness.cleanup()
    },
  }
  return context
}
