import { createBus, createInMemoryTransport, defineEvent } from '@herald/core'
import { createInMemorySagaStore, defineSaga, message, registerSagas } from '@herald/saga'
import { pollUntil } from '@herald/testkit'
import { expect, it } from 'vitest'
import { z } from 'zod'
import { createDashboard } from '../src/index.js'

const token = 'test-token-0123456789abcdef'
const auth = { authorization: `Bearer ${token}` }
const Opened = defineEvent('ticket.opened', { schema: z.object({ id: z.string() }) })
const Closed = defineEvent('ticket.closed', { schema: z.object({ id: z.string(), ok: z.boolean() }) })
const Notify = defineEvent('ticket.notified', { schema: z.object({ id: z.string() }) })
const Undo = defineEvent('ticket.undone', { schema: z.object({ id: z.string() }) })
const ticket = defineSaga('ticket', { state: z.object({ id: z.string(), note: z.string() }) })
  .startedBy(
    Opened,
    (d) => d.id,
    (state, { data }) =>
      state ? {} : { state: { id: data.id, note: `<b>${data.id}</b>` }, compensation: [message(Undo, data)] },
  )
  .on(
    Closed,
    (d) => d.id,
    (_state, { data }) =>
      data.ok ? { complete: true, messages: [message(Notify, { id: data.id })] } : { compensate: 'not_ok' },
  )

it('dashboard-sagas: instances by status and key, each with its state and history, escaped', async () => {
  const transport = createInMemoryTransport()
  const bus = createBus({ transport, service: 'desk' })
  const store = createInMemorySagaStore()
  const host = registerSagas(bus, { store, sagas: [ticket] })
  await bus.start()
  const app = await createDashboard({ transport, token, sagas: store })
  try {
    expect((await app.inject({ url: '/sagas' })).statusCode).toBe(401)
    await bus.publish(Opened, { id: 'good' })
    await bus.publish(Opened, { id: 'bad<script>' })
    await bus.publish(Opened, { id: 'open' })
    await bus.publish(Closed, { id: 'good', ok: true })
    await bus.publish(Closed, { id: 'bad<script>', ok: false })
    await pollUntil(async () => (await store.counts('ticket')).running === 1, 10_000)
    await pollUntil(async () => (await host.history(ticket, 'bad<script>')).length === 2, 10_000)

    const all = (await app.inject({ url: '/sagas', headers: auth })).body
    expect(all).toMatch(/<b>1<\/b> running/)
    expect(all).toMatch(/<b>1<\/b> completed/)
    expect(all).toMatch(/<b>1<\/b> compensated/)
    expect(all).not.toContain('<script>')
    expect(all).toContain('bad&lt;script&gt;')

    const compensated = (await app.inject({ url: '/sagas?status=compensated', headers: auth })).body
    const rows = compensated.match(/<tbody>([\s\S]*?)<\/tbody>/)?.[1] ?? ''
    expect(rows).toContain('bad&lt;script&gt;')
    expect(rows).toContain('not_ok')
    expect(rows).not.toContain('>good<')
    const byKey = (await app.inject({ url: '/sagas?key=open', headers: auth })).body
    expect(byKey.match(/<tbody>([\s\S]*?)<\/tbody>/)?.[1]).toContain('/sagas/ticket/open')

    const page = await app.inject({ url: `/sagas/ticket/${encodeURIComponent('bad<script>')}`, headers: auth })
    expect(page.statusCode).toBe(200)
    expect(page.body).toContain('<b>compensated</b> (not_ok)')
    expect(page.body).toContain('ticket.opened')
    expect(page.body).toContain('ticket.closed')
    expect(page.body).toContain('ticket.undone')
    // The state's own markup is shown as text.
    expect(page.body).toContain('&lt;b&gt;bad&lt;script&gt;&lt;/b&gt;')
    expect(page.body).not.toMatch(/<b>bad/)
    const open = (await app.inject({ url: '/sagas/ticket/open', headers: auth })).body
    expect(open).toContain('ticket.undone')
    expect((await app.inject({ url: '/sagas/ticket/nobody', headers: auth })).statusCode).toBe(404)
  } finally {
    await app.close()
    await bus.stop()
  }
})
