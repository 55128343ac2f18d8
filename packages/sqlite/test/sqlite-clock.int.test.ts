import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { fakeClock } from '@herald/testkit'
import { expect, it } from 'vitest'

const fixture = fileURLToPath(new URL('./fixtures/clock-step.ts', import.meta.url))

it('sqlite-clock-step: a wall-clock step past the lease does not make a consumer take its own running messages again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-sqlite-clock-'))
  try {
    const clockFile = join(dir, 'faketime')
    writeFileSync(clockFile, '+0s')
    const { FAKETIME: _offset, ...env } = fakeClock('+0s')
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=herald-source', '--import', 'tsx', fixture, join(dir, 'q.db'), clockFile],
      { env: { ...process.env, ...env, FAKETIME_TIMESTAMP_FILE: clockFile, FAKETIME_NO_CACHE: '1' }, timeout: 60_000 },
    )
    const deliveries = JSON.parse(stdout.trim()) as Record<string, number>
    expect(Object.keys(deliveries)).toHaveLength(10)
    expect(Object.values(deliveries).filter((n) => n > 1)).toEqual([])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
