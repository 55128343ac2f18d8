import type { AddressInfo } from 'node:net'
import { createBus, createInMemoryTransport, defineEvent } from '@herald/core'
import { pollUntil } from '@herald/testkit'
import { type ParsedMail, simpleParser } from 'mailparser'
import { SMTPServer } from 'smtp-server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createInMemoryNotificationStore, createNotifications, smtpProvider } from '../src/index.js'

/** A real SMTP server in this process: refuses `bounce@` for good, `busy@` for a while, and parses what it receives. */
const received: ParsedMail[] = []
let busyRefusals = 0
const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS', 'AUTH'],
  logger: false,
  onRcptTo(address, _session, callback) {
    if (address.address.startsWith('bounce@'))
      return callback(Object.assign(new Error('5.1.1 No such user here'), { responseCode: 550 }))
    if (address.address.startsWith('busy@') && busyRefusals < 2) {
      busyRefusals++
      return callback(Object.assign(new Error('4.2.1 Mailbox busy, try later'), { responseCode: 451 }))
    }
    callback()
  },
  onData(stream, _session, callback) {
    simpleParser(stream)
      .then((mail) => {
        received.push(mail)
        callback()
      })
      .catch(callback)
  },
})
let port = 0

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.server.address() as AddressInfo).port
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

async function setup() {
  const transport = createInMemoryTransport()
  const bus = createBus({ transport, service: 'mail-test', consumer: { immediateRetries: 0 } })
  const store = createInMemoryNotificationStore()
  const notifications = createNotifications({
    bus,
    store,
    providers: [
      smtpProvider({
        smtp: { host: '127.0.0.1', port, secure: false, ignoreTLS: true },
        from: '"Herald" <noreply@herald.test>',
      }),
    ],
    retry: { maxAttempts: 4, backoff: { initialMs: 5, maxMs: 20, jitter: 0 } },
  })
  await notifications.templates.save({
    name: 'welcome',
    channel: 'email',
    locale: 'zh-CN',
    subject: '欢迎, {{name}}',
    body: '<h1>你好 {{name}}</h1>{{#if items}}<ul>{{#each items}}<li>{{this}}</li>{{/each}}</ul>{{/if}}',
  })
  await bus.start()
  return {
    transport,
    store,
    notifications,
    close: async () => {
      await bus.stop()
      await transport.close()
    },
  }
}

const done = (store: ReturnType<typeof createInMemoryNotificationStore>, id: string) => async () =>
  ['sent', 'failed'].includes((await store.get(id))?.status ?? '')

