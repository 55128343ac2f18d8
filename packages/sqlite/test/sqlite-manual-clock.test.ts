import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createBus, defineEvent } from '@herald/core'
import { createLatch, createManualClock, waitFor } from '@herald/testkit'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createSqliteTransport } from '../src/index.js'

const Job = defineEvent('job.run', { schema: z.object({ n: z.number() }) })
const hour = 3_600_000

describe('sqlite on an injected clock', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-clock-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  function open() {
    const clock = createManualClock()
    const transport = createSqliteTransport({ path: join(dir, 'herald.db'), pollIntervalMs: 10, clock })
    const bus = createBus({ transport, service: 'jobs', clock, consumer: { maxInFlight: 50 } })
    return { clock, transport, bus }
  }

  it('sqlite-injected-clock-delay: a message delayed an hour is due when the clock says so', async () => {
    const { clock, transport, bus } = open()
    const handled: number[] = []
    bus.on(Job, async (message) => {
      handled.push(message.data.n)
    })
    await bus.start()
    await bus.publish(Job, { n: 1 }, { delayMs: hour })
    await clock.advance(hour - 1)
    // Judged by the same clock: still scheduled.
    expect((await transport.listGroups()).find((g) => g.group === 'jobs')).toMatchObject({ depth: 1, scheduled: 1 })
    expect(handled).toEqual([])
    await clock.advance(1)
    await waitFor(() => handled.length === 1, undefined)
    expect(handled).toEqual([1])
    await bus.stop()
    await transport.close()
  })

  it('sqlite-injected-clock-step: the wall clock jumps past the lease while ten handlers run: none is delivered twice', async () => {
    const { clock, transport, bus } = open()
    const gate = createLatch()
    const deliveries = new Map<number, number>()
    bus.on(Job, async (message) => {
      deliveries.set(message.data.n, (deliveries.get(message.data.n) ?? 0) + 1)
      if (message.data.n < 10) await gate.wait
    })
    await bus.start()
    for (let n = 0; n < 10; n++) await bus.publish(Job, { n })
    await waitFor(() => deliveries.size === 10, undefined, { what: 'ten held' })
    // Their 30 s leases now look an hour expired. A message published after the step is claimed, so a claim ran
    // after it: that claim must not have taken the ten back.
    clock.step(hour)
    await bus.publish(Job, { n: 10 })
    await waitFor(() => deliveries.has(10), undefined, { what: 'the eleventh' })
    gate.open()
    await waitFor(async () => (await transport.listGroups()).every((g) => g.depth === 0 && g.inFlight === 0), undefined)
    expect([...deliveries.values()]).toEqual(Array(11).fill(1))
    await bus.stop()
    await transport.close()
  })
})
