import type { DeadLetterStore, Envelope, TopologyAdmin, Transport } from '@herald/core'
import { uuidV7 } from '@herald/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createHistory } from '../history.js'
import { pollUntil, waitFor } from '../wait-for.js'
import { type ConsumerWorkerConfig, spawnConsumer, type WorkerEvent } from '../worker/spawn-consumer.js'

type AdminTransport = Transport & DeadLetterStore & TopologyAdmin

/** How the crash cases reach a durable transport: from this process, and from a child consumer process. */
export interface CrashHarness {
  /** A transport in this process, on fresh state for this test. */
  admin(): Promise<AdminTransport>
  /** How a child process builds the same transport: module path, export name, options (short lease). */
  worker(): Pick<ConsumerWorkerConfig, 'module' | 'exportName' | 'options'>
  cleanup(): Promise<void>
}

const encoder = new TextEncoder()

function envelope(text: string): Envelope {
  return { id: uuidV7(), headers: { type: 'test.crash' }, body: encoder.encode(JSON.stringify({ text })) }
}

/**
 * `consumer-kill9-mid-batch`, `consumer-chaos-loop`, `crash-loop-poison-is-bounded` and `stuck-claim-released` (docs/reliability.md) against a durable transport: consumers in child processes killed with
 * SIGKILL mid-handler, or frozen with SIGSTOP while holding a claim. Each case prints the checker's line and asserts `lost=0 unexpected=0`.
 */
export function describeConsumerCrashes(name: string, setup: () => Promise<CrashHarness>): void {
  describe(`${name} consumers killed with SIGKILL`, () => {
    let harness: CrashHarness
    let admin: AdminTransport

    beforeEach(async () => {
      harness = await setup()
      admin = await harness.admin()
    })
    afterEach(async () => {
      await admin.close()
      await harness.cleanup()
    })

    const worker = (extra: Partial<ConsumerWorkerConfig>): ConsumerWorkerConfig => ({
      ...harness.worker(),
      group: 'crash-g',
      patterns: ['crash.t'],
      ...extra,
    })

    it('consumer-kill9-mid-batch: the killed consumer loses nothing; duplicates bounded by its in-flight window', async () => {
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
      console.log(`[${name}] 48 consumer-kill9-mid-batch: ${history.summary()}`)
      expect(check.lost).toEqual([])
      expect(check.unexpected).toEqual([])
      expect(check.duplicates).toBeGreaterThanOrEqual(1)
      expect(check.duplicates).toBeLessThanOrEqual(10)
    })

    it('consumer-chaos-loop: 4 consumers, one killed and replaced 20 times; nothing lost, duplicates bounded', async () => {
      const total = 6_000
      const maxInFlight = 10
      const history = createHistory()
      await admin.declareGroup('crash-g', ['crash.t'])
      const sent = Array.from({ length: total }, (_, i) => envelope(`m${i}`))
      for (let i = 0; i < sent.length; i += 200) {
        const batch = sent.slice(i, i + 200)
        for (const e of batch) history.attempted(e.id)
        await admin.publish('crash.t', batch)
        for (const e of batch) history.ok(e.id)
      }
      const record = (e: WorkerEvent) => {
        if (e.event === 'delivered') history.delivered(e.id!)
        if (e.event === 'completed') history.completed(e.id!)
      }
      // Handlers take 40 ms: four consumers need several seconds for the run, so every kill lands mid-batch.
      const start = () => spawnConsumer(worker({ maxInFlight, handlerDelayMs: 40 }), record)
      const consumers = Array.from({ length: 4 }, start)
      let kills = 0
      try {
        // Kills are paced by progress, not by the clock: one each time another 1/25 of the run has completed.
        const step = Math.floor(total / 25)
        while (kills < 20) {
          const target = (kills + 1) * step
          await waitFor(() => history.counts.completed >= target, history.onChange, { timeoutMs: 120_000 })
          const victim = Math.floor(Math.random() * consumers.length)
          const killed = consumers[victim]!
          killed.child.kill('SIGKILL')
          await killed.exited
          kills++
          consumers[victim] = start()
        }
        await waitFor(() => sent.every((e) => history.isCompleted(e.id)), history.onChange, { timeoutMs: 120_000 })
        // Drain check: nothing left waiting or claimed in the group.
        await pollUntil(async () => (await admin.listGroups()).find((g) => g.group === 'crash-g')?.depth === 0)
      } finally {
        await Promise.all(consumers.map((c) => c.stop()))
      }
      const check = history.check()
      console.log(
        `[${name}] 49 consumer-chaos-loop: ${history.summary()} kills=${kills} duplicatesRatio=${(check.duplicates / total).toFixed(4)}`,
      )
      expect(kills).toBe(20)
      expect(check.lost).toEqual([])
      expect(check.unexpected).toEqual([])
      expect(check.duplicates).toBeLessThanOrEqual(20 * maxInFlight)
    })

    it('crash-loop-poison-is-bounded: a message that kills its consumer is dead-lettered after maxAttempts', async () => {
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
          pollUntil(async () => (await admin.getDeadLetter(poison.id)) !== undefined, 60_000).then(
            () => 'done' as const,
          ),
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
      console.log(`[${name}] 22 crash-loop-poison-is-bounded: ${history.summary()} restarts=${crashes}`)
      const check = history.check()
      expect(check.lost).toEqual([])
      expect(check.unexpected).toEqual([])
    })

    it('stuck-claim-released: a frozen consumer (SIGSTOP) holding a claim loses it when its lease ends', async () => {
      await admin.declareGroup('crash-g', ['crash.t'])
      const history = createHistory()
      const stuck = envelope('hang-here')
      history.attempted(stuck.id)
      await admin.publish('crash.t', [stuck])
      history.ok(stuck.id)
      const frozen = spawnConsumer(worker({ hangOnBodyContaining: 'hang-here' }), (e) => {
        if (e.event === 'delivered') history.delivered(e.id!)
      })
      try {
        await waitFor(() => history.deliveriesOf(stuck.id) === 1, history.onChange)
        // Frozen, not dead: its connection stays open and its lease renewals stop, as with a hung process.
        frozen.child.kill('SIGSTOP')
        const attempts: number[] = []
        await admin.subscribe({ group: 'crash-g', patterns: ['crash.t'] }, async (e, d) => {
          attempts.push(d.attempt)
          history.delivered(e.id)
          history.completed(e.id)
        })
        await waitFor(() => history.isCompleted(stuck.id), history.onChange)
        expect(attempts).toEqual([2])
      } finally {
        frozen.child.kill('SIGKILL')
        await frozen.exited
      }
      const check = history.check()
      console.log(`[${name}] 57 stuck-claim-released: ${history.summary()}`)
      expect(check.lost).toEqual([])
    })
  })
}
