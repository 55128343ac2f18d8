export { createPostgresEventStore, type PostgresEventStoreOptions } from './event-store.js'
export {
  createPostgresTransport,
  type PostgresTransport,
  type PostgresTransportOptions,
} from './postgres-transport.js'
export { topicPatternToRegex } from './topic-regex.js'
