import { type Bus, createBus, type Transport } from '@herald/core'
import { pollUntil } from '@herald/testkit'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { registerSagas, type SagaHost, type SagaStore } from '../src/index.js'
import {
  KitchenFailed,
  OrderCancelled,
  OrderCompleted,
  OrderPlaced,
  OrderReady,
  orderSaga,
  PaymentReceived,
  RefundPayment,
  ReleaseStock,
  RequestPayment,
  ReserveStock,
  StartCooking,
  StockReserved,
  StockUnavailable,
} from './fixtures/order-saga.js'
import { Tallied, TallyOpened, tallySaga } from './fixtures/tally-saga.js'

/** One store under test: a transport both "processes" share, and a store per process over the same data. */
export interface SagaEnvironment {
  transport(): Transport
  store(): Promise<SagaStore>
  cleanup(): Promise<void>
}

/** What the other services did, as the saga's commands reached them. */
interface Shop {
  readonly undone: string[]
  readonly cancelled: { orderId: string; reason: string }[]
  readonly completed: string[]
  readonly payments: string[]
  /** Orders whose stock is out, whose payment never comes, whose kitchen fails. */
  readonly outOfStock: Set<string>
  readonly unpaid: Set<string>
  readonly burnt: Set<string>
}

function shopOn(bus: Bus, unpaid: readonly string[]): Shop {
  const shop: Shop = {
    undone: [],
    cancelled: [],
    completed: [],
    payments: [],
    outOfStock: new Set(),
    unpaid: new Set(unpaid),
    burnt: new Set(),
  }
  bus
    .group('shop', { maxInFlight: 20 })
    .on(ReserveStock, async ({ data }, ctx) => {
      if (shop.outOfStock.has(data.orderId)) await ctx.publish(StockUnavailable, data)
      else await ctx.publish(StockReserved, data)
    })
    .on(RequestPayment, async ({ data }, ctx) => {
      shop.payments.push(data.orderId)
      if (!shop.unpaid.has(data.orderId)) await ctx.publish(PaymentReceived, { orderId: data.orderId })
    })
    .on(StartCooking, async ({ data }, ctx) => {
      if (shop.burnt.has(data.orderId)) await ctx.publish(KitchenFailed, data)
      else await ctx.publish(OrderReady, data)
    })
    .on(RefundPayment, async ({ data }) => {
      shop.undone.push(`refund ${data.orderId}`)
    })
    .on(ReleaseStock, async ({ data }) => {
      await new Promise((r) => setTimeout(r, 300))
      shop.undone.push(`release ${data.orderId}`)
    })
  bus
    .group('watcher')
    .on(OrderCancelled, async ({ data }) => {
      shop.cancelled.push(data)
    })
    .on(OrderCompleted, async ({ data }) => {
      shop.completed.push(data.orderId)
    })
  return shop
}

/** The store with a record of the instances it was asked for and did not have. */
function watched(store: SagaStore): SagaStore & { readonly misses: string[] } {
  const misses: string[] = []
  return {
    ...store,
    outbox: store.outbox,
    misses,
    async load(saga, key) {
      const found = await store.load(saga, key)
      if (found === undefined) misses.push(`${saga}/${key}`)
      return found
    },
  }
}

