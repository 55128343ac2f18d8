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
import { menu } from './menu.js'
import { countOrders } from './services/order-service.js'
import { stockLevels } from './services/stock-service.js'
import { simulateCustomers } from './simulation.js'
import {
  openTransport,
  type RunningService,
  type ServiceConfig,
  type ServiceName,
  serviceNames,
  startService,
} from './system.js'

const usage = `food-ordering: order, stock, payment and kitchen services on Herald, with simulated customers

  npm run start:food                          every service in one process on SQLite, the web page and the dashboard
  npm run start:food -- --exit-when-idle --json
                                              a fixed number of orders, then one JSON summary line
  npm run start:food -- --service <stock|order|payment|kitchen> --transport amqp://guest:guest@127.0.0.1:5672
                                              one service as its own process
  npm run start:food -- --simulate --order http://127.0.0.1:3100
                                              customers against running services

options: --customers N  --port N (order)  --payment-port N  --stock-port N  --stock host:port (order)
         --dashboard-port N  --data-dir DIR  --payment-timeout-ms N  --cook-ms N  --instance NAME
         --metrics-port N (with --service: /metrics, /healthz, /readyz)`

const { values: args } = parseArgs({
  options: {
    'exit-when-idle': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    service: { type: 'string' },
    simulate: { type: 'boolean', default: false },
    order: { type: 'string' },
    transport: { type: 'string' },
    customers: { type: 'string' },
    port: { type: 'string' },
    'payment-port': { type: 'string' },
    'stock-port': { type: 'string' },
    stock: { type: 'string' },
    'dashboard-port': { type: 'string' },
    'data-dir': { type: 'string', default: '.herald/food-ordering' },
    'payment-timeout-ms': { type: 'string' },
    'cook-ms': { type: 'string' },
    instance: { type: 'string' },
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
const cli = exampleCli('food-ordering')
const fail: (message: string) => never = cli.fail
const number = cli.number
const webhookSecret = env.STRIPE_WEBHOOK_SECRET ?? `whsec_${randomBytes(24).toString('hex')}`

function config(
  transport: ServiceConfig['transport'],
  port: number,
  extra: Partial<ServiceConfig> = {},
): ServiceConfig {
  return {
    transport,
    dataDir,
    host,
    port,
    paymentTimeoutMs: number(args['payment-timeout-ms'], fixedRun ? 5_000 : 60_000),
    cookMs: number(args['cook-ms'], 200),
    failingDishes: new Set(['souffle']),
    webhookSecret,
    ...(env.STRIPE_SECRET_KEY === undefined ? {} : { stripeSecretKey: env.STRIPE_SECRET_KEY }),
    ...(env.PAYMENT_PUBLIC_URL === undefined ? {} : { paymentPublicUrl: env.PAYMENT_PUBLIC_URL }),
    ...(env.ORDER_PUBLIC_URL === undefined ? {} : { orderPublicUrl: env.ORDER_PUBLIC_URL }),
    onError: (err) => console.error(`food-ordering: ${(err as Error).message}`),
    ...(args.instance === undefined ? {} : { instance: args.instance }),
    ...extra,
  }
}

const defaultPorts: Record<ServiceName, number> = { order: 3100, payment: 3101, stock: 50051, kitchen: 0 }

/** One service as its own process: prints one JSON line when ready, stops on SIGTERM. */
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
    start: (transport, observability) =>
      startService(
        name,
        config(transport, number(name === 'stock' ? args['stock-port'] : args.port, defaultPorts[name]), {
          onSagaEvent: observability.metrics.countSagaEvent,
          ...(name === 'order' ? { stockAddress: args.stock ?? env.STOCK_ADDRESS ?? '127.0.0.1:50051' } : {}),
        }),
      ),
  })
}

