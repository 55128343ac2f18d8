import { signToken } from '@herald/gateway'
import { WebSocket } from 'ws'
import type { Point } from './contracts.js'

/** A frame as the gateway sends it. */
interface Frame {
  readonly kind: string
  readonly id?: string
  readonly type?: string
  readonly data?: Record<string, unknown>
}

export interface SimulationOptions {
  /** The API gateway, e.g. `http://127.0.0.1:3000`; with several instances, clients spread over them. */
  readonly gatewayUrl: string | readonly string[]
  readonly secret: string
  /** Rides to request; `Infinity` runs until `signal` aborts. */
  readonly rides: number
  readonly drivers: number
  /** One new ride this often. */
  readonly rideIntervalMs: number
  /** How long a ride takes once paid. */
  readonly driveMs: number
  readonly seed?: number
  readonly signal?: AbortSignal
  /** A line for each notable thing that happens, for a live feed. */
  readonly onActivity?: (line: string) => void
}

export interface SimulationReport {
  readonly rides_requested: number
  readonly rides_completed: number
  readonly no_driver: number
  readonly cancelled: number
  /** Trips that reached no terminal state. */
  readonly pending: readonly string[]
  /** Frames a client received that named another user: must be 0. */
  readonly foreign_frames: number
  /**
   * Drivers who pressed "complete" as they accepted, before the ride was paid: the trip service refuses each
   * (`PermanentError`: not yet their trip, or not paid), so each is one dead letter, the operator's to look at in
   * the console's failures page.
   */
  readonly early_completions: number
  readonly frames: number
  /** Positions of their driver that riders received. */
  readonly driver_locations_seen: number
}

/** A small seeded generator, so a fixed run makes the same choices every time. */
function seeded(seed: number): () => number {
  let state = seed
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31
    return state / 2 ** 31
  }
}

const centre: Point = { lat: 52.52, lng: 13.405 }

/** A WebSocket that reconnects, resuming after the last event id it saw. */
class SimSocket {
  private socket: WebSocket | undefined
  private lastEventId: string | undefined
  private closing = false
  private readonly seen = new Set<string>()
  readonly opened: Promise<void>

  constructor(
    private readonly url: string,
    private readonly token: string,
    private readonly onFrame: (frame: Frame) => void,
  ) {
    this.opened = new Promise((done) => this.open(done))
  }

  private open(onOpen?: () => void): void {
    const query = this.lastEventId === undefined ? '' : `?lastEventId=${encodeURIComponent(this.lastEventId)}`
    const socket = new WebSocket(`${this.url}${query}`, { headers: { authorization: `Bearer ${this.token}` } })
    this.socket = socket
    socket.on('open', () => onOpen?.())
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame
      if (frame.kind === 'event' && frame.id !== undefined) {
        this.lastEventId = frame.id
        if (this.seen.has(frame.id)) return
        this.seen.add(frame.id)
      }
      this.onFrame(frame)
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      if (!this.closing) setTimeout(() => this.open(onOpen), 200).unref()
    })
  }

  send(message: object): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message))
  }

  close(): void {
    this.closing = true
    this.socket?.close()
  }
}

/**
 * Riders and drivers using the system through the API gateway, as apps would: HTTP to act, a WebSocket to hear
 * back. Drivers accept most offers, decline some and let some time out; riders mostly pay. Every client checks
 * that each event it receives is about itself.
 */
