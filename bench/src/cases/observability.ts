import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { createInMemoryTransport, type Transport } from '@herald/core'
import { createObservability } from '@herald/observability'
import { createSqliteTransport } from '@herald/sqlite'
import { context, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { ExportResultCode, W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base'
import { pino } from 'pino'
import { type BenchSide, heraldThroughput } from '../measure.js'

const window = 1_000

/** An exporter that accepts every batch and keeps nothing: the cost measured is Herald's and the SDK's, not I/O. */
const discard: SpanExporter = {
  export: (_spans, done) => done({ code: ExportResultCode.SUCCESS }),
  shutdown: async () => {},
}

/**
 * Everything on, as in production: a registered OpenTelemetry SDK (batching spans, W3C propagation, async context),
 * metrics, info-level logs. With `sdk: false`, metrics and logs only: the tracing API stays a no-op.
 */
function instrument(transport: Transport, sdk = true): Transport {
  if (sdk) {
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(discard)] }))
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  }
  const sink = new Writable({ write: (_chunk, _encoding, done) => done() })
  const obs = createObservability({ service: 'bench', logger: pino({ level: 'info' }, sink) })
  return obs.instrument(transport)
}

function tempDb(): { path: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-'))
  return { path: join(dir, 'bench.db'), cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

const inMemoryMessages = 100_000
const sqliteMessages = 30_000

export const instrumentedInMemory: BenchSide = () =>
  heraldThroughput(instrument(createInMemoryTransport()), inMemoryMessages, window)
export const metricsOnlyInMemory: BenchSide = () =>
  heraldThroughput(instrument(createInMemoryTransport(), false), inMemoryMessages, window)
export const bareInMemory: BenchSide = () => heraldThroughput(createInMemoryTransport(), inMemoryMessages, window)

export const instrumentedSqlite: BenchSide = async () => {
  const db = tempDb()
  const measured = await heraldThroughput(instrument(createSqliteTransport({ path: db.path })), sqliteMessages, window)
  db.cleanup()
  return measured
}
export const metricsOnlySqlite: BenchSide = async () => {
  const db = tempDb()
  const measured = await heraldThroughput(
    instrument(createSqliteTransport({ path: db.path }), false),
    sqliteMessages,
    window,
  )
  db.cleanup()
  return measured
}
export const bareSqlite: BenchSide = async () => {
  const db = tempDb()
  const measured = await heraldThroughput(createSqliteTransport({ path: db.path }), sqliteMessages, window)
  db.cleanup()
  return measured
}
