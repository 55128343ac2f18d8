import { describe, expect, it } from 'vitest'
import { type PulledMessage, type PullSource, startPullConsumer } from '../src/adapter.js'
import { PermanentError, resolveRetryPolicy, type Settlement, uuidV7 } from '../src/index.js'

/** Lets the event loop run `turns` times: enough for a loop with nothing to wait on to make progress. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
}

/** A store of `total` messages whose settlements wait until released, counting what is claimed and unsettled. */
function slowSettlingSource(total: number) {
  let next = 0
  let unsettled = 0
  let maxUnsettled = 0
  const waiting: (() => void)[] = []
  const settled: Settlement['kind'][] = []
  const source: PullSource<PulledMessage> = {
    async fetch(max) {
      const batch: PulledMessage[] = []
      while (batch.length < max && next < total) {
        next++
        batch.push({ topic: 't', attempt: 1, envelope: { id: uuidV7(), headers: {}, body: new Uint8Array() } })
      }
      unsettled += batch.length
      maxUnsettled = Math.max(maxUnsettled, unsettled)
      return batch
    },
    settle(_message, settlement) {
      return new Promise<void>((resolve) => {
        waiting.push(() => {
          unsettled--
          settled.push(settlement.kind)
          resolve()
        })
      })
    },
    async waitForWork(signal) {
      await new Promise((resolve) => (signal.aborted ? resolve(undefined) : setImmediate(resolve)))
    },
  }
  return {
    source,
    settled,
    get claimed() {
      return next
    },
    get maxUnsettled() {
      return maxUnsettled
    },
    releaseAll() {
      for (const release of waiting.splice(0)) release()
    },
  }
}

describe('pull consumer', () => {
  it('claims the next messages while earlier outcomes are still being stored, up to maxInFlight of them', async () => {
    const store = slowSettlingSource(100)
    let running = 0
    let maxRunning = 0
    let handled = 0
    const subscription = startPullConsumer(
      store.source,
      async () => {
        running++
        maxRunning = Math.max(maxRunning, running)
        await turns(1)
        running--
        handled++
      },
      { group: 'g', maxInFlight: 5, retry: resolveRetryPolicy(undefined), shutdownTimeoutMs: 5_000, onError: () => {} },
    )
    // No settlement has finished, yet handlers keep going until maxInFlight outcomes wait besides them.
    await turns(50)
    expect(handled).toBe(10)
    expect(store.claimed).toBe(10)
    expect(store.maxUnsettled).toBe(10)
    // Releasing the stored outcomes lets the rest through, never more than 5 handlers at once.
    while (store.settled.length < 100) {
      store.releaseAll()
      await turns(5)
    }
    expect(handled).toBe(100)
    expect(maxRunning).toBe(5)
    expect(store.maxUnsettled).toBe(10)
    expect(store.settled.every((kind) => kind === 'ack')).toBe(true)
    expect(await subscription.close()).toEqual({ drained: 0, abandoned: 0 })
  })

  it('hands the handler a delivery with nothing but the delivery on it', async () => {
    const store = slowSettlingSource(1)
    let seen: Record<string, unknown> | undefined
    const subscription = startPullConsumer(
      store.source,
      async (_envelope, delivery) => {
        seen = { ...delivery }
      },
      { group: 'g', maxInFlight: 1, retry: resolveRetryPolicy(undefined), shutdownTimeoutMs: 5_000, onError: () => {} },
    )
    await turns(5)
    expect(Object.keys(seen ?? {}).sort()).toEqual(['attempt', 'group', 'signal', 'topic'])
    expect(seen).toMatchObject({ topic: 't', group: 'g', attempt: 1 })
    store.releaseAll()
    expect((await subscription.close()).abandoned).toBe(0)
  })
})

describe('pull consumer outcomes', () => {
  it('reports each delivery once with the outcome it decided: ack, retry, dead letter, and the one that never ran', async () => {
    const attempts = [1, 1, 1, 4]
    let fetched = false
    const source: PullSource<PulledMessage> = {
      async fetch() {
        if (fetched) return []
        fetched = true
        return attempts.map((attempt, i) => ({
          topic: 't',
          attempt,
          envelope: { id: `m${i}`, headers: {}, body: new Uint8Array() },
        }))
      },
      settle() {},
      async waitForWork(signal) {
        await new Promise((resolve) => (signal.aborted ? resolve(undefined) : setImmediate(resolve)))
      },
    }
    const reported: string[] = []
    const subscription = startPullConsumer(
      source,
      async (envelope) => {
        if (envelope.id === 'm1') throw new Error('try again')
        if (envelope.id === 'm2') throw new PermanentError('never')
      },
      {
        group: 'g',
        maxInFlight: 10,
        retry: resolveRetryPolicy({ maxAttempts: 3 }),
        shutdownTimeoutMs: 5_000,
        onError: () => {},
        onSettled: (envelope, delivery, settlement) => {
          const detail = settlement.kind === 'dead-letter' ? `:${settlement.reason}` : ''
          reported.push(`${envelope.id}@${delivery.attempt} ${settlement.kind}${detail}`)
        },
      },
    )
    await turns(20)
    await subscription.close()
    expect(reported.sort()).toEqual([
      'm0@1 ack',
      'm1@1 retry',
      'm2@1 dead-letter:permanent_error',
      'm3@4 dead-letter:max_deliveries_exceeded',
    ])
  })
})
