import type { Transport } from '@herald/core'
import { createObservability, type Observability } from '@herald/observability'
import { createRabbitMqTransport } from '@herald/rabbitmq'
import { createSqliteTransport } from '@herald/sqlite'

/** What a reference system's command line needs before anything starts. */
export interface ExampleCli {
  /** Prints `<system>: <message>` and exits with status 2. */
  fail(message: string): never
  /** A numeric option, or the fallback when it was not given. */
  number(value: string | undefined, fallback: number): number
}

export function exampleCli(system: string): ExampleCli {
  const fail = (message: string): never => {
    console.error(`${system}: ${message}`)
    process.exit(2)
  }
  const number = (value: string | undefined, fallback: number): number => {
    if (value === undefined) return fallback
    const parsed = Number(value)
    return Number.isFinite(parsed) ? parsed : fail(`"${value}" is not a number`)
  }
  return { fail, number }
}

/** Resolves on the first SIGINT or SIGTERM. */
export function untilSignal(): Promise<void> {
  return new Promise((done) => {
    process.once('SIGINT', () => done())
    process.once('SIGTERM', () => done())
  })
}

/** An abort signal that fires on SIGINT or SIGTERM. */
export function signalOnStop(): AbortSignal {
  const stop = new AbortController()
  process.once('SIGINT', () => stop.abort())
  process.once('SIGTERM', () => stop.abort())
  return stop.signal
}

export interface ServiceProcessOptions {
  /** The service's name: it becomes `<name>-service` in logs and metrics. */
  readonly name: string
  /** The broker's URL; without one the process stops with `missingTransport`. */
  readonly transportUrl: string | undefined
  readonly openTransport: (url: string) => Promise<Transport>
  /** Serves /metrics, /healthz and /readyz on this port when given. */
  readonly metricsPort?: number
  readonly host: string
  readonly cli: ExampleCli
  readonly start: (
    transport: Transport,
    observability: Observability,
  ) => Promise<{ readonly url?: string; stop(): Promise<void> }>
}

/**
 * One service as its own process: logs (JSON, with message and correlation ids) to stdout, an instrumented
 * transport, one JSON line `{service, ready, url?, metrics?}` once it serves, a clean stop on SIGINT or SIGTERM.
 */
export async function runServiceProcess(options: ServiceProcessOptions): Promise<void> {
  if (options.transportUrl === undefined)
    options.cli.fail('--service needs --transport (or HERALD_TRANSPORT), e.g. amqp://guest:guest@127.0.0.1:5672')
  const observability = createObservability({ service: `${options.name}-service` })
  const transport = observability.instrument(await options.openTransport(options.transportUrl))
  const metrics =
    options.metricsPort === undefined
      ? undefined
      : await observability.listen({ port: options.metricsPort, host: options.host })
  const service = await options.start(transport, observability)
  const ready = {
    service: options.name,
    ready: true,
    ...(service.url === undefined ? {} : { url: service.url }),
    ...(metrics === undefined ? {} : { metrics: metrics.url }),
  }
  process.stdout.write(`${JSON.stringify(ready)}\n`)
  await untilSignal()
  await service.stop()
  await transport.close()
  await metrics?.close()
}

/**
 * Opens a transport from a URL: `sqlite:<path>`, or `amqp://…` / `amqps://…` (RabbitMQ, on the system's own
 * exchange and queue namespace).
 */
export async function openTransportUrl(
  url: string,
  rabbitmq: { readonly exchange: string; readonly namespace: string },
): Promise<Transport> {
  if (url.startsWith('sqlite:')) return createSqliteTransport({ path: url.slice('sqlite:'.length) })
  if (url.startsWith('amqp://') || url.startsWith('amqps://')) return createRabbitMqTransport({ url, ...rabbitmq })
  throw new Error(`unsupported transport URL "${url}": use sqlite:<path> or amqp://user:pass@host:port`)
}
