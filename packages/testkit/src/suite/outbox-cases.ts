import {
  createBus,
  createInMemoryTransport,
  defineEvent,
  type InMemoryTransportOptions,
  type OutboxRelay,
  type OutboxStore,
  type PreparedMessage,
  startOutboxRelay,
} from '@herald/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createHistory } from '../history.js'
import { pollUntil, waitFor } from '../wait-for.js'
import { objectSchema } from './test-schema.js'

/** What an outbox's conformance file provides, on fresh state per test. */
export interface OutboxHarness {
  /** An outbox store for one relay; each call may open a new connection. The suite does not close them. */
  store(): Promise<OutboxStore>
  /**
   * In one transaction of the application's database: inserts a business row keyed `businessKey`, stages
   * `messages`, then commits or rolls back.
   */
  transaction(businessKey: string, messages: readonly PreparedMessage[], outcome: 'commit' | 'rollback'): Promise<void>
  /** Business rows that exist. */
  businessRows(): Promise<number>
  cleanup(): Promise<void>
}

const OrderPlaced = defineEvent('order.placed', {
  schema: objectSchema({ orderId: 'string', n: 'number' }),
})

/** `outbox-atomicity` and `outbox-relay-concurrency-and-order` (docs/reliability.md) for an outbox, relayed to the in-memory transport. */
export function describeOutbox(name: string, setup: () => Promise<OutboxHarness>): void {
  describe(`${name} outbox conformance`, () => {
    let harness: OutboxHarness
    const stops: (() => Promise<void>)[] = []
    beforeEach(async () => {
      harness = await setup()
    })
    afterEach(async () => {
      for (const stop of stops.splice(0).reverse()) await stop()
      await harness.cleanup()
    })

    async function destinationBus(options: InMemoryTransportOptions = {}) {
      const transport = createInMemoryTransport(options)
      const bus = createBus({ transport, service: 'orders' })
      stops.push(() => transport.close())
      return { transport, bus, start: () => bus.start().then(() => stops.push(() => bus.stop())) }
    }
    function startRelay(options: Parameters<typeof startOutboxRelay>[0]): OutboxRelay {
      const started = startOutboxRelay(options)
      stops.push(() => started.stop())
      return started
    }

    it('outbox-atomicity: of 100 transactions, the 70 that commit are delivered; the 30 rolled back never', async () => {
      const { transport, bus, start } = await destinationBus()
      const history = createHistory()
      bus.group('billing').on(OrderPlaced, async (message) => {
        history.delivered(message.id)
        history.completed(message.id)
      })
      await start()
      const store = await harness.store()
      const relay = startRelay({ store, transport, pollIntervalMs: 20 })
      const committed: string[] = []
      for (let n = 0; n < 100; n++) {
        const message = await bus.prepare(OrderPlaced, { orderId: `o-${n}`, n })
        history.attempted(message.envelope.id)
        const rollBack = n % 10 < 3
        await harness.transaction(`o-${n}`, [message], rollBack ? 'rollback' : 'commit')
        if (rollBack) history.failed(message.envelope.id)
        else {
          history.ok(message.envelope.id)
          committed.push(message.envelope.id)
        }
        relay.notify()
      }
      await waitFor(() => committed.every((id) => history.isCompleted(id)), history.onChange)
      await pollUntil(async () => (await relay.stats()).backlog === 0)
      const rows = await harness.businessRows()
      const check = history.check()
      console.log(`[${name}] 65 outbox-atomicity: ${history.summary()} businessRows=${rows}`)
      expect(rows).toBe(70)
      expect(committed).toHaveLength(70)
      expect(check.lost).toEqual([])
      expect(check.unexpected).toEqual([])
      expect(check.definiteButDelivered).toEqual([])
    })

    it('outbox-relay-concurrency-and-order: 3 relays, 5,000 events over 50 keys, each key in staging order', async () => {
      // A destination that never holds the relays back (its mark is above the 5,000 events): this case is about
      // how the relays share the rows and keep each key's order. Paced by a one-at-a-time consumer instead, two
      // relays holding claims on every key can leave the third nothing to claim, which is fine but proves nothing.
      const { transport, bus, start } = await destinationBus({ maxQueueDepth: 10_000 })
      const firstSeen = new Map<string, string[]>()
      const history = createHistory()
      bus.group('projector', { maxInFlight: 1 }).on(OrderPlaced, async (message) => {
        if (!history.isCompleted(message.id)) {
          const key = message.data.orderId
          firstSeen.set(key, [...(firstSeen.get(key) ?? []), message.id])
        }
        history.delivered(message.id)
        history.completed(message.id)
      })
      await start()
      const relays = await Promise.all(
        [0, 1, 2].map(async () =>
          startRelay({ store: await harness.store(), transport, batchSize: 25, pollIntervalMs: 10 }),
        ),
      )
      const staged = new Map<string, string[]>()
      for (let txn = 0; txn < 500; txn++) {
        const messages = await Promise.all(
          Array.from({ length: 10 }, (_, i) => {
            const orderId = `aggregate-${(txn * 10 + i) % 50}`
            return bus.prepare(OrderPlaced, { orderId, n: txn }, { partitionKey: orderId })
          }),
        )
        await harness.transaction(`txn-${txn}`, messages, 'commit')
        for (const m of messages) {
          history.attempted(m.envelope.id)
          history.ok(m.envelope.id)
          const key = m.envelope.headers.partitionkey!
          staged.set(key, [...(staged.get(key) ?? []), m.envelope.id])
        }
      }
      await waitFor(() => history.counts.completed >= 5_000, history.onChange, { timeoutMs: 60_000 })
      await pollUntil(async () => (await relays[0]!.stats()).backlog === 0)
      const sentBy = await Promise.all(relays.map(async (r) => (await r.stats()).sent))
      const check = history.check()
      console.log(
        `[${name}] 67 outbox-relay-concurrency-and-order: ${history.summary()} sentPerRelay=${sentBy.join(',')}`,
      )
      expect(check.lost).toEqual([])
      expect(check.unexpected).toEqual([])
      for (const [key, ids] of staged) expect(firstSeen.get(key), key).toEqual(ids)
      expect(sentBy.filter((n) => n > 0).length, 'all three relays took part').toBe(3)
    })
  })
}
