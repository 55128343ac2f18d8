import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createBus, createInMemoryTransport, defineEvent } from '@herald/core'
import { describeOutbox, objectSchema, pollUntil } from '@herald/testkit'
import Database from 'better-sqlite3'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createSqliteInbox, createSqliteOutbox } from '../src/index.js'

describeOutbox('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-outbox-'))
  const path = join(dir, 'app.db')
  const app = new Database(path)
  app.pragma('journal_mode = WAL')
  app.pragma('busy_timeout = 5000')
  app.exec('CREATE TABLE orders (id TEXT PRIMARY KEY)')
  const opened = [createSqliteOutbox({ path })]
  const insertOrder = app.prepare('INSERT INTO orders (id) VALUES (?)')
  return {
    store: async () => {
      const store = createSqliteOutbox({ path })
      opened.push(store)
      return store
    },
    async transaction(key, messages, outcome) {
      // The application's own better-sqlite3 transaction: a throw rolls it back.
      const write = app.transaction(() => {
        insertOrder.run(key)
        opened[0]!.stage(app, messages)
        if (outcome === 'rollback') throw new RollBack()
      })
      try {
        write.immediate()
      } catch (err) {
        if (!(err instanceof RollBack)) throw err
      }
    },
    businessRows: async () => (app.prepare('SELECT count(*) AS n FROM orders').get() as { n: number }).n,
    async cleanup() {
      for (const store of opened) await store.close()
      app.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
})

class RollBack extends Error {}

const OrderPlaced = defineEvent('order.placed', { schema: objectSchema({ orderId: 'string' }) })

describe('sqlite inbox', () => {
  let dir: string
  let db: Database.Database
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-inbox-'))
    db = new Database(join(dir, 'app.db'))
    db.pragma('journal_mode = WAL')
    db.exec('CREATE TABLE effects (message_id TEXT NOT NULL, n INTEGER NOT NULL)')
  })
  afterEach(() => {
    db.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('inbox-idempotency: repeated deliveries of one id have one effect; a failed attempt leaves no record', async () => {
    const inbox = createSqliteInbox({ db })
    const transport = createInMemoryTransport()
    const bus = createBus({ transport, service: 'orders', consumer: { maxInFlight: 10, immediateRetries: 0 } })
    const insert = db.prepare('INSERT INTO effects (message_id, n) VALUES (?, ?)')
    const failFirst = new Set<string>()
    const attempts = new Map<string, number>()
    bus.group('billing').on(
      OrderPlaced,
      inbox.handler((message) => {
        attempts.set(message.id, (attempts.get(message.id) ?? 0) + 1)
        for (let n = 1; n <= 100; n++) insert.run(message.id, n)
        if (failFirst.delete(message.id)) throw new Error('first attempt fails after writing')
      }),
    )
    await bus.start()
    const rows = (id: string) =>
      (db.prepare('SELECT count(*) AS n FROM effects WHERE message_id = ?').get(id) as { n: number }).n
    const { envelope } = await bus.prepare(OrderPlaced, { orderId: 'o-1' })
    for (let i = 0; i < 3; i++) await transport.publish('order.placed', [envelope])
    await Promise.all([transport.publish('order.placed', [envelope]), transport.publish('order.placed', [envelope])])
    await pollUntil(async () => (await transport.listGroups())[0]?.depth === 0)
    expect(rows(envelope.id)).toBe(100)
    expect(attempts.get(envelope.id)).toBe(1)

    const flaky = (await bus.prepare(OrderPlaced, { orderId: 'o-2' })).envelope
    failFirst.add(flaky.id)
    await transport.publish('order.placed', [flaky])
    await pollUntil(async () => rows(flaky.id) === 100, 30_000)
    expect(attempts.get(flaky.id)).toBe(2)
    console.log(`[sqlite] inbox-idempotency: deliveries=5 effects=${rows(envelope.id)} flakyAttempts=2`)

    // An async handler cannot join a better-sqlite3 transaction: it is refused, and nothing is recorded.
    const asyncHandler = inbox.handler(async () => {})
    const context = { group: 'billing' } as Parameters<typeof asyncHandler>[1]
    const message = { id: 'x', data: { orderId: 'x' } } as Parameters<typeof asyncHandler>[0]
    await expect(asyncHandler(message, context)).rejects.toThrow(/synchronous/)
    expect(db.prepare(`SELECT count(*) AS n FROM herald_inbox WHERE message_id = 'x'`).get()).toEqual({ n: 0 })

    expect(inbox.purge(-1_000)).toBe(2)
    await bus.stop()
    await transport.close()
  })
})
