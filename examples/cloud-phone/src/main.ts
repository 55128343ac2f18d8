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
import { countInstalls } from './services/app-service.js'
import { billingTotals } from './services/billing-service.js'
import { listDevices } from './services/device-service.js'
import { listUsers } from './services/user-service.js'
import { simulateUsers } from './simulation.js'
import { openTransport, type RunningService, type ServiceName, serviceNames, startService } from './system.js'

const usage = `cloud-phone: user, device, billing, app and notification services on Herald, with simulated users

  npm run start:cloud-phone                          every service in one process on SQLite, with the dashboard
  npm run start:cloud-phone -- --exit-when-idle --json
                                                     a fixed number of users, then one JSON summary line
  npm run start:cloud-phone -- --service <user|device|billing|app|notification> --transport amqp://guest:guest@127.0.0.1:5672
                                                     one service as its own process

options: --users N  --dashboard-port N  --data-dir DIR  --instance NAME
         --sms-webhook URL (the notification service also sends a welcome SMS there)
         --payment-timeout-ms N  --allocation-timeout-ms N (the purchase saga's)
         --metrics-port N (with --service: /metrics, /healthz, /readyz)`

const { values: args } = parseArgs({
  options: {
    'exit-when-idle': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    service: { type: 'string' },
    transport: { type: 'string' },
    users: { type: 'string' },
    'dashboard-port': { type: 'string' },
    'data-dir': { type: 'string', default: '.herald/cloud-phone' },
    instance: { type: 'string' },
    'sms-webhook': { type: 'string' },
    'payment-timeout-ms': { type: 'string' },
    'allocation-timeout-ms': { type: 'string' },
    'metrics-port': { type: 'string' },
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
const cli = exampleCli('cloud-phone')
const fail: (message: string) => never = cli.fail
const number = cli.number
const onError = (err: unknown) => console.error(`cloud-phone: ${(err as Error).message}`)
const timeouts = {
  paymentMs: number(args['payment-timeout-ms'], fixedRun ? 1_500 : 60_000),
  allocationMs: number(args['allocation-timeout-ms'], 30_000),
}

async function runOneService(name: ServiceName): Promise<void> {
  mkdirSync(dataDir, { recursive: true })
  const metricsPort = args['metrics-port']
  await runServiceProcess({
    name,
    transportUrl: args.transport ?? env.HERALD_TRANSPORT,
    openTransport,
    host,
    cli,
    ...(metricsPort === undefined ? {} : { metricsPort: number(metricsPort, 0) }),
    start: (transport) =>
      startService(name, {
        transport,
        dataDir,
        onError,
        ...timeouts,
        ...(args.instance === undefined ? {} : { instance: args.instance }),
        ...(args['sms-webhook'] === undefined ? {} : { smsWebhook: args['sms-webhook'] }),
      }),
  })
}

async function runAllInOne(): Promise<void> {
  const run = await startConsoleRun({ system: 'cloud-phone', dataDir })
  const { transport } = run
  const services: RunningService[] = []
  for (const name of serviceNames) services.push(await startService(name, { transport, dataDir, onError, ...timeouts }))
  const byName = (name: ServiceName) => services.find((s) => s.name === name) ?? fail(`no ${name} service`)
  const state = (name: ServiceName) => byName(name).state ?? fail(`the ${name} service has no state`)
  const notificationStore = byName('notification').notifications?.store ?? fail('no notification store')
  const dashboardUrl = await run.openDashboard({
    host,
    port: number(args['dashboard-port'], fixedRun ? 0 : 8082),
    notifications: notificationStore,
    sagas: byName('billing').sagas ?? fail('billing hosts the purchase saga'),
  })
  const recent = recentLines()
  const stopScreen = fixedRun
    ? undefined
    : liveScreen(
        () => [
          'Herald cloud phone: user, device, billing, app and notification services on SQLite, users simulated',
          `dashboard:  ${dashboardUrl}`,
          `logs:       ${run.logFile}`,
          '',
          `billing: ${JSON.stringify(billingTotals(state('billing')).orders)}`,
          'recent:',
          ...recent.lines.map((l) => `  ${l}`),
          '',
          'Ctrl-C to stop',
        ],
        5,
      )
  const stop = fixedRun ? undefined : signalOnStop()
  const users = number(args.users, fixedRun ? 20 : 200)
  const report = await simulateUsers({
    transport,
    users,
    concurrency: fixedRun ? 5 : 2,
    deadlineMs: fixedRun ? 60_000 : Number.POSITIVE_INFINITY,
    onActivity: recent.push,
  })
  // What the users should have been told: a welcome, each payment, each refund and each install.
  const expected =
    (report.steps.signed_up ?? 0) +
    (report.steps.paid ?? 0) +
    (report.steps.refunded ?? 0) +
    (report.steps.allocation_failed_refunded ?? 0) +
    (report.steps.app_installed ?? 0)
  const notified = async () => (await notificationStore.counts()).sent
  const until = Date.now() + 30_000
  while ((await notified()) < expected && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
  if (stop !== undefined)
    await new Promise<void>((done) => (stop.aborted ? done() : stop.addEventListener('abort', () => done())))
  stopScreen?.()

  const billing = billingTotals(state('billing'))
  const remaining = listUsers(state('user'))
  const devices = listDevices(state('device'))
  // The copies of each user's name and email in billing and on every device match the user service's.
  const copiesInSync =
    remaining.every((u) =>
      billing.customers.some((c) => c.user_id === u.id && c.username === u.username && c.email === u.email),
    ) &&
    devices.every((d) =>
      remaining.some((u) => u.id === d.user_id && u.username === d.owner_name && u.email === d.owner_email),
    )
  const counts = await notificationStore.counts()
  const deadLettered = await run.deadLetters()
  const installs = countInstalls(state('app'))
  const sagas = await (byName('billing').sagas ?? fail('billing hosts the purchase saga')).counts()
  await run.close(services)
  const summary = {
    users: remaining.length,
    users_deleted: report.steps.deleted ?? 0,
    devices: devices.length,
    orders: billing.orders,
    metered: billing.charges,
    installs,
    sagas,
    notifications_sent: counts.sent,
    notifications_failed: counts.failed,
    dead_lettered: deadLettered,
    copies_in_sync: copiesInSync,
    lost: report.unfinished.length + Math.max(0, expected - counts.sent),
  }
  if (args.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
  else console.log(summary, report.unfinished)
  if (summary.lost > 0 || !copiesInSync) process.exitCode = 1
}

if (args.service !== undefined) {
  if (!serviceNames.includes(args.service as ServiceName)) fail(`unknown service "${args.service}"\n\n${usage}`)
  await runOneService(args.service as ServiceName)
} else await runAllInOne()
