import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { KeyOrdering, RetryPolicyInput } from '@herald/core'

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
  /** Fail (throw) on a message's first attempt, so it is retried. */
  readonly failFirstAttempt?: boolean
  /** Fail this share of handler calls at random (0 to 1), on attempts below 4 only, so nothing dead-letters. */
  readonly failRate?: number
  /** Consumers (subscriptions) this process runs in the group. Default 1. */
  readonly consumers?: number
  readonly ordering?: KeyOrdering
  readonly maxPerSecond?: number
  /** Put each message's body (text) in its `completed` event. */
  readonly echoBody?: boolean
}

export interface WorkerEvent {
  readonly event: 'ready' | 'delivered' | 'completed'
  readonly id?: string
  readonly attempt?: number
  readonly body?: string
  readonly pid: number
  /** When the event happened in the worker, epoch ms with a fraction (`performance.timeOrigin + now()`). */
  readonly at?: number
}

export interface ConsumerWorker {
  readonly child: ChildProcess
  readonly ready: Promise<void>
  /** Resolves with how the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stop(): Promise<void>
}

const workerPath = fileURLToPath(new URL('./consumer-worker.ts', import.meta.url))

const libfaketime = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1'

/**
 * The environment that runs a child process on a wall clock `offset` away from the machine's (`+1h`, `-30m`,
 * libfaketime's syntax), through Debian's `faketime` package. The monotonic clock stays real, as it would on a
 * host whose wall clock is wrong.
 */
export function fakeClock(offset: string): Record<string, string> {
  if (!existsSync(libfaketime)) throw new Error('libfaketime not found: apt-get install -y faketime (npm test does)')
  return { LD_PRELOAD: libfaketime, FAKETIME: offset, DONT_FAKE_MONOTONIC: '1', FAKETIME_DONT_RESET: '1' }
}

/**
 * Runs a TypeScript fixture with `args` and the path of a clock file last; the fixture steps its own wall clock by
 * writing an offset (`-2s`, `+1h`) to that file (libfaketime reads it on every call). Resolves with its stdout.
 */
export async function runWithSteppableClock(fixture: string, args: readonly string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-clock-'))
  try {
    const clockFile = join(dir, 'faketime')
    writeFileSync(clockFile, '+0s')
    const { FAKETIME: _fixed, ...env } = fakeClock('+0s')
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=herald-source', '--import', 'tsx', fixture, ...args, clockFile],
      { env: { ...process.env, ...env, FAKETIME_TIMESTAMP_FILE: clockFile, FAKETIME_NO_CACHE: '1' }, timeout: 60_000 },
    )
    return stdout
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Starts a consumer in a child process; every event line goes to `onEvent`. `env` adds to the child's environment
 * (e.g. {@link fakeClock} to run it on a skewed clock).
 */
export function spawnConsumer(
  config: ConsumerWorkerConfig,
  onEvent: (event: WorkerEvent) => void,
  env: Readonly<Record<string, string>> = {},
): ConsumerWorker {
  const child = spawn(
    process.execPath,
    ['--conditions=herald-source', '--import', 'tsx', workerPath, JSON.stringify(config)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
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
