import { PermanentError } from '@herald/core'
import { expect, it } from 'vitest'
import type { TransportFeatures } from '../harness.js'
import { measureHeapGrowth } from '../heap-growth.js'
import { createLatch } from '../latch.js'
import { pollUntil } from '../wait-for.js'
import { fastRetry, type SuiteContext, scale } from './context.js'

/** Conformance (docs/reliability.md): retries, backoff, dead letters, redrive, backpressure, shutdown. */
export function failureCases(ctx: () => SuiteContext, features: TransportFeatures): void {
  it('retry-then-succeed: failing twice means three deliveries, attempts 1, 2, 3', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    const sent = Array.from({ length: 200 }, (_, i) => c.envelope({ i }))
    const flaky = new Set(sent.filter((_, i) => i % 10 === 0).map((e) => e.id))
    const attempts = new Map<string, number[]>()
    await c.consume(t, { group, patterns: [topic], retry: fastRetry }, async (e, d) => {
      attempts.set(e.id, [...(attempts.get(e.id) ?? []), d.attempt])
      if (flaky.has(e.id) && d.attempt <= 2) throw new Error(`flaky ${e.id}`)
    })
    await c.publishAll(t, topic, sent)
    await c.waitForCompleted(sent.map((e) => e.id))
    for (const e of sent) expect(attempts.get(e.id)).toEqual(flaky.has(e.id) ? [1, 2, 3] : [1])
    expect((await c.deadLetters(t).listDeadLetters({ group })).items).toEqual([])
    c.report('retry-then-succeed', { duplicates: flaky.size * 2 })
  })

  it('retry-exhaustion-dead-letters-with-reason: with its attempts and last error', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    const sent = Array.from({ length: 510 }, (_, i) => c.envelope({ i }, { 'x-original': String(i) }))
    const poison = new Set(sent.filter((_, i) => i % 51 === 0).map((e) => e.id))
    await c.consume(t, { group, patterns: [topic], retry: fastRetry }, async (e) => {
      if (poison.has(e.id)) throw new Error(`boom ${e.id}`)
    })
    await c.publishAll(t, topic, sent)
    const store = c.deadLetters(t)
    await c.waitForCompleted(sent.filter((e) => !poison.has(e.id)).map((e) => e.id))
    await c.waitUntil(() => [...poison].every((id) => c.history.deliveriesOf(id) === 5), 'five deliveries per poison')
    await pollUntil(async () => (await store.listDeadLetters({ group, limit: 100 })).items.length === poison.size)
    const letters = (await store.listDeadLetters({ group, limit: 100 })).items
    expect(letters.map((l) => l.envelope.id).sort()).toEqual([...poison].sort())
    for (const letter of letters) {
      const original = sent.find((e) => e.id === letter.envelope.id)!
      expect(letter).toMatchObject({ reason: 'handler_error', attempts: 5, topic, group })
      expect(letter.error?.message).toBe(`boom ${letter.envelope.id}`)
      expect(letter.error?.stack).toContain('boom')
      expect(letter.firstFailedAt).toBeLessThanOrEqual(letter.lastFailedAt)
      expect(letter.envelope.headers).toEqual(original.headers)
      expect(Buffer.from(letter.envelope.body).equals(Buffer.from(original.body))).toBe(true)
      c.history.deadLettered(letter.envelope.id)
    }
    c.report('retry-exhaustion-dead-letters-with-reason', { duplicates: poison.size * 4 })
  })

  it('backoff-schedule: redeliveries never early, jitter applied', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    const backoff = { initialMs: 100, factor: 2, maxMs: 400, jitter: 0.2 }
    const times = new Map<string, number[]>()
    await c.consume(t, { group, patterns: [topic], maxInFlight: 20, retry: { maxAttempts: 4, backoff } }, async (e) => {
      times.set(e.id, [...(times.get(e.id) ?? []), performance.now()])
      throw new Error('always')
    })
    const sent = Array.from({ length: 20 }, (_, i) => c.envelope({ i }))
    await c.publishAll(t, topic, sent)
    await c.waitUntil(() => sent.every((e) => c.history.deliveriesOf(e.id) === 4), 'four deliveries each')
    const gapsByAttempt: number[][] = [[], [], []]
    for (const e of sent) {
      const ts = times.get(e.id)!
      for (let n = 1; n < ts.length; n++) {
        const gap = ts[n]! - ts[n - 1]!
        const floor = Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** (n - 1)) * (1 - backoff.jitter)
        expect(gap, `gap before attempt ${n + 1}`).toBeGreaterThanOrEqual(floor - 2)
        gapsByAttempt[n - 1]!.push(Math.round(gap))
      }
    }
    expect(new Set(gapsByAttempt[0]).size, 'jitter spreads the first redelivery').toBeGreaterThan(1)
    for (const e of sent) c.history.deadLettered(e.id)
    c.report('backoff-schedule', { duplicates: 'any' })
  })

  if (features.persistent)
    it('retry-state-survives-restart: attempts continue, delays hold', async () => {
      const c = ctx()
      const [topic, group] = [c.unique('t'), c.unique('g')]
      const backoff = { initialMs: 300, factor: 1, maxMs: 300, jitter: 0 }
      const spec = { group, patterns: [topic], retry: { maxAttempts: 5, backoff } }
      const times: number[] = []
      const attempts: number[] = []
      const failing = async (_e: unknown, d: { attempt: number }) => {
        times.push(Date.now())
        attempts.push(d.attempt)
        throw new Error('always')
      }
      const first = await c.open()
      await c.consume(first, spec, failing)
      const message = c.envelope({ poison: true })
      await c.publishAll(first, topic, [message])
      await c.waitUntil(() => attempts.length === 2, 'two attempts')
      await first.close()
      const second = await c.open()
      await c.consume(second, spec, failing)
      await c.waitUntil(() => attempts.length === 5, 'five attempts in all')
      expect(attempts).toEqual([1, 2, 3, 4, 5])
      expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(backoff.initialMs - 2)
      const store = c.deadLetters(second)
      await pollUntil(async () => (await store.getDeadLetter(message.id, group)) !== undefined)
      const letter = await store.getDeadLetter(message.id, group)
      expect(letter?.attempts).toBe(5)
      c.history.deadLettered(message.id)
      c.report('retry-state-survives-restart', { duplicates: 4 })
    })

  it('permanent-error-dead-letters-immediately', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    await c.consume(t, { group, patterns: [topic], retry: fastRetry }, async () => {
      throw new PermanentError('bad state')
    })
    const message = c.envelope({ n: 1 })
    await c.publishAll(t, topic, [message])
    const store = c.deadLetters(t)
    await c.waitUntil(() => c.history.deliveriesOf(message.id) === 1, 'one delivery')
    await pollUntil(async () => (await store.getDeadLetter(message.id))?.reason === 'permanent_error')
    expect(await store.getDeadLetter(message.id)).toMatchObject({ attempts: 1, error: { message: 'bad state' } })
    expect(c.history.deliveriesOf(message.id)).toBe(1)
    c.history.deadLettered(message.id)
    c.report('permanent-error-dead-letters-immediately')
  })

  it('dlq-inspect-redrive-purge: filters, disjoint pages, redrive keeps the id', async () => {
    const c = ctx()
    const t = await c.open()
    const [topicA, topicB, group] = [c.unique('ta'), c.unique('tb'), c.unique('g')]
    let broken = true
    const sub = await c.consume(t, { group, patterns: [topicA, topicB], retry: fastRetry }, async () => {
      if (broken) throw new PermanentError('not yet')
    })
    const a = Array.from({ length: 15 }, (_, i) => c.envelope({ i }))
    const b = Array.from({ length: 15 }, (_, i) => c.envelope({ i }))
    await c.publishAll(t, topicA, a)
    await c.publishAll(t, topicB, b)
    const store = c.deadLetters(t)
    await pollUntil(async () => (await store.listDeadLetters({ group, limit: 100 })).items.length === 30)
    await sub.close()
    const pages: string[][] = []
    let cursor: string | undefined
    do {
      const page = await store.listDeadLetters(
        cursor === undefined ? { group, limit: 10 } : { group, limit: 10, cursor },
      )
      pages.push(page.items.map((l) => l.envelope.id))
      cursor = page.nextCursor
    } while (cursor !== undefined)
    expect(pages.map((p) => p.length)).toEqual([10, 10, 10])
    expect(new Set(pages.flat()).size).toBe(30)
    expect((await store.listDeadLetters({ group, topic: topicA, limit: 100 })).items).toHaveLength(15)
    expect((await store.listDeadLetters({ group, reason: 'handler_error' })).items).toHaveLength(0)
    expect((await store.listDeadLetters({ group, until: Date.now() + 1, since: 0, limit: 100 })).items).toHaveLength(30)
    broken = false
    const attemptsAfterRedrive: number[] = []
    await c.consume(t, { group, patterns: [topicA, topicB] }, async (_e, d) => {
      attemptsAfterRedrive.push(d.attempt)
    })
    expect(await store.redriveDeadLetters({ ids: [a[0]!.id] })).toBe(1)
    expect(await store.redriveDeadLetters({ group, topic: topicA })).toBe(14)
    await c.waitForCompleted(a.map((e) => e.id))
    expect(attemptsAfterRedrive).toEqual(new Array(15).fill(1))
    expect(await store.purgeDeadLetters({ group, ids: [b[0]!.id, b[1]!.id] })).toBe(2)
    expect((await store.listDeadLetters({ group, limit: 100 })).items).toHaveLength(13)
    expect(await store.purgeDeadLetters({ group })).toBe(13)
    for (const e of b) c.history.deadLettered(e.id)
    c.report('dlq-inspect-redrive-purge', { duplicates: 15 })
  })

  it('poison-does-not-block-others', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    const poison = c.envelope({ poison: true })
    const good = Array.from({ length: 1_000 }, (_, i) => c.envelope({ i }))
    const retry = { maxAttempts: 10, backoff: { initialMs: 200, factor: 1, maxMs: 200, jitter: 0 } }
    await c.consume(t, { group, patterns: [topic], retry }, async (e) => {
      if (e.id === poison.id) throw new Error('poison')
    })
    await c.publishAll(t, topic, [poison, ...good])
    await c.waitForCompleted(good.map((e) => e.id))
    expect(c.history.deliveriesOf(poison.id)).toBeLessThan(10)
    c.history.completed(poison.id)
    c.report('poison-does-not-block-others', { duplicates: 'any' })
  })

  it('slow-consumer-backpressure: concurrency never exceeds maxInFlight', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    let running = 0
    let highWater = 0
    await c.consume(t, { group, patterns: [topic], maxInFlight: 10 }, async () => {
      highWater = Math.max(highWater, ++running)
      await new Promise((resolve) => setTimeout(resolve, 1))
      running--
    })
    const sent = Array.from({ length: 2_000 }, (_, i) => c.envelope({ i }))
    await c.publishAll(t, topic, sent)
    await c.waitForCompleted(sent.map((e) => e.id))
    expect(highWater).toBe(10)
    c.report('slow-consumer-backpressure')
  })

  it('consumer-memory-is-flat: after 100,000 messages a consumer holds nothing per message', async () => {
    const c = ctx()
    const t = await c.open()
    const growth = await measureHeapGrowth(t, { messages: scale(100_000), group: c.unique('g') })
    console.log(
      `[${t.name}] 60m consumer-memory-is-flat: live heap ${growth.warmBytes} B after the first tenth, ` +
        `${growth.endBytes} B at the end, ${growth.bytesPerMessage.toFixed(2)} B per message`,
    )
    // Anything kept per message costs at least 16 B (the smallest object and a reference to it; an id kept in a
    // map is about 65). A client's one-time growth passes: RabbitMQ grew by 4.6 B per message over 100,000 and by
    // -0.1 over 300,000.
    expect(growth.bytesPerMessage).toBeLessThan(16)
  })

  it('shutdown-timeout-abandons-without-loss: abandoned work is neither acked nor dead-lettered', async () => {
    const c = ctx()
    const t = await c.open()
    const [topic, group] = [c.unique('t'), c.unique('g')]
    const stuck = createLatch()
    let running = 0
    const sub = await t.subscribe({ group, patterns: [topic], maxInFlight: 5, shutdownTimeoutMs: 200 }, async (e) => {
      c.history.delivered(e.id)
      running++
      await stuck.wait
    })
    const sent = Array.from({ length: 5 }, (_, i) => c.envelope({ i }))
    await c.publishAll(t, topic, sent)
    await c.waitUntil(() => running === 5, 'five stuck handlers')
    expect(await sub.close()).toEqual({ drained: 0, abandoned: 5 })
    stuck.open()
    await c.consume(t, { group, patterns: [topic] })
    await c.waitForCompleted(sent.map((e) => e.id))
    expect((await c.deadLetters(t).listDeadLetters({ group })).items).toEqual([])
    c.report('shutdown-timeout-abandons-without-loss', { duplicates: 5 })
  })
}

/** Re-checks an external condition (a store query) until it holds; a liveness limit, not a timer. */
