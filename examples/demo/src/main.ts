import { mkdirSync, rmSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { createBus, type DeadLetter } from '@herald/core'
import { createSqliteTransport } from '@herald/sqlite'
import { OrderPlaced } from './contracts.js'
import { type DemoStats, type Faults, menu, registerServices } from './services.js'

const { values: args } = parseArgs({
  options: {
    'exit-when-idle': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    orders: { type: 'string', default: '200' },
    db: { type: 'string', default: '.herald/demo.db' },
  },
})
const fixedRun = args['exit-when-idle']
const totalOrders = fixedRun ? Number(args.orders) : Number.POSITIVE_INFINITY
const path = resolve(args.db)

// A fresh database each run, so the numbers below describe this run only.
mkdirSync(dirname(path), { recursive: true })
for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true })

/** A small seeded generator: the fixed scenario fails the same attempts every run. */
function seeded(seed: number): () => number {
  let state = seed
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31
    return state / 2 ** 31
  }
}
const random = seeded(42)
const faults: Faults = {
  paymentFails: (_orderId, attempt) => attempt < 3 && random() < 0.2,
  unknownDish: (dish) => dish === 'durian-pizza',
}

const transport = createSqliteTransport({ path })
const bus = createBus({
  transport,
  service: 'storefront',
  consumer: {
    immediateRetries: 1,
    immediateRetryDelayMs: 20,
    retry: { maxAttempts: 5, backoff: { initialMs: 200, maxMs: 2_000 } },
  },
})
const stats: DemoStats = { published: 0, handled: 0, retried: 0, ready: new Set(), log: [] }
registerServices(bus, stats, faults)
await bus.start()

let placed = 0
async function placeOrder(): Promise<void> {
  const n = placed++
  const dish = n % 25 === 24 ? 'durian-pizza' : menu[n % menu.length]!
  await bus.publish(OrderPlaced, {
    orderId: `o-${String(n + 1).padStart(4, '0')}`,
    dish,
    amountCents: 900 + (n % 7) * 150,
  })
  stats.published++
}

async function deadLetters(): Promise<readonly DeadLetter[]> {
  const all: DeadLetter[] = []
  let cursor: string | undefined
  do {
    const page = await transport.listDeadLetters(cursor === undefined ? { limit: 500 } : { limit: 500, cursor })
    all.push(...page.items)
    cursor = page.nextCursor
  } while (cursor !== undefined)
  return all
}

function orderIdOf(letter: DeadLetter): string | undefined {
  try {
    return (JSON.parse(new TextDecoder().decode(letter.envelope.body)) as { orderId?: string }).orderId
  } catch {
    return undefined
  }
}

async function summary() {
  const letters = await deadLetters()
  const deadOrders = new Set(letters.map(orderIdOf).filter((id) => id !== undefined))
  const settled = stats.ready.size + deadOrders.size
  return {
    published: stats.published,
    handled: stats.handled,
    retried: stats.retried,
    dead_lettered: letters.length,
    orders_placed: placed,
    orders_ready: stats.ready.size,
    lost: placed - settled,
  }
}

if (fixedRun) {
  await Promise.all(Array.from({ length: totalOrders }, () => placeOrder()))
  // Every order ends ready or dead-lettered. Whatever is still in between after the deadline counts as lost.
  const deadline = Date.now() + 60_000
  while ((await summary()).lost > 0 && Date.now() < deadline) await new Promise((done) => setTimeout(done, 100))
  await bus.stop()
  const result = await summary()
  await transport.close()
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`)
  else console.log(result)
  if (result.lost > 0) process.exitCode = 1
} else {
  const producer = setInterval(() => void placeOrder(), 250)
  const screen = setInterval(async () => {
    const s = await summary()
    const lines = [
      `Herald demo: four services on SQLite (${args.db})`,
      `orders placed ${s.orders_placed} | ready ${s.orders_ready} | messages published ${s.published} | handled ${s.handled} | retried ${s.retried} | dead-lettered ${s.dead_lettered}`,
      'recent:',
      ...stats.log.map((l) => `  ${l}`),
      `dead letters: npm run herald -- -t sqlite:${args.db} dlq list    (Ctrl-C to stop)`,
    ]
    process.stdout.write(process.stdout.isTTY ? `\x1b[2J\x1b[H${lines.join('\n')}\n` : `${lines[1]}\n`)
  }, 1_000)
  process.once('SIGINT', () => {
    clearInterval(producer)
    clearInterval(screen)
    void bus
      .stop()
      .then(() => transport.close())
      .then(() => process.exit(0))
  })
}
