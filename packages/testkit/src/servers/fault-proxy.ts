import { connect, createServer, type Server, type Socket } from 'node:net'
import { freePort } from './free-port.js'

/** `pass` forwards bytes; `blackhole` keeps every socket open and forwards nothing (a half-open network). */
export type ProxyMode = 'pass' | 'blackhole'

export interface FaultProxy {
  /** Where clients connect instead of the server. */
  readonly port: number
  /** Connections open right now (client side). */
  readonly openConnections: () => number
  /** Connections accepted since the start. */
  readonly acceptedConnections: () => number
  setMode(mode: ProxyMode): void
  /** Resets (TCP RST) every open connection, as a dying middlebox or a flapping network would. Returns how many. */
  resetAll(): number
  close(): Promise<void>
}

/**
 * A TCP proxy between a client and a server on loopback, for network faults on one machine (docs/reliability.md):
 * reset every connection, or blackhole them. Recorded sockets only; nothing outside the test is touched.
 */
export async function startFaultProxy(target: { host?: string; port: number }): Promise<FaultProxy> {
  const port = await freePort()
  const pairs = new Set<{ client: Socket; upstream: Socket }>()
  let mode: ProxyMode = 'pass'
  let accepted = 0

  const server: Server = createServer((client) => {
    accepted++
    const upstream = connect(target.port, target.host ?? '127.0.0.1')
    const pair = { client, upstream }
    pairs.add(pair)
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk) => {
        if (mode === 'pass') to.write(chunk)
      })
    forward(client, upstream)
    forward(upstream, client)
    const drop = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))

  return {
    port,
    openConnections: () => pairs.size,
    acceptedConnections: () => accepted,
    setMode(next) {
      mode = next
    },
    resetAll() {
      const current = [...pairs]
      for (const { client, upstream } of current) {
        client.resetAndDestroy()
        upstream.resetAndDestroy()
      }
      pairs.clear()
      return current.length
    },
    async close() {
      for (const { client, upstream } of pairs) {
        client.destroy()
        upstream.destroy()
      }
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
