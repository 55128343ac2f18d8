import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createBus, createInMemoryTransport } from '@herald/core'
import { ClientRequestError, createGateway, signToken } from '@herald/gateway'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import {
  answerInboxMessage,
  createInMemoryNotificationStore,
  createNotifications,
  InAppNotificationCreated,
  InboxRequestError,
} from '../src/index.js'

const secret = 'an-in-app-gateway-secret-of-32-bytes!!'
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface Frame {
  kind: string
  ref?: string
  ok?: boolean
  error?: string
  result?: { unread?: number; changed?: number; items?: { id: string; status: string }[] }
  data?: { id: string; user: string; subject?: string; body: string }
}

async function connect(url: string, user: string) {
  const socket = new WebSocket(url, {
    headers: { authorization: `Bearer ${await signToken(secret, { id: user, role: 'user' })}` },
  })
  const frames: Frame[] = []
  const waiters = new Set<() => void>()
  socket.on('message', (raw) => {
    frames.push(JSON.parse(raw.toString()) as Frame)
    for (const waiter of waiters) waiter()
  })
  cleanups.push(async () => socket.terminate())
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve())
    socket.once('error', reject)
  })
  const next = (predicate: (frame: Frame) => boolean) =>
    new Promise<Frame>((resolve) => {
      const check = () => {
        const found = frames.find(predicate)
        if (found === undefined) return
        waiters.delete(check)
        resolve(found)
      }
      waiters.add(check)
      check()
    })
  let refs = 0
  const ask = async (message: object) => {
    const ref = `r${++refs}`
    socket.send(JSON.stringify({ ref, ...message }))
    return next((f) => f.kind === 'reply' && f.ref === ref)
  }
  return { frames, next, ask }
}

describe('in-app notifications over the gateway', () => {
  it('in-app: a notification reaches its user over a WebSocket, is marked read there, and the unread count falls', async () => {
    const transport = createInMemoryTransport()
    const bus = createBus({ transport, service: 'in-app-test' })
    const store = createInMemoryNotificationStore()
    const notifications = createNotifications({ bus, store })
    await notifications.templates.save({
      name: 'paid',
      channel: 'in_app',
      locale: 'zh-CN',
      subject: '支付成功',
      body: '您的订单已支付成功，金额：¥{{amount}}',
    })
    const gateway = createGateway({
      bus,
      group: 'gateway-1',
      secret,
      onClientMessage: async (user, message) => {
        try {
          return await answerInboxMessage(notifications, user.id, message)
        } catch (err) {
          throw err instanceof InboxRequestError ? new ClientRequestError(err.message) : err
        }
      },
    })
    gateway.route(InAppNotificationCreated, (m) => ({ user: m.data.user }))
    await bus.start()
    const server = createServer((_req, res) => res.writeHead(404).end())
    gateway.attach(server)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => {
      await gateway.close()
      await bus.stop()
      await new Promise((resolve) => server.close(resolve))
      await transport.close()
    })
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws`
    const alice = await connect(url, 'alice')
    const bob = await connect(url, 'bob')

    const first = await notifications.send({
      user: 'alice',
      channel: 'in_app',
      template: 'paid',
      locale: 'zh-CN',
      data: { amount: '39.90' },
    })
    const second = await notifications.send({
      user: 'alice',
      channel: 'in_app',
      template: 'paid',
      locale: 'zh-CN',
      data: { amount: '8.00' },
    })
    const live = await alice.next((f) => f.kind === 'event' && f.data?.id === second.id)
    expect(live.data).toMatchObject({ user: 'alice', subject: '支付成功', body: '您的订单已支付成功，金额：¥8.00' })
    await alice.next((f) => f.kind === 'event' && f.data?.id === first.id)

    // The live event leaves before the inbox row is written: ask until both are in the inbox.
    let listed = await alice.ask({ type: 'notifications.list' })
    while (listed.result?.unread !== 2) listed = await alice.ask({ type: 'notifications.list' })
    expect(listed.result?.items?.map((i) => i.id).sort()).toEqual([first.id, second.id].sort())

    // Bob can neither see nor mark Alice's notifications.
    expect((await bob.ask({ type: 'notifications.read', ids: [first.id] })).result).toEqual({ changed: 0, unread: 0 })
    expect((await bob.ask({ type: 'notifications.list' })).result).toEqual({ items: [], unread: 0 })
    expect(bob.frames.filter((f) => f.kind === 'event')).toEqual([])

    expect((await alice.ask({ type: 'notifications.read', ids: [first.id] })).result).toEqual({ changed: 1, unread: 1 })
    expect((await alice.ask({ type: 'notifications.unread_count' })).result).toEqual({ unread: 1 })
    expect((await alice.ask({ type: 'notifications.read_all' })).result).toEqual({ changed: 1, unread: 0 })
    expect(await notifications.inbox.unreadCount('alice')).toBe(0)
    expect((await store.get(first.id))?.status).toBe('read')

    const bad = await alice.ask({ type: 'notifications.read', ids: 'all' })
    expect(bad).toMatchObject({ ok: false })
    expect(bad.error).toMatch(/^notifications\.read: /)
  })
})
