import { join } from 'node:path'
import { type Bus, createBus, type Transport } from '@herald/core'
import { openTransportUrl } from '@herald/example-kit'
import { registerSagas, type SagaEventReport, type SagaHost, type SagaStore } from '@herald/saga'
import { createSqliteSagaStore } from '@herald/saga/sqlite'
import { openServiceState, type ServiceState } from '@herald/sqlite'
import Stripe from 'stripe'
import { allContracts } from './contracts.js'
import { type Dish, menu } from './menu.js'
import { orderSaga } from './order-saga.js'
import { registerKitchenService } from './services/kitchen-service.js'
import { orderSchema, registerOrderService } from './services/order-service.js'
import {
  type CheckoutProvider,
  offlineCheckout,
  paymentSchema,
  registerPaymentService,
  stripeCheckout,
} from './services/payment-service.js'
import { createStock, registerStockService, stockSchema } from './services/stock-service.js'
import { connectStock, serveStock } from './stock-api.js'

export const serviceNames = ['stock', 'order', 'payment', 'kitchen'] as const
export type ServiceName = (typeof serviceNames)[number]

export interface ServiceConfig {
  readonly transport: Transport
  /**
   * Each service keeps its database here: `<dataDir>/<service>.db` (the order saga's in `order-saga.db`).
   * Instances of one service on one machine share its files; SQLite serialises their writes.
   */
  readonly dataDir: string
  readonly host: string
  /** The order service's or the payment service's HTTP port, or the stock service's gRPC port; 0 for any. */
  readonly port: number
  /** Where the order service finds the stock service's gRPC API (`host:port`). */
  readonly stockAddress?: string
  /** How long an order waits for its payment before it is cancelled. */
  readonly paymentTimeoutMs: number
  readonly cookMs: number
  /** The dishes a new stock database starts with. Default: the demo's menu. */
  readonly menu?: readonly Dish[]
  readonly failingDishes: ReadonlySet<string>
  /** The Stripe webhook endpoint secret; the offline checkout signs with it too. */
  readonly webhookSecret: string
  /** Where the payment service opens checkouts; default: Stripe with `stripeSecretKey`, else the offline one. */
  readonly checkout?: CheckoutProvider
  /** With a key, the payment service opens real Stripe Checkout sessions. */
  readonly stripeSecretKey?: string
  /** Public URLs, where they differ from where the services listen (a proxy). */
  readonly paymentPublicUrl?: string
  readonly orderPublicUrl?: string
  readonly onError: (err: unknown) => void
  readonly onSagaEvent?: (report: SagaEventReport) => void
  /** An instance's name, when several of one service run. */
  readonly instance?: string
}

export interface RunningService {
  readonly name: ServiceName
  readonly bus: Bus
  /** The HTTP address (order, payment) or the gRPC address (stock). */
  readonly url?: string
  readonly state?: ServiceState
  /** The order service's sagas and their store. */
  readonly sagas?: { readonly host: SagaHost; readonly store: SagaStore }
  stop(): Promise<void>
}

/** Opens a transport from a URL: `sqlite:<path>` (the default) or `amqp://…` (RabbitMQ, exchange `food`). */
export const openTransport = (url: string): Promise<Transport> =>
  openTransportUrl(url, { exchange: 'food', namespace: 'food_ordering' })

/** Starts one service on the given transport. */
export async function startService(name: ServiceName, config: ServiceConfig): Promise<RunningService> {
  const bus = createBus({
    transport: config.transport,
    service: config.instance === undefined ? `${name}-service` : `${name}-service.${config.instance}`,
    contracts: allContracts,
    consumer: { immediateRetries: 2, retry: { maxAttempts: 8, backoff: { initialMs: 200, maxMs: 5_000 } } },
  })
  const open = (schema: string) =>
    openServiceState({
      path: join(config.dataDir, `${name}.db`),
      transport: config.transport,
      schema,
      onError: config.onError,
    })

  if (name === 'kitchen') {
    registerKitchenService(bus, { cookMs: config.cookMs, failingDishes: config.failingDishes })
    await bus.start()
    return { name, bus, stop: () => bus.stop() }
  }

  if (name === 'stock') {
    const state = open(stockSchema)
    const stock = createStock(state, { menu: config.menu ?? menu })
    registerStockService(bus, state, stock)
    await bus.start()
    const server = await serveStock(stock, { host: config.host, port: config.port })
    return {
      name,
      bus,
      state,
      url: server.address,
      async stop() {
        await server.close()
        await bus.stop()
        await state.close()
      },
    }
  }

  if (name === 'order') {
    if (config.stockAddress === undefined) throw new Error('the order service needs the stock service address')
    const state = open(orderSchema)
    const stock = connectStock(config.stockAddress)
    const app = await registerOrderService(bus, state, { stock })
    const store = createSqliteSagaStore({ path: join(config.dataDir, 'order-saga.db') })
    const host = registerSagas(bus, {
      store,
      sagas: [orderSaga({ paymentTimeoutMs: config.paymentTimeoutMs })],
      ...(config.onSagaEvent === undefined ? {} : { onEvent: config.onSagaEvent }),
    })
    await bus.start()
    await host.start()
    const url = await app.listen({ host: config.host, port: config.port })
    return {
      name,
      bus,
      state,
      url,
      sagas: { host, store },
      async stop() {
        await app.close()
        await bus.stop()
        await host.stop()
        await store.close()
        stock.close()
        await state.close()
      },
    }
  }

  const state = open(paymentSchema)
  const stripe = new Stripe(config.stripeSecretKey ?? 'sk_test_offline_checkout_makes_no_calls')
  let publicUrl = config.paymentPublicUrl ?? ''
  const returnUrl = () => config.orderPublicUrl ?? ''
  const provider =
    config.checkout ??
    (config.stripeSecretKey === undefined
      ? offlineCheckout(() => publicUrl)
      : stripeCheckout(stripe, { returnUrl: returnUrl() }))
  const app = registerPaymentService(bus, state, { provider, stripe, webhookSecret: config.webhookSecret, returnUrl })
  const url = await app.listen({ host: config.host, port: config.port })
  if (publicUrl === '') publicUrl = url
  await bus.start()
  return {
    name,
    bus,
    state,
    url,
    async stop() {
      await app.close()
      await bus.stop()
      await state.close()
    },
  }
}
