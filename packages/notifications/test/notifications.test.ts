import { type Bus, createBus, createInMemoryTransport, defineEvent, type InMemoryTransport } from '@herald/core'
import { createLatch, pollUntil } from '@herald/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import {
  createInMemoryNotificationStore,
  createNotifications,
  fcmPushProvider,
  InAppNotificationCreated,
  type NotificationStore,
  type Provider,
  sendCommands,
  twilioSmsProvider,
  webhookProvider,
} from '../src/index.js'
import { type RecordedRequest, type Reply, startRecorder } from './http-recorder.js'

const UserRegistered = defineEvent('user.registered', {
  schema: z.object({ userId: z.string(), name: z.string(), phone: z.string() }),
})

const fastRetry = { maxAttempts: 3, backoff: { initialMs: 5, maxMs: 20, jitter: 0 } }

let cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
  cleanups = []
})

async function setup(options: {
  answer?: (request: RecordedRequest, index: number) => Reply
  provider?: (url: string) => Provider
  retry?: typeof fastRetry
  maxInFlight?: number
  now?: () => number
}) {
  const recorder = await startRecorder(options.answer ?? (() => ({ status: 200, body: { id: 'vendor-1' } })))
  const transport: InMemoryTransport = createInMemoryTransport()
  const bus: Bus = createBus({
    transport,
    service: 'notify-test',
    consumer: { immediateRetries: 0, maxInFlight: options.maxInFlight ?? 10 },
  })
  const store: NotificationStore = createInMemoryNotificationStore()
  const provider = (options.provider ?? ((url) => webhookProvider({ channel: 'sms', url: `${url}/sms` })))(recorder.url)
  const notifications = createNotifications({
    bus,
    store,
    providers: [provider],
    retry: options.retry ?? fastRetry,
    ...(options.now === undefined ? {} : { now: options.now }),
  })
  await notifications.templates.save({ name: 'code', channel: 'sms', locale: 'en', body: 'Your code is {{code}}' })
  await notifications.templates.save({ name: 'code', channel: 'sms', locale: 'zh-CN', body: '验证码 {{code}}' })
  cleanups.push(async () => {
    await bus.stop()
    await transport.close()
    await recorder.close()
  })
  return { recorder, transport, bus, store, notifications }
}

/** An SMS of the `code` template to u1; without a code, the template misses its variable. */
const smsCode = (code: string | undefined, extra: { id?: string; category?: string } = {}) => ({
  user: 'u1',
  channel: 'sms' as const,
  to: '+15005550006',
  template: 'code',
  data: code === undefined ? {} : { code },
  ...extra,
})

const settled = (store: NotificationStore, id: string) => async () =>
  ['sent', 'failed', 'suppressed'].includes((await store.get(id))?.status ?? '')

