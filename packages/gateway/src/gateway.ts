import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import {
  type Bus,
  ConfigurationError,
  type ConsumerOptions,
  type DataOf,
  type EventContract,
  type Message,
  type MessageContract,
} from '@herald/core'
import { WebSocket, WebSocketServer } from 'ws'
import { UserHistory } from './history.js'
import { type GatewayUser, TokenError, type VerifiedToken, verifyToken } from './token.js'

/** Where an event goes: one user (kept for resume), or every connected user of a role (live only). */
export type Target = { readonly user: string } | { readonly role: string }

/** Thrown by `onClientMessage` to answer the client with this message; any other error answers "request failed". */
export class ClientRequestError extends Error {
  override readonly name = 'ClientRequestError'
}

export interface GatewayOptions {
  /** The bus the gateway consumes events from. Register routes before `bus.start()`. */
  readonly bus: Bus
  /**
   * This instance's group. Give every instance its own (`gateway.<host>`): each then receives every routed
   * event and delivers it to the users connected to it.
   */
  readonly group: string
  /** Verifies client tokens (see `signToken`); at least 32 bytes. */
  readonly secret: string
  /** URL path that accepts WebSocket upgrades. Default `/ws`. */
  readonly path?: string
  /** Events kept per user for resume. Default 100. */
  readonly historyPerUser?: number
  /** Users whose events are kept. Default 10,000 (the least recently written are forgotten first). */
  readonly historyUsers?: number
  /** Bytes handed to a socket and not yet written, before the gateway holds frames back. Default 256 KiB. */
  readonly maxBufferedBytes?: number
  /** Live frames held back for one socket; a client further behind is closed with 4008. Default `historyPerUser`. */
  readonly maxQueuedFrames?: number
  /** Largest frame a client may send. Default 64 KiB. */
  readonly maxClientMessageBytes?: number
  /** Pings every socket this often; one that missed the previous pong is dropped. Default 30 s. */
  readonly pingIntervalMs?: number
  /** Handles a JSON message from a client; what it returns is sent back as the reply's `result`. */
  readonly onClientMessage?: (user: GatewayUser, message: unknown) => Promise<unknown>
  /** Consumer options of the gateway's group. */
  readonly consumer?: ConsumerOptions
}

export interface GatewayStats {
  readonly connections: number
  readonly framesSent: number
  /** Connections closed because the client could not keep up. */
  readonly slowClosed: number
  /** Upgrades refused for a missing, forged or expired token. */
  readonly refused: number
}

export interface Gateway {
  /** Forwards every `contract` event to the targets `to` names. */
  route<C extends EventContract>(contract: C, to: (message: Message<DataOf<C>>) => Target | readonly Target[]): Gateway
  /**
   * Sends one message to its targets now: for messages the application handles itself (a command addressed to
   * a user, say). `route` is this, registered on the gateway's group.
   */
  deliver(targets: Target | readonly Target[], message: Message<unknown>): void
  /** Accepts WebSocket upgrades on `server` at `path`. */
  attach(server: Server): void
  /**
   * The flow of an event this user received (and the gateway still keeps): pass it as the options of what the
   * user's answer sends, so the answer joins that flow as its effect. Undefined for an event the user never got:
   * a client cannot attach its messages to someone else's flow.
   */
  flowOf(userId: string, eventId: string): { readonly correlationId: string; readonly causationId: string } | undefined
  stats(): GatewayStats
  /** Closes every socket (1001) and stops accepting upgrades. The bus is the caller's to stop. */
  close(): Promise<void>
}

interface Connection {
  readonly socket: WebSocket
  readonly user: GatewayUser
  alive: boolean
  /** Frames kept for this user that a resuming client missed: sent first, not counted as falling behind. */
  readonly replay: string[]
  /** Live frames not yet handed to the socket. The strings are shared with the history, so they cost pointers. */
  readonly queue: string[]
}

/** Close codes a client can act on. */
export const CloseCodes = { goingAway: 1001, tokenExpired: 4001, tooSlow: 4008 } as const

function positiveInteger(name: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0)) throw new ConfigurationError(name, 'must be a positive integer')
  return value
}

