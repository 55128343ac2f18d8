import {
  createBus,
  defineCommand,
  HeaderNames,
  isHeraldError,
  isTopologyAdmin,
  PermanentError,
  uuidV7,
} from '@herald/core'
import { expect, it } from 'vitest'
import { createLatch } from '../latch.js'
import { pollUntil } from '../wait-for.js'
import type { SuiteContext } from './context.js'
import { objectSchema } from './test-schema.js'

const encoder = new TextEncoder()

/** Request and reply through the bus (docs/reliability.md, section E). */
export function requestCases(ctx: () => SuiteContext): void {
  function stockCheck(prefix: string) {
    return defineCommand(`${prefix}.stock.check`, {
      schema: objectSchema({ item: 'string', wanted: 'number' }),
      reply: objectSchema({ item: 'string', available: 'number' }),
    })
  }

  it('request-reply: 200 concurrent requests from two services, answered by two consumers, each gets its own reply', async () => {
    const c = ctx()
    const p = c.unique('p')
    const check = stockCheck(p)
    const warnings: Error[] = []
    const onWarning = (w: Error) => warnings.push(w)
    process.on('warning', onWarning)
    const stock = [createBus({ transport: await c.open(), service: `${p}-stock` })]
    stock.push(createBus({ transport: await c.open(), service: `${p}-stock` }))
    const answeredBy = new Map<string, number>()
    for (const [n, bus] of stock.entries()) {
      bus.on(check, async (m) => {
        answeredBy.set(m.data.item, n)
        return { item: m.data.item, available: m.data.wanted * 2 }
      })
    }
    for (const bus of stock) await bus.start()
    const orders = [
      createBus({ transport: await c.open(), service: `${p}-orders-a` }),
      createBus({ transport: await c.open(), service: `${p}-orders-b` }),
    ]
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, n) =>
        orders[n % 2]!.request(check, { item: `i${n}`, wanted: n }, { timeoutMs: 30_000 }),
      ),
    )
    for (let n = 0; n < 200; n++) expect(replies[n]).toEqual({ item: `i${n}`, available: n * 2 })
    expect(answeredBy.size).toBe(200)
    for (const bus of orders) await bus.stop()
    for (const bus of stock) await bus.stop()
    process.off('warning', onWarning)
    expect(warnings.map((w) => w.message)).toEqual([])
    // The requesters' reply queues went with them.
    const admin = await c.open()
    if (isTopologyAdmin(admin)) {
      const left = (await admin.listGroups()).filter((g) => g.group.startsWith('herald.reply.'))
      expect(left.map((g) => g.group)).toEqual([])
    }
  })

  it('request-timeout: no reply in time rejects with an error naming the command; the late reply is dropped', async () => {
    const c = ctx()
    const p = c.unique('p')
    const check = stockCheck(p)
    const release = createLatch()
    const started = createLatch()
    const stock = createBus({ transport: await c.open(), service: `${p}-stock` })
    stock.on(check, async (m) => {
      started.open()
      await release.wait
      return { item: m.data.item, available: 1 }
    })
    await stock.start()
    const orders = createBus({ transport: await c.open(), service: `${p}-orders` })
    const timedOut = await orders.request(check, { item: 'slow', wanted: 1 }, { timeoutMs: 300 }).catch((e) => e)
    expect(isHeraldError(timedOut) && timedOut.code).toBe('REQUEST_TIMEOUT')
    expect(String(timedOut.message)).toContain(check.type)
    await started.wait
    release.open()
    // The next request still gets its own answer, not the late one.
    const next = await orders.request(check, { item: 'next', wanted: 3 }, { timeoutMs: 30_000 })
    expect(next).toEqual({ item: 'next', available: 1 })
    await orders.stop()
    await stock.stop()
  })

  it('request-failures: no handler rejects with no_route; a handler that fails for good rejects with its reason', async () => {
    const c = ctx()
    const p = c.unique('p')
    const check = stockCheck(p)
    const orders = createBus({ transport: await c.open(), service: `${p}-orders` })
    const unrouted = await orders.request(check, { item: 'x', wanted: 1 }, { timeoutMs: 5_000 }).catch((e) => e)
    expect(isHeraldError(unrouted) && unrouted.code).toBe('NO_ROUTE')
    const stock = createBus({ transport: await c.open(), service: `${p}-stock` })
    stock.on(check, async (m) => {
      if (m.data.item === 'bad') throw new PermanentError('item "bad" is not sold here')
      if (m.data.item === 'broken') return { item: 7, available: 'none' } as never
      return { item: m.data.item, available: 5 }
    })
    await stock.start()
    const failed = await orders.request(check, { item: 'bad', wanted: 1 }, { timeoutMs: 30_000 }).catch((e) => e)
    expect(String(failed?.message)).toContain('permanent_error: item "bad" is not sold here')
    // A reply that breaks its own schema is refused on the handler's side, and the requester told so.
    const broken = await orders.request(check, { item: 'broken', wanted: 1 }, { timeoutMs: 30_000 }).catch((e) => e)
    expect(String(broken?.message)).toContain('schema_validation')
    expect(await orders.request(check, { item: 'ok', wanted: 1 }, { timeoutMs: 30_000 })).toEqual({
      item: 'ok',
      available: 5,
    })
    await orders.stop()
    await stock.stop()
  })

  it('request-forged-reply-address: a request whose reply address is not a reply queue is dead-lettered unhandled', async () => {
    const c = ctx()
    const p = c.unique('p')
    const check = stockCheck(p)
    const t = await c.open()
    const stock = createBus({ transport: t, service: `${p}-stock` })
    let handled = 0
    stock.on(check, async (m) => {
      handled++
      return { item: m.data.item, available: 1 }
    })
    await stock.start()
    const envelope = {
      id: uuidV7(),
      headers: {
        [HeaderNames.type]: check.type,
        [HeaderNames.kind]: 'command',
        heraldreplyto: `${p}.order.paid`,
      },
      body: encoder.encode(JSON.stringify({ item: 'x', wanted: 1 })),
    }
    await c.harness.injectRaw(`${p}-stock`, check.topic, envelope)
    const store = c.deadLetters(t)
    await pollUntil(async () => (await store.getDeadLetter(envelope.id, `${p}-stock`)) !== undefined, 30_000)
    expect(await store.getDeadLetter(envelope.id, `${p}-stock`)).toMatchObject({ reason: 'envelope_invalid' })
    expect(handled).toBe(0)
    await stock.stop()
  })
}
