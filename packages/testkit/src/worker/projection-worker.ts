/**
 * A projection in its own process, so tests can SIGKILL it mid-replay. Started by `spawnProjection` with one
 * JSON argument; opens the store with `module`'s `exportName(options)`, runs `startProjection`, prints one JSON
 * line per event handled and `{"caughtUp":true}` once caught up; SIGKILLs itself after `crashAfter` events.
 */
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { type EventStore, startProjection } from '@herald/core'
import type { ProjectionWorkerConfig } from './spawn-projection.js'

const config = JSON.parse(process.argv[2] ?? '{}') as ProjectionWorkerConfig
const factoryModule = (await import(pathToFileURL(resolve(config.module)).href)) as Record<string, unknown>
const factory = factoryModule[config.exportName] as (options: unknown) => EventStore | Promise<EventStore>
const store = await factory(config.options)
let handled = 0
const projection = startProjection(
  store,
  (event) => {
    process.stdout.write(`${JSON.stringify({ id: event.envelope.id, position: event.position })}\n`)
    if (++handled === config.crashAfter) process.kill(process.pid, 'SIGKILL')
  },
  { name: config.name, filter: config.filter, checkpointEvery: config.checkpointEvery, pollIntervalMs: 20 },
)
await projection.caughtUp
process.stdout.write(`${JSON.stringify({ caughtUp: true })}\n`)
await projection.stop()
await store.close()
