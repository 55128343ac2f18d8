import { createBus, createInMemoryTransport } from '@herald/core'
import { createHeraldMetrics } from '@herald/observability'
import { pollUntil } from '@herald/testkit'
import { Registry } from 'prom-client'
import { expect, it } from 'vitest'
import { createInMemorySagaStore, registerSagas } from '../src/index.js'
import {
  KitchenFailed,
  OrderPlaced,
  OrderReady,
  orderSaga,
  PaymentReceived,
  RequestPayment,
  ReserveStock,
  StartCooking,
  StockReserved,
} from './fixtures/order-saga.js'

it('saga-metrics: events counted by saga and kind, instances by status at each scrape', async () => {
  const registry = new Registry()
  const metrics = createHeraldMetrics(registry)
  const transport = createInMemoryTransport()
  const bus = createBus({ transport, service: 'shop' })
  const store = createInMemorySagaStore()
  const host = registerSagas(bus, {
    store,
    sagas: [orderSaga(50)],
    onEvent: (report) => metrics.countSagaEvent(report),
  })
  metrics.watchSagas(['shop.order'], store)
  bus
    .group('services')
    .on(ReserveStock, async ({ data }, ctx) => {
      await ctx.publish(StockReserved, data)
    })
    .on(RequestPayment, async ({ data }, ctx) => {
      if (data.orderId !== 'unpaid') await ctx.publish(PaymentReceived, { orderId: data.orderId })
    })
    .on(StartCooking, async ({ data }, ctx) => {
      await ctx.publish(data.orderId === 'burnt' ? KitchenFailed : OrderReady, data)
    })
  await bus.start()
  await host.start()
  for (const orderId of ['fine', 'unpaid', 'burnt']) await bus.publish(OrderPlaced, { orderId, amount: 1 })
  let text = ''
  const value = (line: string) =>
    Number(
      text
        .split('\n')
        .find((l) => l.startsWith(line))
        ?.slice(line.length + 1),
    )
  const ended = () =>
    value('herald_saga_instances{saga="shop.order",status="completed"}') +
    value('herald_saga_instances{saga="shop.order",status="compensated"}')
  await pollUntil(async () => {
    text = await registry.metrics()
    return ended() === 3
  }, 20_000)
  expect(value('herald_saga_events_total{saga="shop.order",event="started"}')).toBe(3)
  expect(value('herald_saga_events_total{saga="shop.order",event="completed"}')).toBe(1)
  expect(value('herald_saga_events_total{saga="shop.order",event="timed_out"}')).toBe(1)
  expect(value('herald_saga_events_total{saga="shop.order",event="compensated"}')).toBe(2)
  expect(value('herald_saga_instances{saga="shop.order",status="compensated"}')).toBe(2)
  expect(value('herald_saga_instances{saga="shop.order",status="completed"}')).toBe(1)
  expect(value('herald_saga_instances{saga="shop.order",status="running"}')).toBe(0)
  await bus.stop()
  await host.stop()
})
