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
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
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

/** The envelope with the trace context of `ctx` in its headers (unchanged when no propagator is registered). */
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

function messagingAttributes(system: string, topic: string, envelope: Envelope) {
  return {
    'messaging.system': system,
    'messaging.destination.name': topic,
    'messaging.message.id': envelope.id,
    'messaging.message.body.size': envelope.body.byteLength,
  }
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
    return tracer.startActiveSpan(
      `${operation} ${topic}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          ...(first === undefined ? {} : messagingAttributes(system, topic, first)),
          'messaging.operation.type': operation === 'publish' ? 'send' : 'create',
          'messaging.batch.message_count': envelopes.length,
        },
      },
      async (span: Span) => {
        const ctx = context.active()
        try {
          await send(envelopes.map((e) => withTraceContext(e, ctx)))
          for (const e of envelopes) metrics.published.inc({ service, type: e.headers[HeaderNames.type] ?? '', topic })
        } catch (err) {
          metrics.publishFailures.inc({ service, topic, code: isHeraldError(err) ? err.code : 'ERROR' })
          span.recordException(err as Error)
          span.setStatus({ code: SpanStatusCode.ERROR, message: redactSecrets(String(err)) })
          logger.warn({ topic, count: envelopes.length, err: redactSecrets(String(err)) }, 'publish failed')
          throw err
        } finally {
          span.end()
        }
      },
    )
  }

  function instrumentHandler(group: string, retry: Parameters<typeof resolveRetryPolicy>[0], handler: Handler) {
    const policy = resolveRetryPolicy(retry)
    const wrapped: Handler = (envelope, delivery) => {
      const headers = envelope.headers
      const type = headers[HeaderNames.type] ?? ''
      const parent = propagation.extract(ROOT_CONTEXT, headers, getter)
      const log = logger.child({
        messageId: envelope.id,
        type,
        group,
        topic: delivery.topic,
        correlationId: headers[HeaderNames.correlationId],
        causationId: headers[HeaderNames.causationId],
        attempt: delivery.attempt,
      })
      return tracer.startActiveSpan(
        `process ${delivery.topic}`,
        {
          kind: SpanKind.CONSUMER,
          attributes: {
            ...messagingAttributes(system, delivery.topic, envelope),
            'messaging.operation.type': 'process',
            'messaging.consumer.group.name': group,
            'messaging.delivery.attempt': delivery.attempt,
          },
        },
        parent,
        async (span: Span) => {
          const started = performance.now()
          let outcome: Outcome = 'acked'
          try {
            await handler(envelope, delivery)
            log.debug('handled')
          } catch (err) {
            const decision = decideFailure(err, delivery.attempt, policy)
            const message = redactSecrets(err instanceof Error ? err.message : String(err))
            span.recordException(err as Error)
            span.setStatus({ code: SpanStatusCode.ERROR, message })
            if (decision.kind === 'retry') {
              outcome = 'retried'
              log.warn({ err: message, retryInMs: decision.delayMs }, 'handler failed; will retry')
            } else {
              outcome = 'dead_lettered'
              metrics.deadLettered.inc({ service, group, reason: decision.reason })
              log.error({ err: message, reason: decision.reason }, 'handler failed; dead-lettered')
            }
            throw err
          } finally {
            const seconds = (performance.now() - started) / 1_000
            metrics.handled.inc({ service, type, group, outcome })
            metrics.handleDuration.observe({ service, type, group }, seconds)
            span.setAttribute('herald.outcome', outcome)
            span.end()
          }
        },
      )
    }
    return wrapped
  }

  return new Proxy(transport, {
    get(target, property, receiver) {
      if (property === 'publish')
        return (topic: string, envelopes: readonly Envelope[], publishOptions?: { mandatory?: boolean }) =>
          traced('publish', topic, envelopes, (e) => target.publish(topic, e, publishOptions))
      if (property === 'schedule' && typeof (target as { schedule?: unknown }).schedule === 'function') {
        const schedule = (target as unknown as { schedule: (...args: unknown[]) => Promise<void> }).schedule
        return (topic: string, envelopes: readonly Envelope[], deliverAt: number, publishOptions?: object) =>
          traced('schedule', topic, envelopes, (e) => schedule(topic, e, deliverAt, publishOptions))
      }
      if (property === 'subscribe')
        return (spec: Parameters<Transport['subscribe']>[0], handler: Handler) =>
          target.subscribe(spec, instrumentHandler(spec.group, spec.retry, handler))
      const value = Reflect.get(target, property, receiver)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}
