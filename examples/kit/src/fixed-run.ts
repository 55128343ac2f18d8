import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

/**
 * Runs a reference system's `main.ts` from its sources with `--exit-when-idle --json` on a fresh data directory,
 * hands its summary (the last line, parsed) and the directory to `check`, and removes the directory after.
 */
export async function withFixedRun<T>(
  main: string,
  check: (summary: Record<string, unknown>, dataDir: string) => Promise<T> | T,
  extraArgs: readonly string[] = [],
): Promise<T> {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-fixed-run-'))
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [
      ...['--conditions=herald-source', '--import', 'tsx', main],
      ...['--exit-when-idle', '--json', '--data-dir', dataDir, ...extraArgs],
    ])
    return await check(JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>, dataDir)
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}
