import type { PreparedMessage } from '../bus.js'
import { createWakeSignal } from '../consumer/wake-signal.js'
import { toErrorInfo } from '../retry-policy.js'
import { sendPrepared } from '../send-prepared.js'
import { sleep } from '../sleep.js'
import type { Transport } from '../transport.js'

/** A staged message claimed by one relay. `token` fences marking and releasing to that claim. */
export interface OutboxRecord extends PreparedMessage {
  readonly seq: number
  readonly token: string
  /** Claims so far, this one included. */
  readonly attempts: number
}

export interface OutboxStats {
  /** Messages staged and not yet sent. */
  readonly backlog: number
  /** Age of the oldest of them, in ms (0 when the backlog is empty). */
  readonly lagMs: number
}

/** The relay's side of an outbox table; implemented on SQLite and PostgreSQL. */
export interface OutboxStore {
  /**
   * Claims up to `max` messages for `leaseMs`. Of each partition key only the oldest message is ever claimable,
   * and none while another message of that key is claimed, so messages of one key are sent in staging order.
   */
  claim(max: number, leaseMs: number): Promise<readonly OutboxRecord[]>
  /** The broker has them: delete them. Ignores records whose claim was lost. */
  markSent(records: readonly OutboxRecord[]): Promise<void>
  /** Sending failed: make it claimable again at `retryAt`, with the error kept for inspection. */
  release(record: OutboxRecord, retryAt: number, error: string): Promise<void>
  stats(): Promise<OutboxStats>
}

export interface OutboxRelayOptions {
  readonly store: OutboxStore
  /** Where the messages go. */
  readonly transport: Transport
  /** Messages claimed per round. Default 100. */
  readonly batchSize?: number
  /**
   * Rounds in flight at once: one claims while another sends and marks. Order per key still holds, since a key
   * with a claimed message cannot be claimed again. Default 2.
   */
  readonly concurrency?: number
  /** A claim's lease: a relay that dies mid-round gives its messages back after this. Default 30 s. */
  readonly leaseMs?: number
  /** How often an idle relay looks for new messages. Default 200 ms; `notify()` wakes it sooner. */
  readonly pollIntervalMs?: number
  /** Wait after a failed round, doubling to `maxBackoffMs` while failures continue. Default 100 ms and 10 s. */
  readonly initialBackoffMs?: number
  readonly maxBackoffMs?: number
  /** Errors the relay survived (store unreachable, a send that failed). */
  readonly onError?: (err: unknown) => void
  /** Called after the transport accepted a round's messages and before they are marked sent. */
  readonly afterSend?: (records: readonly OutboxRecord[]) => void
}

export interface OutboxRelay {
  /** Look for messages now (call after committing a transaction that staged some). */
  notify(): void
  stats(): Promise<OutboxStats & { readonly sent: number; readonly failedRounds: number }>
  /** Finishes the current round, then stops. */
  stop(): Promise<void>
}

/**
 * Forwards an outbox to a transport, at least once: a message is deleted only after the transport confirmed it,
 * so a crash between the two sends it again (same id; an inbox makes the effect once). Failed sends back off
 * exponentially, per message and for the whole relay, so a broker outage never becomes a tight retry loop.
 */
export function startOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { store, transport } = options
  const batchSize = options.batchSize ?? 100
  const leaseMs = options.leaseMs ?? 30_000
  const pollIntervalMs = options.pollIntervalMs ?? 200
  const initialBackoffMs = options.initialBackoffMs ?? 100
  const maxBackoffMs = options.maxBackoffMs ?? 10_000
  const onError = options.onError ?? (() => {})
  const stopping = new AbortController()
  const wake = createWakeSignal()
  let sent = 0
  let failedRounds = 0

  const backoff = (failures: number) => Math.min(maxBackoffMs, initialBackoffMs * 2 ** Math.max(0, failures - 1))

  /** One round: claim, send (distinct keys in parallel), mark. Returns how many were claimed, or throws. */
  async function round(): Promise<{ claimed: number; failed: number }> {
    const records = await store.claim(batchSize, leaseMs)
    if (records.length === 0) return { claimed: 0, failed: 0 }
    const outcomes = await Promise.allSettled(records.map((record) => sendPrepared(transport, record)))
    const ok = records.filter((_, i) => outcomes[i]?.status === 'fulfilled')
    options.afterSend?.(ok)
    if (ok.length > 0) await store.markSent(ok)
    sent += ok.length
    let failed = 0
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome.status === 'fulfilled') continue
      failed++
      const record = records[i]!
      onError(outcome.reason)
      const error = JSON.stringify(toErrorInfo(outcome.reason))
      await store.release(record, Date.now() + backoff(record.attempts), error)
    }
    return { claimed: records.length, failed }
  }

  const loop = async () => {
    let failures = 0
    while (!stopping.signal.aborted) {
      try {
        const { claimed, failed } = await round()
        if (failed > 0) {
          failures++
          failedRounds++
          await sleep(backoff(failures), stopping.signal)
        } else {
          failures = 0
          if (claimed < batchSize) await wake.wait(pollIntervalMs, stopping.signal)
        }
      } catch (err) {
        onError(err)
        failures++
        failedRounds++
        await sleep(backoff(failures), stopping.signal)
      }
    }
  }
  const done = Promise.all(Array.from({ length: options.concurrency ?? 2 }, loop))

  return {
    notify: () => wake.notify(),
    async stats() {
      return { ...(await store.stats()), sent, failedRounds }
    },
    async stop() {
      stopping.abort()
      await done
    },
  }
}
