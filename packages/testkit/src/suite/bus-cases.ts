import {
  createBus,
  createJsonCodec,
  type DeadLetterReason,
  defineEvent,
  type Envelope,
  HeaderNames,
  isHeraldError,
  type Transport,
  uuidV7,
} from '@herald/core'
import { expect, it } from 'vitest'
import type { TransportFeatures } from '../harness.js'
import { createLatch } from '../latch.js'
import { pollUntil } from '../wait-for.js'
import type { SuiteContext } from './context.js'
import { objectSchema } from './test-schema.js'

const encoder = new TextEncoder()

/** Cases through the typed bus: propagation, timeouts, bad input, delays (docs/reliability.md). */
export function busCases(ctx: () => SuiteContext, features: TransportFeatures): void {
  const fast = { immediateRetries: 0, retry: { maxAttempts: 5, backoff: { initialMs: 20, maxMs: 100 } } }

  function contracts(prefix: string) {
    return {
      order: defineEvent(`${prefix}.order.placed`, {
        version: 2,
        schema: objectSchema({ orderId: 'string', amount: 'number' }),
        upcasters: {
          1: (v1) => {
            const old = v1 as { orderId: string; cents?: number; explode?: boolean }
            if (old.explode) throw new Error('cannot upcast')
            return { orderId: old.orderId, amount: (old.cents ?? 0) / 100 }
          },
        },
      }),
      shipped: defineEvent(`${prefix}.order.shipped`, { schema: objectSchema({ orderId: 'string' }) }),
      known: defineEvent(`${prefix}.order.audited`, { schema: objectSchema({ orderId: 'string' }) }),
    }
  }

  function raw(type: string | undefined, body: Uint8Array | string, headers: Record<string, string> = {}): Envelope {
    const base: Record<string, string> = type === undefined ? {} : { [HeaderNames.type]: type }
    return {
      id: uuidV7(),
      headers: { ...base, ...headers },
      body: typeof body === 'string' ? encoder.encode(body) : body,
    }
  }

  it('headers-trace-and-causation-propagate: correlation, causation and trace context flow from a message to what its handler publishes', async () => {
    const c = ctx()
    const t = await c.open()
    const p = c.unique('p')
    const { order, shipped } = contracts(p)
    const bus = createBus({ transport: t, service: 'orders', consumer: fast })
    const seenShipped: {
      correlationId: string
      causationId: string | undefined
      trace: string | undefined
      attempt: number
    }[] = []
    bus.on(order, async (message, context) => {
      await context.publish(shipped, { orderId: message.data.orderId })
    })
    bus.group(`${p}-shipping`, fast).on(shipped, async (message, context) => {
      seenShipped.push({
        correlationId: message.correlationId,
        causationId: message.causationId,
        trace: message.headers[HeaderNames.traceParent],
        attempt: context.attempt,
      })
      if (context.attempt === 1) throw new Error('first attempt fails')
    })
    await bus.start()
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    const orderId = await bus.publish(
      order,
      { orderId: 'o-1', amount: 5 },
      { correlationId: 'flow-1', headers: { traceparent } },
    )
    await c.waitUntil(() => seenShipped.length === 2, 'the shipped event, retried once')
    for (const seen of seenShipped)
      expect(seen).toMatchObject({ correlationId: 'flow-1', causationId: orderId, trace: traceparent })
    expect(seenShipped.map((s) => s.attempt)).toEqual([1, 2])
    await bus.stop()
    c.report('headers-trace-and-causation-propagate')
  })

  it('handler-timeout: aborts the attempt, retries, and a late finish settles nothing', async () => {
    const c = ctx()
    const t = await c.open()
    const p = c.unique('p')
    const { shipped } = contracts(p)
    const bus = createBus({ transport: t, service: `${p}-svc`, consumer: { ...fast, handlerTimeoutMs: 100 } })
    const release = createLatch()
    const aborted: boolean[] = []
    let calls = 0
    bus.on(shipped, async (_message, context) => {
      calls++
      if (context.attempt === 1) {
        await release.wait
        aborted.push(context.signal.aborted)
      }
    })
    await bus.start()
    await bus.publish(shipped, { orderId: 'slow' })
    await c.waitUntil(() => calls === 2, 'a second attempt after the timeout')
    release.open()
    await c.waitUntil(() => aborted.length === 1, 'the first attempt to finish late')
    expect(aborted).toEqual([true])
    await bus.stop()
    expect(calls).toBe(2)
    c.report('handler-timeout')
  })

  it('many-in-flight-no-process-warning: 500 handlers at once over 10,000 messages print no process warning', async () => {
    const c = ctx()
    const t = await c.open()
    const p = c.unique('p')
    const { shipped } = contracts(p)
    const warnings: string[] = []
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`)
    process.on('warning', onWarning)
    try {
      const bus = createBus({ transport: t, service: `${p}-svc`, consumer: { ...fast, maxInFlight: 500 } })
      const total = 10_000
      let running = 0
      let mostAtOnce = 0
      let done = 0
      const all = createLatch()
      bus.on(shipped, async (message, context) => {
        c.history.delivered(message.id)
        running++
        mostAtOnce = Math.max(mostAtOnce, running)
        // Reading the signal is what a handler that passes it to fetch() does: it must not cost a listener.
        if (context.signal.aborted) throw new Error('aborted early')
        await new Promise((resolve) => setImmediate(resolve))
        running--
        c.history.completed(message.id)
        if (++done === total) all.open()
      })
      await bus.start()
      for (let sent = 0; sent < total; sent += 500) {
        const ids = await Promise.all(
          Array.from({ length: 500 }, (_, i) => bus.publish(shipped, { orderId: `o-${sent + i}` })),
        )
        for (const id of ids) {
          c.history.attempted(id)
          c.history.ok(id)
        }
      }
      await all.wait
      await bus.stop()
      // Warnings are emitted on the next tick: let one pass before looking.
      await new Promise((resolve) => setImmediate(resolve))
      expect(warnings).toEqual([])
      expect(mostAtOnce).toBeGreaterThan(10)
      c.report('many-in-flight-no-process-warning')
    } finally {
      process.off('warning', onWarning)
    }
  })

  it('bad-input-dead-lettered: bad input reaches the dead-letter queue after one delivery, with its reason, while good messages flow', async () => {
    const c = ctx()
    const [t1, t2] = [await c.open(), await c.open()]
    const p = c.unique('p')
    const { order, known } = contracts(p)
    const group = `${p}-svc`
    const limit = 4 * 1024
    const buses = [t1, t2].map((transport) =>
      createBus({
        transport,
        service: group,
        contracts: [known],
        consumer: fast,
        codec: createJsonCodec({ maxMessageBytes: limit }),
      }),
    )
    const handled: string[] = []
    for (const bus of buses)
      bus.on(order, async (message) => {
        c.history.delivered(message.id)
        handled.push(message.data.orderId)
        c.history.completed(message.id)
      })
    for (const bus of buses) await bus.start()

    const v = (n: string) => ({ [HeaderNames.schemaVersion]: n })
    const bad: [string, Envelope, DeadLetterReason][] = [
      ['truncated JSON', raw(order.type, '{"orderId":1,'), 'decode_error'],
      ['invalid UTF-8', raw(order.type, new Uint8Array([0xff, 0xfe])), 'decode_error'],
      ['random bytes', raw(order.type, globalThis.crypto.getRandomValues(new Uint8Array(1024))), 'decode_error'],
      ['NaN', raw(order.type, 'NaN'), 'decode_error'],
      ['bare word', raw(order.type, 'hello'), 'decode_error'],
      ['empty body', raw(order.type, new Uint8Array()), 'decode_error'],
      ['schema-invalid', raw(order.type, '{"orderId":1,"amount":2}', v('2')), 'schema_validation'],
      ['missing field', raw(order.type, '{"orderId":"o"}', v('2')), 'schema_validation'],
      ['unknown type', raw(`${p}.order.teleported`, '{}'), 'unknown_type'],
      ['known type, no handler here', raw(known.type, '{"orderId":"o"}'), 'no_handler'],
      ['newer version', raw(order.type, '{"orderId":"o","amount":1}', v('3')), 'unsupported_version'],
      ['non-integer version', raw(order.type, '{"orderId":"o","amount":1}', v('two')), 'decode_error'],
      ['throwing upcaster', raw(order.type, '{"orderId":"o","explode":true}', v('1')), 'upcast_error'],
      ['oversized', raw(order.type, JSON.stringify({ orderId: 'x'.repeat(limit), amount: 1 })), 'too_large'],
      ['no type header', raw(undefined, '{}'), 'envelope_invalid'],
    ]
    const good: string[] = []
    for (const [name, envelope] of bad) {
      for (let i = 0; i < 70; i++) {
        const orderId = `${name}-${i}`
        good.push(orderId)
        const id = await buses[i % 2]!.publish(order, { orderId, amount: i })
        c.history.attempted(id)
        c.history.ok(id)
      }
      c.history.attempted(envelope.id)
      await c.harness.injectRaw(group, order.topic, envelope)
      c.history.ok(envelope.id)
    }
    const upcasted = raw(order.type, '{"orderId":"from-v1","cents":250}', v('1'))
    c.history.attempted(upcasted.id)
    await c.harness.injectRaw(group, order.topic, upcasted)
    c.history.ok(upcasted.id)
    good.push('from-v1')
    await c.waitUntil(() => good.every((id) => handled.includes(id)), 'every good message handled', 60_000)
    const store = c.deadLetters(t1)
    await pollUntil(async () => (await store.listDeadLetters({ group, limit: 100 })).items.length === bad.length)
    for (const [name, envelope, reason] of bad) {
      const letter = await store.getDeadLetter(envelope.id, group)
      expect(letter, name).toMatchObject({ reason, attempts: 1 })
      expect(
        Buffer.from(letter!.envelope.body).equals(Buffer.from(envelope.body)),
        `${name}: original bytes kept`,
      ).toBe(true)
      c.history.deadLettered(envelope.id)
    }
    const schemaLetter = await store.getDeadLetter(bad[6]![1].id, group)
    expect(schemaLetter?.error?.details).toMatchObject({ issues: [{ path: ['orderId'] }] })
    expect(handled.filter((id) => id === 'from-v1')).toHaveLength(1)
    expect(handled).toHaveLength(good.length)
    await Promise.all(buses.map((b) => b.stop()))
    c.report('bad-input')
  })

  it('publish-side-validation: invalid data, oversized messages and CR/LF/NUL in headers are refused before anything is sent', async () => {
    const c = ctx()
    const t = await c.open()
    const p = c.unique('p')
    const { shipped } = contracts(p)
    const bus = createBus({ transport: t, service: `${p}-svc`, codec: createJsonCodec({ maxMessageBytes: 256 }) })
    const received: string[] = []
    bus.on(shipped, async (m) => {
      c.history.delivered(m.id)
      received.push(m.data.orderId)
      c.history.completed(m.id)
    })
    await bus.start()
    const invalid = await bus.publish(shipped, { orderId: 7 } as never).catch((e: unknown) => e)
    expect(isHeraldError(invalid, 'VALIDATION_FAILED')).toBe(true)
    expect(String(invalid)).toMatch(/orderId: expected string/)
    const oversized = bus.publish(shipped, { orderId: 'x'.repeat(300) }).catch((e: unknown) => e)
    const normal = Array.from({ length: 100 }, (_, i) =>
      publishTracked(c, bus.publish(shipped, { orderId: `ok-${i}` })),
    )
    expect(isHeraldError(await oversized, 'MESSAGE_TOO_LARGE')).toBe(true)
    // CR, LF and NUL would split a header line or end a C string downstream: refused, nothing sent.
    const unsafe: [string, Record<string, unknown>][] = [
      ['header value with CRLF', { headers: { 'x-note': 'a\r\nx-injected: 1' } }],
      ['header value with NUL', { headers: { 'x-note': 'a\u0000b' } }],
      ['header name with LF', { headers: { 'x-a\nb': 'v' } }],
      ['empty header name', { headers: { '': 'v' } }],
      ['subject with CR', { subject: 'a\rb' }],
      ['correlation id with LF', { correlationId: 'c\n1' }],
      ['causation id with NUL', { causationId: 'c\u00001' }],
      ['partition key with LF', { partitionKey: 'k\n' }],
      ['message id with CRLF', { id: 'm\r\n1' }],
      ['empty message id', { id: '' }],
    ]
    for (const [what, options] of unsafe) {
      const refused = await bus.publish(shipped, { orderId: `unsafe ${what}` }, options).catch((e: unknown) => e)
      expect(isHeraldError(refused, 'HEADER_INVALID'), what).toBe(true)
    }
    await Promise.all(normal)
    await c.waitUntil(() => received.length === 100, '100 normal messages')
    expect(received.some((id) => id.startsWith('xxx') || id.startsWith('unsafe'))).toBe(false)
    await bus.stop()
    c.report('publish-side-validation')
  })

  it('delay-never-early: delayed messages are never early, and a short delay is not stuck behind a long one', async () => {
    const c = ctx()
    const t = await c.open()
    const p = c.unique('p')
    const { shipped } = contracts(p)
    const bus = createBus({ transport: t, service: `${p}-svc` })
    const arrivals = new Map<string, number>()
    bus.on(shipped, async (m) => {
      c.history.delivered(m.id)
      arrivals.set(m.data.orderId, Date.now())
      c.history.completed(m.id)
    })
    await bus.start()
    const due = new Map<string, number>()
    // Due times are fixed before publishing: a delay counts from the publish call.
    due.set('long', Date.now() + 1_500)
    await publishTracked(c, bus.publish(shipped, { orderId: 'long' }, { deliverAt: due.get('long')! }))
    due.set('short', Date.now() + 300)
    await publishTracked(c, bus.publish(shipped, { orderId: 'short' }, { delayMs: 300 }))
    for (let i = 0; i < 50; i++) {
      const delayMs = Math.floor(Math.random() * 1_000)
      const at = Date.now() + delayMs
      await publishTracked(c, bus.publish(shipped, { orderId: `d${i}` }, { deliverAt: at }))
      due.set(`d${i}`, at)
    }
    await c.waitUntil(() => arrivals.size === due.size, 'every delayed message', 30_000)
    for (const [id, at] of due) expect(arrivals.get(id)!, id).toBeGreaterThanOrEqual(at - 1)
    expect(arrivals.get('short')!).toBeLessThan(arrivals.get('long')!)
    await bus.stop()
    c.report('delay-never-early')
  })

  if (features.persistent)
    it('delayed-survives-restart: a delay published before a restart fires after it, not early', async () => {
      const c = ctx()
      const p = c.unique('p')
      const { shipped } = contracts(p)
      const first = await c.open()
      const producer = createBus({ transport: first, service: `${p}-svc` })
      producer.on(shipped, async () => {})
      await producer.start()
      await producer.stop()
      const due = Date.now() + 500
      await producer.publish(shipped, { orderId: 'later' }, { deliverAt: due })
      await first.close()
      const second: Transport = await c.open()
      const consumer = createBus({ transport: second, service: `${p}-svc` })
      let arrivedAt = 0
      consumer.on(shipped, async () => {
        arrivedAt = Date.now()
      })
      await consumer.start()
      await c.waitUntil(() => arrivedAt > 0, 'the delayed message after restart')
      expect(arrivedAt).toBeGreaterThanOrEqual(due)
      await consumer.stop()
      c.report('delayed-survives-restart')
    })
}

/** Records a bus publish in the history: ok once the transport accepted it (the id is known only then). */
async function publishTracked(c: SuiteContext, publishing: Promise<string>): Promise<void> {
  const id = await publishing
  c.history.attempted(id)
  c.history.ok(id)
}
