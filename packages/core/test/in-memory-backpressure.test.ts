import { expect, it } from 'vitest'
import { z } from 'zod'
import { createBus, createInMemoryTransport, defineEvent, type Envelope, uuidV7 } from '../src/index.js'

const envelope = (n: number): Envelope => ({
  id: uuidV7(),
  headers: { type: 'bench.tick', n: String(n) },
  body: new TextEncoder().encode('{}'),
})
const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i)
/** One turn of the event loop: every promise that can settle without new input has settled. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** A promise with its resolve function, for a test to open when it chooses. */
function gate(): { readonly opened: Promise<void>; open(): void } {
  let open!: () => void
  const opened = new Promise<void>((resolve) => {
    open = resolve
  })
  return { opened, open }
}

it('a publish that takes a consumed group past its mark is queued, but held back until the group is within it', async () => {
  const transport = createInMemoryTransport({ maxQueueDepth: 10 })
  const handlersMayFinish = gate()
  const twelveStarted = gate()
  const allHandled = gate()
  const handled: number[] = []
  let starts = 0
  const subscription = await transport.subscribe({ group: 'g', patterns: ['t'], maxInFlight: 12 }, async (e) => {
    if (++starts === 12) twelveStarted.open()
    await handlersMayFinish.opened
    handled.push(Number(e.headers.n))
    if (handled.length === 30) allHandled.open()
  })
  const completed: number[] = []
  // Handlers started when each publish completed.
  const startsAtCompletion: number[] = []
  // 30 publishes against a mark of 10: all 30 are queued in order, and the last 20 are held back.
  const publishes = upTo(30).map((n) =>
    transport.publish('t', [envelope(n)]).then(() => {
      completed.push(n)
      startsAtCompletion.push(starts)
    }),
  )
  // The consumer claims 12 and holds on to them: 18 still wait, more than the mark, so the publishers stay held.
  await Promise.all(publishes.slice(0, 10))
  await twelveStarted.opened
  await turn()
  expect(completed).toEqual(upTo(10))
  expect((await transport.listGroups())[0]?.depth).toBe(30)

  // The consumer's second claim (made when 12 handlers had started) leaves 6 waiting, within the mark: every
  // held publish completes then, not only once the group is empty (which a third claim, after 24, would make it).
  handlersMayFinish.open()
  await Promise.all(publishes)
  expect(completed).toEqual(upTo(30))
  expect(startsAtCompletion.slice(10)).toEqual(Array(20).fill(12))
  await allHandled.opened
  expect(handled).toEqual(upTo(30))
  await subscription.close()
  await transport.close()
})

it('holds nobody back for a group without a consumer, so publishing before consuming cannot hang', async () => {
  const transport = createInMemoryTransport({ maxQueueDepth: 5 })
  await transport.declareGroup('g', ['t'])
  await Promise.all(upTo(50).map((n) => transport.publish('t', [envelope(n)])))
  expect((await transport.listGroups())[0]?.depth).toBe(50)

  // A consumer arrives: publishers past the mark wait for it again, and its leaving lets them go.
  const handlerMayFinish = gate()
  const subscription = await transport.subscribe({ group: 'g', patterns: ['t'], maxInFlight: 1 }, async () => {
    await handlerMayFinish.opened
  })
  let held = true
  const publishing = transport.publish('t', [envelope(50)]).then(() => {
    held = false
  })
  await turn()
  expect(held).toBe(true)
  const closing = subscription.close()
  handlerMayFinish.open()
  await closing
  await publishing
  expect(held).toBe(false)
  expect((await transport.listGroups())[0]?.depth).toBe(50)
  await transport.close()
})

it('never holds back a handler publishing into its own group, which would wait for itself', async () => {
  const Ping = defineEvent('loop.ping', { schema: z.object({ n: z.number() }) })
  const Pong = defineEvent('loop.pong', { schema: z.object({ n: z.number() }) })
  // A mark far below the burst: every handler's publish finds the group past it.
  const transport = createInMemoryTransport({ maxQueueDepth: 2 })
  const bus = createBus({ transport, service: 'looper', consumer: { maxInFlight: 4 } })
  const pongs = gate()
  let pongCount = 0
  bus
    .group('looper')
    .on(Ping, async (message, context) => {
      await context.publish(Pong, { n: message.data.n })
    })
    .on(Pong, async () => {
      if (++pongCount === 100) pongs.open()
    })
  await bus.start()
  // Outside publishers are held back as usual; they complete as the consumer catches up.
  await Promise.all(upTo(100).map((n) => bus.publish(Ping, { n })))
  await pongs.opened
  expect(pongCount).toBe(100)
  await bus.stop()
  await transport.close()
})
