import { defineCommand, defineEvent } from '@herald/core'
import { z } from 'zod'

/**
 * Every message of the ride-sharing system, defined once and shared by the four services. Routing keys are the
 * source design's (`trip.event.created`, `driver.cmd.trip_request`, …); the rest follow the same scheme.
 */

export const Point = z.object({ lat: z.number().min(-90).max(90), lng: z.number().min(-180).max(180) })
export type Point = z.infer<typeof Point>

const id = z.string().min(1).max(100)
const trip = { tripId: id, riderId: id }

// Trip service.

/** Sent by the API gateway when a rider asks for a ride; the gateway chose the trip id. */
export const CreateTrip = defineCommand('trip.cmd.create', {
  schema: z.object({ ...trip, pickup: Point, dropoff: Point }),
})
export const TripCreated = defineEvent('trip.event.created', {
  schema: z.object({ ...trip, pickup: Point, dropoff: Point, fareCents: z.number().int().positive() }),
})
export const TripDriverAssigned = defineEvent('trip.event.driver_assigned', {
  schema: z.object({ ...trip, driverId: id, fareCents: z.number().int().positive() }),
})
export const TripNoDriversFound = defineEvent('trip.event.no_drivers_found', { schema: z.object(trip) })
/** Paid: the driver may start the ride. */
export const TripPaid = defineEvent('trip.event.paid', { schema: z.object({ ...trip, driverId: id }) })
/** Sent by the driver (through the gateway) at the drop-off. */
export const CompleteTrip = defineCommand('trip.cmd.complete', { schema: z.object({ tripId: id, driverId: id }) })
export const TripCompleted = defineEvent('trip.event.completed', {
  schema: z.object({ ...trip, driverId: id, fareCents: z.number().int().positive() }),
})
export const TripCancelled = defineEvent('trip.event.cancelled', {
  schema: z.object({ ...trip, driverId: id.optional(), reason: z.enum(['payment_failed']) }),
})

// Driver service.

/** Sent by the API gateway for a driver's app: where the driver is, and whether they take rides. */
export const UpdateDriverLocation = defineCommand('driver.cmd.update_location', {
  schema: z.object({ driverId: id, location: Point, available: z.boolean() }),
})
/** Published by the driver service; names the rider while the driver is on their trip, so they see the car move. */
export const DriverLocationUpdated = defineEvent('driver.event.location_updated', {
  schema: z.object({ driverId: id, location: Point, tripId: id.optional(), riderId: id.optional() }),
})
const offer = z.object({
  ...trip,
  driverId: id,
  offerId: id,
  pickup: Point,
  dropoff: Point,
  fareCents: z.number().int().positive(),
  expiresAt: z.string(),
})
/** An offer to one driver, sent to the API gateway's queue (`driver_cmd_trip_request`). */
export const TripRequest = defineCommand('driver.cmd.trip_request', { schema: offer })
/**
 * The offer as every gateway instance sees it: the instance that takes the command publishes this, and the
 * instance holding the driver's socket delivers it.
 */
export const DriverTripOffered = defineEvent('driver.event.trip_offered', { schema: offer })
const answer = z.object({ tripId: id, driverId: id, offerId: id })
export const TripAccept = defineCommand('driver.cmd.trip_accept', { schema: answer })
export const TripDecline = defineCommand('driver.cmd.trip_decline', { schema: answer })
/** Sent by the driver service to itself, delayed by the offer's timeout. */
export const OfferExpired = defineCommand('driver.cmd.offer_expired', { schema: answer })
export const DriverAcceptedTrip = defineEvent('driver.event.trip_accepted', {
  schema: z.object({ ...trip, driverId: id }),
})
export const NoDriverAvailable = defineEvent('driver.event.no_driver_available', { schema: z.object(trip) })

// Payment service.

export const PaymentSessionCreated = defineEvent('payment.event.session_created', {
  schema: z.object({ ...trip, sessionId: id, checkoutUrl: z.url(), amountCents: z.number().int().positive() }),
})
export const PaymentSucceeded = defineEvent('payment.event.succeeded', {
  schema: z.object({ ...trip, sessionId: id, amountCents: z.number().int().positive() }),
})
export const PaymentFailed = defineEvent('payment.event.failed', {
  schema: z.object({ ...trip, sessionId: id, reason: z.string().max(200) }),
})

export const allContracts = [
  CreateTrip,
  TripCreated,
  TripDriverAssigned,
  TripNoDriversFound,
  TripPaid,
  CompleteTrip,
  TripCompleted,
  TripCancelled,
  UpdateDriverLocation,
  DriverLocationUpdated,
  TripRequest,
  DriverTripOffered,
  TripAccept,
  TripDecline,
  OfferExpired,
  DriverAcceptedTrip,
  NoDriverAvailable,
  PaymentSessionCreated,
  PaymentSucceeded,
  PaymentFailed,
]

/** Distance in km between two points (haversine). */
export function distanceKm(a: Point, b: Point): number {
  const rad = Math.PI / 180
  const dLat = (b.lat - a.lat) * rad
  const dLng = (b.lng - a.lng) * rad
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLng / 2) ** 2
  return 12_742 * Math.asin(Math.sqrt(h))
}

/** Base fare plus distance, in cents. */
export function estimateFareCents(pickup: Point, dropoff: Point): number {
  return 250 + Math.round(distanceKm(pickup, dropoff) * 120)
}
