import { createInMemoryTransport } from '@herald/core'
import { createInMemoryNotificationStore } from '@herald/notifications'
import { expect, it } from 'vitest'
import { createDashboard } from '../src/index.js'

const token = 'test-token-0123456789abcdef'
const auth = { authorization: `Bearer ${token}` }
const tbody = (body: string) => body.match(/<tbody>([\s\S]*?)<\/tbody>/)?.[1] ?? ''

it('dashboard-notifications: records by user, status and batch with counts, each with what was sent, escaped', async () => {
  const transport = createInMemoryTransport()
  const store = createInMemoryNotificationStore()
  const base = { category: 'orders', template: 'paid', locale: 'zh-CN', rule: 'order-paid', batch: undefined }
  await store.create(
    { ...base, id: 'n-1', user: 'u1', channel: 'email', to: 'u1@example.com', data: { amount: 9 } },
    1_000,
  )
  await store.create({ ...base, id: 'n-2', user: 'u1', channel: 'sms', to: '+1', data: {}, batch: 'b1' }, 2_000)
  await store.create({ ...base, id: 'n-<3>', user: 'u2<x>', channel: 'in_app', to: 'u2', data: {} }, 3_000)
  await store.settle(
    'n-1',
    1,
    { kind: 'sent', providerId: '<n-1@shop>', subject: '支付成功', body: '<p>¥9<script>x</script></p>' },
    1_500,
  )
  await store.settle(
    'n-2',
    2,
    { kind: 'failed', error: { name: 'PermanentError', message: 'twilio answered 400: bad <number>' } },
    2_500,
  )
  const app = await createDashboard({ transport, token, notifications: store })
  try {
    expect((await app.inject({ url: '/notifications' })).statusCode).toBe(401)
    const all = (await app.inject({ url: '/notifications', headers: auth })).body
    expect(all).toMatch(/<b>1<\/b> sent/)
    expect(all).toMatch(/<b>1<\/b> failed/)
    expect(all).toMatch(/<b>1<\/b> pending/)
    expect(all).toContain('u2&lt;x&gt;')
    expect(all).not.toContain('<number>')

    const failed = tbody((await app.inject({ url: '/notifications?status=failed', headers: auth })).body)
    expect(failed).toContain('/notifications/n-2')
    expect(failed).toContain('twilio answered 400: bad &lt;number&gt;')
    expect(failed).not.toContain('n-1')
    const byUser = (await app.inject({ url: '/notifications?user=u1&status=bogus', headers: auth })).body
    expect(tbody(byUser)).toContain('n-1')
    expect(tbody(byUser)).toContain('n-2')
    expect(tbody(byUser)).not.toContain('n-&lt;3&gt;')
    const batch = (await app.inject({ url: '/notifications?batch=b1', headers: auth })).body
    expect(batch).toMatch(/<b>1<\/b> failed/)
    expect(batch).toMatch(/<b>0<\/b> sent/)

    const one = await app.inject({ url: '/notifications/n-1', headers: auth })
    expect(one.statusCode).toBe(200)
    expect(one.body).toContain('<b>sent</b> after 1 attempts')
    expect(one.body).toContain('&lt;n-1@shop&gt;')
    expect(one.body).toContain('<pre id="notification-body">&lt;p&gt;¥9&lt;script&gt;x&lt;/script&gt;&lt;/p&gt;</pre>')
    expect(one.body).not.toContain('<script>x')
    const odd = await app.inject({ url: `/notifications/${encodeURIComponent('n-<3>')}`, headers: auth })
    expect(odd.body).toContain('Not rendered yet.')
    expect((await app.inject({ url: '/notifications/nope', headers: auth })).statusCode).toBe(404)
  } finally {
    await app.close()
    await transport.close()
  }
})