/** The saga conformance cases, run on each store. */
export function describeSagaStore(name: string, environment: () => Promise<SagaEnvironment>): void {
  describe(`sagas on ${name}`, () => {
    let env: SagaEnvironment
    const running: { bus: Bus; host: SagaHost }[] = []

    /** A host and the shop's services; `unpaid` orders are never paid, from the moment the services start. */
    async function start(paymentTimeoutMs = 60_000, unpaid: readonly string[] = []) {
      const store = watched(await env.store())
      const bus = createBus({
        transport: env.transport(),
        service: 'shop',
        consumer: { retry: { backoff: { initialMs: 20, maxMs: 200 } } },
      })
      const shop = shopOn(bus, unpaid)
      const host = registerSagas(bus, {
        store,
        sagas: [orderSaga(paymentTimeoutMs), tallySaga],
        relay: { pollIntervalMs: 20 },
      })
      await bus.start()
      await host.start()
      running.push({ bus, host })
      return { bus, host, shop, store }
    }

    beforeEach(async () => {
      env = await environment()
    })
    afterEach(async () => {
      for (const { bus, host } of running.splice(0)) {
        await bus.stop()
        await host.stop()
      }
      await env.cleanup()
    })

    it('saga-happy-path: an order goes reserve → pay → cook → completed, each step once', async () => {
      const { bus, host, shop } = await start()
      await bus.publish(OrderPlaced, { orderId: 'o1', amount: 12 })
      await pollUntil(async () => shop.completed.includes('o1'), 20_000)
      const saga = orderSaga(60_000)
      const instance = await host.instance(saga, 'o1')
      expect(instance?.status).toBe('completed')
      expect(instance?.version).toBe(4)
      const history = await host.history(saga, 'o1')
      expect(history.map((h) => h.handled)).toEqual([
        OrderPlaced.type,
        StockReserved.type,
        PaymentReceived.type,
        OrderReady.type,
      ])
      expect(history.map((h) => h.sent)).toEqual([
        [ReserveStock.type],
        [RequestPayment.type],
        [StartCooking.type],
        [OrderCompleted.type],
      ])
      expect(shop.payments).toEqual(['o1'])
      expect(shop.undone).toEqual([])
      expect(await host.counts(saga)).toEqual({ running: 0, completed: 1, compensated: 0, failed: 0 })
    })

    it('saga-compensation-reverse-order: a kitchen failure refunds, then releases the stock', async () => {
      const { bus, host, shop } = await start()
      for (let i = 0; i < 5; i++) shop.burnt.add(`b${i}`)
      for (let i = 0; i < 5; i++) await bus.publish(OrderPlaced, { orderId: `b${i}`, amount: 5 })
      await pollUntil(async () => shop.undone.length === 10 && shop.cancelled.length === 5, 20_000)
      for (let i = 0; i < 5; i++) {
        const mine = shop.undone.filter((u) => u.endsWith(` b${i}`))
        expect(mine).toEqual([`refund b${i}`, `release b${i}`])
      }
      expect(shop.cancelled.every((c) => c.reason === 'kitchen_failed')).toBe(true)
      const instance = await host.instance(orderSaga(0), 'b0')
      expect(instance).toMatchObject({ status: 'compensated', reason: 'kitchen_failed', compensations: [] })
    })

    it('saga-timeout-compensates: a payment that never comes releases the stock once; a cancelled timeout is ignored', async () => {
      const { bus, host, shop } = await start(150)
      shop.unpaid.add('late')
      await bus.publish(OrderPlaced, { orderId: 'late', amount: 9 })
      await bus.publish(OrderPlaced, { orderId: 'paid', amount: 9 })
      // The cancel event and the release command leave in one transaction but reach different groups,
      // so either may be handled first: wait for both.
      await pollUntil(
        async () => shop.cancelled.length === 1 && shop.undone.length >= 1 && shop.completed.includes('paid'),
        20_000,
      )
      expect(shop.cancelled).toEqual([{ orderId: 'late', reason: 'payment_timeout' }])
      expect(shop.undone).toEqual(['release late'])
      const saga = orderSaga(150)
      expect((await host.instance(saga, 'late'))?.status).toBe('compensated')
      // The paid order's payment timeout still arrives (it was cancelled, not unsent) and changes nothing.
      await pollUntil(
        async () => (await host.history(saga, 'paid')).some((h) => h.handled === 'timeout payment'),
        20_000,
      )
      const stale = (await host.history(saga, 'paid')).find((h) => h.handled === 'timeout payment')
      expect(stale).toMatchObject({ outcome: 'ignored', sent: [] })
      expect(['stale_timeout', 'ended']).toContain(stale?.note)
      expect((await host.instance(saga, 'paid'))?.status).toBe('completed')
      expect(shop.undone).toEqual(['release late'])
    })

    it('saga-timeout-after-restart: a timeout requested before a restart fires after it, once', async () => {
      const first = await start(400, ['r1'])
      await first.bus.publish(OrderPlaced, { orderId: 'r1', amount: 4 })
      const saga = orderSaga(400)
      await pollUntil(async () => (await first.host.instance(saga, 'r1'))?.timeouts.payment !== undefined, 20_000)
      const stopped = running.splice(0)
      for (const { bus, host } of stopped) {
        await bus.stop()
        await host.stop()
      }
      expect((await first.host.instance(saga, 'r1'))?.status).toBe('running')
      const second = await start(400, ['r1'])
      await pollUntil(async () => (await second.host.instance(saga, 'r1'))?.status === 'compensated', 20_000)
      const history = await second.host.history(saga, 'r1')
      expect(history.filter((h) => h.handled === 'timeout payment').map((h) => h.outcome)).toEqual(['transition'])
      expect((await second.host.instance(saga, 'r1'))?.reason).toBe('payment_timeout')
    })

    it('saga-out-of-stock-fails: no stock ends the saga failed, with nothing to undo', async () => {
      const { bus, host, shop } = await start()
      shop.outOfStock.add('none')
      await bus.publish(OrderPlaced, { orderId: 'none', amount: 3 })
      await pollUntil(async () => shop.cancelled.length === 1, 20_000)
      expect(shop.cancelled).toEqual([{ orderId: 'none', reason: 'out_of_stock' }])
      expect(await host.instance(orderSaga(0), 'none')).toMatchObject({ status: 'failed', reason: 'out_of_stock' })
      expect(shop.undone).toEqual([])
      expect(await host.counts()).toMatchObject({ failed: 1 })
    })

    it('saga-out-of-order-and-ended: a message before its start waits; one after the end is ignored', async () => {
      const { bus, host, shop, store } = await start()
      const tally = tallySaga
      await bus.publish(Tallied, { id: 't1', n: 5 })
      // It found no instance: it is retried with the group's backoff, not applied and not lost.
      await pollUntil(async () => store.misses.includes('tally/t1'), 20_000)
      await bus.publish(TallyOpened, { id: 't1' })
      await pollUntil(async () => (await host.instance(tally, 't1'))?.state.count === 1, 20_000)
      expect((await host.instance(tally, 't1'))?.state).toEqual({ count: 1, sum: 5 })

      await bus.publish(OrderPlaced, { orderId: 'done', amount: 1 })
      await pollUntil(async () => shop.completed.includes('done'), 20_000)
      await bus.publish(OrderReady, { orderId: 'done' })
      const saga = orderSaga(0)
      await pollUntil(async () => (await host.history(saga, 'done')).length === 5, 20_000)
      const last = (await host.history(saga, 'done')).at(-1)
      expect(last).toMatchObject({ handled: OrderReady.type, outcome: 'ignored', note: 'ended', status: 'completed' })
      expect(shop.completed).toEqual(['done'])
    })

    it('saga-duplicate-delivery: a redelivered message id is one step', async () => {
      const { bus, host } = await start()
      await bus.publish(TallyOpened, { id: 'd' })
      for (let i = 0; i < 3; i++) await bus.publish(Tallied, { id: 'd', n: 1 }, { id: 'same-id' })
      await bus.publish(Tallied, { id: 'd', n: 10 }, { id: 'other-id' })
      await pollUntil(async () => (await host.instance(tallySaga, 'd'))?.state.sum === 11, 20_000)
      await pollUntil(async () => (await host.history(tallySaga, 'd')).length === 3, 20_000)
      expect((await host.instance(tallySaga, 'd'))?.state).toEqual({ count: 2, sum: 11 })
    })

    it('saga-concurrent-one-instance: 100 messages at once for one instance, over two hosts, lose no update', async () => {
      const first = await start()
      await start()
      await first.bus.publish(TallyOpened, { id: 'hot' })
      await pollUntil(async () => (await first.host.instance(tallySaga, 'hot')) !== undefined, 20_000)
      await Promise.all(Array.from({ length: 100 }, (_, n) => first.bus.publish(Tallied, { id: 'hot', n })))
      // Every message is one committed step, whatever became of its update.
      await pollUntil(async () => (await first.host.history(tallySaga, 'hot')).length === 101, 60_000)
      const instance = await first.host.instance(tallySaga, 'hot')
      expect(instance?.state).toEqual({ count: 100, sum: (99 * 100) / 2 })
      expect(instance?.version).toBe(101)
    })
  })
}
