import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { redactSecrets } from './redact.js'

const tracer = () => trace.getTracer('@herald/observability')

/**
 * The current trace context as W3C headers (`traceparent`, `tracestate`), to stage with a message in an outbox
 * (`bus.prepare(C, data, { headers: traceHeaders() })`) or to store beside a row a later request continues from.
 * Empty with no OpenTelemetry SDK registered.
 */
export function traceHeaders(): Record<string, string> {
  const headers: Record<string, string> = {}
  propagation.inject(context.active(), headers)
  return headers
}

/**
 * Runs `work` in a SERVER span named `name`, the child of the trace context in `headers` (an HTTP request's, gRPC
 * metadata, or headers kept from `traceHeaders()`); the span records a throw and ends when `work` settles.
 */
export async function traceCall<T>(
  name: string,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  work: () => Promise<T>,
): Promise<T> {
  const parent = propagation.extract(ROOT_CONTEXT, headers, {
    keys: (carrier) => Object.keys(carrier),
    get: (carrier, key) => {
      const value = carrier[key]
      return Array.isArray(value) ? value[0] : value
    },
  })
  const span = tracer().startSpan(name, { kind: SpanKind.SERVER }, parent)
  try {
    return await context.with(trace.setSpan(parent, span), work)
  } catch (err) {
    span.recordException(err as Error)
    span.setStatus({ code: SpanStatusCode.ERROR, message: redactSecrets(String(err)) })
    throw err
  } finally {
    span.end()
  }
}
