import { fileURLToPath } from 'node:url'
import { type Bus, createBus, type MessageContract, type Transport } from '@herald/core'
import { createHistory, pollUntil, spawnWorker } from '@herald/testkit'
import { expect } from 'vitest'
import type { SagaStore } from '../src/index.js'
import {
  KitchenFailed,
  OrderCancelled,
  OrderCompleted,
  OrderPlaced,
  OrderReady,
  PaymentReceived,
  RefundPayment,
  ReleaseStock,
  RequestPayment,
  ReserveStock,
  StartCooking,
  StockReserved,
  StockUnavailable,
} from './fixtures/order-saga.js'
import { Tallied, TallyOpened } from './fixtures/tally-saga.js'

const worker = fileURLToPath(new URL('./fixtures/saga-worker.ts', import.meta.url))

export interface CrashEnvironment {
  readonly name: string
  /** The transport the shop's services use: the worker opens the same one. */
  readonly transport: Transport
  /** A store over the saga worker's data, to read the instances at the end. */
  readonly store: SagaStore
  /** What the worker needs to open the same transport and store. */
  readonly workerConfig: Record<string, unknown>
}

/** What order n meets: no stock, no payment, a kitchen failure, or nothing wrong. */
export function fateOf(n: number): 'out_of_stock' | 'payment_timeout' | 'kitchen_failed' | 'completed' {
  if (n % 11 === 0) return 'out_of_stock'
  if (n % 5 === 0) return 'payment_timeout'
  if (n % 7 === 0) return 'kitchen_failed'
  return 'completed'
}

/**
 * The shop's other services, in this process (never killed). Each command id is handled once, as an inbox would;
 * every id a saga sends is recorded per order and type, so a step that sent twice shows as two ids.
 */
function shopServices(bus: Bus) {
  const sent = new Map<string, Set<string>>()
  const history = createHistory()
  const handled = new Set<string>()
  const record = (contract: MessageContract, orderId: string, id: string) => {
    const key = `${orderId} ${contract.type}`
    const ids = sent.get(key) ?? new Set<string>()
    ids.add(id)
    sent.set(key, ids)
    history.delivered(id)
    if (!history.isCompleted(id)) {
      history.attempted(id)
      history.ok(id)
      history.completed(id)
    }
  }
  const n = (orderId: string) => Number(orderId.slice(1))
  const once = async (id: string, work: () => Promise<void>) => {
    if (handled.has(id)) return
    await work()
    handled.add(id)
  }
  bus
    .group('shop', { maxInFlight: 20 })
    .on(ReserveStock, async (m, ctx) => {
      record(ReserveStock, m.data.orderId, m.id)
      await once(m.id, () =>
        fateOf(n(m.data.orderId)) === 'out_of_stock'
          ? ctx.publish(StockUnavailable, m.data).then(() => {})
          : ctx.publish(StockReserved, m.data).then(() => {}),
      )
    })
    .on(RequestPayment, async (m, ctx) => {
      record(RequestPayment, m.data.orderId, m.id)
      await once(m.id, async () => {
        if (fateOf(n(m.data.orderId)) !== 'payment_timeout')
          await ctx.publish(PaymentReceived, { orderId: m.data.orderId })
      })
    })
    .on(StartCooking, async (m, ctx) => {
      record(StartCooking, m.data.orderId, m.id)
      await once(m.id, () =>
        fateOf(n(m.data.orderId)) === 'kitchen_failed'
          ? ctx.publish(KitchenFailed, m.data).then(() => {})
          : ctx.publish(OrderReady, m.data).then(() => {}),
      )
    })
    .on(RefundPayment, async (m) => record(RefundPayment, m.data.orderId, m.id))
    .on(ReleaseStock, async (m) => record(ReleaseStock, m.data.orderId, m.id))
  bus
    .group('watcher', { maxInFlight: 20 })
    .on(OrderCompleted, async (m) => record(OrderCompleted, m.data.orderId, m.id))
    .on(OrderCancelled, async (m) => record(OrderCancelled, m.data.orderId, m.id))
  const idsOf = (orderId: string, contract: MessageContract) => sent.get(`${orderId} ${contract.type}`)?.size ?? 0
  return { history, idsOf }
}

