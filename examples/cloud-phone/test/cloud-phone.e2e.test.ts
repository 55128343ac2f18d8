import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createBus } from '@herald/core'
import { createSqliteNotificationStore } from '@herald/notifications/sqlite'
import { createRabbitMqTransport, type RabbitMqTransport } from '@herald/rabbitmq'
import { pollUntil, type RabbitMqServer, startRabbitMq } from '@herald/testkit'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { allContracts, Broadcast } from '../src/contracts.js'
import { simulateUsers } from '../src/simulation.js'
import { serviceNames } from '../src/system.js'

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))
let broker: RabbitMqServer
let dataDir: string
let transport: RabbitMqTransport
const running = new Map<string, ChildProcess>()

/** The SMS gateway: records each request's idempotency key and the number it was for. */
const sms: { key: string; to: string }[] = []
const gateway = createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString()) as { to: string }
    sms.push({ key: String(req.headers['idempotency-key']), to: body.to })
    res.writeHead(200, { 'content-type': 'application/json' }).end(`{"id":"sms-${sms.length}"}`)
  })
})
let smsUrl = ''

async function start(name: string): Promise<void> {
  const child = spawn(
    process.execPath,
    [
      ...['--conditions=herald-source', '--import', 'tsx', main],
      ...['--service', name, '--transport', broker.url, '--data-dir', dataDir, '--sms-webhook', smsUrl],
      ...['--payment-timeout-ms', '2000'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const output: string[] = []
  child.stderr?.on('data', (chunk: Buffer) => output.push(chunk.toString()))
  await new Promise<void>((done, fail) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output.push(line)
      if (line.startsWith('{"service"')) done()
    })
    child.once('exit', (code) => fail(new Error(`${name} exited (${code}) before it was ready:\n${output.join('\n')}`)))
  })
  running.set(name, child)
}

async function stop(name: string, signal: NodeJS.Signals): Promise<void> {
  const child = running.get(name)
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((done) => child.once('exit', done))
  child.kill(signal)
  await exited
}

beforeAll(async () => {
  broker = await startRabbitMq()
  dataDir = mkdtempSync(join(tmpdir(), 'herald-cloud-phone-e2e-'))
  await new Promise<void>((done) => gateway.listen(0, '127.0.0.1', done))
  smsUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}/sms`
  for (const name of serviceNames) await start(name)
  transport = await createRabbitMqTransport({
    url: broker.url,
    exchange: 'cloudphone.events',
    namespace: 'cloud_phone',
  })
}, 180_000)

afterAll(async () => {
  for (const name of running.keys()) await stop(name, 'SIGTERM')
  await transport?.close()
  await broker?.stop()
  gateway.close()
  if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
}, 60_000)

it('cloud phone over RabbitMQ, five services as five processes: 40 users through a SIGKILL of the notification service, no notification lost, the purchase saga through its timeouts and refunds', async () => {
  const users = 40
  let done = 0
  let restarted: Promise<unknown> = Promise.resolve()
  const report = await simulateUsers({
    transport,
    users,
    concurrency: 5,
    deadlineMs: 120_000,
    onActivity: () => {
      // Mid-run the notification service dies without warning and comes back on its database.
      if (++done === 10) restarted = stop('notification', 'SIGKILL').then(() => start('notification'))
    },
  })
  await restarted
  expect(report.unfinished).toEqual([])
  expect(report.steps).toEqual({
    signed_up: 40,
    paid: 36,
    device_allocated: 32,
    device_used: 32,
    app_installed: 32,
    refunded: 4,
    allocation_failed_refunded: 4,
    payment_timed_out: 4,
    renamed: 8,
    deleted: 1,
  })

  // In-app: 40 welcomes, 36 payment confirmations, 32 install notices, 8 refund notices; and 40 welcome SMS.
  const store = createSqliteNotificationStore({ path: join(dataDir, 'notification.db') })
  try {
    await pollUntil(async () => (await store.counts()).sent === 156, 60_000).catch(async (err) => {
      // Say which rule fell short, and why, rather than only that time ran out.
      const byRule: Record<string, number> = {}
      const all = await store.query({ limit: 1_000 })
      for (const r of all) byRule[`${r.rule} ${r.status}`] = (byRule[`${r.rule} ${r.status}`] ?? 0) + 1
      const failed = all.find((r) => r.status === 'failed')?.lastError?.message
      throw new Error(
        `${(err as Error).message}: ${JSON.stringify(byRule)}${failed === undefined ? '' : `; ${failed}`}`,
      )
    })
    expect(await store.counts()).toEqual({ pending: 0, sent: 156, read: 0, failed: 0, suppressed: 0 })
  } finally {
    await store.close()
  }
  // Every user's number got its welcome; a resend after the kill (the SMS left, its record did not) carries the same
  // idempotency key, so the gateway can drop it: no user has two different welcome messages.
  const keysByNumber = new Map<string, Set<string>>()
  for (const { key, to } of sms) keysByNumber.set(to, (keysByNumber.get(to) ?? new Set()).add(key))
  expect(keysByNumber.size).toBe(users)
  expect([...keysByNumber.values()].every((keys) => keys.size === 1)).toBe(true)
  console.log(
    `cloud-phone e2e: ${sms.length} SMS requests for ${users} users (${sms.length - users} resent after the kill)`,
  )
  expect((await transport.listDeadLetters({ limit: 10 })).items).toEqual([])
})

it('cloud phone over RabbitMQ: a broadcast of 1,000 SMS through a SIGKILL of the notification service mid-batch: every number gets its message, a resend only under its one idempotency key', async () => {
  const operator = createBus({ transport, service: 'operator', contracts: allContracts })
  const recipients = Array.from({ length: 1_000 }, (_, i) => ({
    userId: `b${i}`,
    phone: `+86139${String(i).padStart(8, '0')}`,
    data: { username: `用户${i}` },
  }))
  const ofBroadcast = () => sms.filter((r) => r.key.startsWith('maintenance-1:'))
  await operator.send(Broadcast, { broadcastId: 'maintenance-1', template: 'maintenance', recipients })
  // Kill it while the batch is being delivered, then start it again on its database.
  await pollUntil(async () => ofBroadcast().length >= 200, 60_000)
  await stop('notification', 'SIGKILL')
  const beforeRestart = ofBroadcast().length
  await start('notification')
  await pollUntil(async () => new Set(ofBroadcast().map((r) => r.key)).size === 1_000, 120_000)
  const store = createSqliteNotificationStore({ path: join(dataDir, 'notification.db') })
  try {
    await pollUntil(async () => (await store.counts({ batch: 'maintenance-1' })).sent === 1_000, 60_000)
    expect(await store.counts({ batch: 'maintenance-1' })).toEqual({
      pending: 0,
      sent: 1_000,
      read: 0,
      failed: 0,
      suppressed: 0,
    })
  } finally {
    await store.close()
  }
  // One key per number, one number per key: what the gateway saw twice, it saw with the same key.
  const keysByNumber = new Map<string, Set<string>>()
  for (const { key, to } of ofBroadcast()) keysByNumber.set(to, (keysByNumber.get(to) ?? new Set()).add(key))
  expect(keysByNumber.size).toBe(1_000)
  expect([...keysByNumber.values()].every((keys) => keys.size === 1)).toBe(true)
  console.log(
    `cloud-phone broadcast: ${beforeRestart} SMS before the kill, ${ofBroadcast().length} requests for 1,000 numbers`,
  )
})
