import {
  type DeadLetterStore,
  type Envelope,
  HeaderNames,
  type KeyAdmin,
  type KeyOrdering,
  type Scheduler,
  type TopologyAdmin,
  type Transport,
  uuidV7,
} from '@herald/core'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createHistory, type History } from '../history.js'
import { waitFor } from '../wait-for.js'
import { type ConsumerWorker, type ConsumerWorkerConfig, spawnConsumer } from '../worker/spawn-consumer.js'
import { scale } from './context.js'

export type OrderingTransport = Transport & Scheduler & DeadLetterStore & TopologyAdmin & KeyAdmin

/** How the ordering cases reach a transport: from this process, and (durable transports) from child processes. */
export interface OrderingHarness {
  /** A transport on this test's store. The suite closes what it opens. */
  open(): Promise<OrderingTransport>
  /** How a child process builds the same transport (short lease); absent for a transport of one process. */
  worker?(): Pick<ConsumerWorkerConfig, 'module' | 'exportName' | 'options'>
  /** The store holds every process to a group's rate limit (else each process keeps to it on its own). */
  readonly rateAcrossProcesses?: boolean
  cleanup(): Promise<void>
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const retry = { maxAttempts: 10, backoff: { initialMs: 10, factor: 2, maxMs: 80, jitter: 0.2 } }

interface Keyed {
  readonly key: string
  readonly n: number
  readonly poison?: boolean
}

function keyed(payload: Keyed): Envelope {
  return {
    id: uuidV7(),
    headers: { type: 'test.ordered', [HeaderNames.partitionKey]: payload.key },
    body: encoder.encode(JSON.stringify(payload)),
  }
}

function parse(body: Uint8Array | string): Keyed {
  return JSON.parse(typeof body === 'string' ? body : decoder.decode(body)) as Keyed
}

/**
 * Per-key record of successful handlings and the checker over it: after removing a repeat of the message just
 * before (a redelivery after a crash between handling and ack, which at-least-once allows), each key's handlings
 * must be exactly its messages in publish order.
 */
function createOrderLog() {
  const byKey = new Map<string, number[]>()
  return {
    handled(payload: Keyed): void {
      const list = byKey.get(payload.key) ?? []
      list.push(payload.n)
      byKey.set(payload.key, list)
    },
    of(key: string): readonly number[] {
      return byKey.get(key) ?? []
    },
    /** Keys whose handlings are out of publish order, with what was seen. */
    check(expected: ReadonlyMap<string, readonly number[]>): { outOfOrder: string[]; repeats: number } {
      const outOfOrder: string[] = []
      let repeats = 0
      for (const [key, want] of expected) {
        const seen = (byKey.get(key) ?? []).filter((n, i, all) => {
          const repeat = i > 0 && all[i - 1] === n
          if (repeat) repeats++
          return !repeat
        })
        if (seen.join(',') !== want.join(',')) outOfOrder.push(`${key}: [${seen.slice(0, 12).join(',')}…]`)
      }
      return { outOfOrder, repeats }
    },
  }
}

/**
 * `key-order-*` (docs/reliability.md) against one transport: competing consumers handle each key's messages one
 * at a time in publish order, through failures, retries, crashes and dead letters, and other keys flow meanwhile.
 */
export function describeKeyOrdering(name: string, setup: () => Promise<OrderingHarness>): void {
  describe(`${name} per-key ordering`, () => {
    let harness: OrderingHarness
    const opened: Transport[] = []
    const workers: ConsumerWorker[] = []
    let history: History

    beforeEach(async () => {
      harness = await setup()
      history = createHistory()
    })
    afterEach(async () => {
      await Promise.all(workers.splice(0).map((w) => w.stop()))
      await Promise.all(opened.splice(0).map((t) => t.close()))
      await harness.cleanup()
    })

    async function open(): Promise<OrderingTransport> {
      const transport = await harness.open()
      opened.push(transport)
      return transport
    }

    async function publish(transport: Transport, topic: string, envelopes: readonly Envelope[]): Promise<void> {
      // In order, a few at a time: publish order is the order each key must be handled in.
      for (let i = 0; i < envelopes.length; i += 50) {
        const batch = envelopes.slice(i, i + 50)
        for (const e of batch) history.attempted(e.id)
        await transport.publish(topic, batch)
        for (const e of batch) history.ok(e.id)
      }
    }

    const waitUntil = (condition: () => boolean, what: string, timeoutMs = 120_000) =>
      waitFor(condition, history.onChange, { what, timeoutMs, describe: history.summary })

    it('key-order-under-failures: 200 keys x 50, 4 consumers, 10% of calls failing, a consumer killed: each key in publish order', async () => {
      const keys = 200
      const perKey = scale(50)
      const log = createOrderLog()
      const admin = await open()
      await admin.declareGroup('ordered', ['ord.t'])
      const expected = new Map<string, number[]>()
      const sent: Envelope[] = []
      // Keys interleaved, as concurrent flows publish them.
      for (let n = 0; n < perKey; n++) {
        for (let k = 0; k < keys; k++) {
          sent.push(keyed({ key: `k${k}`, n }))
          const list = expected.get(`k${k}`) ?? []
          list.push(n)
          expected.set(`k${k}`, list)
        }
      }
      await publish(admin, 'ord.t', sent)

      const spec = { group: 'ordered', patterns: ['ord.t'], maxInFlight: 10, retry }
      let killed = 'none (one process)'
      const worker = harness.worker?.()
      if (worker === undefined) {
        // One process: four competing consumers on one transport.
        const handler = async (envelope: Envelope, delivery: { attempt: number }) => {
          history.delivered(envelope.id)
          if (delivery.attempt < 4 && Math.random() < 0.1) throw new Error('failed at random')
          await new Promise((done) => setImmediate(done))
          log.handled(parse(envelope.body))
          history.completed(envelope.id)
        }
        for (let i = 0; i < 4; i++) await admin.subscribe(spec, handler)
      } else {
        const config: ConsumerWorkerConfig = {
          ...worker,
          ...spec,
          consumers: 2,
          failRate: 0.1,
          echoBody: true,
        }
        let doomedDeliveries = 0
        const record = (doomed: boolean) => (e: { event: string; id?: string; body?: string }) => {
          if (e.event === 'delivered') {
            history.delivered(e.id!)
            if (doomed) doomedDeliveries++
          }
          if (e.event === 'completed') {
            log.handled(parse(e.body!))
            history.completed(e.id!)
          }
        }
        // The doomed process starts first and the other joins once it is consuming, so it reaches its crash
        // point even on a loaded machine where the second could otherwise take nearly everything.
        const crashAt = Math.floor(sent.length / 8)
        const doomed = spawnConsumer({ ...config, crashAtDelivery: crashAt }, record(true))
        workers.push(doomed)
        await waitUntil(() => doomedDeliveries > 0, 'the doomed consumer to start')
        workers.push(spawnConsumer(config, record(false)))
        const exit = await doomed.exited
        killed = `one of 2 processes (2 consumers) by ${exit.signal} at its delivery ${crashAt}`
        expect(exit.signal).toBe('SIGKILL')
      }
      await waitUntil(() => sent.every((e) => history.isCompleted(e.id)), `${sent.length} completions`)
      const { outOfOrder, repeats } = log.check(expected)
      console.log(
        `[${name}] key-order-under-failures: ${history.summary()} keys=${keys} outOfOrder=${outOfOrder.length} ` +
          `repeats=${repeats} killed=${killed}`,
      )
      expect(outOfOrder).toEqual([])
      const check = history.check()
      expect(check.lost).toEqual([])
      expect(check.unexpected).toEqual([])
    })

    it('key-order-dead-letter-continue: a key whose message is dead-lettered goes on with its next message', async () => {
      const log = createOrderLog()
      const transport = await open()
      const messages = [0, 1, 2, 3, 4].map((n) => keyed({ key: 'k', n, poison: n === 1 }))
      await transport.subscribe(
        { group: 'dl-continue', patterns: ['ord.c'], retry: { maxAttempts: 2, backoff: { initialMs: 5 } } },
        async (envelope) => {
          const payload = parse(envelope.body)
          history.delivered(envelope.id)
          if (payload.poison) throw new Error('poison')
          log.handled(payload)
          history.completed(envelope.id)
        },
      )
      await publish(transport, 'ord.c', messages)
      await waitUntil(() => log.of('k').length === 4, 'the four good messages')
      expect(log.of('k')).toEqual([0, 2, 3, 4])
      const { items } = await transport.listDeadLetters({ group: 'dl-continue' })
      expect(items.map((d) => d.envelope.id)).toEqual([messages[1]!.id])
      expect(await transport.listHeldKeys('dl-continue')).toEqual([])
      console.log(`[${name}] key-order-dead-letter-continue: handled=[${log.of('k').join(',')}] dlq=1 held=0`)
    })

    it('key-order-dead-letter-hold: a held key waits for its dead letter: redriven it goes first; purged or released the key goes on', async () => {
      const log = createOrderLog()
      const transport = await open()
      const fixed = new Set<string>()
      const group = 'dl-hold'
      const ordering: KeyOrdering = { afterDeadLetter: 'hold' }
      await transport.subscribe(
        { group, patterns: ['ord.h'], retry: { maxAttempts: 2, backoff: { initialMs: 5 } }, ordering },
        async (envelope) => {
          const payload = parse(envelope.body)
          history.delivered(envelope.id)
          if (payload.poison && !fixed.has(payload.key)) throw new Error(`poison in ${payload.key}`)
          log.handled(payload)
          history.completed(envelope.id)
        },
      )
      // Three held keys, one for each way out, and a key that is never held.
      const byKey = new Map<string, Envelope[]>()
      for (const key of ['redrive', 'purge', 'release']) {
        byKey.set(
          key,
          [0, 1, 2, 3].map((n) => keyed({ key, n, poison: n === 1 })),
        )
      }
      const free = [0, 1, 2].map((n) => keyed({ key: 'free', n }))
      await publish(transport, 'ord.h', [...[...byKey.values()].flat(), ...free])
      await waitUntil(
        () => log.of('free').length === 3 && ['redrive', 'purge', 'release'].every((k) => log.of(k).length === 1),
        'the free key and the head of each held key',
      )
      await waitFor(async () => (await transport.listHeldKeys(group)).length === 3, undefined, {
        what: 'three held keys',
      })
      const held = [...(await transport.listHeldKeys(group))].sort((a, b) => a.key.localeCompare(b.key))
      expect(held).toEqual([
        { group, key: 'purge', deadLetterId: byKey.get('purge')![1]!.id, waiting: 2 },
        { group, key: 'redrive', deadLetterId: byKey.get('redrive')![1]!.id, waiting: 2 },
        { group, key: 'release', deadLetterId: byKey.get('release')![1]!.id, waiting: 2 },
      ])
      const info = (await transport.listGroups()).find((g) => g.group === group)
      if (info?.heldKeys !== undefined) expect(info.heldKeys).toBe(3)
      if (info?.waitingOnKey !== undefined) expect(info.waitingOnKey).toBe(6)
      // Held: nothing past each key's dead letter ran.
      expect(['redrive', 'purge', 'release'].map((k) => log.of(k))).toEqual([[0], [0], [0]])

      fixed.add('redrive')
      fixed.add('release')
      expect(await transport.redriveDeadLetters({ ids: [byKey.get('redrive')![1]!.id], group })).toBe(1)
      expect(await transport.purgeDeadLetters({ ids: [byKey.get('purge')![1]!.id], group })).toBe(1)
      expect(await transport.releaseKey(group, 'release')).toBe(true)
      expect(await transport.releaseKey(group, 'release')).toBe(false)
      await waitUntil(
        () => log.of('redrive').length === 4 && log.of('purge').length === 3 && log.of('release').length === 3,
        'every held key to go on',
      )
      // Released without its dead letter: redriving it now sends it behind the key's messages.
      expect(await transport.redriveDeadLetters({ ids: [byKey.get('release')![1]!.id], group })).toBe(1)
      await waitUntil(() => log.of('release').length === 4, 'the released key’s redriven dead letter')
      expect(log.of('redrive')).toEqual([0, 1, 2, 3])
      expect(log.of('purge')).toEqual([0, 2, 3])
      expect(log.of('release')).toEqual([0, 2, 3, 1])
      expect(await transport.listHeldKeys(group)).toEqual([])
      console.log(
        `[${name}] key-order-dead-letter-hold: redrive=[${log.of('redrive')}] purge=[${log.of('purge')}] ` +
          `release=[${log.of('release')}] free=[${log.of('free')}]`,
      )
    })

    it('key-order-hot-key: 10,000 messages of one key do not hold back the other keys', async () => {
      const log = createOrderLog()
      const transport = await open()
      const hot = Array.from({ length: scale(10_000) }, (_, n) => keyed({ key: 'hot', n }))
      const others: Envelope[] = []
      for (let n = 0; n < 10; n++) for (let k = 0; k < 100; k++) others.push(keyed({ key: `o${k}`, n }))
      await transport.declareGroup('hot', ['ord.hot'])
      await publish(transport, 'ord.hot', [...hot, ...others])
      await transport.subscribe({ group: 'hot', patterns: ['ord.hot'], maxInFlight: 10 }, async (envelope) => {
        history.delivered(envelope.id)
        await new Promise((done) => setImmediate(done))
        log.handled(parse(envelope.body))
        history.completed(envelope.id)
      })
      await waitUntil(() => others.every((e) => history.isCompleted(e.id)), 'the other keys')
      const hotWhenOthersDone = log.of('hot').length
      await waitUntil(() => hot.every((e) => history.isCompleted(e.id)), 'the hot key')
      const expected = new Map<string, number[]>([['hot', hot.map((_, n) => n)]])
      for (let k = 0; k < 100; k++) expected.set(`o${k}`, [...Array(10).keys()])
      const { outOfOrder } = log.check(expected)
      console.log(
        `[${name}] key-order-hot-key: ${history.summary()} hot handled when the other keys were done=${hotWhenOthersDone}/${hot.length}`,
      )
      expect(outOfOrder).toEqual([])
      expect(hotWhenOthersDone).toBeLessThan(hot.length / 2)
    })

    it('key-order-delayed-joins-when-due: a delayed keyed message takes its place in its key when it falls due', async () => {
      const log = createOrderLog()
      const transport = await open()
      await transport.subscribe({ group: 'delayed', patterns: ['ord.d'] }, async (envelope) => {
        history.delivered(envelope.id)
        log.handled(parse(envelope.body))
        history.completed(envelope.id)
      })
      const late = keyed({ key: 'k', n: 0 })
      history.attempted(late.id)
      await transport.schedule('ord.d', [late], Date.now() + 300)
      history.ok(late.id)
      // Published after the delayed one, due before it: handled first, and the delayed one holds nothing meanwhile.
      await publish(transport, 'ord.d', [keyed({ key: 'k', n: 1 }), keyed({ key: 'k', n: 2 })])
      await waitUntil(() => log.of('k').length === 3, 'three messages of the key')
      console.log(`[${name}] key-order-delayed-joins-when-due: handled=[${log.of('k')}]`)
      expect(log.of('k')).toEqual([1, 2, 0])
    })

    it('rate-limit-upper-bound: 3 consumers limited to L per second never handle more than 5·L·1.1 in any 5 s', async () => {
      const limit = 200
      const total = 1_400
      const transport = await open()
      await transport.declareGroup('limited', ['rate.t'])
      const starts: number[] = []
      const sent = Array.from({ length: total }, (_, n) => ({
        id: uuidV7(),
        headers: { type: 'test.rate' },
        body: encoder.encode(JSON.stringify({ n })),
      }))
      await publish(transport, 'rate.t', sent)
      const spec = { group: 'limited', patterns: ['rate.t'], maxInFlight: 50, maxPerSecond: limit }
      const worker = harness.rateAcrossProcesses ? harness.worker?.() : undefined
      const where = worker === undefined ? '3 consumers in this process' : '3 processes, one consumer each'
      if (worker === undefined) {
        for (let i = 0; i < 3; i++)
          await transport.subscribe(spec, async (envelope) => {
            starts.push(performance.timeOrigin + performance.now())
            history.delivered(envelope.id)
            history.completed(envelope.id)
          })
      } else {
        for (let i = 0; i < 3; i++) {
          workers.push(
            spawnConsumer({ ...worker, ...spec }, (e) => {
              if (e.event === 'delivered') {
                // The worker's own time of the start: lines read in bursts would bunch times taken here.
                starts.push(e.at ?? performance.timeOrigin + performance.now())
                history.delivered(e.id!)
              }
              if (e.event === 'completed') history.completed(e.id!)
            }),
          )
        }
      }
      await waitUntil(() => sent.every((e) => history.isCompleted(e.id)), `${total} completions`)
      starts.sort((a, b) => a - b)
      let most = 0
      for (let i = 0, j = 0; i < starts.length; i++) {
        while (starts[i]! - starts[j]! > 5_000) j++
        most = Math.max(most, i - j + 1)
      }
      const seconds = (starts.at(-1)! - starts[0]!) / 1_000
      console.log(
        `[${name}] rate-limit-upper-bound: ${where}, limit=${limit}/s handled=${starts.length} ` +
          `over=${seconds.toFixed(1)}s most-in-5s=${most} bound=${5 * limit * 1.1}`,
      )
      expect(most).toBeLessThanOrEqual(5 * limit * 1.1)
    })

    it('key-order-concurrency: a per-key concurrency of 3 runs at most 3 of a key at once, and reaches 3', async () => {
      const transport = await open()
      const limit = 3
      const running = new Map<string, number>()
      const most = new Map<string, number>()
      // Each handler waits until its key has `limit` running (or the key's last messages are left), then all go.
      const gates = new Map<string, { release: () => void; promise: Promise<void> }>()
      const remaining = new Map<string, number>([
        ['a', 9],
        ['b', 9],
      ])
      const gateFor = (key: string) => {
        let gate = gates.get(key)
        if (gate === undefined) {
          let release!: () => void
          const promise = new Promise<void>((resolve) => {
            release = resolve
          })
          gate = { release, promise }
          gates.set(key, gate)
        }
        return gate
      }
      await transport.subscribe(
        { group: 'conc', patterns: ['ord.n'], maxInFlight: 20, ordering: { concurrency: limit } },
        async (envelope) => {
          const { key } = parse(envelope.body)
          history.delivered(envelope.id)
          const now = (running.get(key) ?? 0) + 1
          running.set(key, now)
          most.set(key, Math.max(most.get(key) ?? 0, now))
          const gate = gateFor(key)
          if (now >= Math.min(limit, remaining.get(key)!)) {
            gates.delete(key)
            gate.release()
          }
          await gate.promise
          running.set(key, running.get(key)! - 1)
          remaining.set(key, remaining.get(key)! - 1)
          history.completed(envelope.id)
        },
      )
      const sent = [...Array(9).keys()].flatMap((n) => [keyed({ key: 'a', n }), keyed({ key: 'b', n })])
      await publish(transport, 'ord.n', sent)
      await waitUntil(() => sent.every((e) => history.isCompleted(e.id)), 'every message')
      console.log(`[${name}] key-order-concurrency: most at once a=${most.get('a')} b=${most.get('b')} limit=${limit}`)
      expect(most.get('a')).toBe(limit)
      expect(most.get('b')).toBe(limit)
    })
  })
}
