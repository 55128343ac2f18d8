import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { expect, it } from 'vitest'

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))

it('the fixed demo scenario settles every order, shows retries and dead letters, and loses nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-demo-'))
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--conditions=herald-source',
      '--import',
      'tsx',
      main,
      '--exit-when-idle',
      '--json',
      '--db',
      join(dir, 'demo.db'),
    ])
    const summary = JSON.parse(stdout.trim()) as Record<string, number>
    // Every 25th order asks for a dish the kitchen cannot make: 8 of 200 are dead-lettered.
    expect(summary).toMatchObject({ orders_placed: 200, orders_ready: 192, dead_lettered: 8, lost: 0 })
    expect(summary.retried).toBeGreaterThan(0)
    expect(summary.handled).toBeGreaterThanOrEqual(192 * 4)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
