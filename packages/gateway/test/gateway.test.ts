import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Bus, createBus, createInMemoryTransport, defineEvent, type Transport } from '@herald/core'
import { ClientRequestError, CloseCodes, createGateway, type Gateway, signToken } from '@herald/gateway'
import { SignJWT } from 'jose'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { z } from 'zod'

const secret = 'a-gateway-secret-of-at-least-32-bytes!'
const RideUpdate = defineEvent('ride.updated', {
  schema: z.object({ riderId: z.string(), n: z.number(), padding: z.string().optional() }),
})
const Surge = defineEvent('zone.surge', { schema: z.object({ zone: z.string() }) })

interface Frame {
  kind: string
  id?: string
  type?: string
  data?: { riderId?: string; n?: number; zone?: string }
  ref?: string
  ok?: boolean
  error?: string
  result?: unknown
}

/** A WebSocket client that records every frame and lets a test await one. */
class Client {
  readonly frames: Frame[] = []
  private waiters: Array<() => void> = []
  closeCode: number | undefined
  readonly closed: Promise<number>
  constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()) as Frame)
      for (const w of this.waiters.splice(0)) w()
    })
    this.closed = new Promise((done) =>
      socket.on('close', (code) => {
        this.closeCode = code
        done(code)
      }),
    )
  }
  events(): Frame[] {
    return this.frames.filter((f) => f.kind === 'event')
  }
  async waitFor(predicate: (frames: Frame[]) => boolean): Promise<void> {
    while (!predicate(this.frames)) {
      if (this.closeCode !== undefined) throw new Error(`socket closed (${this.closeCode}) before the frames came`)
      await new Promise<void>((done) => {
        this.waiters.push(done)
        void this.closed.then(() => done())
      })
    }
  }
}

