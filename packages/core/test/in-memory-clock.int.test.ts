import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { fakeClock } from '@herald/testkit'
import { expect, it } from 'vitest'

const fixture = fileURLToPath(new URL('./fixtures/in-memory-clock-step.ts', import.meta.url))

it('in-memory-clock-step: a delayed message is never early by the wall clock, even when the clock is set back', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-clock-'))
  try {
    const clockFile = join(dir, 'faketime')
    writeFileSync(clockFile, '+0s')
    const { FAKETIME: _offset, ...env } = fakeClock('+0s')
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=herald-source', '--import', 'tsx', fixture, clockFile],
      { env: { ...process.env, ...env, FAKETIME_TIMESTAMP_FILE: clockFile, FAKETIME_NO_CACHE: '1' }, timeout: 30_000 },
    )
    const { deliverAt, arrivedAt } = JSON.parse(stdout.trim()) as { deliverAt: number; arrivedAt: number }
    expect(arrivedAt).toBeGreaterThanOrEqual(deliverAt)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