function refuse(socket: Duplex, status: number, reason: string): void {
  const text = status === 401 ? 'Unauthorized' : 'Not Found'
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(reason)}\r\n\r\n${reason}`,
  )
}

function tokenOf(req: IncomingMessage, url: URL): string | undefined {
  const header = req.headers.authorization
  if (header?.startsWith('Bearer ')) return header.slice('Bearer '.length)
  return url.searchParams.get('token') ?? undefined
}

/**
 * A WebSocket gateway: clients connect with a signed token naming their user and role, and receive the bus
 * events routed to them. A slow client never holds the bus back: past `maxBufferedBytes` in its socket, frames
 * wait in a queue of at most `maxQueuedFrames`, and past that the socket is closed with 4008 so that the client
 * reconnects and resumes from its last event id.
 */
export function createGateway(options: GatewayOptions): Gateway {
  const path = options.path ?? '/ws'
  const maxBufferedBytes = positiveInteger('maxBufferedBytes', options.maxBufferedBytes ?? 256 * 1024)
  const historyPerUser = positiveInteger('historyPerUser', options.historyPerUser ?? 100)
  const maxQueuedFrames = positiveInteger('maxQueuedFrames', options.maxQueuedFrames ?? historyPerUser)
  const history = new UserHistory(historyPerUser, positiveInteger('historyUsers', options.historyUsers ?? 10_000))
  // Fails now rather than on the first connection.
  if (Buffer.byteLength(options.secret ?? '') < 32) throw new ConfigurationError('secret', 'must be at least 32 bytes')
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: positiveInteger('maxClientMessageBytes', options.maxClientMessageBytes ?? 64 * 1024),
  })
  const byUser = new Map<string, Set<Connection>>()
  const all = new Set<Connection>()
  const group = options.bus.group(options.group, options.consumer)
  let framesSent = 0
  let slowClosed = 0
  let refused = 0
  let closed = false

  /** Hands queued frames to the socket while its buffer is under `maxBufferedBytes`; resumes as writes finish. */
  function pump(connection: Connection): void {
    const { socket } = connection
    while (socket.readyState === WebSocket.OPEN && socket.bufferedAmount < maxBufferedBytes) {
      const frame = connection.replay.length > 0 ? connection.replay.shift() : connection.queue.shift()
      if (frame === undefined) return
      socket.send(frame, () => pump(connection))
      framesSent++
    }
  }

  function send(connection: Connection, frame: string): void {
    if (connection.socket.readyState !== WebSocket.OPEN) return
    if (connection.queue.length >= maxQueuedFrames) {
      slowClosed++
      connection.queue.length = 0
      connection.replay.length = 0
      connection.socket.close(CloseCodes.tooSlow, 'too slow: reconnect and resume from your last event id')
      return
    }
    connection.queue.push(frame)
    pump(connection)
  }

  function deliver(target: Target, id: string, correlationId: string, frame: string): void {
    if ('user' in target) {
      if (!history.add(target.user, { id, correlationId, frame })) return // redelivered: this user has it already
      for (const connection of byUser.get(target.user) ?? []) send(connection, frame)
    } else {
      for (const connection of all) if (connection.user.role === target.role) send(connection, frame)
    }
  }

  function register(connection: Connection): void {
    all.add(connection)
    let mine = byUser.get(connection.user.id)
    if (mine === undefined) {
      mine = new Set()
      byUser.set(connection.user.id, mine)
    }
    mine.add(connection)
  }

  function unregister(connection: Connection): void {
    all.delete(connection)
    const mine = byUser.get(connection.user.id)
    mine?.delete(connection)
    if (mine?.size === 0) byUser.delete(connection.user.id)
  }

  async function answer(connection: Connection, raw: string): Promise<void> {
    let message: unknown
    try {
      message = JSON.parse(raw)
    } catch {
      send(connection, JSON.stringify({ kind: 'reply', ok: false, error: 'message is not valid JSON' }))
      return
    }
    const ref = typeof message === 'object' && message !== null ? (message as { ref?: unknown }).ref : undefined
    const reply = (body: object) =>
      send(connection, JSON.stringify({ kind: 'reply', ...(ref === undefined ? {} : { ref }), ...body }))
    if (options.onClientMessage === undefined) return reply({ ok: false, error: 'this gateway takes no messages' })
    try {
      const result = await options.onClientMessage(connection.user, message)
      reply({ ok: true, ...(result === undefined ? {} : { result }) })
    } catch (err) {
      reply({ ok: false, error: err instanceof ClientRequestError ? err.message : 'request failed' })
    }
  }

  function accept(socket: WebSocket, token: VerifiedToken, lastEventId: string | undefined): void {
    const user: GatewayUser = { id: token.id, role: token.role }
    // Replay and registration happen in one turn, so no event falls between them or arrives twice.
    const { frames, gap } = history.since(user.id, lastEventId)
    const replay = frames.map((kept) => kept.frame)
    if (gap) replay.unshift(JSON.stringify({ kind: 'resync', reason: 'last event id no longer kept here' }))
    const connection: Connection = { socket, user, alive: true, replay, queue: [] }
    register(connection)
    pump(connection)
    socket.on('pong', () => {
      connection.alive = true
    })
    socket.on('message', (data, isBinary) => {
      if (isBinary)
        send(connection, JSON.stringify({ kind: 'reply', ok: false, error: 'binary frames are not accepted' }))
      else void answer(connection, data.toString())
    })
    // A connection lives no longer than its token: the client reconnects with a fresh one and resumes.
    const expiry = setTimeout(
      () => socket.close(CloseCodes.tokenExpired, 'token expired: reconnect with a new token'),
      Math.max(0, token.expiresAt - Date.now()),
    )
    expiry.unref()
    socket.on('close', () => {
      clearTimeout(expiry)
      unregister(connection)
    })
    socket.on('error', () => unregister(connection))
  }

  async function onUpgrade(server: Server, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://gateway')
    if (url.pathname !== path) {
      // Another listener on this server may own that path; with none, the client gets an answer, not a hang.
      if (server.listenerCount('upgrade') <= 1) refuse(socket, 404, 'no WebSocket endpoint here')
      return
    }
    socket.on('error', () => socket.destroy())
    const token = tokenOf(req, url)
    let user: VerifiedToken
    try {
      if (token === undefined) throw new TokenError('token missing')
      user = await verifyToken(options.secret, token)
    } catch (err) {
      refused++
      refuse(socket, 401, err instanceof TokenError ? err.message : 'token invalid')
      return
    }
    if (closed) return refuse(socket, 404, 'gateway closed')
    const lastEventId = url.searchParams.get('lastEventId') ?? req.headers['last-event-id']
    wss.handleUpgrade(req, socket, head, (ws) =>
      accept(ws, user, typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : undefined),
    )
  }
  const listeners = new Map<Server, (req: IncomingMessage, socket: Duplex, head: Buffer) => void>()

  const pinger = setInterval(
    () => {
      for (const connection of all) {
        if (!connection.alive) {
          connection.socket.terminate()
          unregister(connection)
          continue
        }
        connection.alive = false
        connection.socket.ping()
      }
    },
    positiveInteger('pingIntervalMs', options.pingIntervalMs ?? 30_000),
  )
  pinger.unref()

  const gateway: Gateway = {
    route(contract, to) {
      group.on(contract as MessageContract, async (message) => {
        gateway.deliver(to(message as Message<DataOf<typeof contract>>), message)
      })
      return gateway
    },
    deliver(targets, message) {
      const frame = JSON.stringify({
        kind: 'event',
        id: message.id,
        type: message.type,
        time: message.time,
        correlationId: message.correlationId,
        data: message.data,
      })
      for (const target of Array.isArray(targets) ? targets : [targets as Target])
        deliver(target, message.id, message.correlationId, frame)
    },
    attach(server) {
      const listener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void onUpgrade(server, req, socket, head)
      listeners.set(server, listener)
      server.on('upgrade', listener)
    },
    flowOf(userId, eventId) {
      const kept = history.find(userId, eventId)
      return kept === undefined ? undefined : { correlationId: kept.correlationId, causationId: kept.id }
    },
    stats: () => ({ connections: all.size, framesSent, slowClosed, refused }),
    async close() {
      if (closed) return
      closed = true
      clearInterval(pinger)
      for (const [server, listener] of listeners) server.off('upgrade', listener)
      const closing = [...all].map(
        (connection) =>
          new Promise<void>((done) => {
            if (connection.socket.readyState === WebSocket.CLOSED) return done()
            connection.socket.once('close', () => done())
            connection.socket.close(CloseCodes.goingAway, 'gateway shutting down')
            setTimeout(() => {
              connection.socket.terminate()
              done()
            }, 2_000).unref()
          }),
      )
      await Promise.all(closing)
      await new Promise<void>((done) => wss.close(() => done()))
    },
  }
  return gateway
}