/**
 * 500 orders through the saga while its process is SIGKILLed again and again, right after a committed step or at
 * a random moment: every saga ends once, the way its fate says, and no step's message is sent under two ids.
 */
export async function runSagaCrashScenario(env: CrashEnvironment, orders = 500): Promise<void> {
  const bus = createBus({ transport: env.transport, service: 'shop-services' })
  const shop = shopServices(bus)
  await bus.start()
  const paymentTimeoutMs = 2_000
  const survivors: { stop(): Promise<void> }[] = []
  let crashes = 0
  let published = false
  const allEnded = async () => {
    const counts = await env.store.counts('shop.order')
    return counts.completed + counts.compensated + counts.failed === orders
  }
  try {
    for (let round = 0; round < 40 && !(published && (await allEnded())); round++) {
      const crashAfterCommits = 20 + Math.floor(Math.random() * 120)
      const crashAfterMs = 300 + Math.floor(Math.random() * 1_500)
      let ready!: () => void
      const isReady = new Promise<void>((resolve) => {
        ready = resolve
      })
      const host = spawnWorker(
        worker,
        { ...env.workerConfig, paymentTimeoutMs, crashAfterCommits, crashAfterMs },
        (line) => line.includes('"ready"') && ready(),
      )
      if (!published) {
        // The saga's group is bound once its first host has subscribed; the orders go out after that.
        await Promise.race([isReady, host.exited])
        for (let i = 0; i < orders; i++) await bus.publish(OrderPlaced, { orderId: `o${i}`, amount: 10 + i })
        published = true
      }
      const exit = await host.exited
      if (exit.signal === 'SIGKILL') crashes++
    }
    const survivor = spawnWorker(worker, { ...env.workerConfig, paymentTimeoutMs })
    survivors.push(survivor)
    await survivor.whileRunning(allEnded, async () => JSON.stringify(await env.store.counts('shop.order')), 120_000)
    // The last sends of the last steps may still be on their way to the shop.
    const terminal = (i: number) => shop.idsOf(`o${i}`, OrderCompleted) + shop.idsOf(`o${i}`, OrderCancelled)
    await pollUntil(async () => Array.from({ length: orders }, (_, i) => terminal(i)).every((t) => t >= 1), 60_000)
    const undone = (i: number) => shop.idsOf(`o${i}`, RefundPayment) + shop.idsOf(`o${i}`, ReleaseStock)
    // What each order's end must have undone: a timed-out payment the stock, a kitchen failure both.
    const expectedUndone = (i: number) => {
      const reason = endOf.get(i)
      return reason === 'payment_timeout' ? 1 : reason === 'kitchen_failed' ? 2 : 0
    }
    const endOf = new Map<number, string | undefined>()
    for (let i = 0; i < orders; i++) endOf.set(i, (await env.store.load('shop.order', `o${i}`))?.reason)
    const unlike = () => Array.from({ length: orders }, (_, i) => i).filter((i) => undone(i) !== expectedUndone(i))
    await pollUntil(async () => unlike().length === 0, 60_000).catch((err: Error) => {
      const shown = unlike()
        .slice(0, 5)
        .map(
          (i) =>
            `o${i} (${endOf.get(i)}): refunds ${shop.idsOf(`o${i}`, RefundPayment)}, releases ${shop.idsOf(`o${i}`, ReleaseStock)}`,
        )
      throw new Error(`${err.message}: ${unlike().length} orders undone unlike their end, e.g. ${shown.join('; ')}`)
    })

    const counts = await env.store.counts('shop.order')
    const check = shop.history.check()
    const duplicateSends = [...Array(orders).keys()].flatMap((i) =>
      [ReserveStock, RequestPayment, StartCooking, RefundPayment, ReleaseStock, OrderCompleted, OrderCancelled]
        .filter((c) => shop.idsOf(`o${i}`, c) > 1)
        .map((c) => `o${i} ${c.type}`),
    )
    console.log(
      `[${env.name}] saga-crash-500: sagas=${orders} completed=${counts.completed} compensated=${counts.compensated} ` +
        `failed=${counts.failed} crashes=${crashes} duplicateSends=${duplicateSends.length} ${shop.history.summary()}`,
    )
    expect(crashes, 'the saga process was killed').toBeGreaterThanOrEqual(3)
    expect(duplicateSends).toEqual([])
    expect(check.lost).toEqual([])
    let timedOutWhileDown = 0
    for (let i = 0; i < orders; i++) {
      const fate = fateOf(i)
      const instance = await env.store.load('shop.order', `o${i}`)
      const ended = { status: instance?.status, reason: instance?.reason }
      if ((fate === 'completed' || fate === 'kitchen_failed') && ended.reason === 'payment_timeout') {
        // Its payment came while the saga's process was down for longer than the timeout: a true timeout.
        timedOutWhileDown++
        expect(ended.status).toBe('compensated')
      } else {
        expect(ended, `o${i}`).toEqual(
          {
            completed: { status: 'completed', reason: undefined },
            out_of_stock: { status: 'failed', reason: 'out_of_stock' },
            payment_timeout: { status: 'compensated', reason: 'payment_timeout' },
            kitchen_failed: { status: 'compensated', reason: 'kitchen_failed' },
          }[fate],
        )
      }
      expect(terminal(i), `o${i} ended once`).toBe(1)
    }
    const expectedCounts = { running: 0, completed: 0, compensated: 0, failed: 0 }
    for (let i = 0; i < orders; i++) {
      const reason = endOf.get(i)
      expectedCounts[reason === undefined ? 'completed' : reason === 'out_of_stock' ? 'failed' : 'compensated']++
    }
    expect(counts).toEqual(expectedCounts)
    console.log(`[${env.name}] saga-crash-500: ${timedOutWhileDown} paid orders timed out while the saga was down`)
  } finally {
    for (const s of survivors) await s.stop()
    await bus.stop()
  }
}

