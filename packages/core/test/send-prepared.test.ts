import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createBus, createInMemoryTransport, defineEvent, sendPrepared, type Transport } from '../src/index.js'

const Reminder = defineEvent('reminder.due', { schema: z.object({ n: z.number() }) })

describe('sendPrepared', () => {
  it('refuses a delayed message on a transport that cannot delay, instead of delivering it early', async () => {
    const inner = createInMemoryTransport()
    // The same transport with its Scheduler capability hidden.
    const noDelays: Transport = {
      name: 'no-delays',
      publish: (...args) => inner.publish(...args),
      subscribe: (...args) => inner.subscribe(...args),
      close: () => inner.close(),
    }
    await inner.declareGroup('g', ['reminder.due'])
    const bus = createBus({ transport: inner, service: 'svc' })
    const later = await bus.prepare(Reminder, { n: 1 }, { delayMs: 60_000 })
    await expect(sendPrepared(noDelays, later)).rejects.toMatchObject({ code: 'NOT_SUPPORTED' })
    expect((await inner.listGroups())[0]?.depth).toBe(0)

    const now = await bus.prepare(Reminder, { n: 2 })
    await sendPrepared(noDelays, now)
    expect((await inner.listGroups())[0]?.depth).toBe(1)
    // A transport that can delay takes it.
    await expect(sendPrepared(inner, later)).resolves.toBeUndefined()
    await inner.close()
  })
})
