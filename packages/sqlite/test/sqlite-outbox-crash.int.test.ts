import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createBus, defineEvent } from '@herald/core'
import { createHistory, pollUntil, spawnWorker, waitFor } from '@herald/testkit'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createSqliteInbox, createSqliteOutbox, createSqliteTransport } from '../src/index.js'

const relayWorker = fileURLToPath(new URL('./fixtures/relay-worker.ts', import.meta.url))
const inboxWorker = fileURLToPath(new URL('./fixtures/inbox-worker.ts', import.meta.url))
const OrderPlaced = defineEvent('order.placed', { schema: z.object({ key: z.string(), n: z.number() }) })

function openApp(path: string): Database.Database {
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = FULL')
  db.pragma('busy_timeout = 5000')
  return db
}

describe('sqlite outbox and inbox under SIGKILL', () => {
  let dir: string
  const cleanups: (() => Promise<void> | void)[] = []
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-outbox-crash-'))
  })
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
    rmSync(dir, { recursive: true, force: true })
  })

  it('outbox-relay-crash-between-publish-and-mark: 10 SIGKILLs over 1,000 messages, all sent in order per key, effects once', async () => {
    const appPath = join(dir, 'app.db')
    const destinationPath = join(dir, 'queue.db')
    const app = openApp(appPath)
    cleanups.push(() => {
      app.close()
    })
    app.exec('CREATE TABLE effects (message_id TEXT NOT NULL)')
    const outbox = createSqliteOutbox({ path: appPath })
    cleanups.push(() => outbox.close())
    const inbox = createSqliteInbox({ db: app })
    const insertEffect = app.prepare('INSERT INTO effects (message_id) VALUES (?)')
    const destination = createSqliteTransport({ path: destinationPath, pollIntervalMs: 20 })
    cleanups.push(() => destination.close())
    const bus = createBus({ transport: destination, service: 'orders' })
    const history = createHistory()
    const firstSeen = new Map<string, string[]>()
    bus.group('billing', { maxInFlight: 20 }).on(
      OrderPlaced,
      inbox.handler((message) => {
        insertEffect.run(message.id)
      }),
    )
    bus.group('audit', { maxInFlight: 1 }).on(OrderPlaced, async (message) => {
      if (!history.isCompleted(message.id)) {
        firstSeen.set(message.data.key, [...(firstSeen.get(message.data.key) ?? []), message.id])
      }
      history.delivered(message.id)
      history.completed(message.id)
    })
    await bus.start()
    cleanups.push(() => bus.stop())

    const messages = await Promise.all(
      Array.from({ length: 1_000 }, (_, n) =>
        bus.prepare(OrderPlaced, { key: `key-${n % 20}`, n }, { partitionKey: `key-${n % 20}` }),
      ),
    )
    app.transaction(() => outbox.stage(app, messages)).immediate()
    for (const m of messages) {
      history.attempted(m.envelope.id)
      history.ok(m.envelope.id)
    }

    let crashes = 0
    for (let round = 0; round < 10; round++) {
      const worker = spawnWorker(relayWorker, { appPath, destinationPath, crashAfterSent: 40 })
      if ((await worker.exited).signal === 'SIGKILL') crashes++
    }
    const survivor = spawnWorker(relayWorker, { appPath, destinationPath })
    await pollUntil(async () => (await outbox.stats()).backlog === 0, 60_000)
    await survivor.stop()
    await waitFor(() => history.check().lost.length === 0, history.onChange, { timeoutMs: 60_000 })
    const count = () =>
      app.prepare('SELECT count(*) AS total, count(DISTINCT message_id) AS ids FROM effects').get() as {
        total: number
        ids: number
      }
    await pollUntil(async () => count().ids === 1_000)
    const check = history.check()
    console.log(
      `[sqlite] outbox-relay-crash-between-publish-and-mark: ${history.summary()} crashes=${crashes} effects=${count().total}`,
    )
    expect(crashes).toBe(10)
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
    expect(check.duplicates, 'the crash points were hit').toBeGreaterThanOrEqual(1)
    expect(count()).toEqual({ total: 1_000, ids: 1_000 })
    for (let k = 0; k < 20; k++) {
      const staged = messages.filter((m) => m.envelope.headers.partitionkey === `key-${k}`).map((m) => m.envelope.id)
      expect(firstSeen.get(`key-${k}`), `key-${k}`).toEqual(staged)
    }
  })

  it('inbox-effectively-once-under-crash: 2,000 messages, consumers SIGKILLed 20 times, one effect per id', async () => {
    const appPath = join(dir, 'app.db')
    const queuePath = join(dir, 'queue.db')
    const app = openApp(appPath)
    cleanups.push(() => {
      app.close()
    })
    app.exec('CREATE TABLE effects (message_id TEXT NOT NULL)')
    createSqliteInbox({ db: app })
    const publisher = createSqliteTransport({ path: queuePath })
    cleanups.push(() => publisher.close())
    await publisher.declareGroup('billing', ['order.placed'])
    const bus = createBus({ transport: publisher, service: 'orders' })
    const messages = await Promise.all(
      Array.from({ length: 2_000 }, (_, n) => bus.prepare(OrderPlaced, { key: `o-${n}`, n })),
    )
    for (let i = 0; i < messages.length; i += 100) {
      await publisher.publish(
        'order.placed',
        messages.slice(i, i + 100).map((m) => m.envelope),
      )
    }
    let deliveries = 0
    const onLine = (line: string) => {
      if (line.includes('"delivered"')) deliveries++
    }
    let crashes = 0
    for (let round = 0; round < 20; round++) {
      const crashAtDelivery = 5 + Math.floor(Math.random() * 50)
      const worker = spawnWorker(inboxWorker, { queuePath, appPath, crashAtDelivery }, onLine)
      if ((await worker.exited).signal === 'SIGKILL') crashes++
    }
    const survivor = spawnWorker(inboxWorker, { queuePath, appPath }, onLine)
    await survivor.whileRunning(
      async () => (await publisher.listGroups())[0]?.depth === 0,
      async () => `group now ${JSON.stringify((await publisher.listGroups())[0])}, deliveries=${deliveries}`,
    )
    await survivor.stop()
    const effects = app.prepare('SELECT count(*) AS total, count(DISTINCT message_id) AS ids FROM effects').get() as {
      total: number
      ids: number
    }
    console.log(
      `[sqlite] inbox-effectively-once-under-crash: messages=2000 deliveries=${deliveries} duplicates=${deliveries - 2_000} crashes=${crashes} effects=${effects.total} lost=${2_000 - effects.ids}`,
    )
    expect(crashes).toBe(20)
    expect(deliveries).toBeGreaterThan(2_000)
    expect(effects).toEqual({ total: 2_000, ids: 2_000 })
  })
})
