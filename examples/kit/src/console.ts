import { randomBytes } from 'node:crypto'
import { mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { countDeadLetters, type EventStore, recordEvents, type Subscription, type Transport } from '@herald/core'
import { createDashboard, type DashboardOptions } from '@herald/dashboard'
import { createObservability, type Observability } from '@herald/observability'
import { createSqliteEventStore, createSqliteTransport } from '@herald/sqlite'
import { pino } from 'pino'

export interface ConsoleRunOptions {
  /** The system's name, for logs and metrics. */
  readonly system: string
  /** Emptied first, so what the run reports describes this run only. */
  readonly dataDir: string
}

/** Every service of a system in one process on SQLite, with its events recorded and the operations console. */
export interface ConsoleRun {
  readonly observability: Observability
  /** One SQLite bus (`bus.db`) every service shares, instrumented. */
  readonly transport: Transport
  /** Every event, recorded for the console's search and flows (`events.db`). */
  readonly eventStore: EventStore
  /** Where the services' structured logs go. */
  readonly logFile: string
  /** Starts the console on the port (0: any free one); resolves with its URL, token included. */
  openDashboard(options: {
    readonly host: string
    readonly port: number
    readonly sagas?: DashboardOptions['sagas']
    readonly notifications?: DashboardOptions['notifications']
  }): Promise<string>
  deadLetters(): Promise<number>
  /** Stops the console, then the services (last started first), then the recorder, store and transport. */
  close(services: readonly { stop(): Promise<void> }[]): Promise<void>
}

export async function startConsoleRun(options: ConsoleRunOptions): Promise<ConsoleRun> {
  rmSync(options.dataDir, { recursive: true, force: true })
  mkdirSync(options.dataDir, { recursive: true })
  const logFile = join(options.dataDir, 'services.log')
  const observability = createObservability({
    service: options.system,
    logger: pino(pino.destination({ dest: logFile, mkdir: true })),
  })
  const transport = observability.instrument(createSqliteTransport({ path: join(options.dataDir, 'bus.db') }))
  const eventStore = createSqliteEventStore({ path: join(options.dataDir, 'events.db') })
  const recorder: Subscription = await recordEvents({ transport, store: eventStore })
  let dashboard: Awaited<ReturnType<typeof createDashboard>> | undefined
  return {
    observability,
    transport,
    eventStore,
    logFile,
    async openDashboard({ host, port, sagas, notifications }) {
      const token = randomBytes(18).toString('base64url')
      dashboard = await createDashboard({
        transport,
        eventStore,
        token,
        metrics: observability.registry,
        ...(sagas === undefined ? {} : { sagas }),
        ...(notifications === undefined ? {} : { notifications }),
        sampleIntervalMs: 2_000,
      })
      return `${await dashboard.listen({ host, port })}/?token=${token}`
    },
    deadLetters: () => countDeadLetters(transport),
    async close(services) {
      await dashboard?.close()
      for (const service of [...services].reverse()) await service.stop()
      await recorder.close()
      await eventStore.close()
      await transport.close()
    },
  }
}

/** The last `size` lines of activity, for a live screen. */
export function recentLines(size = 12): { readonly lines: readonly string[]; push(line: string): void } {
  const lines: string[] = []
  return {
    lines,
    push(line) {
      lines.push(line)
      if (lines.length > size) lines.shift()
    },
  }
}

/**
 * Redraws `screen()` every second on a terminal; elsewhere prints only its `statusLine`-th line.
 * Returns the function that stops it.
 */
export function liveScreen(screen: () => Promise<string[]> | string[], statusLine: number): () => void {
  const timer = setInterval(async () => {
    const lines = await screen()
    process.stdout.write(process.stdout.isTTY ? `\x1b[2J\x1b[H${lines.join('\n')}\n` : `${lines[statusLine]}\n`)
  }, 1_000)
  return () => clearInterval(timer)
}
