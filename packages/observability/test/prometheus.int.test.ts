import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { createBus, createInMemoryTransport, defineEvent, PermanentError } from '@herald/core'
import { pollUntil, startPrometheus } from '@herald/testkit'
import { pino } from 'pino'
import { expect, it } from 'vitest'
import { z } from 'zod'
import { createObservability } from '../src/index.js'

const TripCreated = defineEvent('trip.event.created', { version: 1, schema: z.object({ n: z.number() }) })

it('a real Prometheus server scrapes /metrics and PromQL returns what Herald handled', async () => {
  const quiet = pino({}, new Writable({ write: (_c, _e, done) => done() }))
  const obs = createObservability({ service: 'trip-service', logger: quiet })
  const transport = obs.instrument(createInMemoryTransport())
  const bus = createBus({ transport, service: 'trip-service', consumer: { immediateRetries: 0 } })
  bus.group('find_available_drivers').on(TripCreated, async (message) => {
    if (message.data.n % 10 === 0) throw new PermanentError('no such rider')
  })
  await bus.start()
  const server = createServer((req, res) => {
    void obs.handle(req, res).then((handled) => {
      if (!handled) res.writeHead(404).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const target = `127.0.0.1:${(server.address() as AddressInfo).port}`
  const prometheus = await startPrometheus({ targets: [target], scrapeIntervalMs: 500 })
  try {
    for (let n = 1; n <= 30; n++) await bus.publish(TripCreated, { n })
    const count = async (promql: string) => (await prometheus.query(promql))[0]?.value
    // Scrapes come every 500 ms: wait for one that saw every message handled.
    await pollUntil(
      async () =>
        (await count('sum(herald_messages_handled_total{group="find_available_drivers",outcome="acked"})')) === 27,
      30_000,
    )
    expect(await count('sum(herald_messages_published_total{type="trip.event.created"})')).toBe(30)
    expect(await count('sum(herald_dead_lettered_total{reason="permanent_error"})')).toBe(3)
    expect(await count('sum(herald_handle_duration_seconds_count{group="find_available_drivers"})')).toBe(30)
    expect(await count('sum(herald_group_dead_letters{group="find_available_drivers"})')).toBe(3)
  } finally {
    await prometheus.stop()
    await bus.stop()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
})
