export { createPostgresEventStore, type PostgresEventStoreOptions } from './event-store.js'
export {
  createPostgresInbox,
  createPostgresOutbox,
  type PostgresInbox,
  type PostgresOutbox,
  type TransactionalHandler,
} from './outbox.js'
export {
  createPostgresTransport,
  type PostgresTransport,
  type PostgresTransportOptions,
} from './postgres-transport.js'
export { topicPatternToRegex } from './topic-regex.js'
