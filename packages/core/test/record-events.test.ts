import { expect, it } from 'vitest'
import { z } from 'zod'
import {
  createBus,
  createInMemoryEventStore,
  createInMemoryTransport,
  defineCommand,
  defineEvent,
  recordEvents,
} from '../src/index.js'

const TripCreated = defineEvent('trip.event.created', { schema: z.object({ tripId: z.string() }) })
const CompleteTrip = defineCommand('trip.cmd.complete', { schema: z.object({ tripId: z.string() }) })

it('recordEvents keeps what every publisher sends, events and commands, with the flow ids and topic', async () => {
  const transport = createInMemoryTransport()
  const store = createInMemoryEventStore()
  const recorder = await recordEvents({ transport, store })
  const stored = new Promise<void>((done) => {
    const poll = setInterval(async () => {
      if ((await store.headPosition()) >= 2) {
        clearInterval(poll)
        done()
      }
    }, 5)
  })
  const trips = createBus({ transport, service: 'trip-service' })
  trips.group('trips').on(CompleteTrip, async () => {})
  await trips.start()
  const created = await trips.publish(TripCreated, { tripId: 't-1' })
  await trips.send(CompleteTrip, { tripId: 't-1' }, { correlationId: 'flow-1' })
  await stored
  // Recorded concurrently (maxInFlight), so in either order.
  const items = [...(await store.queryEvents({})).items].sort((a, b) => a.topic.localeCompare(b.topic))
  expect(items.map((e) => [e.topic, e.type, e.source])).toEqual([
    ['trip.cmd.complete', 'trip.cmd.complete', 'trip-service'],
    ['trip.event.created', 'trip.event.created', 'trip-service'],
  ])
  expect(items[1]?.envelope.id).toBe(created)
  expect(items[0]?.correlationId).toBe('flow-1')
  await recorder.close()
  await trips.stop()
  await transport.close()
})
