import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createBus, createInMemoryTransport, defineEvent, isHeraldError } from '../src/index.js'

const Deposited = defineEvent('account.deposited', {
  schema: z.object({ account: z.string(), n: z.number() }),
  key: (data) => data.account,
})

describe('bus ordering', () => {
  it('key-order-contract-key: the contract names the key, two buses in one group handle each key in publish order', async () => {
    const transport = createInMemoryTransport()
    const seen = new Map<string, number[]>()
    let total = 0
    let finish!: () => void
    const finished = new Promise<void>((resolve) => {
      finish = resolve
    })
    const buses = [0, 1].map(() => createBus({ transport, service: 'ledger' }))
    for (const bus of buses) {
      bus.on(Deposited, async (message) => {
        expect(message.partitionKey).toBe(message.data.account)
        // Uneven work, so that the two consumers would overtake each other without ordering.
        if (message.data.n % 3 === 0) await new Promise((done) => setImmediate(done))
        seen.set(message.data.account, [...(seen.get(message.data.account) ?? []), message.data.n])
        if (++total === 200) finish()
      })
      await bus.start()
    }
    for (let n = 0; n < 50; n++)
      for (const account of ['a', 'b', 'c', 'd']) await buses[n % 2]!.publish(Deposited, { account, n })
    await finished
    for (const bus of buses) await bus.stop()
    for (const account of ['a', 'b', 'c', 'd']) expect(seen.get(account)).toEqual([...Array(50).keys()])
  })

  it('key-order-contract-key: a publish’s partitionKey wins over the contract’s; a bad key is refused before anything is sent', async () => {
    const transport = createInMemoryTransport()
    const bus = createBus({ transport, service: 'ledger' })
    const prepared = await bus.prepare(Deposited, { account: 'a', n: 1 }, { partitionKey: 'override' })
    expect(prepared.envelope.headers.partitionkey).toBe('override')
    expect((await bus.prepare(Deposited, { account: 'a', n: 1 })).envelope.headers.partitionkey).toBe('a')
    for (const account of ['', 'x'.repeat(513), 'line\nbreak']) {
      const error = await bus.publish(Deposited, { account, n: 1 }).catch((err: unknown) => err)
      expect(isHeraldError(error, 'HEADER_INVALID'), String(error)).toBe(true)
    }
    const Broken = defineEvent('broken', { schema: z.object({}), key: () => 42 as unknown as string })
    expect(isHeraldError(await bus.publish(Broken, {}).catch((err: unknown) => err), 'HEADER_INVALID')).toBe(true)
  })

  it('rejects a bad ordering option when the group is declared, naming the field', () => {
    const bus = createBus({ transport: createInMemoryTransport(), service: 'ledger' })
    expect(() => bus.group('g', { ordering: { concurrency: 0 } })).toThrow(/ordering.concurrency/)
    expect(() => bus.group('h', { ordering: { afterDeadLetter: 'later' as 'hold' } })).toThrow(/afterDeadLetter/)
  })
})
