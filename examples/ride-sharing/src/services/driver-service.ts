import { type Bus, type HandlerContext, uuidV7 } from '@herald/core'
import type { Plan, ServiceState } from '@herald/sqlite'
import {
  DriverAcceptedTrip,
  DriverLocationUpdated,
  distanceKm,
  NoDriverAvailable,
  OfferExpired,
  type Point,
  TripAccept,
  TripCancelled,
  TripCompleted,
  TripCreated,
  TripDecline,
  TripRequest,
  UpdateDriverLocation,
} from '../contracts.js'

export const driverSchema = `
CREATE TABLE IF NOT EXISTS drivers (
  driver_id TEXT PRIMARY KEY, lat REAL NOT NULL, lng REAL NOT NULL,
  status TEXT NOT NULL, -- available | offered | busy | offline
  trip_id TEXT, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dispatches (
  trip_id TEXT PRIMARY KEY, rider_id TEXT NOT NULL, pickup TEXT NOT NULL, dropoff TEXT NOT NULL,
  fare_cents INTEGER NOT NULL, tried TEXT NOT NULL, driver_id TEXT, offer_id TEXT,
  state TEXT NOT NULL); -- offering | accepted | exhausted`

interface DriverRow {
  driver_id: string
  lat: number
  lng: number
  status: 'available' | 'offered' | 'busy' | 'offline'
  trip_id: string | null
}

interface DispatchRow {
  trip_id: string
  rider_id: string
  pickup: string
  dropoff: string
  fare_cents: number
  tried: string
  driver_id: string | null
  offer_id: string | null
  state: 'offering' | 'accepted' | 'exhausted'
}

export interface DriverServiceOptions {
  /** How long a driver has to answer an offer before it moves on to the next. Default 5 s. */
  readonly offerTimeoutMs?: number
}

/**
 * Finds drivers for trips: offers each trip to the nearest available driver it was not yet offered to, one at a
 * time; a decline or a timeout (a delayed message, so it survives a restart) moves on to the next; when none is
 * left, the trip has no driver. The dispatch of each trip is a row, so a restarted service picks up where it was.
 */
