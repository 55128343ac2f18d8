/**
 * The payment service of the cross-process trace test, in its own process: handles `order.placed` from SQLite,
 * publishes `payment.requested`, and prints each finished span as a JSON line. SIGTERM stops it.
 */
import { createBus, defineEvent } from '@herald/core'
import { createSqliteTransport } from '@herald/sqlite'
import { context, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { ExportResultCode, W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base'
import { pino } from 'pino'
import { z } from 'zod'
import { createObservability } from '../src/index.js'

const { path } = JSON.parse(process.argv[2] ?? '{}') as { path: string }
const printer: SpanExporter = {
  export(spans, done) {
    for (const s of spans)
      process.stdout.write(
        `${JSON.stringify({
          name: s.name,
          traceId: s.spanContext().traceId,
          spanId: s.spanContext().spanId,
          parentSpanId: s.parentSpanContext?.spanId,
          pid: process.pid,
        })}\n`,
      )
    done({ code: ExportResultCode.SUCCESS })
  },
  shutdown: async () => {},
}
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(printer)] }))
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
propagation.setGlobalPropagator(new W3CTraceContextPropagator())

const OrderPlaced = defineEvent('order.placed', { version: 1, schema: z.object({ orderId: z.string() }) })
const PaymentRequested = defineEvent('payment.requested', { version: 1, schema: z.object({ orderId: z.string() }) })

const obs = createObservability({ service: 'payment-service', logger: pino({ level: 'silent' }) })
const bus = createBus({ transport: obs.instrument(createSqliteTransport({ path })), service: 'payment-service' })
bus.group('payments').on(OrderPlaced, async (message, ctx) => {
  await ctx.publish(PaymentRequested, { orderId: message.data.orderId })
})
await bus.start()
process.stdout.write(`${JSON.stringify({ ready: true })}\n`)
process.on('SIGTERM', () => {
  void bus
    .stop()
    .then(() => bus.transport.close())
    .then(() => process.exit(0))
})
