import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Envelope, uuidV7 } from '@herald/core'
import { createHistory, pollUntil, spawnConsumer, type WorkerEvent } from '@herald/testkit'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createSqliteTransport, type SqliteTransport } from '../src/index.js'

const factoryModule = fileURLToPath(new URL('../src/index.ts', import.meta.url))
const encoder = new TextEncoder()

describe('sqlite consumers killed with SIGKILL', () => {
  let dir: string
  let path: string
  let admin: SqliteTransport

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-crash-'))
    path = join(dir, 'herald.db')
    admin = createSqliteTransport({ path })
  })
  afterEach(async () => {
    await admin.close()
    rmSync(dir, { recursive: true, force: true })
  })

  function envelope(text: string): Envelope {
    return { id: uuidV7(), headers: { type: 'test.crash' }, body: encoder.encode(JSON.stringify({ text })) }
  }

  const worker = (extra: object) => ({
    module: factoryModule,
    exportName: 'createSqliteTransport',
    options: { path, leaseMs: 500, pollIntervalMs: 20 },
    group: 'crash-g',
    patterns: ['crash.t'],
    ...extra,
  })

  it('48 consumer-kill9-mid-batch: the killed consumer loses nothing; duplicates bounded by its in-flight window', async () => {
    const history = createHistory()
    const record = (e: WorkerEvent) => {
      if (e.event === 'delivered') history.delivered(e.id!)
      if (e.event === 'completed') history.completed(e.id!)
    }
    await admin.declareGroup('crash-g', ['crash.t'])
    const sent = Array.from({ length: 1_000 }, (_, i) => envelope(`m${i}`))
    for (const e of sent) history.attempted(e.id)
    await Promise.all(sent.map((e) => admin.publish('crash.t', [e])))
    for (const e of sent) history.ok(e.id)

    const doomed = spawnConsumer(worker({ maxInFlight: 10, crashAtDelivery: 300 }), record)
    expect(await doomed.exited).toMatchObject({ signal: 'SIGKILL' })
    const survivor = spawnConsumer(worker({ maxInFlight: 10 }), record)
    await new Promise<void>((resolve, reject) => {
      const stop = history.onChange(() => {
        if (sent.every((e) => history.isCompleted(e.id))) {
          stop()
          resolve()
        }
      })
      survivor.exited.then(() => reject(new Error('survivor exited early')), reject)
    })
    await survivor.stop()
    const check = history.check()
    console.log(`[sqlite] 48 consumer-kill9-mid-batch: ${history.summary()}`)
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
    expect(check.duplicates).toBeGreaterThanOrEqual(1)
    expect(check.duplicates).toBeLessThanOrEqual(10)
  })

  it('22 crash-loop-poison-is-bounded: a message that kills its consumer is dead-lettered after maxAttempts', async () => {
    const history = createHistory()
    await admin.declareGroup('crash-g', ['crash.t'])
    const poison = envelope('poison-pill')
    const good = Array.from({ length: 100 }, (_, i) => envelope(`good${i}`))
    for (const e of [poison, ...good]) history.attempted(e.id)
    await admin.publish('crash.t', [poison])
    await admin.publish('crash.t', good)
    for (const e of [poison, ...good]) history.ok(e.id)
    const poisonAttempts: number[] = []
    const record = (e: WorkerEvent) => {
      if (e.event === 'delivered') history.delivered(e.id!)
      if (e.event === 'delivered' && e.id === poison.id) poisonAttempts.push(e.attempt!)
      if (e.event === 'completed') history.completed(e.id!)
    }
    let crashes = 0
    for (;;) {
      const consumer = spawnConsumer(
        worker({ maxInFlight: 1, retry: { maxAttempts: 3 }, crashOnBodyContaining: 'poison-pill' }),
        record,
      )
      const outcome = await Promise.race([
        consumer.exited.then(() => 'crashed' as const),
        pollUntil(async () => (await admin.getDeadLetter(poison.id)) !== undefined, 60_000).then(() => 'done' as const),
      ])
      if (outcome === 'crashed') {
        crashes++
        expect(crashes, 'restarts stay bounded').toBeLessThanOrEqual(3)
        continue
      }
      await pollUntil(async () => good.every((e) => history.isCompleted(e.id)))
      await consumer.stop()
      break
    }
    const letter = await admin.getDeadLetter(poison.id)
    expect(letter).toMatchObject({ reason: 'max_deliveries_exceeded', attempts: 3, error: undefined })
    history.deadLettered(poison.id)
    expect(crashes).toBe(3)
    expect(poisonAttempts).toEqual([1, 2, 3])
    console.log(`[sqlite] 22 crash-loop-poison-is-bounded: ${history.summary()} restarts=${crashes}`)
    const check = history.check()
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
  })
})
