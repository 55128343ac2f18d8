import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Transport } from '@herald/core'
import { type Tracer, trace } from '@opentelemetry/api'
import { type Logger, pino } from 'pino'
import { Registry } from 'prom-client'
import { createObservabilityHandler } from './http.js'
import { instrumentTransport } from './instrument.js'
import { createHeraldMetrics, type HeraldMetrics } from './metrics.js'
import { redactedLogPaths } from './redact.js'

export interface ObservabilityOptions {
  /** This service's name: a label on every metric and a field on every log line. */
  readonly service: string
  /** Where metrics register. Default: a new registry (pass prom-client's global `register` to share it). */
  readonly registry?: Registry
  /** Default: pino at `info` to stdout, with secrets redacted. */
  readonly logger?: Logger
  /** Default: the global tracer provider's tracer (a no-op until an OpenTelemetry SDK is registered). */
  readonly tracer?: Tracer
}

export interface Observability {
  readonly registry: Registry
  readonly metrics: HeraldMetrics
  readonly logger: Logger
  /** The same transport, counted, timed, traced and logged; its groups' depth is reported on each scrape. */
  instrument<T extends Transport>(transport: T): T
  /** `/metrics`, `/healthz`, `/readyz` for `node:http`; resolves false for other paths. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<boolean>
  /** Serves `handle` on its own HTTP server (port 0: any free one); 404 for every other path. */
  listen(options: { port: number; host?: string }): Promise<{ url: string; close(): Promise<void> }>
}

/** Metrics, traces and logs for the transports of one service. */
export function createObservability(options: ObservabilityOptions): Observability {
  const registry = options.registry ?? new Registry()
  const metrics = createHeraldMetrics(registry)
  const logger = (options.logger ?? pino({ redact: redactedLogPaths })).child({ service: options.service })
  const tracer = options.tracer ?? trace.getTracer('@herald/observability')
  const transports: Transport[] = []
  const handler = createObservabilityHandler(registry, () => transports)
  return {
    registry,
    metrics,
    logger,
    instrument(transport) {
      transports.push(transport)
      metrics.watchGroups(transport)
      return instrumentTransport(transport, { service: options.service, metrics, tracer, logger })
    },
    handle: handler,
    async listen({ port, host = '127.0.0.1' }) {
      const server = createServer((req, res) => {
        void handler(req, res).then((handled) => {
          if (!handled) res.writeHead(404).end()
        })
      })
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, resolve)
      })
      return {
        url: `http://${host}:${(server.address() as AddressInfo).port}`,
        close: () => new Promise<void>((resolve) => server.close(() => resolve())),
      }
    },
  }
}