describe('notification service', () => {
  it('notifications: an SMS through a Twilio-shaped API carries the body and credentials; its sid becomes the provider id', async () => {
    const { recorder, bus, store, notifications } = await setup({
      answer: () => ({ status: 201, body: { sid: 'SM123', status: 'queued' } }),
      provider: (url) =>
        twilioSmsProvider({ accountSid: 'AC1', authToken: 'secret-token', from: '+15005550006', baseUrl: url }),
    })
    await bus.start()
    const record = await notifications.send({
      user: 'u1',
      channel: 'sms',
      to: '+8613800000000',
      template: 'code',
      locale: 'zh-CN',
      data: { code: '4821' },
    })
    expect(record.status).toBe('pending')
    await pollUntil(settled(store, record.id))
    expect(await store.get(record.id)).toMatchObject({
      status: 'sent',
      providerId: 'SM123',
      attempts: 1,
      body: '验证码 4821',
    })
    expect(recorder.requests).toHaveLength(1)
    const [request] = recorder.requests
    expect(request?.path).toBe('/2010-04-01/Accounts/AC1/Messages.json')
    expect(request?.headers.authorization).toBe(`Basic ${Buffer.from('AC1:secret-token').toString('base64')}`)
    expect(Object.fromEntries(new URLSearchParams(request?.body))).toEqual({
      To: '+8613800000000',
      From: '+15005550006',
      Body: '验证码 4821',
    })
  })

  it('notifications: a 5xx is retried with backoff and the notification sent once', async () => {
    const { recorder, bus, store, notifications } = await setup({
      answer: (_request, index) =>
        index < 2 ? { status: 503, body: { error: 'busy' } } : { status: 200, body: { id: 'v9' } },
    })
    await bus.start()
    const record = await notifications.send(smsCode('1'))
    await pollUntil(settled(store, record.id))
    expect(await store.get(record.id)).toMatchObject({ status: 'sent', attempts: 3, providerId: 'v9' })
    expect((await store.get(record.id))?.lastError?.message).toMatch(/answered 503/)
    expect(recorder.requests).toHaveLength(3)
    expect(new Set(recorder.requests.map((r) => r.headers['idempotency-key']))).toEqual(new Set([record.id]))
  })

  it('notifications: a 4xx is dead-lettered with the vendor reason and the record marked failed', async () => {
    const { recorder, bus, store, transport, notifications } = await setup({
      answer: () => ({ status: 400, body: { message: 'The To number is not a valid phone number' } }),
    })
    await bus.start()
    const record = await notifications.send({
      user: 'u1',
      channel: 'sms',
      to: '+15005550001',
      template: 'code',
      data: { code: '1' },
    })
    await pollUntil(settled(store, record.id))
    const failed = await store.get(record.id)
    expect(failed).toMatchObject({ status: 'failed', attempts: 1 })
    expect(failed?.lastError?.message).toMatch(/answered 400: .*not a valid phone number/)
    expect(recorder.requests).toHaveLength(1)
    const { items } = await transport.listDeadLetters()
    expect(items).toHaveLength(1)
    expect(items[0]).toMatchObject({ group: 'notifications-sms', reason: 'permanent_error' })
    expect(items[0]?.error?.message).toMatch(/not a valid phone number/)
  })

  it('notifications: a provider that does not answer in time is retried', async () => {
    const { recorder, bus, store, notifications } = await setup({
      answer: (_request, index) => (index === 0 ? 'hang' : { status: 200, body: {} }),
      provider: (url) => webhookProvider({ channel: 'sms', url, timeoutMs: 200 }),
    })
    await bus.start()
    const record = await notifications.send(smsCode('1'))
    await pollUntil(settled(store, record.id))
    const sent = await store.get(record.id)
    expect(sent).toMatchObject({ status: 'sent', attempts: 2 })
    expect(sent?.lastError?.message).toBe('webhook-sms: no answer in 200 ms')
    expect(recorder.requests).toHaveLength(2)
  })

  it('notifications: when every attempt fails the record is failed and the message dead-lettered', async () => {
    const { recorder, bus, store, transport, notifications } = await setup({ answer: () => ({ status: 502 }) })
    await bus.start()
    const record = await notifications.send(smsCode('1'))
    await pollUntil(settled(store, record.id))
    expect(await store.get(record.id)).toMatchObject({ status: 'failed', attempts: 3 })
    await pollUntil(async () => (await transport.listDeadLetters()).items.length === 1)
    expect((await transport.listDeadLetters()).items.map((d) => d.reason)).toEqual(['handler_error'])
    expect(recorder.requests).toHaveLength(3)
  })

  it('notifications: an opted-out channel and category is suppressed before any send; mandatory categories are not', async () => {
    const { recorder, bus, store, notifications } = await setup({})
    await bus.start()
    await notifications.preferences.set({ user: 'u1', channel: 'sms', category: '*', enabled: false })
    await notifications.preferences.set({ user: 'u1', channel: 'sms', category: 'orders', enabled: true })
    const marketing = await notifications.send(smsCode('m', { category: 'marketing' }))
    const orders = await notifications.send(smsCode('o', { category: 'orders' }))
    const security = await notifications.send(smsCode('s', { category: 'security' }))
    for (const r of [marketing, orders, security]) await pollUntil(settled(store, r.id))
    expect((await store.get(marketing.id))?.status).toBe('suppressed')
    expect((await store.get(orders.id))?.status).toBe('sent')
    expect((await store.get(security.id))?.status).toBe('sent')
    expect(recorder.requests.map((r) => JSON.parse(r.body).body).sort()).toEqual(['Your code is o', 'Your code is s'])
    expect(await notifications.preferences.allows('u1', 'sms', 'marketing')).toBe(false)
    expect(await notifications.preferences.allows('u2', 'sms', 'marketing')).toBe(true)
  })

  it('notifications: a rule sends one notification per user, channel and rule however often its event is delivered', async () => {
    const { recorder, bus, store, notifications } = await setup({})
    await notifications.templates.save({ name: 'welcome', channel: 'sms', locale: 'en', body: 'Welcome {{name}}' })
    notifications.rule(UserRegistered, {
      name: 'welcome-sms',
      channel: 'sms',
      template: 'welcome',
      recipients: (m) => ({ user: m.data.userId, to: m.data.phone }),
    })
    await bus.start()
    const event = { userId: 'u7', name: 'Mei', phone: '+15005550006' }
    const id = await bus.publish(UserRegistered, event)
    const ruleId = `welcome-sms:${id}:u7:sms`
    await pollUntil(settled(store, ruleId))
    // The same event delivered again (a redelivery after a crash, a replay): nothing more is sent.
    await bus.publish(UserRegistered, event, { id })
    await bus.publish(UserRegistered, event, { id })
    const other = await bus.publish(UserRegistered, { ...event, userId: 'u8' })
    await pollUntil(settled(store, `welcome-sms:${other}:u8:sms`))
    expect(recorder.requests.map((r) => JSON.parse(r.body).user)).toEqual(['u7', 'u8'])
    expect(await store.get(ruleId)).toMatchObject({
      rule: 'welcome-sms',
      category: 'welcome-sms',
      body: 'Welcome Mei',
      attempts: 1,
    })
    expect(await store.query({ user: 'u7' })).toHaveLength(1)
  })

  it('notifications: in-app notifications land in the inbox, go out live, and are read', async () => {
    const { bus, notifications } = await setup({})
    await notifications.templates.save({
      name: 'topup',
      channel: 'in_app',
      locale: 'en',
      subject: 'Top-up',
      body: 'Wallet +{{amount}}',
    })
    const live: string[] = []
    const twoLive = createLatch()
    bus.group('gateway-test').on(InAppNotificationCreated, async (m) => {
      live.push(`${m.data.user}:${m.data.body}`)
      if (live.length === 2) twoLive.open()
    })
    await bus.start()
    const a = await notifications.send({ user: 'u1', channel: 'in_app', template: 'topup', data: { amount: 5 } })
    const b = await notifications.send({ user: 'u1', channel: 'in_app', template: 'topup', data: { amount: 7 } })
    await twoLive.wait
    await pollUntil(async () => (await notifications.inbox.unreadCount('u1')) === 2)
    expect(live.sort()).toEqual(['u1:Wallet +5', 'u1:Wallet +7'])
    const inbox = await notifications.inbox.list('u1')
    expect(inbox.map((r) => [r.subject, r.status])).toEqual([
      ['Top-up', 'sent'],
      ['Top-up', 'sent'],
    ])
    expect(await notifications.inbox.markRead('u1', [a.id])).toBe(1)
    expect(await notifications.inbox.unreadCount('u1')).toBe(1)
    expect(await notifications.inbox.markRead('u2', [b.id])).toBe(0)
    expect(await notifications.inbox.markAllRead('u1')).toBe(1)
    expect(await notifications.inbox.unreadCount('u1')).toBe(0)
  })

  it('notifications: push through an FCM-shaped API sends the token, title and a bearer token', async () => {
    const { recorder, bus, store, notifications } = await setup({
      answer: () => ({ status: 200, body: { name: 'projects/p1/messages/0:42' } }),
      provider: (url) => fcmPushProvider({ projectId: 'p1', accessToken: () => 'ya29.token', baseUrl: url }),
    })
    await notifications.templates.save({
      name: 'ride',
      channel: 'push',
      locale: 'en',
      subject: 'Driver on the way',
      body: '{{driver}} arrives in {{minutes}} min',
    })
    await bus.start()
    const record = await notifications.send({
      user: 'u1',
      channel: 'push',
      to: 'device-token-1',
      template: 'ride',
      data: { driver: 'Li', minutes: 3 },
    })
    await pollUntil(settled(store, record.id))
    expect(await store.get(record.id)).toMatchObject({ status: 'sent', providerId: 'projects/p1/messages/0:42' })
    expect(recorder.requests[0]?.path).toBe('/v1/projects/p1/messages:send')
    expect(recorder.requests[0]?.headers.authorization).toBe('Bearer ya29.token')
    expect(JSON.parse(recorder.requests[0]?.body ?? '')).toEqual({
      message: {
        token: 'device-token-1',
        notification: { title: 'Driver on the way', body: 'Li arrives in 3 min' },
        data: { notificationId: record.id, category: 'general' },
      },
    })
  })

  it('notifications: a send with an id is idempotent; a missing variable fails the notification, not the worker', async () => {
    const { recorder, bus, store, transport, notifications } = await setup({})
    await bus.start()
    const first = await notifications.send(smsCode('1', { id: 'n-1' }))
    await pollUntil(settled(store, first.id))
    const again = await notifications.send(smsCode('1', { id: 'n-1' }))
    expect(again.status).toBe('sent')
    // The command itself delivered again (a redelivery after a crash past the provider call's record): no second send.
    // One key orders the two, so once n-2 is sent the redelivered n-1 has been handled.
    const command = { user: 'u1', to: '+15005550006', category: 'general', template: 'code', locale: 'en' }
    await bus.send(sendCommands.sms, { ...command, id: 'n-1', data: { code: '1' } }, { id: 'n-1', partitionKey: 'k' })
    await bus.send(sendCommands.sms, { ...command, id: 'n-2', data: { code: '2' } }, { id: 'n-2', partitionKey: 'k' })
    await pollUntil(settled(store, 'n-2'))
    const broken = await notifications.send(smsCode(undefined))
    await pollUntil(settled(store, broken.id))
    expect((await store.get(broken.id))?.lastError?.message).toMatch(/needs variable "code"/)
    const after = await notifications.send(smsCode('3'))
    await pollUntil(settled(store, after.id))
    expect(recorder.requests.map((r) => JSON.parse(r.body).body)).toEqual([
      'Your code is 1',
      'Your code is 2',
      'Your code is 3',
    ])
    expect((await transport.listDeadLetters()).items.map((d) => d.reason)).toEqual(['permanent_error'])
  })

  it('notifications: a batch of 10,000 with 1% bad numbers sends the other 9,900 once each and reports every recipient', async () => {
    const { recorder, bus, notifications, transport } = await setup({
      // The vendor refuses numbers ending in 07 (one in a hundred).
      answer: (request) =>
        JSON.parse(request.body).to.endsWith('07')
          ? { status: 400, body: { error: 'unknown number' } }
          : { status: 200 },
      maxInFlight: 100,
    })
    await bus.start()
    const recipients = Array.from({ length: 10_001 }, (_, i) => ({
      user: `u${i}`,
      // One recipient has no number at all: rejected at the batch, reported, and the rest go on.
      ...(i === 10_000 ? {} : { to: `+1500555${String(i).padStart(4, '0')}` }),
      data: { code: String(i) },
    }))
    const progress: number[] = []
    const report = await notifications.sendBatch(
      { channel: 'sms', template: 'code', category: 'marketing', recipients },
      (p) => progress.push(p.done),
    )
    expect(report.accepted).toBe(10_000)
    expect(report.rejected).toBe(1)
    expect(report.results[10_000]).toEqual({
      user: 'u10000',
      accepted: false,
      error: 'no address for user "u10000" on sms',
    })
    expect(progress.at(-1)).toBe(10_001)
    expect(progress).toEqual([...progress].sort((a, b) => a - b))
    await pollUntil(async () => (await notifications.batchStatus(report.batch)).pending === 0, 120_000)
    expect(await notifications.batchStatus(report.batch)).toEqual({
      pending: 0,
      sent: 9_900,
      read: 0,
      failed: 100,
      suppressed: 0,
    })
    // Counted at the vendor: every accepted recipient asked once, none twice.
    expect(recorder.requests).toHaveLength(10_000)
    expect(new Set(recorder.requests.map((r) => r.headers['idempotency-key'])).size).toBe(10_000)
    const failed = await notifications.query({ batch: report.batch, status: 'failed', limit: 1_000 })
    expect(failed).toHaveLength(100)
    expect(
      failed.every((r) => r.to.endsWith('07') && /answered 400: .*unknown number/.test(r.lastError?.message ?? '')),
    ).toBe(true)
    await pollUntil(async () => (await transport.listDeadLetters({ limit: 1_000 })).items.length === 100)
  })

  it('notifications: a digest window of events gives one notification; an event after the window was sent goes to the next', async () => {
    const windowMs = 2_000
    // The service's clock stays at the start of the next window, so every event below is in it and its flush (a
    // delayed message on the transport, due at the real window end) is at least one window away.
    const clock = (Math.floor(Date.now() / windowMs) + 1) * windowMs
    const { recorder, bus, store, notifications } = await setup({ now: () => clock })
    await notifications.templates.save({
      name: 'activity',
      channel: 'sms',
      locale: 'en',
      body: '{{count}} new: {{#each items}}{{name}};{{/each}}',
    })
    notifications.rule(UserRegistered, {
      name: 'friends-digest',
      channel: 'sms',
      template: 'activity',
      digest: { windowMs },
      recipients: (m) => ({ user: 'owner', to: '+15005550006', data: { name: m.data.name } }),
    })
    await bus.start()
    // One key: the rule handles them in publish order, so the digest lists them in that order.
    const owner = { partitionKey: 'owner' }
    const first = await bus.publish(UserRegistered, { userId: 'a', name: 'Ann', phone: '+1' }, owner)
    await bus.publish(UserRegistered, { userId: 'b', name: 'Bo', phone: '+1' }, owner)
    await bus.publish(UserRegistered, { userId: 'c', name: 'Cy', phone: '+1' }, owner)
    await bus.publish(UserRegistered, { userId: 'a', name: 'Ann', phone: '+1' }, { ...owner, id: first }) // a redelivery
    const firstId = `digest:friends-digest:owner:${clock}:sms`
    await pollUntil(settled(store, firstId), 10_000)
    expect(await store.get(firstId)).toMatchObject({
      status: 'sent',
      body: '3 new: Ann;Bo;Cy;',
      rule: 'friends-digest',
    })
    // Late: its window (by the service's clock) is closed, so it waits for the next one.
    await bus.publish(UserRegistered, { userId: 'd', name: 'Di', phone: '+1' })
    const nextId = `digest:friends-digest:owner:${clock + windowMs}:sms`
    await pollUntil(settled(store, nextId), 10_000)
    expect((await store.get(nextId))?.body).toBe('1 new: Di;')
    expect(recorder.requests.map((r) => JSON.parse(r.body).body)).toEqual(['3 new: Ann;Bo;Cy;', '1 new: Di;'])
  })
})
