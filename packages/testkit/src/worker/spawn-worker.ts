import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

export interface SpawnedWorker {
  /** Resolves with how the process ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** SIGTERM (a graceful stop), then waits for the exit. */
  stop(): Promise<void>
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
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    },
  }
}
