import { join } from 'node:path'
import { type Bus, createBus, type Transport } from '@herald/core'
import { openTransportUrl } from '@herald/example-kit'
import { type NotificationStore, type Notifications, webhookProvider } from '@herald/notifications'
import { createSqliteNotificationStore } from '@herald/notifications/sqlite'
import { registerSagas, type SagaStore } from '@herald/saga'
import { createSqliteSagaStore } from '@herald/saga/sqlite'
import { openServiceState, type ServiceState } from '@herald/sqlite'
import { allContracts } from './contracts.js'
import { purchaseSaga } from './purchase-saga.js'
import { appSchema, registerAppService } from './services/app-service.js'
import { billingSchema, registerBillingService } from './services/billing-service.js'
import { deviceSchema, registerDeviceService } from './services/device-service.js'
import { registerNotificationService } from './services/notification-service.js'
import { registerUserService, userSchema } from './services/user-service.js'

export const serviceNames = ['user', 'device', 'billing', 'app', 'notification'] as const
export type ServiceName = (typeof serviceNames)[number]

export interface ServiceConfig {
  readonly transport: Transport
  /** Each service keeps its database here: `<dataDir>/<service>.db`. */
  readonly dataDir: string
  readonly onError: (err: unknown) => void
  /** An instance's name, when several of one service run. */
  readonly instance?: string
  /** The notification service also sends a welcome SMS, POSTed to this URL (any SMS gateway's webhook). */
  readonly smsWebhook?: string
  /** How long the purchase saga waits for a payment, then for a device. */
  readonly paymentMs: number
  readonly allocationMs: number
}

export interface RunningService {
  readonly name: ServiceName
  readonly bus: Bus
  readonly state?: ServiceState
  readonly notifications?: { readonly service: Notifications; readonly store: NotificationStore }
  /** The billing service hosts the purchase saga. */
  readonly sagas?: SagaStore
  stop(): Promise<void>
}

/** `sqlite:<path>` (the default) or `amqp://…`: RabbitMQ with the design's `cloudphone.events` topic exchange. */
export const openTransport = (url: string): Promise<Transport> =>
  openTransportUrl(url, { exchange: 'cloudphone.events', namespace: 'cloud_phone' })

const schemas: Record<Exclude<ServiceName, 'notification'>, string> = {
  user: userSchema,
  device: deviceSchema,
  billing: billingSchema,
  app: appSchema,
}

export async function startService(name: ServiceName, config: ServiceConfig): Promise<RunningService> {
  const bus = createBus({
    transport: config.transport,
    service: config.instance === undefined ? `${name}-service` : `${name}-service.${config.instance}`,
    contracts: allContracts,
    consumer: { immediateRetries: 2, retry: { maxAttempts: 8, backoff: { initialMs: 200, maxMs: 5_000 } } },
  })
  if (name === 'notification') {
    const store = createSqliteNotificationStore({ path: join(config.dataDir, 'notification.db') })
    const service = await registerNotificationService(bus, {
      store,
      ...(config.smsWebhook === undefined ? {} : { sms: webhookProvider({ channel: 'sms', url: config.smsWebhook }) }),
    })
    await bus.start()
    return {
      name,
      bus,
      notifications: { service, store },
      async stop() {
        await bus.stop()
        await store.close()
      },
    }
  }
  const state = openServiceState({
    path: join(config.dataDir, `${name}.db`),
    transport: config.transport,
    schema: schemas[name],
    onError: config.onError,
  })
  if (name === 'billing') {
    registerBillingService(bus, state)
    const store = createSqliteSagaStore({ path: join(config.dataDir, 'billing-saga.db') })
    const host = registerSagas(bus, {
      store,
      sagas: [purchaseSaga({ paymentMs: config.paymentMs, allocationMs: config.allocationMs })],
    })
    await bus.start()
    await host.start()
    return {
      name,
      bus,
      state,
      sagas: store,
      async stop() {
        await bus.stop()
        await host.stop()
        await store.close()
        await state.close()
      },
    }
  }
  if (name === 'user') registerUserService(bus, state)
  else if (name === 'device') registerDeviceService(bus, state)
  else registerAppService(bus, state)
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
