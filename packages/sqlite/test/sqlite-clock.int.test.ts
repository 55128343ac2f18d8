import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { runWithSteppableClock } from '@herald/testkit'
import { expect, it } from 'vitest'

const fixture = fileURLToPath(new URL('./fixtures/clock-step.ts', import.meta.url))

it('sqlite-clock-step: a wall-clock step past the lease does not make a consumer take its own running messages again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-sqlite-clock-'))
  try {
    const stdout = await runWithSteppableClock(fixture, [join(dir, 'q.db')])
    const deliveries = JSON.parse(stdout.trim()) as Record<string, number>
    expect(Object.keys(deliveries)).toHaveLength(10)
    expect(Object.values(deliveries).filter((n) => n > 1)).toEqual([])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
