import {
  ConcurrencyError,
  type EventStore,
  type EventToStore,
  ReplayGapError,
  replayEvents,
  type StoredEvent,
  startProjection,
  uuidV7,
} from '@herald/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createHistory } from '../history.js'
import { type ProjectionWorkerConfig, spawnProjection } from '../worker/spawn-projection.js'

/** What an event store's conformance file provides: fresh, isolated state per test. */
export interface EventStoreHarness {
  /** Opens the store (a new connection, for durable stores). The suite closes what it opens. */
  open(): Promise<EventStore>
  /** How a child process opens the same store; durable stores give it, for the SIGKILL replay case. */
  worker?(): Pick<ProjectionWorkerConfig, 'module' | 'exportName' | 'options'>
  cleanup(): Promise<void>
}

export interface EventStoreFeatures {
  /** Events and checkpoints survive closing the store and opening it again. */
  readonly persistent: boolean
}

const encoder = new TextEncoder()
const types = ['order.placed', 'order.paid', 'order.shipped', 'stock.reserved', 'kitchen.ready'] as const
const baseTime = Date.parse('2026-01-01T00:00:00.000Z')

interface EventSpec {
  readonly type?: string
  readonly source?: string
  readonly time?: number
  readonly correlationId?: string
}

function event(spec: EventSpec = {}): EventToStore {
  const type = spec.type ?? 'order.placed'
  return {
    topic: type,
    envelope: {
      id: uuidV7(),
      headers: {
        type,
        source: spec.source ?? 'orders',
        time: new Date(spec.time ?? Date.now()).toISOString(),
        ...(spec.correlationId === undefined ? {} : { correlationid: spec.correlationId }),
      },
      body: encoder.encode(JSON.stringify({ type })),
    },
  }
}

/**
 * The conformance suite every event store passes: queries with exact boundaries, paging, optimistic concurrency
 * (`event-store-expected-version`), replay and resume from a checkpoint (`event-store-replay-and-resume`), retention
 * against checkpoints (`event-store-retention`); see docs/reliability.md.
 */
