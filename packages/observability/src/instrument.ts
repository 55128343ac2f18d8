import {
  decideFailure,
  type Envelope,
  type Handler,
  HeaderNames,
  isHeraldError,
  resolveRetryPolicy,
  type Transport,
} from '@herald/core'
import {
  type Context,
  context,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
  trace,
} from '@opentelemetry/api'
import type { Logger } from 'pino'
import type { HeraldMetrics } from './metrics.js'
import { redactSecrets } from './redact.js'

/** Reads and writes W3C trace context (`traceparent`, `tracestate`) in an envelope's string headers. */
const getter: TextMapGetter<Readonly<Record<string, string>>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
}
const setter: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value
  },
}

/** The envelope with the trace context of `ctx` in a copy of its headers (only called when a propagator is set). */
function withTraceContext(envelope: Envelope, ctx: Context): Envelope {
  const headers = { ...envelope.headers }
  propagation.inject(ctx, headers, setter)
  return { ...envelope, headers }
}

export type Outcome = 'acked' | 'retried' | 'dead_lettered'

export interface InstrumentOptions {
  readonly service: string
  readonly metrics: HeraldMetrics
  readonly tracer: Tracer
  readonly logger: Logger
}

/**
 * Wraps a transport so every publish and every delivery is counted, timed, traced and logged. The result is the
 * same transport (every capability kept): use it wherever the bare one would go, e.g. `createBus({ transport })`.
 *
 * Traces: a publish is a PRODUCER span whose context travels in the message's `traceparent`; a delivery is a
 * CONSUMER span that continues that trace as its child (decision 0009), and messages its handler publishes become
 * children of the delivery. With no OpenTelemetry SDK registered, all of this is a no-op.
 */