export async function simulate(options: SimulationOptions): Promise<SimulationReport> {
  const random = seeded(options.seed ?? 7)
  const gateways = typeof options.gatewayUrl === 'string' ? [options.gatewayUrl] : options.gatewayUrl
  // Client n talks to gateway instance n mod count, over HTTP and WebSocket alike.
  const gatewayFor = (n: number) => gateways[n % gateways.length] as string
  const wsUrl = (n: number) => `${gatewayFor(n).replace(/^http/, 'ws')}/ws`
  const near = (p: Point, spread: number): Point => ({
    lat: p.lat + (random() - 0.5) * spread,
    lng: p.lng + (random() - 0.5) * spread,
  })
  const activity = options.onActivity ?? (() => {})
  let foreign = 0
  let early = 0
  let frames = 0
  let locations = 0
  const outcome = new Map<string, 'completed' | 'no_driver' | 'cancelled' | 'pending'>()
  const sockets: SimSocket[] = []
  let settle: () => void = () => {}
  const allSettled = new Promise<void>((done) => {
    settle = done
  })
  let requested = 0
  const checkSettled = () => {
    if (requested === options.rides && [...outcome.values()].every((o) => o !== 'pending')) settle()
  }

  async function post(url: string, token: string, body: object, base: string): Promise<Record<string, unknown>> {
    const response = await fetch(new URL(url, base), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    const json = (await response.json()) as Record<string, unknown>
    if (!response.ok) throw new Error(`POST ${url}: ${response.status} ${JSON.stringify(json)}`)
    return json
  }

  async function startDriver(n: number): Promise<void> {
    const driverId = `driver-${String(n).padStart(3, '0')}`
    const token = await signToken(options.secret, { id: driverId, role: 'driver' })
    let location = near(centre, 0.1)
    const socket = new SimSocket(wsUrl(n), token, (frame) => {
      if (frame.kind !== 'event') return
      frames++
      if (frame.data?.driverId !== driverId) foreign++
      const tripId = String(frame.data?.tripId)
      if (frame.type === 'driver.event.trip_offered') {
        const draw = random()
        const offerId = String(frame.data?.offerId)
        // replyTo: the answer joins the offer's flow (the gateway checks this driver received it).
        if (draw < 0.75) {
          socket.send({ type: 'trip.accept', tripId, offerId, replyTo: frame.id })
          // One driver in fifteen presses "complete" straight away, before the rider has paid.
          if (random() < 1 / 15) {
            early++
            socket.send({ type: 'trip.complete', tripId, replyTo: frame.id })
          }
        } else if (draw < 0.9) socket.send({ type: 'trip.decline', tripId, offerId, replyTo: frame.id })
        // else: the driver looks away and the offer times out.
      } else if (frame.type === 'trip.event.paid') {
        // On the way: the rider sees the car move, then the drop-off.
        const step = (left: number) =>
          setTimeout(() => {
            location = near(location, 0.01)
            if (left > 0) {
              socket.send({ type: 'location', location, available: true, replyTo: frame.id })
              step(left - 1)
            } else socket.send({ type: 'trip.complete', tripId, replyTo: frame.id })
          }, options.driveMs / 3).unref()
        step(2)
      }
    })
    sockets.push(socket)
    await socket.opened
    await post('/drivers/me/location', token, { location, available: true }, gatewayFor(n))
  }

  async function requestRide(n: number): Promise<void> {
    const riderId = `rider-${String(n).padStart(4, '0')}`
    const token = await signToken(options.secret, { id: riderId, role: 'rider' })
    const pays = random() < 0.92
    let tripId: string | undefined
    const socket = new SimSocket(wsUrl(n), token, (frame) => {
      if (frame.kind !== 'event') return
      frames++
      if (frame.data?.riderId !== riderId) foreign++
      if (tripId === undefined) tripId = String(frame.data?.tripId) // the first frame can beat the HTTP answer
      const end = (o: 'completed' | 'no_driver' | 'cancelled', line: string) => {
        outcome.set(String(frame.data?.tripId), o)
        activity(`${riderId}: ${line}`)
        socket.close()
        checkSettled()
      }
      if (frame.type === 'payment.event.session_created') {
        // The checkout page is the payment service's (Stripe's, with the Stripe provider).
        void post(String(frame.data?.checkoutUrl), token, { outcome: pays ? 'pay' : 'decline' }, gatewayFor(n)).catch(
          (err) => activity(`${riderId}: checkout failed: ${(err as Error).message}`),
        )
      } else if (frame.type === 'trip.event.driver_assigned') activity(`${riderId}: ${frame.data?.driverId} is coming`)
      else if (frame.type === 'driver.event.location_updated') locations++
      else if (frame.type === 'trip.event.completed') end('completed', `arrived (${frame.data?.fareCents} cents)`)
      else if (frame.type === 'trip.event.no_drivers_found') end('no_driver', 'no driver found')
      else if (frame.type === 'trip.event.cancelled') end('cancelled', `cancelled (${frame.data?.reason})`)
    })
    sockets.push(socket)
    await socket.opened
    const pickup = near(centre, 0.08)
    const answer = await post('/trips', token, { pickup, dropoff: near(pickup, 0.05) }, gatewayFor(n))
    tripId = String(answer.tripId)
    if (!outcome.has(tripId)) outcome.set(tripId, 'pending')
    activity(`${riderId}: asked for a ride (${tripId.slice(-8)})`)
  }

  await Promise.all(Array.from({ length: options.drivers }, (_, i) => startDriver(i + 1)))
  for (let n = 1; n <= options.rides && !options.signal?.aborted; n++) {
    requested = n
    await requestRide(n)
    await new Promise((done) => setTimeout(done, options.rideIntervalMs))
  }
  requested = Math.min(requested, options.rides)
  checkSettled()
  if (Number.isFinite(options.rides)) await Promise.race([allSettled, abortOf(options.signal)])
  for (const socket of sockets) socket.close()
  const count = (o: string) => [...outcome.values()].filter((v) => v === o).length
  return {
    rides_requested: outcome.size,
    rides_completed: count('completed'),
    no_driver: count('no_driver'),
    cancelled: count('cancelled'),
    pending: [...outcome].filter(([, o]) => o === 'pending').map(([id]) => id),
    foreign_frames: foreign,
    early_completions: early,
    frames,
    driver_locations_seen: locations,
  }
}

function abortOf(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((done) => {
    if (signal === undefined) return
    if (signal.aborted) done()
    signal.addEventListener('abort', () => done(), { once: true })
  })
}
