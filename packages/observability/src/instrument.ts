import {
  type Delivery,
  type Envelope,
  type Handler,
  HeaderNames,
  isHeraldError,
  type SettledListener,
  type Settlement,
  type SubscriptionSpec,
  type Transport,
} from '@herald/core'
import {
  type Context,
  context,
  isSpanContextValid,
  propagation,
  ROOT_CONTEXT,
  type Span,
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

/** The counted outcome of a settlement; none for a delivery handed back at shutdown. */
function outcomeOf(settlement: Settlement): Outcome | undefined {
  switch (settlement.kind) {
    case 'ack':
      return 'acked'
    case 'retry':
      return 'retried'
    case 'dead-letter':
      return 'dead_lettered'
    case 'release':
      return undefined
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

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
    // Sent outside any span (an outbox relay), a message staged with a trace context (`traceHeaders()`) goes on in
    // that trace: the producer span is its child, and messages staged in another trace keep their own.
    const active = context.active()
    const stagedTrace = trace.getSpan(active) === undefined ? first?.headers[HeaderNames.traceParent] : undefined
    const parent = stagedTrace === undefined ? active : propagation.extract(ROOT_CONTEXT, first!.headers, getter)
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
      const inThisTrace = (e: Envelope) =>
        stagedTrace === undefined || e.headers[HeaderNames.traceParent] === stagedTrace
      await send(propagating ? envelopes.map((e) => (inThisTrace(e) ? withTraceContext(e, ctx) : e)) : envelopes)
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

  /**
   * A subscription's observers: the handler wrapper opens the delivery's span and times the handler; the outcome
   * (counted, logged, and set on the span, which then ends) is what the consumer decided, reported through
   * `onSettled`: a retry copy that had to be dead-lettered, or a delivery dead-lettered before any handler ran
   * (`max_deliveries_exceeded`), is counted as what it became.
   */
  function instrumentSubscription(
    spec: SubscriptionSpec,
    handler: Handler,
  ): { handler: Handler; onSettled: SettledListener } {
    const group = spec.group
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
    // Built only when something is logged: a pino child per delivery would cost more than the delivery.
    const logFor = (envelope: Envelope, delivery: Delivery) =>
      logger.child({
        messageId: envelope.id,
        type: envelope.headers[HeaderNames.type] ?? '',
        group,
        topic: delivery.topic,
        correlationId: envelope.headers[HeaderNames.correlationId],
        causationId: envelope.headers[HeaderNames.causationId],
        attempt: delivery.attempt,
      })
    /** Each delivery's span between its handler starting and its outcome. */
    const spans = new WeakMap<Delivery, Span>()

    const wrapped: Handler = (envelope, delivery) => {
      const parent = propagation.extract(ROOT_CONTEXT, envelope.headers, getter)
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
      spans.set(delivery, span)
      const handle = async () => {
        const started = performance.now()
        try {
          await handler(envelope, delivery)
          if (debug) logFor(envelope, delivery).debug('handled')
        } catch (err) {
          span.recordException(err as Error)
          span.setStatus({ code: SpanStatusCode.ERROR, message: redactSecrets(errorText(err)) })
          throw err
        } finally {
          metricsFor(envelope.headers[HeaderNames.type] ?? '').duration.observe((performance.now() - started) / 1_000)
        }
      }
      // The handler runs with the delivery's span active, so what it publishes (and any instrumented client it
      // calls) joins the trace. With no SDK the span is an empty placeholder and there is no context to carry.
      return isSpanContextValid(span.spanContext()) ? context.with(trace.setSpan(parent, span), handle) : handle()
    }

    const onSettled: SettledListener = (envelope, delivery, settlement) => {
      const span = spans.get(delivery)
      spans.delete(delivery)
      const outcome = outcomeOf(settlement)
      if (outcome !== undefined) metricsFor(envelope.headers[HeaderNames.type] ?? '').handled[outcome].inc()
      if (settlement.kind === 'retry') {
        const err = redactSecrets(settlement.error.message)
        logFor(envelope, delivery).warn({ err, retryInMs: settlement.delayMs }, 'handler failed; will retry')
      } else if (settlement.kind === 'dead-letter') {
        metrics.deadLettered.inc({ service, group, reason: settlement.reason })
        const err = settlement.error === undefined ? undefined : redactSecrets(settlement.error.message)
        logFor(envelope, delivery).error({ err, reason: settlement.reason }, 'handler failed; dead-lettered')
      }
      if (span !== undefined) {
        span.setAttribute('herald.outcome', outcome ?? 'released')
        span.end()
      }
      spec.onSettled?.(envelope, delivery, settlement)
    }
    return { handler: wrapped, onSettled }
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
  const subscribe = (spec: SubscriptionSpec, handler: Handler) => {
    const instrumented = instrumentSubscription(spec, handler)
    return transport.subscribe({ ...spec, onSettled: instrumented.onSettled }, instrumented.handler)
  }
  // A deleted group's series go with it: the console's live tails, for one, each make and delete a group.
  const inner = transport as unknown as { deleteGroup?: (group: string) => Promise<void> }
  const deleteGroup =
    typeof inner.deleteGroup === 'function'
      ? async (group: string) => {
          await (inner.deleteGroup as (group: string) => Promise<void>).call(transport, group)
          await metrics.forgetGroup(group)
        }
      : undefined
  const bound = new Map<PropertyKey, unknown>()
  return new Proxy(transport, {
    get(inner, property) {
      if (property === 'publish') return publish
      if (property === 'schedule' && schedule !== undefined) return schedule
      if (property === 'subscribe') return subscribe
      if (property === 'deleteGroup' && deleteGroup !== undefined) return deleteGroup
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
