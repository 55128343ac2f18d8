import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { EventFilter } from '@herald/core'

export interface ProjectionWorkerConfig {
  /** Path of a module exporting the event store factory (TypeScript is fine). */
  readonly module: string
  readonly exportName: string
  readonly options: unknown
  readonly name: string
  readonly filter: EventFilter
  readonly checkpointEvery: number
  /** SIGKILL itself right after handling this many events. */
  readonly crashAfter?: number
}

const workerPath = fileURLToPath(new URL('./projection-worker.ts', import.meta.url))

/** Runs a projection in a child process; resolves with the events it handled and how it ended. */
export async function spawnProjection(config: ProjectionWorkerConfig): Promise<{
  readonly handled: readonly { id: string; position: number }[]
  readonly signal: NodeJS.Signals | null
  readonly caughtUp: boolean
}> {
  const child = spawn(
    process.execPath,
    ['--conditions=herald-source', '--import', 'tsx', workerPath, JSON.stringify(config)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  const handled: { id: string; position: number }[] = []
  let caughtUp = false
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const event = JSON.parse(line) as { id?: string; position?: number; caughtUp?: boolean }
    if (event.caughtUp) caughtUp = true
    else if (event.id !== undefined && event.position !== undefined)
      handled.push({ id: event.id, position: event.position })
  })
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, s) => resolve(s)))
  return { handled, signal, caughtUp }
}
