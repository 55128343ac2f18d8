import { fileURLToPath } from 'node:url'
import { type Envelope, sleep, uuidV7 } from '@herald/core'
import { createHistory, describeConsumerCrashes, pollUntil, waitFor } from '@herald/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { createPostgresTransport, type PostgresTransport } from '../src/index.js'
import { freshSchema, testPool, usePostgresServer, withClient } from './server.js'

const server = usePostgresServer()
const factoryModule = fileURLToPath(new URL('../src/index.ts', import.meta.url))
const encoder = new TextEncoder()

function envelope(text: string): Envelope {
  return { id: uuidV7(), headers: { type: 'test.pg' }, body: encoder.encode(JSON.stringify({ text })) }
}

describeConsumerCrashes('postgres', async () => {
  const url = server().url
  const schema = freshSchema('crash')
  return {
    admin: () => createPostgresTransport({ connectionString: url, schema }),
    worker: () => ({
      module: factoryModule,
      exportName: 'createPostgresTransport',
      options: { connectionString: url, schema, leaseMs: 500, pollIntervalMs: 20 },
    }),
    cleanup: () => withClient(url, (c) => c.query(`DROP SCHEMA ${schema} CASCADE`)).then(() => {}),
  }
})

describe('postgres faults', () => {
  const open: PostgresTransport[] = []
  async function transport(schema: string, extra: object = {}): Promise<PostgresTransport> {
    const t = await createPostgresTransport({ connectionString: server().url, schema, ...extra })
    open.push(t)
    return t
  }
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()))
  })

  it('forged-stored-attempts: a queue row whose count was set negative around Herald is tried maxAttempts times', async () => {
    const schema = freshSchema('forged')
    const t = await transport(schema, { pollIntervalMs: 5, notify: false })
    await t.declareGroup('g', ['forged.t'])
    const sent = envelope('forged')
    await t.publish('forged.t', [sent])
    await withClient(server().url, (c) => c.query(`UPDATE ${schema}.queue SET attempts = -20`))
    const attempts: number[] = []
    await t.subscribe(
      {
        group: 'g',
        patterns: ['forged.t'],
        retry: { maxAttempts: 3, backoff: { initialMs: 5, maxMs: 5, factor: 1, jitter: 0 } },
      },
      async (_envelope, delivery) => {
        attempts.push(delivery.attempt)
        throw new Error('always fails')
      },
    )
    await pollUntil(async () => (await t.listDeadLetters()).items.length === 1)
    expect(attempts).toEqual([1, 2, 3])
    expect((await t.getDeadLetter(sent.id))?.attempts).toBe(3)
  })

  it('pg-commit-order-gaps: rows committed out of sequence order are delivered; a rolled-back one never', async () => {
    const schema = freshSchema('gaps')
    const publisher = await transport(schema)
    const consumer = await transport(schema, { pollIntervalMs: 5, notify: false })
    const history = createHistory()
    await consumer.subscribe({ group: 'g', patterns: ['gap.t'] }, async (e) => {
      history.delivered(e.id)
      history.completed(e.id)
    })
    const pool = testPool(server().url, 4)
    const clients = await Promise.all([0, 1, 2, 3].map(() => pool.connect()))
    const sent = clients.map((_, i) => envelope(`tx${i}`))
    // Four transactions take their sequence numbers in order 0, 1, 2, 3 ...
    for (const [i, client] of clients.entries()) {
      await client.query('BEGIN')
      history.attempted(sent[i]!.id)
      await publisher.publishInTransaction(client, 'gap.t', [sent[i]!])
    }
    // ... and finish in reverse: 3 commits first (a high-water-mark poller would now skip 0..2), 2 rolls back.
    for (const i of [3, 2, 1, 0]) {
      await clients[i]!.query(i === 2 ? 'ROLLBACK' : 'COMMIT')
      if (i === 2) history.failed(sent[i]!.id)
      else history.ok(sent[i]!.id)
    }
    for (const client of clients) client.release()
    await pool.end()
    await waitFor(() => [0, 1, 3].every((i) => history.isCompleted(sent[i]!.id)), history.onChange)
    // Prove the rolled-back row is absent rather than not yet seen: the group's queue drains to empty.
    await pollUntil(async () => (await publisher.listGroups())[0]?.depth === 0)
    const check = history.check()
    console.log(`[postgres] pg-commit-order-gaps: ${history.summary()}`)
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
    expect(check.definiteButDelivered).toEqual([])
  })

  it('pg-commit-order-gaps: 50 writers x 200 messages with random commit delays, none skipped', async () => {
    const schema = freshSchema('gaps')
    const publisher = await transport(schema)
    const consumer = await transport(schema, { pollIntervalMs: 5, notify: false })
    const history = createHistory()
    await consumer.subscribe({ group: 'g', patterns: ['gap.t'], maxInFlight: 50 }, async (e) => {
      history.delivered(e.id)
      history.completed(e.id)
    })
    const pool = testPool(server().url, 50)
    await Promise.all(
      Array.from({ length: 50 }, async (_, writer) => {
        const client = await pool.connect()
        try {
          for (let n = 0; n < 200; n++) {
            const e = envelope(`w${writer}-${n}`)
            history.attempted(e.id)
            await client.query('BEGIN')
            await publisher.publishInTransaction(client, 'gap.t', [e])
            // The fault: hold the transaction open 0-50 ms so commits land out of sequence order.
            await sleep(Math.random() * 50)
            await client.query('COMMIT')
            history.ok(e.id)
          }
        } finally {
          client.release()
        }
      }),
    )
    await pool.end()
    await waitFor(() => history.counts.completed >= history.counts.ok, history.onChange, { timeoutMs: 60_000 })
    const check = history.check()
    console.log(`[postgres] pg-commit-order-gaps: ${history.summary()}`)
    expect(history.counts.ok).toBe(10_000)
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
  })

  it('pg-notify-is-only-a-hint: LISTEN connection killed 5 times, every message still delivered', async () => {
    const schema = freshSchema('notify')
    const publisher = await transport(schema)
    const consumer = await transport(schema, { pollIntervalMs: 250 })
    const history = createHistory()
    const publishedAt = new Map<string, number>()
    let maxLatencyMs = 0
    await consumer.subscribe({ group: 'g', patterns: ['hint.t'] }, async (e) => {
      history.delivered(e.id)
      maxLatencyMs = Math.max(maxLatencyMs, Date.now() - (publishedAt.get(e.id) ?? Date.now()))
      history.completed(e.id)
    })
    let terminated = 0
    for (let round = 0; round < 10; round++) {
      if (round % 2 === 1) {
        // Wait for the listener to be back before cutting it again, so each kill hits a live connection.
        await pollUntil(async () => (await listenerCount()) === 1)
        terminated += await server().terminateConnections({ applicationName: 'herald-listener' })
      }
      const batch = Array.from({ length: 100 }, (_, i) => envelope(`r${round}-${i}`))
      for (const e of batch) {
        history.attempted(e.id)
        publishedAt.set(e.id, Date.now())
      }
      await Promise.all(batch.map((e) => publisher.publish('hint.t', [e])))
      for (const e of batch) history.ok(e.id)
    }
    await waitFor(() => history.counts.completed >= 1_000, history.onChange)
    await pollUntil(async () => (await listenerCount()) === 1)
    const check = history.check()
    console.log(
      `[postgres] pg-notify-is-only-a-hint: ${history.summary()} listenerKills=${terminated} maxLatencyMs=${maxLatencyMs} pollIntervalMs=250`,
    )
    // Both transports listen; each kill round drops both connections.
    expect(terminated).toBeGreaterThanOrEqual(5)
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])

    async function listenerCount(): Promise<number> {
      return withClient(server().url, async (c) => {
        const r = await c.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'herald-listener'`,
        )
        // One listener per transport: the publisher's and the consumer's.
        return Number(r.rows[0]?.n) / 2
      })
    }
  })

  it('broker-crash-during-publish: server crashed twice mid-run, retried publishes keep their ids, none lost', async () => {
    const schema = freshSchema('crash42')
    const errors: unknown[] = []
    const publisher = await transport(schema, { onError: (e: unknown) => errors.push(e) })
    const consumer = await transport(schema, { leaseMs: 2_000, pollIntervalMs: 50, onError: () => {} })
    const history = createHistory()
    await consumer.subscribe({ group: 'g', patterns: ['crash.t'], maxInFlight: 20 }, async (e) => {
      history.delivered(e.id)
      history.completed(e.id)
    })
    const total = 3_000
    const crashesAt = [1_000, 2_000]
    let restarts: Promise<void> = Promise.resolve()
    let crashes = 0
    const stop = history.onChange(() => {
      if (crashes < crashesAt.length && history.counts.ok >= crashesAt[crashes]!) {
        crashes++
        restarts = restarts.then(() => server().restart())
      }
    })
    let indeterminate = 0
    await Promise.all(
      Array.from({ length: 20 }, async (_, task) => {
        for (let n = 0; n < total / 20; n++) {
          const e = envelope(`p${task}-${n}`)
          history.attempted(e.id)
          const deadline = Date.now() + 120_000
          for (;;) {
            try {
              await publisher.publish('crash.t', [e])
              history.ok(e.id)
              break
            } catch (err) {
              // Connection lost: the message may or may not be stored. Retry with the same id, as a relay would.
              indeterminate++
              if (Date.now() > deadline) throw err
              await sleep(50) // a publisher's pause between retries while the server is down, not a wait for an event
            }
          }
        }
      }),
    )
    stop()
    await restarts
    await waitFor(() => history.check().lost.length === 0, history.onChange, { timeoutMs: 60_000 })
    const check = history.check()
    console.log(
      `[postgres] broker-crash-during-publish: ${history.summary()} crashes=${crashes} retriedPublishes=${indeterminate}`,
    )
    expect(crashes).toBe(2)
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
  })
})
