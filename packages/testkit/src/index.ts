export { describeTransport } from './describe-transport.js'
export type { HarnessFactory, TransportFeatures, TransportHarness } from './harness.js'
export { type HeapGrowth, measureHeapGrowth } from './heap-growth.js'
export { createHistory, type History, type HistoryCheck } from './history.js'
export { createLatch, type Latch } from './latch.js'
export { createManualClock, type ManualClock } from './manual-clock.js'
export { launchChromium } from './servers/chromium.js'
export { type FaultProxy, type ProxyMode, startFaultProxy } from './servers/fault-proxy.js'
export { freePort } from './servers/free-port.js'
export { type KafkaCluster, type KafkaNode, kafkaJars, type StartKafkaOptions, startKafka } from './servers/kafka.js'
export { type PostgresServer, type StartPostgresOptions, startPostgres } from './servers/postgres.js'
export { type PrometheusServer, startPrometheus } from './servers/prometheus.js'
export { type RabbitMqServer, startRabbitMq } from './servers/rabbitmq.js'
export { type RedisProfile, type RedisServer, startRedis } from './servers/redis.js'
export {
  type ConnectionResetRun,
  type ConnectionResetRunOptions,
  runThroughConnectionResets,
} from './suite/connection-resets.js'
export { type CrashHarness, describeConsumerCrashes } from './suite/crash-cases.js'
export {
  describeEventStore,
  type EventStoreFeatures,
  type EventStoreHarness,
} from './suite/event-store-cases.js'
export { describeKeyOrdering, type OrderingHarness, type OrderingTransport } from './suite/ordering-cases.js'
export { describeOutbox, type OutboxHarness } from './suite/outbox-cases.js'
export { objectSchema } from './suite/test-schema.js'
export { pollUntil, type WaitForOptions, WaitTimeoutError, waitFor } from './wait-for.js'
export {
  type ConsumerWorker,
  type ConsumerWorkerConfig,
  fakeClock,
  runWithSteppableClock,
  spawnConsumer,
  type WorkerEvent,
} from './worker/spawn-consumer.js'
export { type ProjectionWorkerConfig, spawnProjection } from './worker/spawn-projection.js'
export { type SpawnedWorker, spawnWorker } from './worker/spawn-worker.js'
