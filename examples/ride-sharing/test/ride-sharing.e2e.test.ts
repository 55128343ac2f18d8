import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { signToken } from '@herald/gateway'
import { createRabbitMqTransport } from '@herald/rabbitmq'
import { type RabbitMqServer, startRabbitMq } from '@herald/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { simulate } from '../src/simulation.js'
import { firstLine, spawnMain } from './main-process.js'

const secret = 'ride-sharing-e2e-gateway-secret-0123456789'

interface Running {
  readonly child: ChildProcess
  readonly url: string | undefined
  readonly metrics: string | undefined
}

let broker: RabbitMqServer
let dataDir: string
const running = new Map<string, Running>()

/** Starts one service as its own process (`key` names it in the test) and waits for its ready line. */
async function startService(name: string, key = name, extra: readonly string[] = []): Promise<Running> {
  const child = spawnMain(
    [
      ...['--service', name, '--transport', broker.url, '--data-dir', dataDir],
      ...['--port', '0', '--offer-timeout-ms', '1500', '--metrics-port', '0', ...extra],
    ],
    { ...process.env, HERALD_GATEWAY_SECRET: secret },
  )
  const ready = await firstLine(child, (line) =>
    line.startsWith('{"service"') ? (JSON.parse(line) as { url?: string; metrics?: string }) : undefined,
  )
  const service = { child, url: ready.url, metrics: ready.metrics }
  running.set(key, service)
  return service
}

async function kill(name: string): Promise<void> {
  const service = running.get(name)
  if (service === undefined || service.child.exitCode !== null) return
  const exited = new Promise((done) => service.child.once('exit', done))
  service.child.kill('SIGKILL')
  await exited
}

beforeAll(async () => {
  broker = await startRabbitMq()
  dataDir = mkdtempSync(join(tmpdir(), 'herald-ride-sharing-'))
  // Each service declares its own queues as it starts; the gateway last, as riders arrive through it.
  for (const name of ['trip', 'driver', 'payment']) await startService(name)
  // Two gateway instances: riders and drivers spread over both, each instance delivering to its own sockets.
  await startService('gateway', 'gateway', ['--instance', 'g1'])
  await startService('gateway', 'gateway2', ['--instance', 'g2'])
}, 180_000)

afterAll(async () => {
  for (const name of running.keys()) {
    const service = running.get(name)
    if (service?.child.exitCode === null) {
      const exited = new Promise((done) => service.child.once('exit', done))
      service.child.kill('SIGTERM')
      await exited
    }
  }
  await broker?.stop()
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
}, 60_000)

function gatewayUrl(key = 'gateway'): string {
  const url = running.get(key)?.url
  if (url === undefined) throw new Error(`${key} not running`)
  return url
}

describe('ride-sharing over RabbitMQ, four services as five processes (two gateway instances)', () => {
  it('refuses missing and forged tokens, and a rider acting as a driver', async () => {
    const forged = await signToken('not-the-gateway-secret-but-long-enough!!', { id: 'rider-x', role: 'rider' })
    const rider = await signToken(secret, { id: 'rider-x', role: 'rider' })
    const body = JSON.stringify({ pickup: { lat: 52.5, lng: 13.4 }, dropoff: { lat: 52.51, lng: 13.41 } })
    const post = (path: string, token?: string) =>
      fetch(`${gatewayUrl()}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        },
        body,
      })
    expect((await post('/trips')).status).toBe(401)
    expect((await post('/trips', forged)).status).toBe(401)
    expect((await post('/drivers/me/location', rider)).status).toBe(403)
    const upgrade = (token?: string) =>
      new Promise<number>((done) => {
        const socket = new WebSocket(
          `${gatewayUrl().replace('http', 'ws')}/ws`,
          token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } },
        )
        socket.once('unexpected-response', (_req, res) => done(res.statusCode ?? 0))
        socket.once('open', () => {
          socket.close()
          done(101)
        })
        socket.once('error', () => {})
      })
    expect(await upgrade()).toBe(401)
    expect(await upgrade(forged)).toBe(401)
    expect(await upgrade(rider)).toBe(101)
  })

  it('takes 50 rides to an end, each client hearing only its own events, through a SIGKILL of the driver service', async () => {
    let asked = 0
    let restarted: Promise<unknown> = Promise.resolve()
    const report = await simulate({
      gatewayUrl: [gatewayUrl('gateway'), gatewayUrl('gateway2')],
      secret,
      rides: 50,
      drivers: 8,
      rideIntervalMs: 60,
      driveMs: 150,
      seed: 11,
      onActivity: (line) => {
        // Mid-run, the driver service dies without warning and comes back on the same database.
        if (line.includes('asked for a ride') && ++asked === 15) {
          restarted = kill('driver').then(() => startService('driver'))
        }
      },
    })
    await restarted
    expect(asked).toBe(50)
    expect(report.pending).toEqual([])
    expect(report.rides_requested).toBe(50)
    expect(report.rides_completed + report.no_driver + report.cancelled).toBe(50)
    expect(report.rides_completed).toBeGreaterThan(0)
    expect(report.foreign_frames).toBe(0)
    expect(report.driver_locations_seen).toBeGreaterThan(0) // riders see their driver move, published by the driver service
    expect(report.frames).toBeGreaterThan(50 * 3)
    console.log(`ride-sharing e2e: ${JSON.stringify({ ...report, lost: report.pending.length })}`)

    // The trip service's own /metrics counted every trip it created.
    const metrics = await (await fetch(`${running.get('trip')?.metrics}/metrics`)).text()
    const created = metrics
      .split('\n')
      .find(
        (l) =>
          l.startsWith('herald_messages_handled_total{') &&
          l.includes('group="trip_cmd_create"') &&
          l.includes('outcome="acked"'),
      )
    expect(Number(created?.split(' ').at(-1))).toBeGreaterThanOrEqual(50) // at least once

    // Nothing went to the dead-letter queue on the way but the completions drivers pressed before the rider paid.
    const admin = await createRabbitMqTransport({ url: broker.url, exchange: 'trip', namespace: 'ride_sharing' })
    try {
      const letters = await admin.listDeadLetters({ limit: 100 })
      for (const letter of letters.items)
        expect(`${letter.group} ${letter.reason}: ${letter.error?.message}`).toMatch(
          /^trip_cmd_complete permanent_error: (trip \S+ is \w+, not paid: it cannot complete|driver \S+ is not the driver of trip \S+)$/,
        )
    } finally {
      await admin.close()
    }
  })
})