/** Every service in one process on SQLite, the dashboard, and simulated customers. */
async function runAllInOne(): Promise<void> {
  const run = await startConsoleRun({ system: 'food-ordering', dataDir })
  const { transport, observability } = run
  const stock = await startService('stock', config(transport, 0))
  const order = await startService(
    'order',
    config(transport, number(args.port, fixedRun ? 0 : defaultPorts.order), {
      stockAddress: stock.url ?? fail('stock has no address'),
      onSagaEvent: observability.metrics.countSagaEvent,
    }),
  )
  const orderUrl = order.url ?? fail('order has no URL')
  // The offline checkout sends customers back to the order page.
  const payment = await startService(
    'payment',
    config(transport, number(args['payment-port'], fixedRun ? 0 : defaultPorts.payment), {
      orderPublicUrl: env.ORDER_PUBLIC_URL ?? orderUrl,
    }),
  )
  const kitchen = await startService('kitchen', config(transport, 0))
  const services: RunningService[] = [stock, payment, order, kitchen]
  const sagaStore = order.sagas?.store ?? fail('the order service hosts the order saga')
  observability.metrics.watchSagas(['food.order'], sagaStore)
  const dashboardUrl = await run.openDashboard({
    host,
    port: number(args['dashboard-port'], fixedRun ? 0 : 8081),
    sagas: sagaStore,
  })
  const stop = fixedRun ? new AbortController().signal : signalOnStop()
  const recent = recentLines()
  if (!fixedRun) console.log(`order page: ${orderUrl}\ndashboard:  ${dashboardUrl}`)
  const stopScreen = fixedRun
    ? undefined
    : liveScreen(
        () => [
          'Herald food ordering: order, stock, payment and kitchen services on SQLite, customers simulated',
          `order page: ${orderUrl}   (OpenAPI: ${orderUrl}/openapi.json)`,
          `dashboard:  ${dashboardUrl}`,
          `logs:       ${run.logFile}`,
          '',
          `orders: ${JSON.stringify(countOrders(order.state ?? fail('no order state')))}`,
          'recent:',
          ...recent.lines.map((l) => `  ${l}`),
          '',
          'Ctrl-C to stop',
        ],
        5,
      )

  const report = await simulateCustomers({
    orderUrl,
    customers: number(args.customers, fixedRun ? 40 : Number.POSITIVE_INFINITY),
    intervalMs: fixedRun ? 25 : 2_000,
    signal: stop,
    deadlineMs: fixedRun ? 60_000 : Number.POSITIVE_INFINITY,
    onActivity: recent.push,
  })
  if (!fixedRun)
    await new Promise<void>((done) => (stop.aborted ? done() : stop.addEventListener('abort', () => done())))
  stopScreen?.()

  const sagas = await sagaStore.counts()
  const deadLettered = await run.deadLetters()
  const levels = stockLevels(stock.state ?? fail('no stock state'))
  // Every unit is either still available or held by an order that went ahead; none is lost or counted twice.
  const stockConsistent = menu.every((dish) => {
    const level = levels[dish.id]
    return level !== undefined && level.available + level.reserved === dish.stock
  })
  await run.close(services)
  const summary = {
    orders_placed: report.placed,
    ready: report.statuses.ready ?? 0,
    cancelled: report.statuses.cancelled ?? 0,
    rejected: report.statuses.rejected ?? 0,
    reasons: report.reasons,
    sagas,
    dead_lettered: deadLettered,
    stock_consistent: stockConsistent,
    ...(fixedRun ? { lost: report.unfinished.length } : { unfinished: report.unfinished.length }),
  }
  if (args.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
  else console.log(summary)
  if (!stockConsistent || (fixedRun && report.unfinished.length > 0)) process.exitCode = 1
}

async function runSimulationOnly(): Promise<void> {
  const report = await simulateCustomers({
    orderUrl: args.order ?? 'http://127.0.0.1:3100',
    customers: number(args.customers, 30),
    intervalMs: 50,
    signal: signalOnStop(),
    deadlineMs: 120_000,
    onActivity: args.json ? () => {} : (line) => console.log(line),
  })
  process.stdout.write(`${JSON.stringify({ ...report, lost: report.unfinished.length })}\n`)
}

if (args.service !== undefined) {
  if (!serviceNames.includes(args.service as ServiceName)) fail(`unknown service "${args.service}"\n\n${usage}`)
  await runOneService(args.service as ServiceName)
} else if (args.simulate) await runSimulationOnly()
else await runAllInOne()
