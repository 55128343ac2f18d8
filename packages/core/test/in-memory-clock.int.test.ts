import { fileURLToPath } from 'node:url'
import { runWithSteppableClock } from '@herald/testkit'
import { expect, it } from 'vitest'

const fixture = fileURLToPath(new URL('./fixtures/in-memory-clock-step.ts', import.meta.url))

it('in-memory-clock-step: a delayed message is never early by the wall clock, even when the clock is set back', async () => {
  const { deliverAt, arrivedAt } = JSON.parse((await runWithSteppableClock(fixture, [])).trim()) as {
    deliverAt: number
    arrivedAt: number
  }
  expect(arrivedAt).toBeGreaterThanOrEqual(deliverAt)
})