const servers: Server[] = []
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function startGateway(
  transport: Transport,
  group: string,
  configure: (gateway: Gateway) => void = () => {},
  extra: Partial<Parameters<typeof createGateway>[0]> = {},
): Promise<{ bus: Bus; gateway: Gateway; url: string }> {
  const bus = createBus({ transport, service: group })
  const gateway = createGateway({ bus, group, secret, ...extra })
  gateway.route(RideUpdate, (m) => ({ user: m.data.riderId }))
  gateway.route(Surge, () => ({ role: 'driver' }))
  configure(gateway)
  await bus.start()
  const server = createServer((_req, res) => res.writeHead(404).end())
  gateway.attach(server)
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
  servers.push(server)
  cleanups.push(async () => {
    await gateway.close()
    await bus.stop()
    await new Promise((done) => server.close(done))
  })
  return { bus, gateway, url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws` }
}

async function connect(url: string, token: string | undefined, lastEventId?: string): Promise<Client> {
  const query = new URLSearchParams()
  if (lastEventId !== undefined) query.set('lastEventId', lastEventId)
  const socket = new WebSocket(
    `${url}?${query}`,
    token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } },
  )
  const client = new Client(socket)
  cleanups.push(async () => {
    socket.terminate()
  })
  await new Promise<void>((done, fail) => {
    socket.once('open', () => done())
    socket.once('unexpected-response', (_req, res) => fail(new Error(`refused: ${res.statusCode}`)))
    socket.once('error', fail)
  })
  return client
}

const token = (id: string, role = 'rider') => signToken(secret, { id, role })

function newTransport(): Transport {
  const transport = createInMemoryTransport()
  cleanups.push(() => transport.close())
  return transport
}

describe('@herald/gateway', () => {
  it('refuses a missing, forged, expired or unsigned token before the upgrade', async () => {
    const { url, gateway } = await startGateway(newTransport(), 'gateway-a')
    const forged = await signToken('another-secret-that-is-32-bytes-long!!', { id: 'r1', role: 'rider' })
    const expired = await new SignJWT({ role: 'rider' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('r1')
      .setIssuer('herald-gateway')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(new TextEncoder().encode(secret))
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"r1","role":"rider","iss":"herald-gateway"}').toString('base64url')}.`
    await expect(connect(url, undefined)).rejects.toThrow('refused: 401')
    await expect(connect(url, forged)).rejects.toThrow('refused: 401')
    await expect(connect(url, expired)).rejects.toThrow('refused: 401')
    await expect(connect(url, unsigned)).rejects.toThrow('refused: 401')
    expect(gateway.stats().refused).toBe(4)
    const ok = await connect(url, await token('r1'))
    expect(ok.socket.readyState).toBe(WebSocket.OPEN)
  })

  it('refuses a token without exp and one with an empty role; closes a live socket when its token expires', async () => {
    const { url, gateway, bus } = await startGateway(newTransport(), 'gateway-a')
    const key = new TextEncoder().encode(secret)
    const noExp = await new SignJWT({ role: 'rider' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('r1')
      .setIssuer('herald-gateway')
      .sign(key)
    const emptyRole = await new SignJWT({ role: ' ' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('r1')
      .setIssuer('herald-gateway')
      .setExpirationTime('1h')
      .sign(key)
    await expect(connect(url, noExp)).rejects.toThrow('refused: 401')
    await expect(connect(url, emptyRole)).rejects.toThrow('refused: 401')
    expect(gateway.stats().refused).toBe(2)
    // A short-lived token: the socket opens, then closes with 4001 when the token ends. `exp` counts in whole
    // seconds from a truncated issue time, so a 1 s token may have almost nothing left when it is checked: 2 s
    // leaves at least one.
    const shortLived = await signToken(secret, { id: 'r1', role: 'rider' }, { ttlSeconds: 2 })
    const client = await connect(url, shortLived)
    expect(await client.closed).toBe(CloseCodes.tokenExpired)
    // Nothing reaches it after that.
    await bus.publish(RideUpdate, { riderId: 'r1', n: 1 })
    expect(client.events()).toEqual([])
  })

  it('answers an upgrade on an unknown path with 404 instead of leaving it hanging', async () => {
    const { url } = await startGateway(newTransport(), 'gateway-a')
    await expect(connect(url.replace('/ws', '/elsewhere'), await token('r1'))).rejects.toThrow('refused: 404')
  })

  it('delivers each event to the user it names and a broadcast to every user of the role, no one else', async () => {
    const { url, bus } = await startGateway(newTransport(), 'gateway-a')
    const alice = await connect(url, await token('alice'))
    const bob = await connect(url, await token('bob'))
    const driver = await connect(url, await token('d1', 'driver'))
    for (let n = 1; n <= 5; n++) {
      await bus.publish(RideUpdate, { riderId: 'alice', n })
      await bus.publish(RideUpdate, { riderId: 'bob', n })
    }
    await bus.publish(Surge, { zone: 'north' })
    await driver.waitFor((f) => f.length === 1)
    await alice.waitFor((f) => f.length === 5)
    await bob.waitFor((f) => f.length === 5)
    expect(alice.events().map((f) => [f.data?.riderId, f.data?.n])).toEqual([1, 2, 3, 4, 5].map((n) => ['alice', n]))
    expect(bob.events().every((f) => f.data?.riderId === 'bob')).toBe(true)
    expect(driver.events().map((f) => f.type)).toEqual(['zone.surge'])
  })

  it('resumes a reconnecting client after its last event id, and says so when that id is gone', async () => {
    const { url, bus } = await startGateway(newTransport(), 'gateway-a', () => {}, { historyPerUser: 5 })
    const first = await connect(url, await token('alice'))
    for (let n = 1; n <= 2; n++) await bus.publish(RideUpdate, { riderId: 'alice', n })
    await first.waitFor((f) => f.length === 2)
    first.socket.close()
    await first.closed
    for (let n = 3; n <= 4; n++) await bus.publish(RideUpdate, { riderId: 'alice', n })
    const lastSeen = first.events()[1]?.id
    const resumed = await connect(url, await token('alice'), lastSeen)
    await resumed.waitFor((f) => f.length === 2)
    expect(resumed.events().map((f) => f.data?.n)).toEqual([3, 4])
    // Past the five kept, the first id is forgotten: the client is told to reload, then gets what is kept.
    for (let n = 5; n <= 8; n++) await bus.publish(RideUpdate, { riderId: 'alice', n })
    await resumed.waitFor((f) => f.length === 6)
    const stale = await connect(url, await token('alice'), first.events()[0]?.id)
    await stale.waitFor((f) => f.length === 6)
    expect(stale.frames[0]?.kind).toBe('resync')
    expect(stale.events().map((f) => f.data?.n)).toEqual([4, 5, 6, 7, 8])
  })

  it('sends a redelivered event (same id) once', async () => {
    const transport = newTransport()
    const { url, bus } = await startGateway(transport, 'gateway-a')
    const alice = await connect(url, await token('alice'))
    const id = await bus.publish(RideUpdate, { riderId: 'alice', n: 1 })
    await bus.publish(RideUpdate, { riderId: 'alice', n: 1 }, { id })
    await bus.publish(RideUpdate, { riderId: 'alice', n: 2 })
    await alice.waitFor((f) => f.length === 2)
    expect(alice.events().map((f) => f.data?.n)).toEqual([1, 2])
  })

  it('closes a client that cannot keep up with 4008 while the others and the bus flow on; it resumes after', async () => {
    const { url, bus, gateway } = await startGateway(newTransport(), 'gateway-a', () => {}, {
      maxBufferedBytes: 64 * 1024,
      maxQueuedFrames: 50,
      historyPerUser: 1_000,
    })
    const slow = await connect(url, await token('alice'))
    const fast = await connect(url, await token('alice'))
    // The slow client stops reading: the kernel buffers fill, then the gateway's.
    ;(slow.socket as unknown as { _socket: { pause(): void } })._socket.pause()
    const padding = 'x'.repeat(32 * 1024)
    const total = 600 // ~19 MiB, well past loopback socket buffers
    // Published in rounds the fast client keeps up with, so only the paused one falls behind.
    for (let n = 1; n <= total; n++) {
      await bus.publish(RideUpdate, { riderId: 'alice', n, padding })
      if (n % 10 === 0) await fast.waitFor((f) => f.length === n)
    }
    expect(gateway.stats().slowClosed).toBe(1)
    ;(slow.socket as unknown as { _socket: { resume(): void } })._socket.resume()
    expect(await slow.closed).toBe(CloseCodes.tooSlow)
    const received = slow.events()
    expect(received.length).toBeLessThan(total)
    const resumed = await connect(url, await token('alice'), received.at(-1)?.id)
    await resumed.waitFor((f) => received.length + f.length === total)
    expect([...received, ...resumed.events()].map((f) => f.data?.n)).toEqual(
      Array.from({ length: total }, (_, i) => i + 1),
    )
  })

  it('passes client messages to the application with the verified user, and answers by ref', async () => {
    const seen: Array<[string, unknown]> = []
    const { url } = await startGateway(newTransport(), 'gateway-a', () => {}, {
      onClientMessage: async (user, message) => {
        seen.push([user.id, message])
        if ((message as { type?: string }).type === 'bad') throw new ClientRequestError('unknown trip')
        if ((message as { type?: string }).type === 'boom') throw new Error('database password is hunter2')
        return { accepted: true }
      },
    })
    const driver = await connect(url, await token('d1', 'driver'))
    driver.socket.send(JSON.stringify({ ref: 'a', type: 'accept', driverId: 'someone-else' }))
    driver.socket.send(JSON.stringify({ ref: 'b', type: 'bad' }))
    driver.socket.send(JSON.stringify({ ref: 'c', type: 'boom' }))
    driver.socket.send('{not json')
    await driver.waitFor((f) => f.length === 4)
    const replies = new Map(driver.frames.map((f) => [f.ref ?? 'none', f]))
    expect(replies.get('a')).toMatchObject({ ok: true, result: { accepted: true } })
    expect(replies.get('b')).toMatchObject({ ok: false, error: 'unknown trip' })
    expect(replies.get('c')).toMatchObject({ ok: false, error: 'request failed' })
    expect(replies.get('none')).toMatchObject({ ok: false, error: 'message is not valid JSON' })
    expect(seen[0]?.[0]).toBe('d1')
  })

  it("gives the flow of an event only to a user who received it, so answers join that flow and no one else's", async () => {
    const { url, bus, gateway } = await startGateway(newTransport(), 'gateway-a')
    const alice = await connect(url, await token('alice'))
    const id = await bus.publish(RideUpdate, { riderId: 'alice', n: 1 }, { correlationId: 'ride-42' })
    await alice.waitFor((f) => f.length === 1)
    expect(gateway.flowOf('alice', id)).toEqual({ correlationId: 'ride-42', causationId: id })
    expect(gateway.flowOf('bob', id)).toBeUndefined()
    expect(gateway.flowOf('alice', 'not-an-event-of-hers')).toBeUndefined()
  })

  it('lets several instances each deliver the events of their own connected users', async () => {
    const transport = newTransport()
    const one = await startGateway(transport, 'gateway-1')
    const two = await startGateway(transport, 'gateway-2')
    const alice = await connect(one.url, await token('alice'))
    const bob = await connect(two.url, await token('bob'))
    await one.bus.publish(RideUpdate, { riderId: 'bob', n: 1 })
    await two.bus.publish(RideUpdate, { riderId: 'alice', n: 2 })
    await alice.waitFor((f) => f.length === 1)
    await bob.waitFor((f) => f.length === 1)
    expect(alice.events().map((f) => [f.data?.riderId, f.data?.n])).toEqual([['alice', 2]])
    expect(bob.events().map((f) => [f.data?.riderId, f.data?.n])).toEqual([['bob', 1]])
  })
})
