import { describe, expect, it } from 'vitest'
import type { NewNotification, NotificationStore } from '../src/index.js'

export const base = (id: string, over: Partial<NewNotification> = {}): NewNotification => ({
  id,
  user: 'u1',
  channel: 'in_app',
  to: 'u1',
  category: 'general',
  template: 't',
  locale: 'en',
  data: { n: 1 },
  rule: undefined,
  batch: undefined,
  ...over,
})
const error = { name: 'ProviderUnavailableError', message: 'sms answered 503' }
export const sent = { kind: 'sent', providerId: 'p1', subject: 'S', body: 'B' } as const

export function describeNotificationStore(name: string, open: () => NotificationStore | Promise<NotificationStore>) {
  describe(`notification store on ${name}`, () => {
    it('store: creating an id twice keeps the first record', async () => {
      const store = await open()
      expect((await store.create(base('a'), 1)).created).toBe(true)
      const again = await store.create(base('a', { user: 'other' }), 2)
      expect(again.created).toBe(false)
      expect(again.record).toMatchObject({ id: 'a', user: 'u1', status: 'pending', createdAt: 1, data: { n: 1 } })
      await store.close()
    })

    it('store: a delivered record never goes back to pending or failed', async () => {
      const store = await open()
      await store.create(base('a', { channel: 'sms', to: '+15005550006' }), 1)
      expect(await store.settle('a', 1, { kind: 'retrying', error }, 2)).toMatchObject({
        status: 'pending',
        attempts: 1,
        lastError: error,
      })
      expect(await store.settle('a', 2, sent, 3)).toMatchObject({
        status: 'sent',
        attempts: 2,
        providerId: 'p1',
        sentAt: 3,
      })
      expect(await store.settle('a', 3, { kind: 'failed', error }, 4)).toMatchObject({ status: 'sent', attempts: 2 })
      expect(await store.get('a')).toMatchObject({ status: 'sent', body: 'B', subject: 'S', updatedAt: 3 })
      expect(await store.settle('missing', 1, sent, 5)).toBeUndefined()
      await store.close()
    })

    it('store: queries by user, status, channel and batch, newest first, paged by time', async () => {
      const store = await open()
      for (let i = 0; i < 5; i++)
        await store.create(base(`r${i}`, { user: i % 2 === 0 ? 'even' : 'odd', batch: 'b1' }), 10 + i)
      await store.create(base('sms', { channel: 'sms', to: '+1', user: 'even' }), 20)
      await store.settle('r0', 1, { kind: 'failed', error }, 30)
      expect((await store.query({ user: 'even' })).map((r) => r.id)).toEqual(['sms', 'r4', 'r2', 'r0'])
      expect((await store.query({ user: 'even', channel: 'in_app', limit: 2 })).map((r) => r.id)).toEqual(['r4', 'r2'])
      expect((await store.query({ user: 'even', before: 14 })).map((r) => r.id)).toEqual(['r2', 'r0'])
      expect((await store.query({ status: 'failed' })).map((r) => r.id)).toEqual(['r0'])
      expect(await store.counts({ batch: 'b1' })).toEqual({ pending: 4, sent: 0, read: 0, failed: 1, suppressed: 0 })
      expect((await store.counts()).pending).toBe(5)
      await store.close()
    })

    it('store: in-app read state: unread count, mark some read, mark all read', async () => {
      const store = await open()
      for (const id of ['a', 'b', 'c']) {
        await store.create(base(id), 1)
        await store.settle(id, 1, sent, 2)
      }
      await store.create(base('pending'), 1)
      await store.create(base('theirs', { user: 'u2', to: 'u2' }), 1)
      await store.settle('theirs', 1, sent, 2)
      expect(await store.unreadCount('u1')).toBe(3)
      expect(await store.markRead('u1', ['a', 'theirs'], 5)).toBe(1)
      expect(await store.get('a')).toMatchObject({ status: 'read', readAt: 5 })
      expect(await store.get('theirs')).toMatchObject({ status: 'sent' })
      expect(await store.unreadCount('u1')).toBe(2)
      expect(await store.markRead('u1', undefined, 6)).toBe(2)
      expect(await store.unreadCount('u1')).toBe(0)
      expect(await store.get('pending')).toMatchObject({ status: 'pending' })
      expect(await store.unreadCount('u2')).toBe(1)
      await store.close()
    })

    it('store: preferences are set per user, channel and category, the last write winning', async () => {
      const store = await open()
      await store.setPreference({ user: 'u1', channel: 'email', category: 'marketing', enabled: false })
      await store.setPreference({ user: 'u1', channel: 'email', category: 'marketing', enabled: true })
      await store.setPreference({ user: 'u1', channel: 'sms', category: '*', enabled: false })
      await store.setPreference({ user: 'u2', channel: 'sms', category: '*', enabled: true })
      expect(await store.preferences('u1')).toEqual([
        { user: 'u1', channel: 'email', category: 'marketing', enabled: true },
        { user: 'u1', channel: 'sms', category: '*', enabled: false },
      ])
      await store.close()
    })

    it('store: a digest takes each event once, in order, and events after it closed go to the next window', async () => {
      const store = await open()
      const item = (eventId: string, n: number) => ({
        rule: 'r',
        user: 'u1',
        eventId,
        to: 'u1',
        locale: 'en',
        data: { n },
      })
      expect(await store.addToDigest(item('e1', 1), 1_000, 5_100)).toEqual({ key: 'r:u1:5000', windowEnd: 6_000 })
      await store.addToDigest(item('e2', 2), 1_000, 5_900)
      expect(await store.addToDigest(item('e1', 99), 1_000, 5_950)).toEqual({ key: 'r:u1:5000', windowEnd: 6_000 })
      expect(await store.addToDigest({ ...item('e1', 7), user: 'u2' }, 1_000, 5_950)).toEqual({
        key: 'r:u2:5000',
        windowEnd: 6_000,
      })
      const closed = await store.closeDigest('r:u1:5000')
      expect(closed).toMatchObject({
        rule: 'r',
        user: 'u1',
        windowStart: 5_000,
        windowEnd: 6_000,
        items: [{ n: 1 }, { n: 2 }],
      })
      expect(await store.closeDigest('r:u1:5000')).toEqual(closed)
      expect(await store.addToDigest(item('e3', 3), 1_000, 5_990)).toEqual({ key: 'r:u1:6000', windowEnd: 7_000 })
      expect((await store.closeDigest('r:u1:6000'))?.items).toEqual([{ n: 3 }])
      expect(await store.closeDigest('r:nobody:0')).toBeUndefined()
      await store.close()
    })

    it('store: templates are versioned per name, channel and locale', async () => {
      const store = await open()
      const t = {
        name: 'w',
        channel: 'email',
        locale: 'zh-CN',
        subject: '你好',
        body: '<p>{{x}}</p>',
        format: 'html',
      } as const
      expect(await store.templates.save(t, 1)).toMatchObject({ version: 1, createdAt: 1 })
      expect(await store.templates.save({ ...t, body: 'v2' }, 2)).toMatchObject({ version: 2 })
      expect(await store.templates.save({ ...t, locale: 'en', subject: undefined }, 3)).toMatchObject({ version: 1 })
      expect(await store.templates.get('w', 'email', 'zh-CN')).toMatchObject({
        body: 'v2',
        subject: '你好',
        version: 2,
      })
      expect(await store.templates.get('w', 'email', 'zh-CN', 1)).toMatchObject({ body: '<p>{{x}}</p>' })
      expect(await store.templates.get('w', 'sms', 'zh-CN')).toBeUndefined()
      expect((await store.templates.list()).map((x) => `${x.locale}:${x.version}`).sort()).toEqual(['en:1', 'zh-CN:2'])
      await store.close()
    })
  })
}
