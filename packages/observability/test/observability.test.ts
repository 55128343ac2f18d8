import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { createBus, createInMemoryTransport, defineEvent, PermanentError } from '@herald/core'
import { createSqliteOutbox, createSqliteTransport } from '@herald/sqlite'
import { createLatch, pollUntil } from '@herald/testkit'
import { context, propagation, SpanKind, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import Database from 'better-sqlite3'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createObservability, redactSecrets } from '../src/index.js'

const OrderPlaced = defineEvent('order.placed', {
  version: 1,
  schema: z.object({ orderId: z.string(), n: z.number() }),
})
const PaymentRequested = defineEvent('payment.requested', { version: 1, schema: z.object({ orderId: z.string() }) })

/** Log lines as parsed JSON objects. */
function captureLogs() {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line))
      done()
    },
  })
  return { lines, logger: pino({ level: 'debug' }, stream) }
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get()
  const match = metric?.values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value))
  return match?.value ?? 0
}

describe('observability: metrics, traces and logs around any transport', () => {
  const exporter = new InMemorySpanExporter()
  const contextManager = new AsyncLocalStorageContextManager()
  beforeAll(() => {
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
    context.setGlobalContextManager(contextManager.enable())
    propagation.setGlobalPropagator(new W3CTraceContextPropagator())
  })
  afterAll(() => {
    trace.disable()
    context.disable()
    propagation.disable()
  })

  it('counts published and handled messages by outcome, times handlers, and logs every failure with its ids', async () => {
    const registry = new Registry()
    const { lines, logger } = captureLogs()
    const obs = createObservability({ service: 'orders', registry, logger })
    const transport = obs.instrument(createInMemoryTransport())
    const bus = createBus({
      transport,
      service: 'orders',
      consumer: { immediateRetries: 0, retry: { maxAttempts: 3, backoff: { initialMs: 1, maxMs: 2 } } },
    })
    const seen = new Map<number, number>()
    bus.group('billing').on(OrderPlaced, async (message) => {
      const n = message.data.n
      seen.set(n, (seen.get(n) ?? 0) + 1)
      if (n % 5 === 0) throw new PermanentError(`order ${n} cannot be billed (db postgres://app:hunter2@db/orders)`)
      if (n % 5 === 1 && seen.get(n) === 1) throw new Error('flaky once')
    })
    await bus.start()
    for (let n = 0; n < 10; n++) await bus.publish(OrderPlaced, { orderId: `o-${n}`, n })
    const handled = (outcome: string) =>
      metricValue(registry, 'herald_messages_handled_total', { group: 'billing', outcome })
    await pollUntil(async () => (await handled('acked')) === 8 && (await handled('dead_lettered')) === 2)
    await bus.stop()

    expect(await metricValue(registry, 'herald_messages_published_total', { type: 'order.placed' })).toBe(10)
    expect(await handled('retried')).toBe(2)
    expect(await metricValue(registry, 'herald_dead_lettered_total', { reason: 'permanent_error' })).toBe(2)
    const histogram = await registry.getSingleMetric('herald_handle_duration_seconds')?.get()
    expect(
      histogram?.values.find(
        (v) => (v as { metricName?: string }).metricName === 'herald_handle_duration_seconds_count',
      )?.value,
    ).toBe(12)
    const text = await registry.metrics()
    expect(text).toContain(
      'herald_messages_handled_total{service="orders",type="order.placed",group="billing",outcome="acked"} 8',
    )

    const failures = lines.filter(
      (l) => l.msg === 'handler failed; dead-lettered' || l.msg === 'handler failed; will retry',
    )
    expect(failures).toHaveLength(4)
    for (const line of failures) {
      expect(line).toMatchObject({ service: 'orders', group: 'billing', type: 'order.placed', topic: 'order.placed' })
      expect(typeof line.messageId).toBe('string')
      expect(typeof line.correlationId).toBe('string')
    }
    const everything = JSON.stringify(lines)
    expect(everything).not.toContain('hunter2')
    expect(everything).toContain('postgres://app:***@db/orders')
  })

  it('counts what the consumer decided: a delivery dead-lettered before any handler ran is counted and logged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-obs-settled-'))
    const path = join(dir, 'herald.db')
    const registry = new Registry()
    const { lines, logger } = captureLogs()
    const obs = createObservability({ service: 'orders', registry, logger })
    const transport = obs.instrument(createSqliteTransport({ path, pollIntervalMs: 10 }))
    await transport.declareGroup('billing', ['order.placed'])
    // A row whose three deliveries all ended without an outcome (as if three consumers had crashed in turn).
    const raw = new Database(path)
    raw
      .prepare(
        `INSERT INTO herald_queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at, attempts)
         VALUES ('billing', 'crashed-3-times', 'order.placed', ?, ?, ?, ?, 3)`,
      )
      .run(JSON.stringify({ type: 'order.placed' }), Buffer.from('{"orderId":"o","n":1}'), Date.now(), Date.now())
    raw.close()
    let ran = 0
    const bus = createBus({ transport, service: 'orders', consumer: { retry: { maxAttempts: 3 } } })
    bus.group('billing').on(OrderPlaced, async () => {
      ran++
    })
    await bus.start()
    const dead = () => metricValue(registry, 'herald_dead_lettered_total', { reason: 'max_deliveries_exceeded' })
    await pollUntil(async () => (await dead()) === 1)
    await bus.stop()
    await transport.close()
    rmSync(dir, { recursive: true, force: true })
    expect(ran).toBe(0)
    expect(
      await metricValue(registry, 'herald_messages_handled_total', { group: 'billing', outcome: 'dead_lettered' }),
    ).toBe(1)
    expect(lines.find((l) => l.reason === 'max_deliveries_exceeded')).toMatchObject({
      messageId: 'crashed-3-times',
      group: 'billing',
      attempt: 4,
    })
  })

  it('carries the trace from a publish to its handler and on to what the handler publishes', async () => {
    exporter.reset()
    const { logger } = captureLogs()
    const obs = createObservability({ service: 'shop', logger })
    const transport = obs.instrument(createInMemoryTransport())
    const bus = createBus({ transport, service: 'shop' })
    const paid = createLatch()
    const traceparents: string[] = []
    bus.group('billing').on(OrderPlaced, async (message, ctx) => {
      traceparents.push(message.headers.traceparent ?? '')
      await ctx.publish(PaymentRequested, { orderId: message.data.orderId })
    })
    bus.group('payments').on(PaymentRequested, async (message) => {
      traceparents.push(message.headers.traceparent ?? '')
      paid.open()
    })
    await bus.start()
    const tracer = trace.getTracer('test')
    await tracer.startActiveSpan('checkout', async (root) => {
      await bus.publish(OrderPlaced, { orderId: 'o-1', n: 1 })
      root.end()
    })
    await paid.wait
    await bus.stop()

    const spans = exporter.getFinishedSpans()
    const byName = (name: string) => spans.find((s) => s.name === name)
    const root = byName('checkout')!
    const publishOrder = byName('publish order.placed')!
    const processOrder = byName('process order.placed')!
    const publishPayment = byName('publish payment.requested')!
    const processPayment = byName('process payment.requested')!
    for (const span of [publishOrder, processOrder, publishPayment, processPayment])
      expect(span.spanContext().traceId).toBe(root.spanContext().traceId)
    expect(publishOrder.kind).toBe(SpanKind.PRODUCER)
    expect(processOrder.kind).toBe(SpanKind.CONSUMER)
    expect(publishOrder.parentSpanContext?.spanId).toBe(root.spanContext().spanId)
    expect(processOrder.parentSpanContext?.spanId).toBe(publishOrder.spanContext().spanId)
    expect(publishPayment.parentSpanContext?.spanId).toBe(processOrder.spanContext().spanId)
    expect(processPayment.parentSpanContext?.spanId).toBe(publishPayment.spanContext().spanId)
    expect(processOrder.attributes).toMatchObject({
      'messaging.system': 'in-memory',
      'messaging.destination.name': 'order.placed',
      'messaging.consumer.group.name': 'billing',
      'herald.outcome': 'acked',
    })
    // The header each handler saw names the producer span of its message.
    expect(traceparents[0]).toContain(publishOrder.spanContext().spanId)
    expect(traceparents[1]).toContain(publishPayment.spanContext().spanId)
  })

  it('serves /metrics, /healthz and /readyz; readiness fails once a transport is closed', async () => {
    const { logger } = captureLogs()
    const obs = createObservability({ service: 'api', logger })
    const inner = createInMemoryTransport()
    const transport = obs.instrument(inner)
    await transport.declareGroup('g', ['a.b'])
    const server: Server = createServer((req, res) => {
      void obs.handle(req, res).then((handled) => {
        if (!handled) res.writeHead(404).end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const metrics = await fetch(`${base}/metrics`)
      expect(metrics.headers.get('content-type')).toContain('text/plain')
      expect(await metrics.text()).toContain('herald_group_depth{group="g"} 0')
      expect((await fetch(`${base}/healthz`)).status).toBe(200)
      const ready = await fetch(`${base}/readyz`)
      expect(ready.status).toBe(200)
      await transport.close()
      const notReady = await fetch(`${base}/readyz`)
      expect(notReady.status).toBe(503)
      expect(await notReady.json()).toMatchObject({ ok: false })
      expect((await fetch(`${base}/elsewhere`)).status).toBe(404)
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  it('redacts passwords in URLs wherever they appear in text', () => {
    expect(redactSecrets('connect amqp://guest:guest@127.0.0.1:5672 and redis://:s3cret@host:6379/0 failed')).toBe(
      'connect amqp://guest:***@127.0.0.1:5672 and redis://:***@host:6379/0 failed',
    )
    expect(redactSecrets('sqlite:./herald.db')).toBe('sqlite:./herald.db')
  })
})

describe('observability: backlog gauges', () => {
  it('reports the scheduled backlog, the consumer lag and an outbox backlog from a real SQLite database', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-gauges-'))
    const { logger } = captureLogs()
    const obs = createObservability({ service: 'api', logger })
    const transport = obs.instrument(createSqliteTransport({ path: join(dir, 'bus.db') }))
    const outbox = createSqliteOutbox({ path: join(dir, 'app.db') })
    const app = new Database(join(dir, 'app.db'))
    try {
      obs.metrics.watchOutbox('orders', outbox)
      const bus = createBus({ transport, service: 'api' })
      await transport.declareGroup('billing', ['order.placed'])
      // Two due now and nobody consuming (lag grows), one delayed by an hour (scheduled).
      await bus.publish(OrderPlaced, { orderId: 'o-1', n: 1 })
      await bus.publish(OrderPlaced, { orderId: 'o-2', n: 2 })
      await bus.publish(OrderPlaced, { orderId: 'o-3', n: 3 }, { delayMs: 3_600_000 })
      // Two of one key: the second waits for the first.
      await bus.publish(OrderPlaced, { orderId: 'o-5', n: 5 }, { partitionKey: 'k' })
      await bus.publish(OrderPlaced, { orderId: 'o-6', n: 6 }, { partitionKey: 'k' })
      const staged = await bus.prepare(OrderPlaced, { orderId: 'o-4', n: 4 })
      app.transaction(() => outbox.stage(app, [staged]))()
      const gauge = (name: string, labels: Record<string, string>) => metricValue(obs.registry, name, labels)
      expect(await gauge('herald_group_depth', { group: 'billing' })).toBe(5)
      expect(await gauge('herald_group_scheduled', { group: 'billing' })).toBe(1)
      expect(await gauge('herald_group_waiting_on_key', { group: 'billing' })).toBe(1)
      expect(await gauge('herald_group_held_keys', { group: 'billing' })).toBe(0)
      expect(await gauge('herald_outbox_backlog', { outbox: 'orders' })).toBe(1)
      // Lag is the age of the oldest due message: it only grows while no one consumes. The outbox's message was
      // staged after the group's, so its lag passes the mark a moment later: wait for both.
      await pollUntil(
        async () =>
          (await gauge('herald_group_lag_seconds', { group: 'billing' })) > 0.05 &&
          (await gauge('herald_outbox_lag_seconds', { outbox: 'orders' })) > 0.05,
        10_000,
      )
    } finally {
      app.close()
      await outbox.close()
      await transport.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
