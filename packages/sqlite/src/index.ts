export { createSqliteEventStore, type SqliteEventStoreOptions } from './event-store.js'
export type { SqliteDurability } from './open-database.js'
export { createSqliteTransport, type SqliteTransport, type SqliteTransportOptions } from './sqlite-transport.js'
