import type { Envelope, Transport } from '@herald/core'
import { createHistory, type History } from '../history.js'
import type { FaultProxy } from '../servers/fault-proxy.js'
import { waitFor } from '../wait-for.js'

export interface ConnectionResetRunOptions {
  /** Connects through `proxy`, as the publisher behind `publishUntilOk` does. */
  readonly consumer: Transport
  readonly proxy: FaultProxy
  /** A new message with the given text in its body. */
  readonly envelope: (text: string) => Envelope
  /**
   * Publishes one batch until it is accepted, recording it in `history` (attempted, then ok); `onRetry` counts
   * each failed try (the same ids go again, as an outbox relay would send them).
   */
  readonly publishUntilOk: (
    topic: string,
    batch: readonly Envelope[],
    history: History,
    onRetry: () => void,
  ) => Promise<void>
  readonly messages?: number
  readonly resets?: number
}

export interface ConnectionResetRun {
  readonly history: History
  /** The history's summary and the counts below, for the test's log line. */
  readonly summary: string
  readonly resets: number
  /** Connections the proxy cut, over all resets. */
  readonly connectionsReset: number
  readonly retriedPublishes: number
}

/**
 * `connection-resets` (docs/reliability.md): messages flow from `publisher` to a consumer (group `g`, `maxInFlight` 20) while every
 * connection through the proxy is reset, once per 900 handled messages, `resets` times. Resolves once every
 * message is handled; the caller checks what its transport promises (losses, duplicates, connections).
 */
export async function runThroughConnectionResets(options: ConnectionResetRunOptions): Promise<ConnectionResetRun> {
  const { consumer, proxy } = options
  const messages = options.messages ?? 10_000
  const wanted = options.resets ?? 10
  const topic = 'r.t'
  const history = createHistory()
  await consumer.subscribe({ group: 'g', patterns: [topic], maxInFlight: 20 }, async (e) => {
    history.delivered(e.id)
    history.completed(e.id)
  })
  let resets = 0
  let connectionsReset = 0
  let nextReset = 900
  const stop = history.onChange(() => {
    if (resets < wanted && history.counts.completed >= nextReset) {
      nextReset += 900
      resets++
      connectionsReset += proxy.resetAll()
    }
  })
  let retriedPublishes = 0
  try {
    for (let i = 0; i < messages; i += 50) {
      const batch = Array.from({ length: Math.min(50, messages - i) }, (_, n) => options.envelope(`m${i + n}`))
      await options.publishUntilOk(topic, batch, history, () => retriedPublishes++)
    }
    await waitFor(() => history.check().lost.length === 0, history.onChange, { timeoutMs: 60_000 })
  } finally {
    stop()
  }
  const summary = `${history.summary()} resets=${resets} connectionsReset=${connectionsReset} retriedPublishes=${retriedPublishes}`
  return { history, summary, resets, connectionsReset, retriedPublishes }
}
