import {
  heraldPostgresEventAppend,
  heraldPostgresEventRead,
  heraldSqliteEventAppend,
  heraldSqliteEventRead,
  heraldSqliteEventSearch,
  rawPostgresEventAppend,
  rawPostgresEventRead,
  rawSqliteEventAppend,
  rawSqliteEventRead,
  rawSqliteEventSearch,
} from './cases/event-store.js'
import {
  heraldInMemory,
  heraldInMemoryKeyed,
  heraldInMemoryOver,
  rawEventEmitter,
  rawEventEmitterOver,
} from './cases/in-memory.js'
import { heraldKafka, rawKafka } from './cases/kafka.js'
import { heraldNotifications, rawNotifications } from './cases/notifications.js'
import {
  bareInMemory,
  bareSqlite,
  instrumentedInMemory,
  instrumentedSqlite,
  metricsOnlyInMemory,
  metricsOnlySqlite,
} from './cases/observability.js'
import { heraldPostgresOutbox, heraldSqliteOutbox, rawPostgresOutbox, rawSqliteOutbox } from './cases/outbox.js'
import { heraldPostgres, heraldPostgresKeyed, rawPostgres } from './cases/postgres.js'
import {
  heraldRabbitMq,
  heraldRabbitMqConsume,
  heraldRabbitMqLatency,
  heraldRabbitMqPublish,
  rawRabbitMq,
  rawRabbitMqConsume,
  rawRabbitMqLatency,
  rawRabbitMqPublish,
} from './cases/rabbitmq.js'
import { bullmq, heraldRedis, heraldRedisKeyed, heraldRedisLatency, rawRedis, rawRedisLatency } from './cases/redis.js'
import { heraldSqliteSaga, rawSqliteSaga } from './cases/saga.js'
import {
  heraldSqlite,
  heraldSqliteKeyed,
  heraldSqliteLatency,
  heraldSqliteOver,
  rawSqlite,
  rawSqliteLatency,
  rawSqliteOver,
} from './cases/sqlite.js'
import type { BenchSide } from './measure.js'

/** Each benchmark: Herald's side and the raw client's side, run in separate processes in the same session. */
export interface BenchCase {
  readonly bench: string
  readonly transport: string
  /** What the raw side is, for the printed table. */
  readonly raw: string
  /**
   * Herald's side. Measured twice, at the bus level (what a user calls) and at the transport level, unless `api`
   * names the one user API it already measures (the event store, the outbox relay).
   */
  readonly herald: BenchSide
  readonly baseline: BenchSide
  readonly api?: string
  /** Long runs: one run per side, no warm-up (the first tenth of the messages is the warm-up of their measure). */
  readonly once?: boolean
}

