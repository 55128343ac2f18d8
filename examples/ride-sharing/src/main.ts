import { randomBytes } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import {
  exampleCli,
  liveScreen,
  recentLines,
  runServiceProcess,
  signalOnStop,
  startConsoleRun,
} from '@herald/example-kit'
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
    'offer-timeout-ms': { type: 'string' },
    'ride-interval-ms': { type: 'string' },
    'drive-ms': { type: 'string' },
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
const host = env.HOST ?? '127.0.0.1'
const cli = exampleCli('ride-sharing')
const fail: (message: string) => never = cli.fail
const number = cli.number

function config(transport: ServiceConfig['transport'], port: number, secret: string): ServiceConfig {
  return {
    transport,
    dataDir,
    secret,
    host,
    port,
    offerTimeoutMs: number(args['offer-timeout-ms'], 3_000),
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

/** One service as its own process: prints one JSON line when ready, stops on SIGTERM. */
async function runOneService(name: ServiceName): Promise<void> {
  mkdirSync(dataDir, { recursive: true })
  const defaultPort = name === 'gateway' ? 3000 : name === 'payment' ? 3001 : 0
  const secret = name === 'gateway' ? gatewaySecret() : 'unused-by-this-service-unused-by-this-service'
  const metricsPort = args['metrics-port']
  await runServiceProcess({
    name,
    transportUrl: args.transport ?? env.HERALD_TRANSPORT,
    openTransport,
    host,
    cli,
    ...(metricsPort === undefined ? {} : { metricsPort: number(metricsPort, 0) }),
    start: (transport) => startService(name, config(transport, number(args.port, defaultPort), secret)),
  })
}

/** Every service in one process on SQLite, the dashboard, and simulated riders and drivers. */
async function runAllInOne(): Promise<void> {
  const run = await startConsoleRun({ system: 'ride-sharing', dataDir })
  const { transport } = run
  const secret = randomBytes(32).toString('base64url')
  const services: RunningService[] = []
  for (const name of ['trip', 'driver', 'payment'] as const)
    services.push(await startService(name, config(transport, 0, secret)))
  const gateway = await startService('gateway', config(transport, number(args.port, fixedRun ? 0 : 3000), secret))
  services.push(gateway)
  const dashboardUrl = await run.openDashboard({ host, port: number(args['dashboard-port'], fixedRun ? 0 : 8080) })
  const trips = services.find((s) => s.name === 'trip')?.state
  const recent = recentLines()
  const stop = new AbortController()
  const rides = number(args.rides, fixedRun ? 30 : Number.POSITIVE_INFINITY)

  const stopScreen = fixedRun
    ? undefined
    : liveScreen(async () => {
        const counts = trips === undefined ? undefined : countTrips(trips)
        return [
          'Herald ride-sharing: trip, driver, payment and API-gateway services on SQLite, riders and drivers simulated',
          `dashboard: ${dashboardUrl}`,
          `gateway:   ${gateway.url}  (HTTP + WebSocket)`,
          `logs:      ${run.logFile}`,
          '',
          `trips: ${JSON.stringify(counts)}   dead letters: ${await run.deadLetters()}`,
          'recent:',
          ...recent.lines.map((l) => `  ${l}`),
          '',
          'Ctrl-C to stop',
        ]
      }, 5)
  if (!fixedRun) {
    console.log(`dashboard: ${dashboardUrl}`)
    signalOnStop().addEventListener('abort', () => stop.abort())
  } else {
    setTimeout(() => stop.abort(), 180_000).unref() // every ride should end long before this
  }

  const report: SimulationReport = await simulate({
    gatewayUrl: gateway.url ?? fail('gateway has no URL'),
    secret,
    rides,
    drivers: number(args.drivers, fixedRun ? 6 : 12),
    rideIntervalMs: number(args['ride-interval-ms'], fixedRun ? 100 : 1_500),
    driveMs: number(args['drive-ms'], 300),
    signal: stop.signal,
    onActivity: recent.push,
  })
  if (!fixedRun)
    await new Promise<void>((done) =>
      stop.signal.aborted ? done() : stop.signal.addEventListener('abort', () => done()),
    )
  stopScreen?.()

  const deadLettered = await run.deadLetters()
  await run.close(services)
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
  const report = await simulate({
    gatewayUrl: (args.gateway ?? 'http://127.0.0.1:3000').split(','),
    secret: gatewaySecret(),
    rides: number(args.rides, 30),
    drivers: number(args.drivers, 8),
    rideIntervalMs: number(args['ride-interval-ms'], 200),
    driveMs: number(args['drive-ms'], 300),
    signal: signalOnStop(),
    onActivity: args.json ? () => {} : (line) => console.log(line),
  })
  process.stdout.write(`${JSON.stringify({ ...report, lost: report.pending.length })}\n`)
}

if (args.service !== undefined) {
  if (!serviceNames.includes(args.service as ServiceName)) fail(`unknown service "${args.service}"\n\n${usage}`)
  await runOneService(args.service as ServiceName)
} else if (args.simulate) await runSimulationOnly()
else await runAllInOne()
