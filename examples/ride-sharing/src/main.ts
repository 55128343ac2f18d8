import { randomBytes } from 'node:crypto'
import { mkdirSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { countDeadLetters, recordEvents } from '@herald/core'
import { createDashboard } from '@herald/dashboard'
import { createObservability } from '@herald/observability'
import { createSqliteEventStore, createSqliteTransport } from '@herald/sqlite'
import { pino } from 'pino'
import { countTrips } from './services/trip-service.js'
import { type SimulationReport, simulate } from './simulation.js'
import {
  openTransport,
  type RunningService,
  type ServiceConfig,
  type ServiceName,
  serviceNames,
  startService,
} from './system.js'

const usage = `ride-sharing: four services on Herald, with simulated riders and drivers

  npm start                                   every service in one process on SQLite, live, with the dashboard
  npm start -- --exit-when-idle --json        a fixed number of rides, then one JSON summary line
  npm start -- --service <trip|driver|payment|gateway> --transport amqp://guest:guest@127.0.0.1:5672
                                              one service as its own process (env HERALD_GATEWAY_SECRET)
  npm start -- --simulate --gateway http://127.0.0.1:3000
                                              riders and drivers against running services

options: --rides N  --drivers N  --port N (gateway)  --dashboard-port N  --data-dir DIR  --offer-timeout-ms N
         --metrics-port N (with --service: /metrics, /healthz, /readyz)
         --instance NAME (with --service gateway: several gateways, each with its own name)`

const { values: args } = parseArgs({
  options: {
    'exit-when-idle': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    service: { type: 'string' },
    simulate: { type: 'boolean', default: false },
    gateway: { type: 'string' },
    transport: { type: 'string' },
    rides: { type: 'string' },
    drivers: { type: 'string' },
    port: { type: 'string' },
    'dashboard-port': { type: 'string' },
    'data-dir': { type: 'string', default: '.herald/ride-sharing' },
    'offer-timeout-ms': { type: 'string', default: '3000' },
    'ride-interval-ms': { type: 'string' },
    'drive-ms': { type: 'string', default: '300' },
    'metrics-port': { type: 'string' },
    instance: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (args.help) {
  console.log(usage)
  process.exit(0)
}

const env = process.env
const fixedRun = args['exit-when-idle']
const dataDir = resolve(args['data-dir'])
const number = (value: string | undefined, fallback: number) => (value === undefined ? fallback : Number(value))

function fail(message: string): never {
  console.error(`ride-sharing: ${message}`)
  process.exit(2)
}

function config(transport: ServiceConfig['transport'], port: number, secret: string): ServiceConfig {
  return {
    transport,
    dataDir,
    secret,
    host: env.HOST ?? '127.0.0.1',
    port,
    offerTimeoutMs: Number(args['offer-timeout-ms']),
    webhookSecret: env.STRIPE_WEBHOOK_SECRET ?? `whsec_${randomBytes(24).toString('hex')}`,
    ...(env.STRIPE_SECRET_KEY === undefined ? {} : { stripeSecretKey: env.STRIPE_SECRET_KEY }),
    ...(env.PAYMENT_PUBLIC_URL === undefined ? {} : { paymentPublicUrl: env.PAYMENT_PUBLIC_URL }),
    onError: (err) => console.error(`ride-sharing: ${(err as Error).message}`),
    ...(args.instance === undefined ? {} : { instance: args.instance }),
  }
}

function gatewaySecret(): string {
  const secret = env.HERALD_GATEWAY_SECRET
  if (secret === undefined || Buffer.byteLength(secret) < 32)
    fail('set HERALD_GATEWAY_SECRET (at least 32 bytes): the gateway verifies rider and driver tokens with it')
  return secret
}

function untilSignal(): Promise<void> {
  return new Promise((done) => {
    process.once('SIGINT', () => done())
    process.once('SIGTERM', () => done())
  })
}

/** One service as its own process: prints one JSON line when ready, stops on SIGTERM. */
async function runOneService(name: ServiceName): Promise<void> {
  const url = args.transport ?? env.HERALD_TRANSPORT
  if (url === undefined)
    fail('--service needs --transport (or HERALD_TRANSPORT), e.g. amqp://guest:guest@127.0.0.1:5672')
  mkdirSync(dataDir, { recursive: true })
  // Logs (JSON, with message and correlation ids) to stdout; /metrics, /healthz and /readyz on --metrics-port.
  const observability = createObservability({ service: `${name}-service` })
  const transport = observability.instrument(await openTransport(url))
  const metrics =
    args['metrics-port'] === undefined
      ? undefined
      : await observability.listen({ port: Number(args['metrics-port']), host: env.HOST ?? '127.0.0.1' })
  const defaultPort = name === 'gateway' ? 3000 : name === 'payment' ? 3001 : 0
  const service = await startService(
    name,
    config(
      transport,
      number(args.port, defaultPort),
      name === 'gateway' ? gatewaySecret() : 'unused-by-this-service-unused-by-this-service',
    ),
  )
  const ready = {
    service: name,
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

/** Every service in one process on SQLite, the dashboard, and simulated riders and drivers. */
async function runAllInOne(): Promise<void> {
  // A fresh start each run, so the numbers describe this run only.
  rmSync(dataDir, { recursive: true, force: true })
  mkdirSync(dataDir, { recursive: true })
  // Metrics for the dashboard's charts; structured logs, with message and correlation ids, to a file.
  const logFile = join(dataDir, 'services.log')
  const observability = createObservability({
    service: 'ride-sharing',
    logger: pino(pino.destination({ dest: logFile, mkdir: true })),
  })
  const transport = observability.instrument(createSqliteTransport({ path: join(dataDir, 'bus.db') }))
  const eventStore = createSqliteEventStore({ path: join(dataDir, 'events.db') })
  const recorder = await recordEvents({ transport, store: eventStore })
  const secret = randomBytes(32).toString('base64url')
  const services: RunningService[] = []
  for (const name of ['trip', 'driver', 'payment'] as const)
    services.push(await startService(name, config(transport, 0, secret)))
  const gateway = await startService('gateway', config(transport, number(args.port, fixedRun ? 0 : 3000), secret))
  services.push(gateway)
  const token = randomBytes(18).toString('base64url')
  const dashboard = await createDashboard({
    transport,
    eventStore,
    token,
    metrics: observability.registry,
    sampleIntervalMs: 2_000,
  })
  const dashboardUrl = `${await dashboard.listen({ host: '127.0.0.1', port: number(args['dashboard-port'], fixedRun ? 0 : 8080) })}/?token=${token}`
  const trips = services.find((s) => s.name === 'trip')?.state
  const recent: string[] = []
  const stop = new AbortController()
  const rides = number(args.rides, fixedRun ? 30 : Number.POSITIVE_INFINITY)

  const screen = fixedRun
    ? undefined
    : setInterval(async () => {
        const counts = trips === undefined ? undefined : countTrips(trips)
        const dead = await countDeadLetters(transport)
        const lines = [
          'Herald ride-sharing: trip, driver, payment and API-gateway services on SQLite, riders and drivers simulated',
          `dashboard: ${dashboardUrl}`,
          `gateway:   ${gateway.url}  (HTTP + WebSocket)`,
          `logs:      ${logFile}`,
          '',
          `trips: ${JSON.stringify(counts)}   dead letters: ${dead}`,
          'recent:',
          ...recent.map((l) => `  ${l}`),
          '',
          'Ctrl-C to stop',
        ]
        process.stdout.write(process.stdout.isTTY ? `\x1b[2J\x1b[H${lines.join('\n')}\n` : `${lines[4]}\n`)
      }, 1_000)
  if (!fixedRun) {
    console.log(`dashboard: ${dashboardUrl}`)
    process.once('SIGINT', () => stop.abort())
    process.once('SIGTERM', () => stop.abort())
  } else {
    setTimeout(() => stop.abort(), 180_000).unref() // every ride should end long before this
  }

  const report: SimulationReport = await simulate({
    gatewayUrl: gateway.url ?? fail('gateway has no URL'),
    secret,
    rides,
    drivers: number(args.drivers, fixedRun ? 6 : 12),
    rideIntervalMs: number(args['ride-interval-ms'], fixedRun ? 100 : 1_500),
    driveMs: Number(args['drive-ms']),
    signal: stop.signal,
    onActivity: (line) => {
      recent.push(line)
      if (recent.length > 12) recent.shift()
    },
  })
  if (!fixedRun)
    await new Promise<void>((done) =>
      stop.signal.aborted ? done() : stop.signal.addEventListener('abort', () => done()),
    )
  if (screen !== undefined) clearInterval(screen)

  const deadLettered = await countDeadLetters(transport)
  await dashboard.close()
  for (const service of services.reverse()) await service.stop()
  await recorder.close()
  await eventStore.close()
  await transport.close()
  const summary = {
    rides_requested: report.rides_requested,
    rides_completed: report.rides_completed,
    no_driver: report.no_driver,
    cancelled: report.cancelled,
    dead_lettered: deadLettered,
    early_completions: report.early_completions,
    // A fixed run waits for every ride to end: one that did not is lost. Stopped live, rides are just unfinished.
    ...(fixedRun ? { lost: report.pending.length } : { unfinished: report.pending.length }),
    foreign_frames: report.foreign_frames,
    driver_locations_seen: report.driver_locations_seen,
  }
  if (args.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
  else console.log(summary)
  if (report.foreign_frames > 0 || (fixedRun && report.pending.length > 0)) process.exitCode = 1
}

async function runSimulationOnly(): Promise<void> {
  const stop = new AbortController()
  process.once('SIGINT', () => stop.abort())
  const report = await simulate({
    gatewayUrl: (args.gateway ?? 'http://127.0.0.1:3000').split(','),
    secret: gatewaySecret(),
    rides: number(args.rides, 30),
    drivers: number(args.drivers, 8),
    rideIntervalMs: number(args['ride-interval-ms'], 200),
    driveMs: Number(args['drive-ms']),
    signal: stop.signal,
    onActivity: args.json ? () => {} : (line) => console.log(line),
  })
  process.stdout.write(`${JSON.stringify({ ...report, lost: report.pending.length })}\n`)
}

if (args.service !== undefined) {
  if (!serviceNames.includes(args.service as ServiceName)) fail(`unknown service "${args.service}"\n\n${usage}`)
  await runOneService(args.service as ServiceName)
} else if (args.simulate) await runSimulationOnly()
else await runAllInOne()
