import { join } from 'node:path'
import { type Bus, createBus, type Transport } from '@herald/core'
import { openTransportUrl } from '@herald/example-kit'
import { openServiceState, type ServiceState } from '@herald/sqlite'
import Stripe from 'stripe'
import { allContracts } from './contracts.js'
import { registerApiGateway } from './services/api-gateway.js'
import { driverSchema, registerDriverService } from './services/driver-service.js'
import { offlineProvider, stripeProvider } from './services/payment-providers.js'
import { paymentSchema, registerPaymentService } from './services/payment-service.js'
import { registerTripService, tripSchema } from './services/trip-service.js'

export const serviceNames = ['trip', 'driver', 'payment', 'gateway'] as const
export type ServiceName = (typeof serviceNames)[number]

export interface ServiceConfig {
  readonly transport: Transport
  /** Each service keeps its own database here: `<dataDir>/<service>.db`. */
  readonly dataDir: string
  /** Signs rider and driver tokens (the gateway's secret). */
  readonly secret: string
  readonly host: string
  /** HTTP port of the gateway or the payment service; 0 for any free port. */
  readonly port: number
  /** How long a driver has to answer an offer. */
  readonly offerTimeoutMs: number
  /** The Stripe webhook endpoint secret; the offline provider signs with it too. */
  readonly webhookSecret: string
  /** With a key, the payment service opens real Stripe Checkout sessions. */
  readonly stripeSecretKey?: string
  /** Public URL of the payment service when it differs from where it listens (a proxy). */
  readonly paymentPublicUrl?: string
  readonly onError: (err: unknown) => void
  /** The gateway instance's name, when several run (each gets its own group). */
  readonly instance?: string
}

export interface RunningService {
  readonly name: ServiceName
  readonly bus: Bus
  /** The HTTP address, for the gateway and the payment service. */
  readonly url?: string
  readonly state?: ServiceState
  stop(): Promise<void>
}

/** Opens a transport from a URL: `sqlite:<path>` (the default) or `amqp://…` (RabbitMQ, exchange `trip`). */
export const openTransport = (url: string): Promise<Transport> =>
  openTransportUrl(url, { exchange: 'trip', namespace: 'ride_sharing' })

/** Starts one service on the given transport. */
export async function startService(name: ServiceName, config: ServiceConfig): Promise<RunningService> {
  const bus = createBus({
    transport: config.transport,
    service:
      name === 'gateway' && config.instance !== undefined ? `gateway-service.${config.instance}` : `${name}-service`,
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

  if (name === 'trip' || name === 'driver') {
    const state = open(name === 'trip' ? tripSchema : driverSchema)
    if (name === 'trip') registerTripService(bus, state)
    else registerDriverService(bus, state, { offerTimeoutMs: config.offerTimeoutMs })
    await bus.start()
    return {
      name,
      bus,
      state,
      async stop() {
        await bus.stop()
        await state.close()
      },
    }
  }

  if (name === 'payment') {
    const state = open(paymentSchema)
    const stripe = new Stripe(config.stripeSecretKey ?? 'sk_test_offline_provider_makes_no_calls')
    let publicUrl = config.paymentPublicUrl ?? ''
    const provider =
      config.stripeSecretKey === undefined
        ? offlineProvider(() => publicUrl)
        : stripeProvider(stripe, { success: `${publicUrl}/paid`, cancel: `${publicUrl}/cancelled` })
    const app = registerPaymentService(bus, state, { provider, stripe, webhookSecret: config.webhookSecret })
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

  const { app } = registerApiGateway(bus, {
    secret: config.secret,
    ...(config.instance === undefined ? {} : { instance: config.instance }),
  })
  await bus.start()
  const url = await app.listen({ host: config.host, port: config.port })
  return {
    name,
    bus,
    url,
    async stop() {
      await app.close()
      await bus.stop()
    },
  }
}