export function registerDriverService(bus: Bus, state: ServiceState, options: DriverServiceOptions = {}): void {
  const offerTimeoutMs = options.offerTimeoutMs ?? 5_000
  const { db } = state
  const driver = db.prepare<[string], DriverRow>('SELECT * FROM drivers WHERE driver_id = ?')
  const available = db.prepare<[], DriverRow>("SELECT * FROM drivers WHERE status = 'available'")
  const upsertDriver = db.prepare(
    `INSERT INTO drivers (driver_id, lat, lng, status, updated_at) VALUES (@driverId, @lat, @lng, @status, @now)
     ON CONFLICT (driver_id) DO UPDATE SET lat = @lat, lng = @lng, updated_at = @now,
       status = CASE WHEN status IN ('offered', 'busy') THEN status ELSE @status END`,
  )
  const setDriver = db.prepare<[string, string | null, number, string]>(
    'UPDATE drivers SET status = ?, trip_id = ?, updated_at = ? WHERE driver_id = ?',
  )
  const dispatch = db.prepare<[string], DispatchRow>('SELECT * FROM dispatches WHERE trip_id = ?')
  const insertDispatch = db.prepare(
    `INSERT INTO dispatches (trip_id, rider_id, pickup, dropoff, fare_cents, tried, state)
     VALUES (@tripId, @riderId, @pickup, @dropoff, @fareCents, '[]', 'offering')`,
  )
  const updateDispatch = db.prepare<[string, string | null, string | null, string, string]>(
    'UPDATE dispatches SET tried = ?, driver_id = ?, offer_id = ?, state = ? WHERE trip_id = ?',
  )

  /** Offers the trip to the nearest driver not yet tried, or gives up: the writes and messages of either. */
  function offerNext(trip: DispatchRow, context: HandlerContext, before?: () => void): Plan {
    const tried: string[] = JSON.parse(trip.tried)
    const pickup: Point = JSON.parse(trip.pickup)
    const candidates = available.all().filter((d) => !tried.includes(d.driver_id))
    candidates.sort((a, b) => distanceKm(pickup, a) - distanceKm(pickup, b))
    const next = candidates[0]
    const { trip_id: tripId, rider_id: riderId } = trip
    if (next === undefined) {
      return {
        write: () => {
          before?.()
          updateDispatch.run(trip.tried, null, null, 'exhausted', tripId)
        },
        send: [context.prepare(NoDriverAvailable, { tripId, riderId }, { partitionKey: tripId })],
      }
    }
    const offerId = uuidV7()
    const answer = { tripId, driverId: next.driver_id, offerId }
    return {
      write: () => {
        before?.()
        setDriver.run('offered', tripId, Date.now(), next.driver_id)
        updateDispatch.run(JSON.stringify([...tried, next.driver_id]), next.driver_id, offerId, 'offering', tripId)
      },
      send: [
        context.prepare(TripRequest, {
          ...answer,
          riderId,
          pickup,
          dropoff: JSON.parse(trip.dropoff) as Point,
          fareCents: trip.fare_cents,
          expiresAt: new Date(Date.now() + offerTimeoutMs).toISOString(),
        }),
        context.prepare(OfferExpired, answer, { delayMs: offerTimeoutMs }),
      ],
    }
  }

  /** The offer `offerId` of this trip, if it is still the one waiting for an answer. */
  function openOffer(tripId: string, offerId: string): DispatchRow | undefined {
    const trip = dispatch.get(tripId)
    return trip?.state === 'offering' && trip.offer_id === offerId ? trip : undefined
  }

  /** A declined or unanswered offer: the driver is free again and the next one is asked. */
  function moveOn(data: { tripId: string; driverId: string; offerId: string }, context: HandlerContext) {
    const trip = openOffer(data.tripId, data.offerId)
    if (trip === undefined || trip.driver_id !== data.driverId) return undefined // answered already
    const freeDriver = () => setDriver.run('available', null, Date.now(), data.driverId)
    // The freed driver is not offered this trip again: offerNext skips the tried.
    return offerNext(trip, context, freeDriver)
  }

  bus.group('driver_locations').on(UpdateDriverLocation, (message, context) =>
    state.apply(`${context.group}/${message.id}`, () => {
      const { driverId, location, available: isAvailable } = message.data
      const tripId = driver.get(driverId)?.trip_id ?? undefined
      const riderId = tripId === undefined ? undefined : dispatch.get(tripId)?.rider_id
      return {
        write: () =>
          upsertDriver.run({ driverId, ...location, status: isAvailable ? 'available' : 'offline', now: Date.now() }),
        send: [
          context.prepare(
            DriverLocationUpdated,
            { driverId, location, ...(tripId === undefined || riderId === undefined ? {} : { tripId, riderId }) },
            { partitionKey: driverId },
          ),
        ],
      }
    }),
  )

  bus.group('find_available_drivers').on(TripCreated, (message, context) =>
    state.apply(`${context.group}/${message.id}`, () => {
      const { tripId, riderId, pickup, dropoff, fareCents } = message.data
      if (dispatch.get(tripId) !== undefined) return undefined
      const row: DispatchRow = {
        trip_id: tripId,
        rider_id: riderId,
        pickup: JSON.stringify(pickup),
        dropoff: JSON.stringify(dropoff),
        fare_cents: fareCents,
        tried: '[]',
        driver_id: null,
        offer_id: null,
        state: 'offering',
      }
      return offerNext(row, context, () =>
        insertDispatch.run({ tripId, riderId, pickup: row.pickup, dropoff: row.dropoff, fareCents }),
      )
    }),
  )

  bus
    .group('driver_trip_response')
    .on(TripAccept, (message, context) =>
      state.apply(`${context.group}/${message.id}`, () => {
        const { tripId, driverId, offerId } = message.data
        const trip = openOffer(tripId, offerId)
        if (trip === undefined || trip.driver_id !== driverId) return undefined // too late: the offer moved on
        return {
          write: () => {
            setDriver.run('busy', tripId, Date.now(), driverId)
            updateDispatch.run(trip.tried, driverId, offerId, 'accepted', tripId)
          },
          send: [
            context.prepare(DriverAcceptedTrip, { tripId, riderId: trip.rider_id, driverId }, { partitionKey: tripId }),
          ],
        }
      }),
    )
    .on(TripDecline, (message, context) =>
      state.apply(`${context.group}/${message.id}`, () => moveOn(message.data, context)),
    )
    .on(OfferExpired, (message, context) =>
      state.apply(`${context.group}/${message.id}`, () => moveOn(message.data, context)),
    )

  const release = (tripId: string, driverId: string | undefined, key: string) =>
    state.apply(key, () => {
      if (driverId === undefined || driver.get(driverId)?.trip_id !== tripId) return undefined
      return { write: () => setDriver.run('available', null, Date.now(), driverId) }
    })
  bus
    .group('driver_trip_closed')
    .on(TripCompleted, (message, context) =>
      release(message.data.tripId, message.data.driverId, `${context.group}/${message.id}`),
    )
    .on(TripCancelled, (message, context) =>
      release(message.data.tripId, message.data.driverId, `${context.group}/${message.id}`),
    )
}
