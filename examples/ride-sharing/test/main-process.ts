import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** `npm start`'s entry, run from the sources as `npm start` runs it. */
export const mainArgs = [
  '--conditions=herald-source',
  '--import',
  'tsx',
  fileURLToPath(new URL('../src/main.ts', import.meta.url)),
]

/** Starts `npm start -- <args>` as a child process, stdout and stderr piped. */
export function spawnMain(args: readonly string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  return spawn(process.execPath, [...mainArgs, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
}

/**
 * Resolves with the first stdout line `pick` accepts (its result), or rejects if the process exits first, with
 * everything it printed.
 */
export function firstLine<T>(child: ChildProcess, pick: (line: string) => T | undefined): Promise<T> {
  const output: string[] = []
  child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()))
  return new Promise((done, fail) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output.push(`${line}\n`)
      const picked = pick(line)
      if (picked !== undefined) done(picked)
    })
    child.once('exit', (code, signal) =>
      fail(new Error(`exited (${code ?? signal}) before the expected line:\n${output.join('')}`)),
    )
  })
}