describe('email over SMTP', () => {
  it('email: the received mail has the subject, the escaped HTML body and a Message-ID from the notification id', async () => {
    const { store, notifications, close } = await setup()
    const record = await notifications.send({
      user: 'u1',
      channel: 'email',
      to: 'li.lei@example.com',
      template: 'welcome',
      locale: 'zh-CN',
      data: { name: '李雷 <img src=x onerror=alert(1)>', items: ['茶', 'a & b'] },
    })
    await pollUntil(done(store, record.id))
    const mail = received.find((m) => m.to !== undefined && JSON.stringify(m.to).includes('li.lei@example.com'))
    expect(mail?.subject).toBe('欢迎, 李雷 <img src=x onerror=alert(1)>')
    expect(mail?.html).toBe(
      '<h1>你好 李雷 &lt;img src&#x3D;x onerror&#x3D;alert(1)&gt;</h1><ul><li>茶</li><li>a &amp; b</li></ul>',
    )
    expect(mail?.from?.text).toBe('"Herald" <noreply@herald.test>')
    expect(mail?.messageId).toBe(`<${record.id}@herald.test>`)
    expect(await store.get(record.id)).toMatchObject({ status: 'sent', providerId: `<${record.id}@herald.test>` })
    await close()
  })

  it('email: an address the server refuses (550) is dead-lettered with the reply', async () => {
    const { store, notifications, transport, close } = await setup()
    const record = await notifications.send({
      user: 'u2',
      channel: 'email',
      to: 'bounce@example.com',
      template: 'welcome',
      locale: 'zh-CN',
      data: { name: 'x' },
    })
    await pollUntil(done(store, record.id))
    const failed = await store.get(record.id)
    expect(failed).toMatchObject({ status: 'failed', attempts: 1 })
    expect(failed?.lastError?.message).toMatch(/^smtp: 550 5\.1\.1 No such user here/)
    const { items } = await transport.listDeadLetters()
    expect(items.map((d) => d.reason)).toEqual(['permanent_error'])
    await close()
  })

  it('email: a 4xx reply is retried until the server accepts, and one mail arrives', async () => {
    const { store, notifications, close } = await setup()
    const record = await notifications.send({
      user: 'u3',
      channel: 'email',
      to: 'busy@example.com',
      template: 'welcome',
      locale: 'zh-CN',
      data: { name: 'y' },
    })
    await pollUntil(done(store, record.id))
    const sent = await store.get(record.id)
    expect(sent).toMatchObject({ status: 'sent', attempts: 3 })
    expect(sent?.lastError?.message).toMatch(/451 4\.2\.1 Mailbox busy/)
    expect(received.filter((m) => JSON.stringify(m.to).includes('busy@example.com'))).toHaveLength(1)
    await close()
  })

  it('email: a malformed address is refused before any SMTP conversation and dead-lettered', async () => {
    const { store, notifications, close } = await setup()
    const before = received.length
    const record = await notifications.send({
      user: 'u4',
      channel: 'email',
      to: 'not an address',
      template: 'welcome',
      locale: 'zh-CN',
      data: { name: 'z' },
    })
    await pollUntil(done(store, record.id))
    expect(await store.get(record.id)).toMatchObject({ status: 'failed', attempts: 1 })
    expect((await store.get(record.id))?.lastError?.message).toBe('smtp: "not an address" is not an email address')
    expect(received.length).toBe(before)
    await close()
  })

  it('email: a digest window of events gives one email listing them', async () => {
    const windowMs = 2_000
    // The service's clock stays at the start of the next window: every event below is in it, and its flush (a
    // delayed message, due at the real window end) is at least one window away.
    const clock = (Math.floor(Date.now() / windowMs) + 1) * windowMs
    const transport = createInMemoryTransport()
    const bus = createBus({ transport, service: 'digest-mail', consumer: { immediateRetries: 0 } })
    const store = createInMemoryNotificationStore()
    const notifications = createNotifications({
      bus,
      store,
      now: () => clock,
      providers: [
        smtpProvider({
          smtp: { host: '127.0.0.1', port, secure: false, ignoreTLS: true },
          from: 'noreply@herald.test',
        }),
      ],
    })
    await notifications.templates.save({
      name: 'likes',
      channel: 'email',
      locale: 'en',
      subject: '{{count}} new likes',
      body: '<ul>{{#each items}}<li>{{who}} liked {{what}}</li>{{/each}}</ul>',
    })
    // Keyed by the post's author, so the rule handles them in publish order and the digest lists them so.
    const Liked = defineEvent('post.liked', {
      schema: z.object({ who: z.string(), what: z.string() }),
      key: () => 'author',
    })
    notifications.rule(Liked, {
      name: 'likes-digest',
      channel: 'email',
      template: 'likes',
      digest: { windowMs },
      recipients: () => ({ user: 'author', to: 'author@example.com' }),
    })
    await bus.start()
    for (const who of ['Ann', 'Bo', '<Cy>']) await bus.publish(Liked, { who, what: 'your post' })
    const id = `digest:likes-digest:author:${clock}:email`
    await pollUntil(done(store, id), 10_000)
    const mails = received.filter((m) => JSON.stringify(m.to).includes('author@example.com'))
    expect(mails).toHaveLength(1)
    expect(mails[0]?.subject).toBe('3 new likes')
    expect(mails[0]?.html).toBe(
      '<ul><li>Ann liked your post</li><li>Bo liked your post</li><li>&lt;Cy&gt; liked your post</li></ul>',
    )
    await bus.stop()
    await transport.close()
  })
})