export function describeEventStore(
  name: string,
  setup: () => Promise<EventStoreHarness>,
  features: EventStoreFeatures,
): void {
  describe(`${name} event store conformance`, () => {
    let harness: EventStoreHarness
    const opened: EventStore[] = []
    const open = async () => {
      const store = await harness.open()
      opened.push(store)
      return store
    }
    beforeEach(async () => {
      harness = await setup()
    })
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((s) => s.close()))
      await harness.cleanup()
    })

    it('stores events with strictly increasing positions and reads them back by id with their query fields', async () => {
      const store = await open()
      expect(await store.headPosition()).toBe(0)
      const batch = [
        event({ type: 'order.placed', source: 'shop', time: baseTime, correlationId: 'c-1' }),
        event({ type: 'order.paid' }),
      ]
      const positions = await store.append(batch)
      const more = await store.append([event()])
      expect(positions).toHaveLength(2)
      expect(positions[1]!).toBeGreaterThan(positions[0]!)
      expect(more[0]!).toBeGreaterThan(positions[1]!)
      expect(await store.headPosition()).toBe(more[0])
      const first = await store.getEvent(batch[0]!.envelope.id)
      expect(first).toMatchObject({
        position: positions[0],
        topic: 'order.placed',
        type: 'order.placed',
        source: 'shop',
        time: baseTime,
        correlationId: 'c-1',
        stream: undefined,
        streamVersion: undefined,
      })
      expect(first?.envelope.headers).toEqual(batch[0]!.envelope.headers)
      expect(new TextDecoder().decode(first?.envelope.body)).toBe('{"type":"order.placed"}')
      expect(await store.getEvent(uuidV7())).toBeUndefined()
    })

    it('queries by type (exact or under a prefix), source, correlation and time range (since inclusive, until exclusive), paging disjointly', async () => {
      const store = await open()
      const all: EventToStore[] = []
      for (let i = 0; i < 250; i++) {
        all.push(
          event({
            type: types[i % types.length]!,
            source: i % 2 === 0 ? 'orders' : 'kitchen',
            time: baseTime + i * 1_000,
            correlationId: `c-${i % 10}`,
          }),
        )
      }
      await store.append(all.slice(0, 100))
      await store.append(all.slice(100))
      const ids = async (query: Parameters<EventStore['queryEvents']>[0]) =>
        (await store.queryEvents({ ...query, limit: 10_000 })).items.map((e) => e.envelope.id)
      const expected = (keep: (i: number) => boolean) => all.filter((_, i) => keep(i)).map((e) => e.envelope.id)

      expect(await ids({ types: ['order.paid'] })).toEqual(expected((i) => i % 5 === 1))
      expect(await ids({ types: ['order.paid', 'kitchen.ready'] })).toEqual(expected((i) => i % 5 === 1 || i % 5 === 4))
      // Types under a prefix, as the topic pattern order.# would select them; alone and with exact types.
      expect(await ids({ typesUnder: ['order'] })).toEqual(expected((i) => i % 5 <= 2))
      expect(await ids({ typesUnder: ['order'], types: ['kitchen.ready'] })).toEqual(
        expected((i) => i % 5 <= 2 || i % 5 === 4),
      )
      expect(await ids({ typesUnder: ['order.pa'] })).toEqual([])
      expect(await ids({ typesUnder: ['stock'], newestFirst: true })).toEqual(expected((i) => i % 5 === 3).reverse())
      expect(await ids({ source: 'kitchen' })).toEqual(expected((i) => i % 2 === 1))
      expect(await ids({ correlationId: 'c-3' })).toEqual(expected((i) => i % 10 === 3))
      // Boundaries fall exactly on events 10 and 20: 10 is in, 20 is out.
      expect(await ids({ since: baseTime + 10_000, until: baseTime + 20_000 })).toEqual(
        expected((i) => i >= 10 && i < 20),
      )
      expect(await ids({ types: ['order.placed'], source: 'orders', since: baseTime + 100_000 })).toEqual(
        expected((i) => i % 5 === 0 && i % 2 === 0 && i >= 100),
      )

      const seen: string[] = []
      let after: number | undefined
      let pages = 0
      do {
        const page = await store.queryEvents({ source: 'orders', limit: 30, ...(after === undefined ? {} : { after }) })
        seen.push(...page.items.map((e) => e.envelope.id))
        after = page.nextCursor
        pages++
      } while (after !== undefined)
      expect(seen).toEqual(expected((i) => i % 2 === 0))
      expect(pages).toBe(5)
    })

    it('event-store-newest-first: pages newest first by cursor over the whole history, with filters and bounds', async () => {
      const store = await open()
      const all: EventToStore[] = []
      for (let i = 0; i < 120; i++)
        all.push(event({ type: types[i % types.length]!, time: baseTime + i * 1_000, correlationId: `c-${i % 4}` }))
      await store.append(all)
      const newest = (keep: (i: number) => boolean) =>
        all
          .filter((_, i) => keep(i))
          .map((e) => e.envelope.id)
          .reverse()
      const seen: string[] = []
      let before: number | undefined
      let pages = 0
      do {
        const page = await store.queryEvents({
          correlationId: 'c-1',
          newestFirst: true,
          limit: 7,
          ...(before === undefined ? {} : { before }),
        })
        const positions = page.items.map((e) => e.position)
        expect(positions).toEqual([...positions].sort((a, b) => b - a))
        seen.push(...page.items.map((e) => e.envelope.id))
        before = page.nextCursor
        pages++
      } while (before !== undefined)
      // The oldest of them is found too: nothing is left out for being old.
      expect(seen).toEqual(newest((i) => i % 4 === 1))
      expect(pages).toBe(5)
      const first = await store.queryEvents({ newestFirst: true, limit: 1 })
      expect(first.items[0]?.envelope.id).toBe(all.at(-1)!.envelope.id)
      // A time range, newest first: events 30 to 39.
      const ranged = await store.queryEvents({
        newestFirst: true,
        since: baseTime + 30_000,
        until: baseTime + 40_000,
        limit: 100,
      })
      expect(ranged.items.map((e) => e.envelope.id)).toEqual(newest((i) => i >= 30 && i < 40))
      // `after` and `before` bound positions on either side, in either order.
      const p = (await store.queryEvents({ limit: 120 })).items.map((e) => e.position)
      const window = await store.queryEvents({ after: p[9]!, before: p[20]!, newestFirst: true, limit: 100 })
      expect(window.items.map((e) => e.position)).toEqual(p.slice(10, 20).reverse())
      const forward = await store.queryEvents({ after: p[9]!, before: p[20]!, limit: 100 })
      expect(forward.items.map((e) => e.position)).toEqual(p.slice(10, 20))
    })

    it('event-store-expected-version: of 10 concurrent appends expecting version 5, exactly one wins', async () => {
      const store = await open()
      const stream = `order-${uuidV7()}`
      const created = await store.appendToStream(stream, [event(), event(), event(), event(), event()], {
        expectedVersion: 'no-stream',
      })
      expect(created.version).toBe(5)
      const contenders = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          store.appendToStream(stream, [event({ correlationId: `writer-${i}` })], { expectedVersion: 5 }),
        ),
      )
      const won = contenders.filter((r) => r.status === 'fulfilled')
      const lost = contenders.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      expect(won).toHaveLength(1)
      expect(lost).toHaveLength(9)
      for (const rejection of lost) {
        expect(rejection.reason).toBeInstanceOf(ConcurrencyError)
        expect(rejection.reason).toMatchObject({ code: 'CONCURRENCY', expected: 5, actual: 6, stream })
      }
      const read = await store.readStream(stream)
      expect(read.map((e) => e.streamVersion)).toEqual([1, 2, 3, 4, 5, 6])
      const positions = read.map((e) => e.position)
      expect(positions).toEqual([...positions].sort((a, b) => a - b))
      expect(new Set(positions).size).toBe(6)
      console.log(
        `[${name}] 71 event-store-expected-version: winners=${won.length} conflicts=${lost.length} versions=1..6`,
      )

      await expect(store.appendToStream(stream, [event()], { expectedVersion: 'no-stream' })).rejects.toMatchObject({
        code: 'CONCURRENCY',
        expected: 'no-stream',
        actual: 6,
      })
      expect((await store.appendToStream(stream, [event()], { expectedVersion: 'any' })).version).toBe(7)
      expect((await store.appendToStream(`new-${uuidV7()}`, [event()], { expectedVersion: 0 })).version).toBe(1)
    })

    it('reads a stream from a version with a limit; an unknown stream reads as empty', async () => {
      const store = await open()
      const stream = `cart-${uuidV7()}`
      await store.appendToStream(stream, [event(), event(), event()])
      await store.append([event()])
      await store.appendToStream(stream, [event(), event()], { expectedVersion: 3 })
      expect((await store.readStream(stream, { fromVersion: 2, limit: 3 })).map((e) => e.streamVersion)).toEqual([
        2, 3, 4,
      ])
      expect((await store.queryEvents({ stream })).items).toHaveLength(5)
      expect(await store.readStream('no-such-stream')).toEqual([])
    })

    it('event-store-replay-and-resume: replay by type and time in position order; a crashed projection resumes from its checkpoint', async () => {
      const store = await open()
      const all: EventToStore[] = []
      for (let i = 0; i < 10_000; i++) all.push(event({ type: types[i % 5]!, time: baseTime + i }))
      for (let i = 0; i < all.length; i += 1_000) await store.append(all.slice(i, i + 1_000))
      const since = baseTime + 2_500
      const wanted = all.filter((e, i) => e.envelope.headers.type === 'order.paid' && i >= 2_500)

      const replayed: StoredEvent[] = []
      const progress: number[] = []
      const result = await replayEvents(store, (e) => void replayed.push(e), {
        filter: { types: ['order.paid'], since },
        batchSize: 300,
        onProgress: (p) => progress.push(p.handled),
      })
      expect(replayed.map((e) => e.envelope.id)).toEqual(wanted.map((e) => e.envelope.id))
      expect(replayed.map((e) => e.position)).toEqual(replayed.map((e) => e.position).sort((a, b) => a - b))
      expect(result.handled).toBe(wanted.length)
      expect(progress.at(-1)).toBe(wanted.length)
      expect(progress.length).toBeGreaterThan(1)

      // A projection over the same filter that dies half-way (its handler throws, so no final checkpoint save).
      const history = createHistory()
      for (const e of wanted) {
        history.attempted(e.envelope.id)
        history.ok(e.envelope.id)
      }
      const checkpointEvery = 50
      const filter = { types: ['order.paid'], since }
      const crashAt = Math.floor(wanted.length / 2)
      let handled = 0
      const doomed = startProjection(
        store,
        (e) => {
          if (++handled === crashAt) throw new Error('projection process died')
          history.delivered(e.envelope.id)
          history.completed(e.envelope.id)
        },
        { name: 'paid-orders', filter, checkpointEvery, batchSize: 64 },
      )
      await expect(doomed.done).rejects.toThrow('projection process died')
      const reopened = features.persistent ? await open() : store
      const resumed = startProjection(
        reopened,
        (e) => {
          history.delivered(e.envelope.id)
          history.completed(e.envelope.id)
        },
        { name: 'paid-orders', filter, checkpointEvery, batchSize: 64, pollIntervalMs: 20 },
      )
      await resumed.caughtUp
      await resumed.stop()
      const check = history.check()
      console.log(`[${name}] 72 event-store-replay-and-resume: ${history.summary()} checkpointEvery=${checkpointEvery}`)
      expect(check.lost).toEqual([])
      expect(check.unexpected).toEqual([])
      expect(check.duplicates).toBeLessThanOrEqual(checkpointEvery)
      expect(await reopened.loadCheckpoint('paid-orders')).toBe(await reopened.headPosition())
    })

    it('event-store-retention: deletes old events only up to the oldest checkpoint; past it, a reader gets ReplayGapError', async () => {
      const store = await open()
      const stream = `account-${uuidV7()}`
      await store.appendToStream(stream, [event(), event()])
      const early = await store.append(Array.from({ length: 100 }, () => event()))
      await store.saveCheckpoint('slow-reader', early[39]!)
      await store.append(Array.from({ length: 100 }, () => event()))
      const cutoff = Date.now() + 1

      const kept = await store.deleteEvents({ recordedBefore: cutoff })
      expect(kept).toEqual({ deleted: 40, truncatedThrough: early[39] })
      expect((await store.queryEvents({ limit: 10_000 })).items).toHaveLength(162)
      expect(await store.readStream(stream)).toHaveLength(2)

      const forced = await store.deleteEvents({ recordedBefore: cutoff, respectCheckpoints: false })
      expect(forced.deleted).toBe(160)
      expect(await store.readStream(stream)).toHaveLength(2)
      const errors: unknown[] = []
      const reader = startProjection(store, () => {}, { name: 'slow-reader', onError: (e) => errors.push(e) })
      await expect(reader.done).rejects.toBeInstanceOf(ReplayGapError)
      expect(errors[0]).toMatchObject({ code: 'REPLAY_GAP', firstMissing: early[39]! + 1 })
      console.log(
        `[${name}] 73 event-store-retention: kept-by-checkpoint=${kept.deleted} forced=${forced.deleted} gap=reported`,
      )

      // A new reader (no checkpoint) reads what is still stored: here the two stream events.
      const fresh: StoredEvent[] = []
      const newcomer = startProjection(store, (e) => void fresh.push(e), { name: 'newcomer', pollIntervalMs: 20 })
      await newcomer.caughtUp
      await newcomer.stop()
      expect(fresh).toHaveLength(2)
    })

    it('event-store-replay-and-resume: a projection process SIGKILLed half-way resumes from its checkpoint', async (context) => {
      const worker = harness.worker?.()
      if (worker === undefined) return context.skip()
      const store = await open()
      const all: EventToStore[] = []
      for (let i = 0; i < 10_000; i++) all.push(event({ type: types[i % 5]!, time: baseTime + i }))
      for (let i = 0; i < all.length; i += 1_000) await store.append(all.slice(i, i + 1_000))
      const since = baseTime + 2_500
      const wanted = all.filter((e, i) => e.envelope.headers.type === 'order.paid' && i >= 2_500)
      const config = {
        ...worker,
        name: 'paid-orders',
        filter: { types: ['order.paid'], since },
        checkpointEvery: 50,
      }
      const killed = await spawnProjection({ ...config, crashAfter: Math.floor(wanted.length / 2) })
      expect(killed.signal).toBe('SIGKILL')
      const resumed = await spawnProjection(config)
      expect(resumed.caughtUp).toBe(true)
      const history = createHistory()
      for (const e of wanted) {
        history.attempted(e.envelope.id)
        history.ok(e.envelope.id)
      }
      for (const run of [killed, resumed]) {
        const positions = run.handled.map((h) => h.position)
        expect(positions, 'each run in position order').toEqual([...positions].sort((a, b) => a - b))
        for (const h of run.handled) {
          history.delivered(h.id)
          history.completed(h.id)
        }
      }
      const check = history.check()
      console.log(`[${name}] 72 replay-child-sigkill: ${history.summary()} checkpointEvery=50`)
      expect(check.lost).toEqual([])
      expect(check.unexpected).toEqual([])
      expect(check.duplicates).toBeLessThanOrEqual(50)
    })

    if (features.persistent) {
      it('keeps events, stream versions and checkpoints across close and reopen', async () => {
        const first = await open()
        const stream = `s-${uuidV7()}`
        await first.appendToStream(stream, [event(), event()])
        await first.saveCheckpoint('p', 2)
        await first.close()
        const second = await open()
        expect((await second.readStream(stream)).map((e) => e.streamVersion)).toEqual([1, 2])
        expect(await second.loadCheckpoint('p')).toBe(2)
        await expect(second.appendToStream(stream, [event()], { expectedVersion: 1 })).rejects.toBeInstanceOf(
          ConcurrencyError,
        )
      })
    }
  })
}
