export { createSqliteEventStore, type SqliteEventStoreOptions } from './event-store.js'
export type { SqliteDurability } from './open-database.js'
export {
  createSqliteInbox,
  createSqliteOutbox,
  type SqliteInbox,
  type SqliteOutbox,
  type SqliteTransactionalHandler,
} from './outbox.js'
export { openServiceState, type Plan, type ServiceState } from './service-state.js'
export { createSqliteTransport, type SqliteTransport, type SqliteTransportOptions } from './sqlite-transport.js'
