import { type Bus, PermanentError } from '@herald/core'
import type { ServiceState } from '@herald/sqlite'
import {
  CompleteTrip,
  CreateTrip,
  DriverAcceptedTrip,
  estimateFareCents,
  NoDriverAvailable,
  PaymentFailed,
  PaymentSucceeded,
  TripCancelled,
  TripCompleted,
  TripCreated,
  TripDriverAssigned,
  TripNoDriversFound,
  TripPaid,
} from '../contracts.js'

/**
 * A trip's lifecycle. `no_driver`, `cancelled` and `completed` are terminal.
 *
 *   requested ──▶ driver_assigned ──▶ paid ──▶ completed
 *       └──▶ no_driver       └──▶ cancelled (payment failed)
 */
export type TripState = 'requested' | 'no_driver' | 'driver_assigned' | 'paid' | 'cancelled' | 'completed'

export const tripSchema = `CREATE TABLE IF NOT EXISTS trips (
  trip_id TEXT PRIMARY KEY, rider_id TEXT NOT NULL, driver_id TEXT, state TEXT NOT NULL,
  fare_cents INTEGER NOT NULL, pickup TEXT NOT NULL, dropoff TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`

interface TripRow {
  trip_id: string
  rider_id: string
  driver_id: string | null
  state: TripState
  fare_cents: number
}

/** Creates trips, assigns the driver the driver service found, and follows payment to the end of the ride. */
export function registerTripService(bus: Bus, state: ServiceState): void {
  const { db } = state
  const find = db.prepare<[string], TripRow>('SELECT * FROM trips WHERE trip_id = ?')
  const insert = db.prepare(
    `INSERT INTO trips (trip_id, rider_id, state, fare_cents, pickup, dropoff, created_at, updated_at)
     VALUES (@tripId, @riderId, 'requested', @fareCents, @pickup, @dropoff, @now, @now)`,
  )
  const move = db.prepare<[TripState, string | null, number, string]>(
    'UPDATE trips SET state = ?, driver_id = coalesce(?, driver_id), updated_at = ? WHERE trip_id = ?',
  )
  const moveTo =
    (to: TripState, tripId: string, driverId: string | null = null) =>
    () =>
      move.run(to, driverId, Date.now(), tripId)

  bus.group('trip_cmd_create').on(CreateTrip, (message, context) =>
    state.apply(`${context.group}/${message.id}`, () => {
      const { tripId, riderId, pickup, dropoff } = message.data
      if (find.get(tripId) !== undefined) return undefined // the gateway retried its send
      const fareCents = estimateFareCents(pickup, dropoff)
      return {
        write: () =>
          insert.run({
            tripId,
            riderId,
            fareCents,
            pickup: JSON.stringify(pickup),
            dropoff: JSON.stringify(dropoff),
            now: Date.now(),
          }),
        send: [context.prepare(TripCreated, { ...message.data, fareCents }, { partitionKey: tripId })],
      }
    }),
  )

  bus
    .group('trip_dispatch_outcome')
    .on(DriverAcceptedTrip, (message, context) =>
      state.apply(`${context.group}/${message.id}`, () => {
        const trip = find.get(message.data.tripId)
        if (trip?.state !== 'requested') return undefined
        const { tripId, riderId, driverId } = message.data
        return {
          write: moveTo('driver_assigned', tripId, driverId),
          send: [
            context.prepare(
              TripDriverAssigned,
              { tripId, riderId, driverId, fareCents: trip.fare_cents },
              { partitionKey: tripId },
            ),
          ],
        }
      }),
    )
    .on(NoDriverAvailable, (message, context) =>
      state.apply(`${context.group}/${message.id}`, () => {
        if (find.get(message.data.tripId)?.state !== 'requested') return undefined
        return {
          write: moveTo('no_driver', message.data.tripId),
          send: [context.prepare(TripNoDriversFound, message.data, { partitionKey: message.data.tripId })],
        }
      }),
    )

  bus
    .group('trip_payment_events')
    .on(PaymentSucceeded, (message, context) =>
      state.apply(`${context.group}/${message.id}`, () => {
        const trip = find.get(message.data.tripId)
        if (trip?.state !== 'driver_assigned' || trip.driver_id === null) return undefined
        const { tripId, riderId } = message.data
        return {
          write: moveTo('paid', tripId),
          send: [context.prepare(TripPaid, { tripId, riderId, driverId: trip.driver_id }, { partitionKey: tripId })],
        }
      }),
    )
    .on(PaymentFailed, (message, context) =>
      state.apply(`${context.group}/${message.id}`, () => {
        const trip = find.get(message.data.tripId)
        if (trip?.state !== 'driver_assigned') return undefined
        const { tripId, riderId } = message.data
        return {
          write: moveTo('cancelled', tripId),
          send: [
            context.prepare(
              TripCancelled,
              {
                tripId,
                riderId,
                reason: 'payment_failed',
                ...(trip.driver_id === null ? {} : { driverId: trip.driver_id }),
              },
              { partitionKey: tripId },
            ),
          ],
        }
      }),
    )

  bus.group('trip_cmd_complete').on(CompleteTrip, (message, context) =>
    state.apply(`${context.group}/${message.id}`, () => {
      const { tripId, driverId } = message.data
      const trip = find.get(tripId)
      if (trip === undefined) throw new PermanentError(`trip ${tripId} does not exist`)
      if (trip.driver_id !== driverId)
        throw new PermanentError(`driver ${driverId} is not the driver of trip ${tripId}`)
      if (trip.state === 'completed') return undefined
      if (trip.state !== 'paid')
        throw new PermanentError(`trip ${tripId} is ${trip.state}, not paid: it cannot complete`)
      return {
        write: moveTo('completed', tripId),
        send: [
          context.prepare(
            TripCompleted,
            { tripId, riderId: trip.rider_id, driverId, fareCents: trip.fare_cents },
            { partitionKey: tripId },
          ),
        ],
      }
    }),
  )
}

/** Trips by state, for summaries. */
export function countTrips(state: ServiceState): Record<TripState, number> {
  const counts: Record<TripState, number> = {
    requested: 0,
    no_driver: 0,
    driver_assigned: 0,
    paid: 0,
    cancelled: 0,
    completed: 0,
  }
  for (const row of state.db
    .prepare<[], { state: TripState; n: number }>('SELECT state, COUNT(*) AS n FROM trips GROUP BY state')
    .all())
    counts[row.state] = row.n
  return counts
}