export function instrumentTransport<T extends Transport>(transport: T, options: InstrumentOptions): T {
  const { metrics, tracer, logger, service } = options
  const system = transport.name

  async function traced(
    operation: 'publish' | 'schedule',
    topic: string,
    envelopes: readonly Envelope[],
    send: (envelopes: readonly Envelope[]) => Promise<void>,
  ): Promise<void> {
    const first = envelopes[0]
    // The producer span need not be active while sending: its context only has to reach the headers.
    const parent = context.active()
    const span = tracer.startSpan(`${operation} ${topic}`, { kind: SpanKind.PRODUCER }, parent)
    // Attributes and header copies only when someone records or propagates: with no SDK, nothing is built.
    if (span.isRecording())
      span.setAttributes({
        'messaging.system': system,
        'messaging.destination.name': topic,
        'messaging.operation.type': operation === 'publish' ? 'send' : 'create',
        ...(envelopes.length === 1 && first !== undefined
          ? { 'messaging.message.id': first.id }
          : { 'messaging.batch.message_count': envelopes.length }),
      })
    const propagating = propagation.fields().length > 0
    const ctx = propagating ? trace.setSpan(parent, span) : parent
    try {
      await send(propagating ? envelopes.map((e) => withTraceContext(e, ctx)) : envelopes)
      for (const e of envelopes) publishedCounter(e.headers[HeaderNames.type] ?? '', topic).inc()
    } catch (err) {
      metrics.publishFailures.inc({ service, topic, code: isHeraldError(err) ? err.code : 'ERROR' })
      span.recordException(err as Error)
      span.setStatus({ code: SpanStatusCode.ERROR, message: redactSecrets(String(err)) })
      logger.warn({ topic, count: envelopes.length, err: redactSecrets(String(err)) }, 'publish failed')
      throw err
    } finally {
      span.end()
    }
  }

  // Labelled children by topic, then type: prom-client hashes the label object on every call, and a joined
  // string key would be built on every publish. Bounded by the (topic, type) pairs: the contract, not the traffic.
  const published = new Map<string, Map<string, { inc(): void }>>()
  function publishedCounter(type: string, topic: string) {
    let byType = published.get(topic)
    if (byType === undefined) {
      byType = new Map()
      published.set(topic, byType)
    }
    let child = byType.get(type)
    if (child === undefined) {
      child = metrics.countingChild(metrics.published, { service, type, topic })
      byType.set(type, child)
    }
    return child
  }

  function instrumentHandler(group: string, retry: Parameters<typeof resolveRetryPolicy>[0], handler: Handler) {
    const policy = resolveRetryPolicy(retry)
    const debug = logger.isLevelEnabled('debug')
    // Labelled children, looked up once per type (one map lookup per delivery, no key built): prom-client
    // hashes the label object on every call.
    const byType = new Map<
      string,
      { readonly handled: Record<Outcome, { inc(): void }>; readonly duration: { observe(value: number): void } }
    >()
    const metricsFor = (type: string) => {
      let children = byType.get(type)
      if (children === undefined) {
        const handled = (outcome: Outcome) => metrics.countingChild(metrics.handled, { service, type, group, outcome })
        children = {
          // Counted at scrape time: a label set never incremented is not exported.
          handled: { acked: handled('acked'), retried: handled('retried'), dead_lettered: handled('dead_lettered') },
          duration: metrics.handleDuration.labels({ service, type, group }),
        }
        byType.set(type, children)
      }
      return children
    }
    const wrapped: Handler = (envelope, delivery) => {
      const headers = envelope.headers
      const type = headers[HeaderNames.type] ?? ''
      const parent = propagation.extract(ROOT_CONTEXT, headers, getter)
      // Built only when something is logged: a pino child per delivery would cost more than the delivery.
      const log = () =>
        logger.child({
          messageId: envelope.id,
          type,
          group,
          topic: delivery.topic,
          correlationId: headers[HeaderNames.correlationId],
          causationId: headers[HeaderNames.causationId],
          attempt: delivery.attempt,
        })
      const span = tracer.startSpan(`process ${delivery.topic}`, { kind: SpanKind.CONSUMER }, parent)
      if (span.isRecording())
        span.setAttributes({
          'messaging.system': system,
          'messaging.destination.name': delivery.topic,
          'messaging.message.id': envelope.id,
          'messaging.operation.type': 'process',
          'messaging.consumer.group.name': group,
          'messaging.delivery.attempt': delivery.attempt,
        })
      const handle = async () => {
        const started = performance.now()
        let outcome: Outcome = 'acked'
        try {
          await handler(envelope, delivery)
          if (debug) log().debug('handled')
        } catch (err) {
          const decision = decideFailure(err, delivery.attempt, policy)
          const message = redactSecrets(err instanceof Error ? err.message : String(err))
          span.recordException(err as Error)
          span.setStatus({ code: SpanStatusCode.ERROR, message })
          if (decision.kind === 'retry') {
            outcome = 'retried'
            log().warn({ err: message }, 'handler failed; will retry')
          } else {
            outcome = 'dead_lettered'
            metrics.deadLettered.inc({ service, group, reason: decision.reason })
            log().error({ err: message, reason: decision.reason }, 'handler failed; dead-lettered')
          }
          throw err
        } finally {
          const seconds = (performance.now() - started) / 1_000
          const children = metricsFor(type)
          children.handled[outcome].inc()
          children.duration.observe(seconds)
          span.setAttribute('herald.outcome', outcome)
          span.end()
        }
      }
      // The handler runs with the delivery's span active, so what it publishes (and any instrumented client it
      // calls) joins the trace. With no SDK the span is an empty placeholder and there is no context to carry.
      return isSpanContextValid(span.spanContext()) ? context.with(trace.setSpan(parent, span), handle) : handle()
    }
    return wrapped
  }

  // Made once: a proxy that built them per property access would allocate on every publish.
  const publish = (topic: string, envelopes: readonly Envelope[], publishOptions?: { mandatory?: boolean }) =>
    traced('publish', topic, envelopes, (e) => transport.publish(topic, e, publishOptions))
  const target = transport as unknown as { schedule?: (...args: unknown[]) => Promise<void> }
  const schedule =
    typeof target.schedule === 'function'
      ? (topic: string, envelopes: readonly Envelope[], deliverAt: number, publishOptions?: object) =>
          traced('schedule', topic, envelopes, (e) =>
            (target.schedule as (...args: unknown[]) => Promise<void>)(topic, e, deliverAt, publishOptions),
          )
      : undefined
  const subscribe = (spec: Parameters<Transport['subscribe']>[0], handler: Handler) =>
    transport.subscribe(spec, instrumentHandler(spec.group, spec.retry, handler))
  const bound = new Map<PropertyKey, unknown>()
  return new Proxy(transport, {
    get(inner, property) {
      if (property === 'publish') return publish
      if (property === 'schedule' && schedule !== undefined) return schedule
      if (property === 'subscribe') return subscribe
      const value = Reflect.get(inner, property, inner)
      if (typeof value !== 'function') return value
      let fn = bound.get(property)
      if (fn === undefined) {
        fn = value.bind(inner)
        bound.set(property, fn)
      }
      return fn
    },
  })
}
