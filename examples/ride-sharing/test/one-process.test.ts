import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { withFixedRun } from '@herald/example-kit'
import { pollUntil } from '@herald/testkit'
import { expect, it } from 'vitest'
import { firstLine, mainArgs, spawnMain } from './main-process.js'

it('npm start -- --exit-when-idle --json: every ride of the fixed run ends, on SQLite in one process', async () => {
  await withFixedRun(mainArgs[3] as string, (result) => {
    const summary = result as Record<string, number>
    expect(summary).toMatchObject({ rides_requested: 30, lost: 0, foreign_frames: 0 })
    // The only dead letters are the completions drivers pressed before the ride was paid: one each.
    expect(summary.dead_lettered).toBe(summary.early_completions)
    expect(summary.rides_completed! + summary.no_driver! + summary.cancelled!).toBe(30)
    expect(summary.rides_completed).toBeGreaterThan(0)
    expect(summary.driver_locations_seen).toBeGreaterThan(0)
  })
})

it('npm start: the dashboard it prints shows rides live, each as one flow from request to drop-off', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-rides-live-'))
  const child = spawnMain([
    ...['--data-dir', dir, '--port', '0', '--dashboard-port', '0'],
    ...['--ride-interval-ms', '200', '--drive-ms', '100'],
  ])
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)))
  try {
    const url = await firstLine(child, (line) => {
      const match = /^dashboard: (http\S+)/.exec(line)
      return match?.[1] === undefined ? undefined : new URL(match[1])
    })
    const token = url.searchParams.get('token') ?? ''
    const get = async (path: string) =>
      (await fetch(new URL(path, url.origin), { headers: { authorization: `Bearer ${token}` } })).text()
    // A ride completes while we watch: the event search lists it, with its correlation id linking to its flow.
    let flow: string | undefined
    await pollUntil(async () => {
      flow = /href="(\/flows\/[^"]+)"/.exec(await get('/events?type=trip.event.completed'))?.[1]
      return flow !== undefined
    }, 60_000)
    const page = await get(flow!)
    for (const step of [
      'trip.cmd.create',
      'trip.event.created',
      'driver.cmd.trip_request',
      'trip.event.driver_assigned',
      'payment.event.succeeded',
      'trip.event.paid',
      'trip.cmd.complete',
      'trip.event.completed',
    ])
      expect(page, step).toContain(step)
    expect((await fetch(new URL('/events', url.origin))).status).toBe(401) // and nothing without the token
  } finally {
    child.kill('SIGINT')
    expect(await exited).toBe(0)
    rmSync(dir, { recursive: true, force: true })
  }
})
