import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createBus, createInMemoryTransport, defineCommand, defineEvent } from '../src/index.js'
import { parseStoredHeaders, storedHeadersText } from '../src/stored-row.js'

const Placed = defineEvent('order.placed', { schema: z.object({ n: z.number() }) })
const Ship = defineCommand('order.ship', {
  version: 2,
  schema: z.object({ n: z.number() }),
  upcasters: { 1: (data) => data },
})

describe('stored headers', () => {
  it('a bus message’s headers are stored without their defaults and read back exactly', async () => {
    const bus = createBus({ transport: createInMemoryTransport(), service: 'orders' })
    const root = (await bus.prepare(Placed, { n: 1 })).envelope
    const child = (
      await bus.prepare(Ship, { n: 1 }, { correlationId: 'flow-7', causationId: root.id, partitionKey: 'o-1' })
    ).envelope
    for (const envelope of [root, child]) {
      const text = storedHeadersText(envelope)
      expect(text.length).toBeLessThan(JSON.stringify(envelope.headers).length)
      expect(parseStoredHeaders(text, envelope.id)).toEqual(envelope.headers)
    }
    // The root's correlation id is its own id, and its defaults are all left out; the command keeps what differs.
    expect(JSON.parse(storedHeadersText(root))).toEqual({
      '': '31',
      type: 'order.placed',
      source: 'orders',
      time: root.headers.time,
    })
    expect(JSON.parse(storedHeadersText(child))).toMatchObject({
      '': '3',
      schemaversion: '2',
      heraldkind: 'command',
      correlationid: 'flow-7',
    })
  })

  it('headers without defaults, or already using the empty name, are stored whole; rows from other tools read as written', () => {
    const plain = { id: 'm1', headers: { type: 't' }, body: new Uint8Array() }
    expect(storedHeadersText(plain)).toBe('{"type":"t"}')
    const odd = { id: 'm2', headers: { '': 'x', specversion: '1.0' }, body: new Uint8Array() }
    expect(parseStoredHeaders(storedHeadersText(odd), 'm2')).toEqual(odd.headers)
    // No marker: nothing is added, whatever the row lacks.
    expect(parseStoredHeaders('{"type":"t","specversion":"0.3"}', 'm3')).toEqual({ type: 't', specversion: '0.3' })
    // A marker that is not a mask Herald writes is kept as a plain header.
    expect(parseStoredHeaders('{"":"99","type":"t"}', 'm4')).toEqual({ '': '99', type: 't' })
    expect(parseStoredHeaders('not json', 'm5')).toEqual({})
  })
})
