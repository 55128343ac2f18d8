import { isHeraldError, isScheduler, isTopologyAdmin, type Subscription } from '@herald/core'
import { expect, it } from 'vitest'
import type { TransportFeatures } from '../harness.js'
import { createLatch } from '../latch.js'
import { pollUntil } from '../wait-for.js'
import { type SuiteContext, scale } from './context.js'

/** Conformance (docs/reliability.md): delivery, routing, groups, ordering, limits, churn. */
export function coreCases(ctx: () => SuiteContext, features: TransportFeatures): void {
  it('roundtrip-fidelity: payloads (text or any bytes) and headers arrive byte-equal, once each', async () => {
    const c = ctx()
    const t = await c.open()
    const topic = c.unique('t')
    const group = c.unique('g')
    await c.consume(t, { group, patterns: [topic] }).then((s) => s.close())
    const payloads = [
      { text: 'héllo wörld ✓ 🚕', nested: { a: [1, { b: null }] } },
      { big: Number.MAX_SAFE_INTEGER, empty: {}, list: [] },
      { long: 'x'.repeat(64 * 1024) },
    ]
    const headers = {
      correlationid: 'corr-1',
      causationid: 'cause-1',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      'x-a': '1',
      'x-b': 'two words',
      'x-c': 'ünï',
    }
    const sent = Array.from({ length: 99 }, (_, i) => c.envelope({ i, ...payloads[i % 3] }, headers))
    sent.push({ ...c.envelope(null, { type: 'test.empty' }), body: new Uint8Array() })
    // Bodies are bytes, not text: invalid UTF-8, a byte-order mark, NUL and every byte value come back unchanged.
    const bytes = [[0xff, 0xfe, 0x00, 0x80], [0xef, 0xbb, 0xbf, 0x7b, 0x7d], Array.from({ length: 256 }, (_, i) => i)]
    for (const body of bytes) sent.push({ ...c.envelope(null, { type: 'test.bytes' }), body: Uint8Array.from(body) })
    await c.publishAll(t, topic, sent)
    const received = new Map<string, { headers: Record<string, string>; body: Uint8Array }>()
    const sub = await c.consume(t, { group, patterns: [topic] }, async (e) => {
      received.set(e.id, { headers: { ...e.headers }, body: new Uint8Array(e.body) })
    })
    await c.waitForCompleted(sent.map((e) => e.id))
    await sub.close()
    for (const e of sent) {
      expect(received.get(e.id)?.headers).toEqual(e.headers)
      expect(Buffer.from(received.get(e.id)?.body ?? []).equals(Buffer.from(e.body))).toBe(true)
    }
    c.report('roundtrip-fidelity')
  })

  it('publish-before-subscribe-is-kept: mandatory publish to an unbound topic fails definitely', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, unbound, group] = [c.unique('t'), c.unique('u'), c.unique('g')]
    await (await t.subscribe({ group, patterns: [topic] }, async () => {})).close()
    const sent = Array.from({ length: 50 }, (_, i) => c.envelope({ i }))
    await c.publishAll(t, topic, sent)
    await t.publish(unbound, [c.envelope({ unrouted: true })])
    const command = c.envelope({ command: true })
    c.history.attempted(command.id)
    const err = await t.publish(unbound, [command], { mandatory: true }).catch((e: unknown) => e)
    expect(isHeraldError(err, 'NO_ROUTE')).toBe(true)
    c.history.failed(command.id)
    await c.consume(t, { group, patterns: [topic] })
    await c.consume(t, { group: c.unique('late'), patterns: [unbound] })
    await c.waitForCompleted(sent.map((e) => e.id))
    c.report('publish-before-subscribe-is-kept')
  })

  it('competing-consumers-exactly-one-per-group', async () => {
    const c = ctx()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    const consumers = 10
    const handledBy = new Map<string, number>()
    const perConsumer = new Array<number>(consumers).fill(0)
    for (let n = 0; n < consumers; n++) {
      const t = await c.open()
      await c.consume(t, { group, patterns: [topic], maxInFlight: 5 }, async (e) => {
        handledBy.set(e.id, n)
        perConsumer[n]!++
        // Yield so that every consumer gets a turn while the others are busy.
        await new Promise((resolve) => setImmediate(resolve))
      })
    }
    const publisher = await c.open()
    const sent = Array.from({ length: scale(2_000) }, (_, i) => c.envelope({ i }))
    await c.publishAll(publisher, topic, sent)
    await c.waitForCompleted(sent.map((e) => e.id))
    expect(handledBy.size).toBe(sent.length)
    expect(perConsumer.filter((n) => n > 0).length, `handled per consumer: ${perConsumer}`).toBeGreaterThan(1)
    c.report('competing-consumers-exactly-one-per-group')
  })

  it('fan-out-across-groups: every group gets every message once', async () => {
    const c = ctx()
    const t = await c.open()
    const topic = c.unique('t')
    const groups = [c.unique('g1'), c.unique('g2'), c.unique('g3')]
    const seen = new Map<string, Set<string>>(groups.map((g) => [g, new Set()]))
    let deliveries = 0
    for (const group of groups)
      for (let n = 0; n < 2; n++)
        await t.subscribe({ group, patterns: [topic] }, async (e) => {
          deliveries++
          c.history.delivered(`${group}/${e.id}`)
          seen.get(group)!.add(e.id)
          c.history.completed(`${group}/${e.id}`)
        })
    const sent = Array.from({ length: 500 }, (_, i) => c.envelope({ i }))
    await Promise.all(sent.map((e) => t.publish(topic, [e])))
    for (const e of sent)
      for (const g of groups) {
        c.history.attempted(`${g}/${e.id}`)
        c.history.ok(`${g}/${e.id}`)
      }
    await c.waitUntil(() => deliveries >= sent.length * groups.length, 'all groups to receive every message')
    for (const g of groups) expect(seen.get(g)!.size).toBe(sent.length)
    c.report('fan-out-across-groups')
  })

  it('topic-pattern-routing: * is one word, # is zero or more', async () => {
    const c = ctx()
    const t = await c.open()
    const p = c.unique('p')
    const bindings: Record<string, string> = {
      g1: `${p}.order.*`,
      g2: `${p}.order.#`,
      g3: `${p}.order.created`,
      g4: `${p}.trip.event.*`,
    }
    const got = new Map<string, string[]>()
    const fenced = new Set<string>()
    for (const [g, pattern] of Object.entries(bindings)) {
      got.set(g, [])
      // One handler at a time, so a group that has seen the fence has seen everything published before it.
      await t.subscribe({ group: `${p}-${g}`, patterns: [pattern, `${p}.fence`], maxInFlight: 1 }, async (_e, d) => {
        const topic = d.topic.slice(p.length + 1)
        if (topic === 'fence') fenced.add(g)
        else got.get(g)!.push(topic)
      })
    }
    const topics = [
      'order.created',
      'order.item.added',
      'order',
      'trip.event.started',
      'trip.event.x.y',
      'orders.created',
    ]
    for (const topic of topics) await t.publish(`${p}.${topic}`, [c.envelope({ topic })])
    await t.publish(`${p}.fence`, [c.envelope({ fence: true })])
    await c.waitUntil(() => fenced.size === 4, 'every group to pass the fence')
    expect(got.get('g1')!.sort()).toEqual(['order.created'])
    expect(got.get('g2')!.sort()).toEqual(['order', 'order.created', 'order.item.added'])
    expect(got.get('g3')).toEqual(['order.created'])
    expect(got.get('g4')).toEqual(['trip.event.started'])
    c.report('topic-pattern-routing')
  })

  it('many-topics-in-parallel: no cross-topic delivery', async () => {
    const c = ctx()
    const t = await c.open()
    const leaks: string[] = []
    await Promise.all(
      Array.from({ length: 20 }, async (_, n) => {
        const topic = c.unique(`t${n}`)
        await c.consume(t, { group: c.unique(`g${n}`), patterns: [topic] }, async (e, d) => {
          if (d.topic !== topic || (c.payloadOf(e) as { topic: string }).topic !== topic) leaks.push(e.id)
        })
        const sent = Array.from({ length: 100 }, (_, i) => c.envelope({ topic, i }))
        await c.publishAll(t, topic, sent)
        await c.waitForCompleted(sent.map((e) => e.id))
      }),
    )
    expect(leaks).toEqual([])
    c.report('many-topics-in-parallel')
  })

  it('per-key-order: one consumer with one handler at a time sees publish order', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    await (await t.subscribe({ group, patterns: [topic] }, async () => {})).close()
    // Where only a key orders messages, they all share one.
    const keyed = features.orderWithoutKey === false ? { partitionkey: 'one-key' } : {}
    const sent = Array.from({ length: 1_000 }, (_, i) => c.envelope({ i, key: i % 16 }, keyed))
    for (const e of sent) {
      c.history.attempted(e.id)
      await t.publish(topic, [e])
      c.history.ok(e.id)
    }
    const order: number[] = []
    await c.consume(t, { group, patterns: [topic], maxInFlight: 1 }, async (e) => {
      order.push((c.payloadOf(e) as { i: number }).i)
    })
    await c.waitForCompleted(sent.map((e) => e.id))
    expect(order).toEqual(sent.map((_, i) => i))
    c.report('per-key-order')
  })

  it('in-flight-limit-blocks-delivery', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    const latch = createLatch()
    let running = 0
    let maxRunning = 0
    await c.consume(t, { group, patterns: [topic], maxInFlight: 1 }, async () => {
      maxRunning = Math.max(maxRunning, ++running)
      await latch.wait
      running--
    })
    const [first, second] = [c.envelope({ n: 1 }), c.envelope({ n: 2 })]
    await c.publishAll(t, topic, [first, second])
    await c.waitUntil(() => c.history.deliveriesOf(first.id) === 1, 'first delivery')
    // Give the transport every chance to (wrongly) hand out the second message.
    for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
    expect(c.history.deliveriesOf(second.id)).toBe(0)
    latch.open()
    await c.waitForCompleted([first.id, second.id])
    expect(maxRunning).toBe(1)
    c.report('in-flight-limit-blocks-delivery')
  })

  it('nack-redelivers: with the attempt number counted', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    const sent = Array.from({ length: 100 }, (_, i) => c.envelope({ i }))
    const nacked = new Set([sent[3]!.id, sent[70]!.id])
    const attempts = new Map<string, number[]>()
    await c.consume(
      t,
      { group, patterns: [topic], retry: { maxAttempts: 5, backoff: { initialMs: 0, maxMs: 0, jitter: 0 } } },
      async (e, d) => {
        attempts.set(e.id, [...(attempts.get(e.id) ?? []), d.attempt])
        if (nacked.has(e.id) && d.attempt === 1) throw new Error('nack')
      },
    )
    await c.publishAll(t, topic, sent)
    await c.waitForCompleted(sent.map((e) => e.id))
    for (const e of sent) expect(attempts.get(e.id)).toEqual(nacked.has(e.id) ? [1, 2] : [1])
    c.report('nack-redelivers', { duplicates: 2 })
  })

  if (features.persistent)
    it('subscriber-churn-loses-nothing', async () => {
      const c = ctx()
      const [topic, group] = [c.unique('t'), c.unique('g')]
      const publisher = await c.open()
      await (await publisher.subscribe({ group, patterns: [topic] }, async () => {})).close()
      const sent = Array.from({ length: scale(2_500) }, (_, i) => c.envelope({ i }))
      await c.publishAll(publisher, topic, sent)
      for (let round = 0; round < 5; round++) {
        const t = await c.open()
        const target = c.history.counts.completed + 400
        const sub = await c.consume(t, { group, patterns: [topic], maxInFlight: 8 })
        await c.waitUntil(() => c.history.counts.completed >= Math.min(target, sent.length), `round ${round}`)
        await sub.close()
        await t.close()
      }
      await c.consume(await c.open(), { group, patterns: [topic] })
      await c.waitForCompleted(sent.map((e) => e.id))
      c.report('subscriber-churn-loses-nothing')
    })

  it('concurrent-open-close: leaves the group working', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const sub = await t.subscribe({ group, patterns: [topic] }, async () => {})
        await sub.close()
        await sub.close()
      }),
    )
    const sent = Array.from({ length: 50 }, (_, i) => c.envelope({ i }))
    await c.publishAll(t, topic, sent)
    await c.consume(t, { group, patterns: [topic] })
    await c.waitForCompleted(sent.map((e) => e.id))
    c.report('concurrent-open-close')
  })

  it('graceful-shutdown-drains: close drains running handlers, starts no new one, and leaves the rest queued', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    const latch = createLatch()
    let running = 0
    let startedAfterClose = 0
    let closing = false
    const sub: Subscription = await c.consume(t, { group, patterns: [topic], maxInFlight: 5 }, async () => {
      if (closing) startedAfterClose++
      running++
      await latch.wait
    })
    const sent = Array.from({ length: 20 }, (_, i) => c.envelope({ i }))
    await c.publishAll(t, topic, sent)
    await c.waitUntil(() => running === 5, 'five running handlers')
    closing = true
    const closed = sub.close()
    latch.open()
    const report = await closed
    expect(report).toEqual({ drained: 5, abandoned: 0 })
    expect(startedAfterClose).toBe(0)
    expect(c.history.counts.completed).toBe(5)
    await c.consume(t, { group, patterns: [topic] })
    await c.waitForCompleted(sent.map((e) => e.id))
    c.report('graceful-shutdown-drains')
  })

  it('parallel-publishers-no-loss', async () => {
    const c = ctx()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    const t = await c.open()
    await (await t.subscribe({ group, patterns: [topic] }, async () => {})).close()
    const sent = Array.from({ length: scale(5_000) }, (_, i) => c.envelope({ i }))
    const publishers = await Promise.all(Array.from({ length: 4 }, () => c.open()))
    await Promise.all(
      publishers.map((p, n) =>
        c.publishAll(
          p,
          topic,
          sent.filter((_, i) => i % publishers.length === n),
        ),
      ),
    )
    await c.consume(t, { group, patterns: [topic], maxInFlight: 50 })
    await c.waitForCompleted(sent.map((e) => e.id))
    c.report('parallel-publishers-no-loss')
  })

  it('publisher-close-while-publishing: every publish settles ok or closed', async () => {
    const c = ctx()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    const t = await c.open()
    await (await t.subscribe({ group, patterns: [topic] }, async () => {})).close()
    const sent = Array.from({ length: 1_000 }, (_, i) => c.envelope({ i }))
    const okIds: string[] = []
    const outcomes = sent.map((e, i) => {
      c.history.attempted(e.id)
      const publishing = t.publish(topic, [e]).then(
        () => {
          c.history.ok(e.id)
          okIds.push(e.id)
        },
        (err: unknown) => {
          expect(isHeraldError(err, 'TRANSPORT_CLOSED'), String(err)).toBe(true)
          c.history.failed(e.id)
        },
      )
      if (i === 499) void t.close()
      return publishing
    })
    await Promise.all(outcomes)
    expect(okIds.length).toBeGreaterThan(0)
    if (features.persistent) {
      await c.consume(await c.open(), { group, patterns: [topic] })
      await c.waitForCompleted(okIds)
      c.report('publisher-close-while-publishing')
    }
  })

  it("topology admin (the messaging API's topics): declare, list, unbind one pattern, delete", async () => {
    const c = ctx()
    const t = await c.open()
    if (!isTopologyAdmin(t)) throw new Error(`${t.name} has no topology admin`)
    const [a, b, group] = [c.unique('ta'), c.unique('tb'), c.unique('g')]
    const find = async () => (await t.listGroups()).find((g) => g.group === group)
    await t.declareGroup(group, [a, b])
    expect([...((await find())?.patterns ?? [])].sort()).toEqual([a, b].sort())
    await t.publish(a, [c.envelope({ n: 1 })])
    await pollUntil(async () => (await find())?.depth === 1)

    await t.unbindGroup(group, [a])
    expect((await find())?.patterns).toEqual([b])
    const unrouted = await t.publish(a, [c.envelope({ n: 2 })], { mandatory: true }).then(
      () => 'sent',
      (err: unknown) => (isHeraldError(err, 'NO_ROUTE') ? 'no route' : String(err)),
    )
    expect(unrouted).toBe('no route')
    await t.publish(b, [c.envelope({ n: 3 })])
    // The message queued for the unbound pattern is kept, or (declared) goes with the pattern.
    await pollUntil(async () => (await find())?.depth === (features.unbindKeepsQueued === false ? 1 : 2))

    // Where the transport reports them: the backlog not yet due, and the wait of the oldest due message.
    if (isScheduler(t)) {
      await t.schedule(b, [c.envelope({ n: 4 })], Date.now() + 3_600_000)
      await pollUntil(async () => {
        const info = await find()
        return info?.scheduled === undefined || info.scheduled === 1
      })
    }
    // Two messages due and no consumer: the lag grows.
    await pollUntil(async () => {
      const info = await find()
      return info?.oldestDueAgeMs === undefined || info.oldestDueAgeMs > 0
    })

    await t.deleteGroup(group)
    expect(await find()).toBeUndefined()
  })
}
