import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect, it } from 'vitest'

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))

it('npm start -- --exit-when-idle --json: every ride of the fixed run ends, on SQLite in one process', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-rides-'))
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--conditions=herald-source',
      '--import',
      'tsx',
      main,
      '--exit-when-idle',
      '--json',
      '--data-dir',
      dir,
    ])
    const summary = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, number>
    expect(summary).toMatchObject({ rides_requested: 30, dead_lettered: 0, lost: 0, foreign_frames: 0 })
    expect(summary.rides_completed! + summary.no_driver! + summary.cancelled!).toBe(30)
    expect(summary.rides_completed).toBeGreaterThan(0)
    expect(summary.driver_locations_seen).toBeGreaterThan(0)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