export const benchCases: readonly BenchCase[] = [
  {
    bench: 'e2e-throughput',
    transport: 'in-memory',
    raw: 'EventEmitter + awaited async handler',
    herald: heraldInMemory,
    baseline: rawEventEmitter,
  },
  {
    bench: 'e2e-throughput',
    transport: 'sqlite',
    raw: 'better-sqlite3 batched queue',
    herald: heraldSqlite,
    baseline: rawSqlite,
  },
  {
    bench: 'e2e-throughput',
    transport: 'postgres',
    raw: 'pg SKIP LOCKED queue',
    herald: heraldPostgres,
    baseline: rawPostgres,
  },
  {
    bench: 'keyed-e2e-throughput',
    transport: 'in-memory',
    api: 'the bus with every message keyed (1,000 keys), against the same bus unkeyed',
    raw: 'the same bus, unkeyed',
    herald: heraldInMemoryKeyed,
    baseline: heraldInMemory,
  },
  {
    bench: 'keyed-e2e-throughput',
    transport: 'sqlite',
    api: 'the bus with every message keyed (1,000 keys), against the same bus unkeyed',
    raw: 'the same bus, unkeyed',
    herald: heraldSqliteKeyed,
    baseline: heraldSqlite,
  },
  {
    bench: 'keyed-e2e-throughput',
    transport: 'postgres',
    api: 'the bus with every message keyed (1,000 keys), against the same bus unkeyed',
    raw: 'the same bus, unkeyed',
    herald: heraldPostgresKeyed,
    baseline: heraldPostgres,
  },
  {
    bench: 'keyed-e2e-throughput',
    transport: 'redis',
    api: 'the bus with every message keyed (1,000 keys), against the same bus unkeyed',
    raw: 'the same bus, unkeyed',
    herald: heraldRedisKeyed,
    baseline: heraldRedis,
  },
  {
    bench: 'e2e-latency-2000-per-s',
    transport: 'sqlite',
    raw: 'better-sqlite3 batched queue',
    herald: heraldSqliteLatency,
    baseline: rawSqliteLatency,
  },
  {
    bench: 'event-store-append',
    transport: 'sqlite',
    api: 'EventStore.append, batches of 1,000',
    raw: 'better-sqlite3 table, 1,000 rows per transaction',
    herald: heraldSqliteEventAppend,
    baseline: rawSqliteEventAppend,
  },
  {
    bench: 'event-store-read',
    transport: 'sqlite',
    api: 'EventStore.read, pages of 1,000',
    raw: 'better-sqlite3 keyset pages of 1,000',
    herald: heraldSqliteEventRead,
    baseline: rawSqliteEventRead,
  },
  {
    bench: 'event-search-1m',
    transport: 'sqlite',
    api: 'EventStore.queryEvents newest first, the console search',
    raw: 'better-sqlite3 table with the same indexes, same queries',
    herald: heraldSqliteEventSearch,
    baseline: rawSqliteEventSearch,
    once: true,
  },
  {
    bench: 'event-store-append',
    transport: 'postgres',
    api: 'EventStore.append, batches of 1,000',
    raw: 'pg multi-row INSERT of 1,000',
    herald: heraldPostgresEventAppend,
    baseline: rawPostgresEventAppend,
  },
  {
    bench: 'event-store-read',
    transport: 'postgres',
    api: 'EventStore.read, pages of 1,000',
    raw: 'pg keyset pages of 1,000',
    herald: heraldPostgresEventRead,
    baseline: rawPostgresEventRead,
  },
  {
    bench: 'outbox-relay',
    transport: 'sqlite',
    api: 'outbox stage + relay into a bus',
    raw: 'better-sqlite3 select-publish-delete loop',
    herald: heraldSqliteOutbox,
    baseline: rawSqliteOutbox,
  },
  {
    bench: 'saga-steps',
    transport: 'sqlite',
    api: 'registerSagas on @herald/saga/sqlite',
    raw: 'hand-written handler: inbox, state row and outbox in one better-sqlite3 transaction',
    herald: heraldSqliteSaga,
    baseline: rawSqliteSaga,
  },
  {
    bench: 'notifications-sent',
    transport: 'sqlite',
    api: 'createNotifications sendBatch, webhook provider, records on @herald/notifications/sqlite',
    raw: 'Handlebars render + fetch POST, 100 at a time, no records',
    herald: heraldNotifications,
    baseline: rawNotifications,
  },
  {
    bench: 'outbox-relay',
    transport: 'postgres',
    api: 'outbox stage + relay into a bus',
    raw: 'pg SKIP LOCKED select-publish-delete loop',
    herald: heraldPostgresOutbox,
    baseline: rawPostgresOutbox,
  },
  {
    bench: 'e2e-throughput',
    transport: 'redis',
    raw: 'ioredis: pipelined XADD, XREADGROUP + XACK/XDEL',
    herald: heraldRedis,
    baseline: rawRedis,
  },
  {
    bench: 'e2e-throughput',
    transport: 'kafka',
    raw: '@platformatic/kafka: a send per 1,000 values, a group stream with autocommit',
    herald: heraldKafka,
    baseline: rawKafka,
  },
  {
    bench: 'vs-bullmq',
    transport: 'redis',
    raw: 'BullMQ (Queue.addBulk, Worker concurrency 100)',
    herald: heraldRedis,
    baseline: bullmq,
  },
  {
    bench: 'e2e-latency-5000-per-s',
    transport: 'redis',
    raw: 'ioredis: pipelined XADD, XREADGROUP + XACK/XDEL',
    herald: heraldRedisLatency,
    baseline: rawRedisLatency,
  },
  {
    bench: 'e2e-throughput',
    transport: 'rabbitmq',
    raw: 'amqplib: confirm-channel publish, manual-ack consume, prefetch 100, quorum queue, same headers',
    herald: heraldRabbitMq,
    baseline: rawRabbitMq,
  },
  {
    bench: 'e2e-latency-5000-per-s',
    transport: 'rabbitmq',
    raw: 'amqplib: confirm-channel publish, manual-ack consume, prefetch 100, quorum queue, same headers',
    herald: heraldRabbitMqLatency,
    baseline: rawRabbitMqLatency,
  },
  {
    bench: 'publish-throughput',
    transport: 'rabbitmq',
    raw: 'amqplib: confirm-channel publish, windows of 1,000, quorum queue',
    herald: heraldRabbitMqPublish,
    baseline: rawRabbitMqPublish,
  },
  {
    bench: 'consume-throughput',
    transport: 'rabbitmq',
    raw: 'amqplib: manual-ack consume of a filled quorum queue, prefetch 100',
    herald: heraldRabbitMqConsume,
    baseline: rawRabbitMqConsume,
  },
  {
    bench: 'observability-overhead',
    transport: 'in-memory',
    api: 'the bus, instrumented, against the same bus bare',
    raw: 'the same transport without metrics, tracing and logging',
    herald: instrumentedInMemory,
    baseline: bareInMemory,
  },
  {
    bench: 'observability-overhead',
    transport: 'sqlite',
    api: 'the bus, instrumented, against the same bus bare',
    raw: 'the same transport without metrics, tracing and logging',
    herald: instrumentedSqlite,
    baseline: bareSqlite,
  },
  {
    bench: 'observability-overhead-no-tracing-sdk',
    transport: 'in-memory',
    api: 'the bus with metrics and logs, against the same bus bare',
    raw: 'the same transport without metrics and logging (no OpenTelemetry SDK in either)',
    herald: metricsOnlyInMemory,
    baseline: bareInMemory,
  },
  {
    bench: 'observability-overhead-no-tracing-sdk',
    transport: 'sqlite',
    api: 'the bus with metrics and logs, against the same bus bare',
    raw: 'the same transport without metrics and logging (no OpenTelemetry SDK in either)',
    herald: metricsOnlySqlite,
    baseline: bareSqlite,
  },
  {
    bench: 'rss-over-1m',
    transport: 'in-memory',
    raw: 'EventEmitter + awaited async handler',
    herald: heraldInMemoryOver(1_000_000),
    baseline: rawEventEmitterOver(1_000_000),
    once: true,
  },
  {
    bench: 'rss-over-1m',
    transport: 'sqlite',
    raw: 'better-sqlite3 batched queue',
    herald: heraldSqliteOver(1_000_000),
    baseline: rawSqliteOver(1_000_000),
    once: true,
  },
]
