import { join } from 'node:path'
import { type Bus, createBus, type EventStore, recordEvents, type Subscription, type Transport } from '@herald/core'
import type { NotificationStore, Notifications } from '@herald/notifications'
import { createSqliteNotificationStore } from '@herald/notifications/sqlite'
import { registerSagas, type SagaStore } from '@herald/saga'
import { createSqliteSagaStore } from '@herald/saga/sqlite'
import { createSqliteEventStore, openServiceState, type ServiceState } from '@herald/sqlite'
import { authors } from './catalogue.js'
import { allContracts } from './contracts.js'
import { bookstoreSchema, registerBookstoreService } from './services/bookstore-service.js'
import { financeSchema, registerFinanceService } from './services/finance-service.js'
import { registerNotificationService } from './services/notification-service.js'
import { readingSchema, registerReadingService } from './services/reading-service.js'
import { registerUserService, userSchema } from './services/user-service.js'
import { openStatistics, type Statistics, startStatistics } from './statistics.js'
import { vipSaga } from './vip-saga.js'

export const serviceNames = ['user', 'bookstore', 'finance', 'reading', 'notification'] as const
export type ServiceName = (typeof serviceNames)[number]

export interface ServiceConfig {
  readonly transport: Transport
  /** Each service keeps its database here: `<dataDir>/<service>.db`. */
  readonly dataDir: string
  /** How long a VIP day lasts (a day; a fixed run makes it short). */
  readonly dayMs: number
  readonly onError: (err: unknown) => void
}

export interface RunningService {
  readonly name: ServiceName
  readonly bus: Bus
  readonly state?: ServiceState
  readonly notifications?: { readonly service: Notifications; readonly store: NotificationStore }
  readonly sagas?: SagaStore
  /** The reading service keeps the event store and the statistics built from it. */
  readonly events?: { readonly store: EventStore; readonly statistics: Statistics }
  stop(): Promise<void>
}

const schemas = {
  user: userSchema,
  bookstore: bookstoreSchema,
  finance: financeSchema,
  reading: readingSchema,
} as const

export async function startService(name: ServiceName, config: ServiceConfig): Promise<RunningService> {
  const bus = createBus({
    transport: config.transport,
    service: `${name}-service`,
    contracts: allContracts,
    consumer: { immediateRetries: 2, retry: { maxAttempts: 8, backoff: { initialMs: 200, maxMs: 5_000 } } },
  })
  if (name === 'notification') {
    const store = createSqliteNotificationStore({ path: join(config.dataDir, 'notification.db') })
    const service = await registerNotificationService(bus, store)
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
  const closers: (() => Promise<void>)[] = []
  let events: RunningService['events']
  const sagas =
    name === 'bookstore' ? createSqliteSagaStore({ path: join(config.dataDir, 'bookstore-saga.db') }) : undefined
  if (name === 'user') registerUserService(bus, state, authors)
  if (name === 'finance') registerFinanceService(bus, state)
  if (name === 'bookstore') registerBookstoreService(bus, state, { dayMs: config.dayMs })
  if (name === 'reading') registerReadingService(bus, state)
  const host = sagas === undefined ? undefined : registerSagas(bus, { store: sagas, sagas: [vipSaga()] })
  await bus.start()
  if (host !== undefined && sagas !== undefined) {
    await host.start()
    const store = sagas
    closers.push(async () => {
      await host.stop()
      await store.close()
    })
  }
  if (name === 'reading') {
    // Every event the platform carries is kept (stage 3), the local ones too; the statistics follow the store.
    const store = createSqliteEventStore({ path: join(config.dataDir, 'events.db') })
    const recorder: Subscription = await recordEvents({ transport: config.transport, store })
    const statistics = openStatistics(join(config.dataDir, 'statistics.db'))
    const projection = startStatistics(store, statistics, config.onError)
    events = { store, statistics }
    closers.push(async () => {
      await recorder.close()
      await projection.stop()
      statistics.db.close()
      await store.close()
    })
  }
  return {
    name,
    bus,
    state,
    ...(sagas === undefined ? {} : { sagas }),
    ...(events === undefined ? {} : { events }),
    async stop() {
      await bus.stop()
      for (const close of closers) await close()
      await state.close()
    },
  }
}
