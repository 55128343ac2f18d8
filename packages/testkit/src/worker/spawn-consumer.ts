import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { RetryPolicyInput } from '@herald/core'

/** What the child consumer runs: a transport made by `module`'s `exportName(options)`, and a subscription. */
export interface ConsumerWorkerConfig {
  /** Path of a module exporting the transport factory (TypeScript is fine). */
  readonly module: string
  readonly exportName: string
  readonly options: unknown
  readonly group: string
  readonly patterns: readonly string[]
  readonly maxInFlight?: number
  readonly retry?: RetryPolicyInput
  /** SIGKILL itself inside the handler of the message whose body contains this text. */
  readonly crashOnBodyContaining?: string
  /** Never finish the handler of a message whose body contains this text (holds its claim until killed). */
  readonly hangOnBodyContaining?: string
  /** SIGKILL itself inside the handler of its Nth delivery. */
  readonly crashAtDelivery?: number
  /** Work time of each handler, so a run lasts long enough to be killed many times. Default: none. */
  readonly handlerDelayMs?: number
}

export interface WorkerEvent {
  readonly event: 'ready' | 'delivered' | 'completed'
  readonly id?: string
  readonly attempt?: number
  readonly pid: number
}

export interface ConsumerWorker {
  readonly child: ChildProcess
  readonly ready: Promise<void>
  /** Resolves with how the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stop(): Promise<void>
}

const workerPath = fileURLToPath(new URL('./consumer-worker.ts', import.meta.url))

/** Starts a consumer in a child process; every event line goes to `onEvent`. */
export function spawnConsumer(config: ConsumerWorkerConfig, onEvent: (event: WorkerEvent) => void): ConsumerWorker {
  const child = spawn(
    process.execPath,
    ['--conditions=herald-source', '--import', 'tsx', workerPath, JSON.stringify(config)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }))
  })
  let markReady!: () => void
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve
    void exited.then(() => reject(new Error('consumer worker exited before it was ready')))
  })
  ready.catch(() => {})
  const lines = createInterface({ input: child.stdout! })
  lines.on('line', (line) => {
    const event = JSON.parse(line) as WorkerEvent
    if (event.event === 'ready') markReady()
    onEvent(event)
  })
  return {
    child,
    ready,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}
