import { expect, it } from 'vitest'
import { createInMemoryTransport, type Envelope, uuidV7 } from '../src/index.js'

const envelope = (n: number): Envelope => ({
  id: uuidV7(),
  headers: { type: 'bench.tick', n: String(n) },
  body: new TextEncoder().encode('{}'),
})
const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i)
/** One turn of the event loop: every promise that can settle without new input has settled. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

it('a publish that takes a group past its bound is queued, but held back until the group is within it again', async () => {
  const transport = createInMemoryTransport({ maxQueueDepth: 10 })
  await transport.declareGroup('g', ['t'])
  const completed: number[] = []
  // Handlers started when each publish completed.
  const startsAtCompletion: number[] = []
  let starts = 0
  // 30 publishes against a bound of 10: all 30 are queued in order, and the last 20 are held back.
  const publishes = upTo(30).map((n) =>
    transport.publish('t', [envelope(n)]).then(() => {
      completed.push(n)
      startsAtCompletion.push(starts)
    }),
  )
  await Promise.all(publishes.slice(0, 10))
  await turn()
  expect(completed).toEqual(upTo(10))
  expect((await transport.listGroups())[0]?.depth).toBe(30)

  // A consumer claims 12 and holds on to them: 18 still wait, more than the bound, so the publishers stay held.
  const handled: number[] = []
  let open!: () => void
  const gate = new Promise<void>((resolve) => {
    open = resolve
  })
  let twelveStarted!: () => void
  const started = new Promise<void>((resolve) => {
    twelveStarted = resolve
  })
  let allHandled!: () => void
  const all = new Promise<void>((resolve) => {
    allHandled = resolve
  })
  const subscription = await transport.subscribe({ group: 'g', patterns: ['t'], maxInFlight: 12 }, async (e) => {
    if (++starts === 12) twelveStarted()
    await gate
    handled.push(Number(e.headers.n))
    if (handled.length === 30) allHandled()
  })
  await started
  await turn()
  expect(completed).toEqual(upTo(10))

  // The consumer's second claim (made when 12 handlers had started) leaves 6 waiting, within the bound: every
  // held publish completes then, not only once the group is empty (which a third claim, after 24, would make it).
  open()
  await Promise.all(publishes)
  expect(completed).toEqual(upTo(30))
  expect(startsAtCompletion.slice(10)).toEqual(Array(20).fill(12))
  await all
  expect(handled).toEqual(upTo(30))
  await subscription.close()
  await transport.close()
})

it('closing the transport lets held-back publishers complete', async () => {
  const transport = createInMemoryTransport({ maxQueueDepth: 1 })
  await transport.declareGroup('g', ['t'])
  const publishes = upTo(5).map((n) => transport.publish('t', [envelope(n)]))
  await transport.close()
  await expect(Promise.all(publishes)).resolves.toHaveLength(5)
})
