import { createObservability } from '@herald/observability'
import { pollUntil } from '@herald/testkit'
import { context, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { pino } from 'pino'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startSystem } from './system.js'

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

it('food-trace: one trace from the customer through HTTP, gRPC, the bus, the outbox, the payment webhook and on to the kitchen', async () => {
  const observability = createObservability({ service: 'food', logger: pino({ level: 'silent' }) })
  const system = await startSystem({ wrapTransport: (transport) => observability.instrument(transport) })
  try {
    const customer = trace.getTracer('test').startSpan('customer places an order')
    const headers: Record<string, string> = {}
    propagation.inject(trace.setSpan(context.active(), customer), headers)
    const traceId = customer.spanContext().traceId
    const { body } = await system.placeOrder('grace', [{ id: 'noodles', quantity: 1 }], undefined, headers)
    await pollUntil(async () => (await system.getOrder('grace', body.id)).paymentLink !== undefined)
    // Paying is a new request with no trace of ours: the webhook finds the order's trace in the payment row.
    const paid = await fetch((await system.getOrder('grace', body.id)).paymentLink as string, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ outcome: 'pay' }),
    })
    expect(paid.status).toBe(200)
    customer.end()
    const inTrace = () => exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId)
    const named = (name: string) => inTrace().filter((span) => span.name === name)
    await pollUntil(async () => named('process order.paid').length === 2) // the kitchen's and the saga's
    const byId = new Map(inTrace().map((span) => [span.spanContext().spanId, span]))
    const parentName = (name: string) => {
      const span = named(name)[0]
      return span === undefined ? undefined : byId.get(span.parentSpanContext?.spanId ?? '')?.name
    }
    // Each hop is the child of the one that caused it.
    expect(parentName('POST /customer/{customerId}/orders')).toBe('customer places an order')
    expect(parentName('grpc /food.stock.StockService/CheckIfItemInStock')).toBe('POST /customer/{customerId}/orders')
    expect(parentName('publish stock.reserve')).toBe('POST /customer/{customerId}/orders')
    expect(parentName('process stock.reserve')).toBe('publish stock.reserve')
    expect(parentName('publish order.created')).toBe('POST /customer/{customerId}/orders') // relayed from the outbox
    expect(parentName('process order.created')).toBe('publish order.created')
    expect(parentName('POST /webhooks/stripe')).toBe('process order.created')
    expect(parentName('publish order.paid')).toBe('POST /webhooks/stripe')
    expect(named('process order.paid').map((span) => byId.get(span.parentSpanContext?.spanId ?? '')?.name)).toEqual([
      'publish order.paid',
      'publish order.paid',
    ])
  } finally {
    await system.stop()
  }
})
