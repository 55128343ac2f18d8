import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { pollUntil } from '../wait-for.js'

export interface SpawnedWorker {
  /** Resolves with how the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** SIGTERM (a graceful stop), then waits for the exit. */
  stop(): Promise<void>
  /**
   * Polls `done` until it holds while this worker runs. Fails at once if the worker exits first, and on the
   * timeout with `describe()`'s account of where things stood.
   */
  whileRunning(done: () => Promise<boolean>, describe: () => Promise<string>, timeoutMs?: number): Promise<void>
}

/**
 * Runs a TypeScript fixture in its own process with one JSON argument (so a test can SIGKILL it, or it can kill
 * itself at an exact point); every line it prints on stdout goes to `onLine`.
 */
export function spawnWorker(path: string, config: unknown, onLine: (line: string) => void = () => {}): SpawnedWorker {
  const child = spawn(
    process.execPath,
    ['--conditions=herald-source', '--import', 'tsx', path, JSON.stringify(config)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  createInterface({ input: child.stdout! }).on('line', onLine)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  )
  return {
    exited,
    async whileRunning(done, describe, timeoutMs = 120_000) {
      let finished = false
      const died = exited.then((exit) => {
        if (!finished) throw new Error(`the worker exited (${JSON.stringify(exit)}) before the condition held`)
      })
      try {
        await Promise.race([
          pollUntil(done, timeoutMs).catch(async (err: Error) => {
            throw new Error(`${err.message}; ${await describe()}`)
          }),
          died,
        ])
      } finally {
        finished = true
        died.catch(() => {})
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}
