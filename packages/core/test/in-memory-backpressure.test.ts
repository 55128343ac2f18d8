import { expect, it } from 'vitest'
import { createInMemoryTransport, type Envelope, uuidV7 } from '../src/index.js'

const envelope = (n: number): Envelope => ({
  id: uuidV7(),
  headers: { type: 'bench.tick', n: String(n) },
  body: new TextEncoder().encode('{}'),
})

it('a full group makes publishers wait, admits them in order as room frees, and loses nothing', async () => {
  const transport = createInMemoryTransport({ maxQueueDepth: 10 })
  await transport.declareGroup('g', ['t'])
  const admitted: number[] = []
  // 30 publishes against room for 10: the first 10 complete, the other 20 wait.
  const publishes = Array.from({ length: 30 }, (_, n) =>
    transport.publish('t', [envelope(n)]).then(() => admitted.push(n)),
  )
  await Promise.resolve()
  expect((await transport.listGroups())[0]?.depth).toBe(10)
  expect(admitted.length).toBeLessThanOrEqual(10)

  const handled: number[] = []
  let release!: () => void
  const all = new Promise<void>((done) => {
    release = done
  })
  const subscription = await transport.subscribe({ group: 'g', patterns: ['t'], maxInFlight: 3 }, async (e) => {
    handled.push(Number(e.headers.n))
    if (handled.length === 30) release()
  })
  await Promise.all(publishes)
  await all
  // Waiting publishers were admitted first come, first served, so the group holds them in publish order.
  expect(admitted).toEqual(Array.from({ length: 30 }, (_, n) => n))
  expect(handled).toEqual(Array.from({ length: 30 }, (_, n) => n))
  await subscription.close()
  await transport.close()
})
