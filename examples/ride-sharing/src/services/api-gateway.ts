import { type Bus, isHeraldError, uuidV7 } from '@herald/core'
import {
  ClientRequestError,
  createGateway,
  type Gateway,
  type GatewayUser,
  TokenError,
  verifyToken,
} from '@herald/gateway'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { z } from 'zod'
import {
  CompleteTrip,
  CreateTrip,
  DriverLocationUpdated,
  DriverTripOffered,
  PaymentSessionCreated,
  Point,
  TripAccept,
  TripCancelled,
  TripCompleted,
  TripCreated,
  TripDecline,
  TripDriverAssigned,
  TripNoDriversFound,
  TripPaid,
  TripRequest,
  UpdateDriverLocation,
} from '../contracts.js'

export interface ApiGatewayOptions {
  /** Signs and verifies rider and driver tokens (HS256, at least 32 bytes). */
  readonly secret: string
  /**
   * This instance's name: its group (`api_gateway.<instance>`) receives every event for users, and it delivers
   * those of the users connected to it. Give each instance its own. Default `1`.
   */
  readonly instance?: string
}

const TripBody = z.object({ pickup: Point, dropoff: Point })
const LocationBody = z.object({ location: Point, available: z.boolean() })
// `replyTo`: the id of the event the driver answers, so the answer joins that event's flow.
const replyTo = { replyTo: z.string().optional() }
const DriverMessage = z.discriminatedUnion('type', [
  z.object({ type: z.enum(['trip.accept', 'trip.decline']), tripId: z.string(), offerId: z.string(), ...replyTo }),
  z.object({ type: z.literal('trip.complete'), tripId: z.string(), ...replyTo }),
  z.object({ type: z.literal('location'), location: Point, available: z.boolean(), ...replyTo }),
])

/**
 * The riders' and drivers' way in: an HTTP API that turns requests into commands and events, and the WebSocket
 * gateway that brings each user the events about them. Identity always comes from the verified token, never
 * from the request body.
 */
export function registerApiGateway(bus: Bus, options: ApiGatewayOptions): { app: FastifyInstance; gateway: Gateway } {
  const gateway = createGateway({
    bus,
    group: `api_gateway.${options.instance ?? '1'}`,
    secret: options.secret,
    async onClientMessage(user, message) {
      if (user.role !== 'driver') throw new ClientRequestError('riders send nothing over the socket')
      const parsed = DriverMessage.safeParse(message)
      if (!parsed.success)
        throw new ClientRequestError(`unknown or malformed message: ${parsed.error.issues[0]?.message}`)
      const m = parsed.data
      const flow = m.replyTo === undefined ? {} : (gateway.flowOf(user.id, m.replyTo) ?? {})
      if (m.type === 'trip.complete') await bus.send(CompleteTrip, { tripId: m.tripId, driverId: user.id }, flow)
      else if (m.type === 'location')
        await bus.send(UpdateDriverLocation, { driverId: user.id, location: m.location, available: m.available }, flow)
      else {
        const answer = { tripId: m.tripId, offerId: m.offerId, driverId: user.id }
        await bus.send(m.type === 'trip.accept' ? TripAccept : TripDecline, answer, flow)
      }
      return undefined
    },
  })
  const rider = (data: { riderId: string }) => ({ user: data.riderId })
  const riderAndDriver = (data: { riderId: string; driverId?: string | undefined }) =>
    data.driverId === undefined ? [rider(data)] : [rider(data), { user: data.driverId }]
  gateway
    .route(TripCreated, (m) => rider(m.data))
    .route(TripNoDriversFound, (m) => rider(m.data))
    .route(PaymentSessionCreated, (m) => rider(m.data))
    .route(TripDriverAssigned, (m) => riderAndDriver(m.data))
    .route(TripPaid, (m) => riderAndDriver(m.data))
    .route(TripCompleted, (m) => riderAndDriver(m.data))
    .route(TripCancelled, (m) => riderAndDriver(m.data))
    // A driver's position goes to the rider of the trip they are on, and to no one otherwise.
    .route(DriverLocationUpdated, (m) => (m.data.riderId === undefined ? [] : [{ user: m.data.riderId }]))
  // The offer is a command to the gateways' queue (the source design's `driver_cmd_trip_request`): whichever
  // instance takes it publishes it as an event, so that the instance holding the driver's socket delivers it.
  gateway.route(DriverTripOffered, (m) => ({ user: m.data.driverId }))
  bus.group('driver_cmd_trip_request').on(TripRequest, async (message, context) => {
    await context.publish(DriverTripOffered, message.data, { partitionKey: message.data.tripId })
  })

  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 })
  const users = new WeakMap<FastifyRequest, GatewayUser>()
  app.addHook('onRequest', async (request, reply) => {
    if (request.url === '/healthz') return
    const header = request.headers.authorization
    try {
      if (!header?.startsWith('Bearer ')) throw new TokenError('token missing')
      users.set(request, await verifyToken(options.secret, header.slice('Bearer '.length)))
    } catch (err) {
      return reply.code(401).send({ error: err instanceof TokenError ? err.message : 'token invalid' })
    }
  })
  const userOf = (request: FastifyRequest, role: string): GatewayUser => {
    const user = users.get(request)
    if (user?.role !== role) throw Object.assign(new Error(`only a ${role} may do this`), { statusCode: 403 })
    return user
  }
  app.setErrorHandler((err: Error & { statusCode?: number }, _request, reply) => {
    if (isHeraldError(err, 'NO_ROUTE')) return reply.code(503).send({ error: 'the service behind this is not running' })
    const status = err.statusCode !== undefined && err.statusCode < 500 ? err.statusCode : 500
    reply.code(status).send({ error: status === 500 ? 'internal error' : err.message })
  })

  app.get('/healthz', async () => ({ ok: true, connections: gateway.stats().connections }))

  app.post('/trips', async (request, reply) => {
    const user = userOf(request, 'rider')
    const body = TripBody.safeParse(request.body)
    if (!body.success)
      return reply.code(400).send({ error: 'pickup and dropoff must be {lat, lng}', issues: body.error.issues })
    const tripId = uuidV7()
    await bus.send(CreateTrip, { tripId, riderId: user.id, ...body.data }, { partitionKey: tripId })
    return reply.code(202).send({ tripId })
  })

  app.post('/drivers/me/location', async (request, reply) => {
    const user = userOf(request, 'driver')
    const body = LocationBody.safeParse(request.body)
    if (!body.success) return reply.code(400).send({ error: 'expected {location: {lat, lng}, available}' })
    await bus.send(UpdateDriverLocation, { driverId: user.id, ...body.data }, { partitionKey: user.id })
    return reply.code(202).send({})
  })

  gateway.attach(app.server)
  app.addHook('onClose', () => gateway.close())
  return { app, gateway }
}
