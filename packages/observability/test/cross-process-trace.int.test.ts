import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createBus, defineEvent } from '@herald/core'
import { createSqliteTransport } from '@herald/sqlite'
import { createLatch, pollUntil, spawnWorker } from '@herald/testkit'
import { context, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { pino } from 'pino'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { z } from 'zod'
import { createObservability } from '../src/index.js'

const worker = fileURLToPath(new URL('./trace-worker.ts', import.meta.url))
const OrderPlaced = defineEvent('order.placed', { version: 1, schema: z.object({ orderId: z.string() }) })
const PaymentRequested = defineEvent('payment.requested', { version: 1, schema: z.object({ orderId: z.string() }) })

interface SpanLine {
  name: string
  traceId: string
  spanId: string
  parentSpanId?: string | undefined
}

const exporter = new InMemorySpanExporter()
beforeAll(() => {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  propagation.setGlobalPropagator(new W3CTraceContextPropagator())
})
afterAll(() => {
  trace.disable()
  context.disable()
  propagation.disable()
})

it('one trace across two processes exchanging messages over SQLite: order → payment → back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-trace-'))
  const path = join(dir, 'herald.db')
  const remote: SpanLine[] = []
  let ready = false
  const payments = spawnWorker(worker, { path }, (line) => {
    const parsed = JSON.parse(line) as SpanLine & { ready?: boolean }
    if (parsed.ready) ready = true
    else remote.push(parsed)
  })
  const obs = createObservability({ service: 'order-service', logger: pino({ level: 'silent' }) })
  const bus = createBus({ transport: obs.instrument(createSqliteTransport({ path })), service: 'order-service' })
  const confirmed = createLatch()
  bus.group('orders').on(PaymentRequested, async () => {
    confirmed.open()
  })
  try {
    await bus.start()
    await payments.whileRunning(
      async () => ready,
      async () => 'payment worker not ready',
    )
    await trace.getTracer('test').startActiveSpan('checkout', async (root) => {
      await bus.publish(OrderPlaced, { orderId: 'o-1' })
      root.end()
    })
    await confirmed.wait
    await pollUntil(async () => remote.some((s) => s.name === 'publish payment.requested'))
  } finally {
    await bus.stop()
    await bus.transport.close()
    await payments.stop()
    rmSync(dir, { recursive: true, force: true })
  }

  const local = exporter.getFinishedSpans().map((s) => ({
    name: s.name,
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext?.spanId,
  }))
  const find = (spans: SpanLine[], name: string) => {
    const span = spans.find((s) => s.name === name)
    if (!span) throw new Error(`no span "${name}" among ${spans.map((s) => s.name).join(', ')}`)
    return span
  }
  const root = find(local, 'checkout')
  const publishOrder = find(local, 'publish order.placed')
  const processOrder = find(remote, 'process order.placed') // in the other process
  const publishPayment = find(remote, 'publish payment.requested')
  const processPayment = find(local, 'process payment.requested') // back here
  for (const span of [publishOrder, processOrder, publishPayment, processPayment])
    expect(span.traceId).toBe(root.traceId)
  expect(publishOrder.parentSpanId).toBe(root.spanId)
  expect(processOrder.parentSpanId).toBe(publishOrder.spanId)
  expect(publishPayment.parentSpanId).toBe(processOrder.spanId)
  expect(processPayment.parentSpanId).toBe(publishPayment.spanId)
})
