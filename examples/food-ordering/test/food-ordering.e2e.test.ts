import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createRabbitMqTransport } from '@herald/rabbitmq'
import { freePort, pollUntil, type RabbitMqServer, startRabbitMq } from '@herald/testkit'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { menu } from '../src/menu.js'
import { stockLevels } from '../src/services/stock-service.js'
import { simulateCustomers } from '../src/simulation.js'

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))
let broker: RabbitMqServer
let dataDir: string
let stockPort: number
const running = new Map<string, { child: ChildProcess; url?: string; metrics?: string }>()

/** Starts one service as its own process and waits for its ready line. */
async function start(name: string, extra: readonly string[] = []): Promise<string | undefined> {
  const child = spawn(
    process.execPath,
    [
      ...['--conditions=herald-source', '--import', 'tsx', main],
      ...['--service', name, '--transport', broker.url, '--data-dir', dataDir, '--port', '0', '--metrics-port', '0'],
      ...extra,
    ],
    // Simulated customers pay with JSON and follow no redirect back to the order page, so its address is a stand-in.
    { env: { ...process.env, ORDER_PUBLIC_URL: 'http://127.0.0.1:1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const output: string[] = []
  child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()))
  const ready = await new Promise<{ url?: string; metrics?: string }>((done, fail) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output.push(line)
      if (line.startsWith('{"service"')) done(JSON.parse(line) as { url?: string; metrics?: string })
    })
    child.once('exit', (code) => fail(new Error(`${name} exited (${code}) before it was ready:\n${output.join('\n')}`)))
  })
  running.set(name, { child, ...ready })
  return ready.url
}

async function stop(name: string, signal: NodeJS.Signals): Promise<void> {
  const service = running.get(name)
  if (service === undefined || service.child.exitCode !== null || service.child.signalCode !== null) return
  const exited = new Promise((done) => service.child.once('exit', done))
  service.child.kill(signal)
  await exited
}

beforeAll(async () => {
  broker = await startRabbitMq()
  dataDir = mkdtempSync(join(tmpdir(), 'herald-food-e2e-'))
  stockPort = await freePort()
  await start('stock', ['--stock-port', String(stockPort)])
  await start('payment')
  await start('kitchen', ['--cook-ms', '50'])
  await start('order', ['--stock', `127.0.0.1:${stockPort}`, '--payment-timeout-ms', '5000'])
}, 180_000)

afterAll(async () => {
  for (const name of running.keys()) await stop(name, 'SIGTERM')
  await broker?.stop()
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
}, 60_000)

it('food ordering over RabbitMQ, four services as four processes: 30 orders end as planned through a SIGKILL of the stock service', async () => {
  let placed = 0
  let restarted: Promise<unknown> = Promise.resolve()
  const report = await simulateCustomers({
    orderUrl: running.get('order')?.url as string,
    customers: 30,
    intervalMs: 80,
    deadlineMs: 90_000,
    signal: new AbortController().signal,
    onActivity: (line) => {
      // Mid-run the stock service dies without warning and comes back on its database and port.
      if (line.includes(' placed ') && ++placed === 10)
        restarted = stop('stock', 'SIGKILL').then(() => start('stock', ['--stock-port', String(stockPort)]))
    },
  })
  await restarted
  console.log(`food-ordering e2e: ${JSON.stringify(report)}`)
  expect(report.unfinished).toEqual([])
  expect(report.placed).toBe(30)
  // Customers 4, 14 and 24 never pay; 3, 10, 17 and 24 order the soufflé the kitchen cannot make.
  expect(report.statuses).toEqual({ ready: 24, cancelled: 6 })
  expect(report.reasons).toEqual({ payment_timeout: 3, 'kitchen: souffle could not be made': 3 })

  // Each service's own /metrics: the order service counted its sagas' ends, the stock service its work since restart.
  const scrape = async (service: string) => (await fetch(`${running.get(service)?.metrics}/metrics`)).text()
  const sample = (text: string, ...parts: string[]) =>
    Number(
      text
        .split('\n')
        .find((line) => parts.every((part) => line.includes(part)))
        ?.split(' ')
        .at(-1),
    )
  const orderMetrics = await scrape('order')
  expect(sample(orderMetrics, 'herald_saga_events_total{', 'saga="food.order"', 'event="completed"')).toBe(24)
  expect(sample(orderMetrics, 'herald_saga_events_total{', 'saga="food.order"', 'event="compensated"')).toBe(6)
  expect(
    sample(await scrape('stock'), 'herald_messages_handled_total{', 'group="stock"', 'outcome="acked"'),
  ).toBeGreaterThan(0)

  const admin = await createRabbitMqTransport({ url: broker.url, exchange: 'food', namespace: 'food_ordering' })
  try {
    expect((await admin.listDeadLetters({ limit: 10 })).items).toEqual([])
  } finally {
    await admin.close()
  }
  // Every unit of stock is still available or held by an order that went ahead, once the last releases are in.
  const db = new Database(join(dataDir, 'stock.db'), { readonly: true })
  try {
    const consistent = () => {
      const levels = stockLevels({ db })
      return menu.every((dish) => levels[dish.id]!.available + levels[dish.id]!.reserved === dish.stock)
    }
    await pollUntil(async () => consistent())
    const levels = stockLevels({ db })
    for (const dish of menu) expect(levels[dish.id]!.available + levels[dish.id]!.reserved).toBe(dish.stock)
  } finally {
    db.close()
  }
})