/**
 * 100 messages at once for one instance, handled by two host processes on one store: every message is one step,
 * none loses its update, and both processes took steps (each one's losses to the other are retried, not lost).
 */
export async function runTwoProcessTally(env: CrashEnvironment): Promise<void> {
  const bus = createBus({ transport: env.transport, service: 'tally-source' })
  const reports: Array<{ commits: number; conflicts: number }> = []
  const hosts = [0, 1].map(() => {
    let ready!: () => void
    const isReady = new Promise<void>((resolve) => {
      ready = resolve
    })
    const host = spawnWorker(worker, { ...env.workerConfig, paymentTimeoutMs: 60_000, saga: 'tally' }, (line) => {
      if (line.includes('"ready"')) ready()
      else if (line.includes('"commits"')) reports.push(JSON.parse(line))
    })
    return { host, isReady }
  })
  try {
    await Promise.all(hosts.map(({ host, isReady }) => Promise.race([isReady, host.exited])))
    await bus.publish(TallyOpened, { id: 'hot' })
    await pollUntil(async () => (await env.store.load('tally', 'hot')) !== undefined, 20_000)
    await Promise.all(Array.from({ length: 100 }, (_, n) => bus.publish(Tallied, { id: 'hot', n })))
    await pollUntil(async () => (await env.store.history('tally', 'hot')).length === 101, 60_000)
    const instance = await env.store.load('tally', 'hot')
    expect(instance?.state).toEqual({ count: 100, sum: (99 * 100) / 2 })
    expect(instance?.version).toBe(101)
  } finally {
    for (const { host } of hosts) await host.stop()
  }
  console.log(`[${env.name}] saga-two-processes: ${JSON.stringify(reports)}`)
  expect(reports).toHaveLength(2)
  // Both processes worked on the one instance; the start is one of the 101 commits.
  expect(reports.every((report) => report.commits > 0)).toBe(true)
  expect(reports.reduce((sum, report) => sum + report.commits, 0)).toBe(101)
}
