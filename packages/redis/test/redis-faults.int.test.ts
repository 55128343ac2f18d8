import { fileURLToPath } from 'node:url'
import { createBus, defineEvent, type Envelope, sleep, uuidV7 } from '@herald/core'
import {
  createHistory,
  describeConsumerCrashes,
  fakeClock,
  objectSchema,
  pollUntil,
  type RedisProfile,
  type RedisServer,
  runThroughConnectionResets,
  spawnConsumer,
  startFaultProxy,
  startRedis,
  type WorkerEvent,
  waitFor,
} from '@herald/testkit'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createRedisTransport, type RedisTransport } from '../src/index.js'

const factoryModule = fileURLToPath(new URL('../src/index.ts', import.meta.url))
const encoder = new TextEncoder()
let prefixes = 0

function envelope(text: string): Envelope {
  return { id: uuidV7(), headers: { type: 'test.redis' }, body: encoder.encode(JSON.stringify({ text })) }
}

let shared: RedisServer | undefined
beforeAll(async () => {
  shared = await startRedis({ profile: 'always' })
})
afterAll(async () => {
  await shared?.stop()
})

describeConsumerCrashes('redis', async () => {
  const url = shared!.url
  const prefix = `crash${++prefixes}`
  return {
    // On Redis the taker measures the lease (XAUTOCLAIM's min idle time): every consumer uses the same leaseMs.
    admin: () => createRedisTransport({ url, prefix, leaseMs: 500, pollIntervalMs: 50 }),
    worker: () => ({
      module: factoryModule,
      exportName: 'createRedisTransport',
      options: { url, prefix, leaseMs: 500, pollIntervalMs: 20 },
    }),
    cleanup: async () => {},
  }
})

describe('redis durability and broker faults', () => {
  const servers: RedisServer[] = []
  const transports: RedisTransport[] = []
  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close()))
    await Promise.all(servers.splice(0).map((s) => s.stop()))
  })
  async function server(profile: RedisProfile): Promise<RedisServer> {
    const s = await startRedis({ profile })
    servers.push(s)
    return s
  }
  async function open(url: string, extra: object = {}): Promise<RedisTransport> {
    const t = await createRedisTransport({ url, pollIntervalMs: 50, onError: () => {}, ...extra })
    transports.push(t)
    return t
  }

  it('startup-durability-guards: refuses a server without AOF in strict mode, naming the setting; relaxed mode reports and goes on', async () => {
    const volatile = await server('volatile')
    await expect(createRedisTransport({ url: volatile.url })).rejects.toThrow(/appendonly yes/)
    const reported: unknown[] = []
    await open(volatile.url, { durability: 'relaxed', onError: (e: unknown) => reported.push(e) })
    expect(String(reported[0])).toMatch(/AOF off/)
  })

  /** Publishes 1,000 (each ok), kill -9, restart, drains: how many of the acknowledged came back. */
  async function killAndCount(profile: RedisProfile): Promise<{ lost: number; ok: number }> {
    const s = await server(profile)
    const publisher = await open(s.url, { durability: 'relaxed' })
    await publisher.declareGroup('g', ['d.t'])
    const history = createHistory()
    const sent = Array.from({ length: 1_000 }, (_, i) => envelope(`m${i}`))
    for (const e of sent) {
      history.attempted(e.id)
      await publisher.publish('d.t', [e])
      history.ok(e.id)
    }
    await s.crash()
    await s.restart()
    const consumer = await open(s.url, { durability: 'relaxed' })
    let seen = 0
    await consumer.subscribe({ group: 'g', patterns: ['d.t'] }, async (e) => {
      seen++
      history.delivered(e.id)
      history.completed(e.id)
    })
    // Drain: everything the server still holds is delivered; the group's stream is then empty.
    await waitFor(
      async () => (await consumer.listGroups()).find((g) => g.group === 'g')?.depth === 0,
      history.onChange,
      { timeoutMs: 30_000 },
    )
    const check = history.check()
    console.log(`[redis] durability-profiles-matrix ${profile}: ${history.summary()} delivered=${seen}`)
    return { lost: check.lost.length, ok: history.counts.ok }
  }

  it('durability-profiles-matrix: AOF always loses nothing on kill -9; everysec is measured; no AOF loses all (negative control)', async () => {
    expect(await killAndCount('always')).toEqual({ lost: 0, ok: 1_000 })
    const everysec = await killAndCount('everysec')
    console.log(`[redis] durability-profiles-matrix everysec lost=${everysec.lost} (printed, not asserted)`)
    expect(await killAndCount('volatile')).toEqual({ lost: 1_000, ok: 1_000 })
  })

  it('broker-kill9-during-publish: 20 publishers, two kill -9s (AOF always); every acknowledged message is delivered', async () => {
    const s = await server('always')
    const history = createHistory()
    const consumers = [await open(s.url, { leaseMs: 2_000 }), await open(s.url, { leaseMs: 2_000 })]
    for (const c of consumers)
      await c.subscribe({ group: 'g', patterns: ['k.t'], maxInFlight: 20 }, async (e) => {
        history.delivered(e.id)
        history.completed(e.id)
      })
    const publisher = await open(s.url, { commandTimeoutMs: 2_000 })
    let sentCount = 0
    let retried = 0
    const kills: Promise<void>[] = []
    const killAt = [3_333, 5_000]
    const task = async (t: number) => {
      for (let n = 0; n < 500; n++) {
        const e = envelope(`t${t}-${n}`)
        history.attempted(e.id)
        // An error leaves the publish indeterminate: the same id again until the server acknowledges it.
        for (;;) {
          try {
            await publisher.publish('k.t', [e])
            break
          } catch {
            retried++
          }
        }
        history.ok(e.id)
        sentCount++
        if (killAt[0] !== undefined && sentCount >= killAt[0]) {
          killAt.shift()
          kills.push(s.restart())
        }
      }
    }
    await Promise.all(Array.from({ length: 20 }, (_, t) => task(t)))
    await Promise.all(kills)
    await waitFor(() => history.check().lost.length === 0, history.onChange, { timeoutMs: 120_000 })
    const check = history.check()
    console.log(`[redis] broker-kill9-during-publish: ${history.summary()} retriedPublishes=${retried}`)
    expect(kills).toHaveLength(2)
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
  })

  /** Cases 43 and 44: the server dies (or stops cleanly) mid-consume; consumers must carry on by themselves. */
  async function restartDuringConsume(how: 'crash' | 'graceful', label: string) {
    const s = await server('always')
    const publisher = await open(s.url)
    await publisher.declareGroup('g', ['c.t'])
    const history = createHistory()
    const sent = Array.from({ length: 5_000 }, (_, i) => envelope(`m${i}`))
    for (let i = 0; i < sent.length; i += 100) {
      const batch = sent.slice(i, i + 100)
      for (const e of batch) history.attempted(e.id)
      await publisher.publish('c.t', batch)
      for (const e of batch) history.ok(e.id)
    }
    const afterRestart = [0, 0]
    let restarted = false
    const consumers = await Promise.all([open(s.url, { leaseMs: 2_000 }), open(s.url, { leaseMs: 2_000 })])
    await Promise.all(
      consumers.map((c, n) =>
        c.subscribe({ group: 'g', patterns: ['c.t'], maxInFlight: 20 }, async (e) => {
          history.delivered(e.id)
          await sleep(2) // handler work
          history.completed(e.id)
          if (restarted) afterRestart[n]!++
        }),
      ),
    )
    await waitFor(() => history.counts.completed >= 1_500, history.onChange)
    if (how === 'crash') await s.restart()
    else await s.gracefulRestart()
    restarted = true
    await waitFor(() => history.check().lost.length === 0, history.onChange, { timeoutMs: 60_000 })
    const check = history.check()
    console.log(`[redis] ${label}: ${history.summary()} afterRestart=${afterRestart.join(',')}`)
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
    expect(check.duplicates).toBeLessThanOrEqual(2 * 20)
    expect(
      afterRestart.every((n) => n >= 1),
      'both consumers resumed',
    ).toBe(true)
  }

  it('broker-kill9-during-consume: consumers reconnect on their own; nothing lost, duplicates bounded', () =>
    restartDuringConsume('crash', 'broker-kill9-during-consume'))

  it('broker-graceful-restart: the same with SIGTERM', () =>
    restartDuringConsume('graceful', 'broker-graceful-restart'))

  it('broker-paused: publishes during a SIGSTOP fail after the command timeout, are retried, and none is lost', async () => {
    const s = await server('always')
    const publisher = await open(s.url, { commandTimeoutMs: 500 })
    const consumer = await open(s.url, { commandTimeoutMs: 500, leaseMs: 5_000 })
    const history = createHistory()
    await consumer.subscribe({ group: 'g', patterns: ['p.t'], maxInFlight: 20 }, async (e) => {
      history.delivered(e.id)
      history.completed(e.id)
    })
    let paused = false
    let timedOut = 0
    let longestMs = 0
    const publishTask = async (task: number) => {
      for (let n = 0; n < 200; n++) {
        const e = envelope(`t${task}-${n}`)
        history.attempted(e.id)
        for (;;) {
          const started = Date.now()
          try {
            await publisher.publish('p.t', [e])
            history.ok(e.id)
            break
          } catch {
            timedOut++ // indeterminate: retried with the same id
          } finally {
            longestMs = Math.max(longestMs, Date.now() - started)
          }
        }
        if (task === 0 && n === 50) {
          s.pause()
          paused = true
        }
      }
    }
    const publishing = Promise.all(Array.from({ length: 10 }, (_, task) => publishTask(task)))
    await waitFor(() => paused, history.onChange)
    const duringPause = await consumer.checkHealth()
    await waitFor(() => timedOut >= 10, history.onChange, { timeoutMs: 30_000 })
    s.resume()
    await publishing
    await waitFor(() => history.check().lost.length === 0, history.onChange, { timeoutMs: 60_000 })
    const after = await consumer.checkHealth()
    const check = history.check()
    console.log(
      `[redis] broker-paused: ${history.summary()} timedOutPublishes=${timedOut} longestPublishMs=${longestMs} (commandTimeoutMs 500)`,
    )
    expect(duringPause.ok).toBe(false)
    expect(after.ok).toBe(true)
    expect(check.lost).toEqual([])
    expect(check.unexpected).toEqual([])
  })

  it('redis-retention-never-eats-pending: a message held pending survives 5,000 later ones', async () => {
    const s = await server('always')
    const transport = await open(s.url)
    const history = createHistory()
    const held = envelope('hold-me')
    let release!: () => void
    const released = new Promise<void>((resolve) => {
      release = resolve
    })
    await transport.subscribe({ group: 'g1', patterns: ['r.t'], maxInFlight: 10 }, async (e) => {
      history.delivered(e.id)
      if (e.id === held.id) await released
      history.completed(e.id)
    })
    history.attempted(held.id)
    await transport.publish('r.t', [held])
    history.ok(held.id)
    await waitFor(() => history.deliveriesOf(held.id) === 1, history.onChange)
    const more = Array.from({ length: 5_000 }, (_, i) => envelope(`m${i}`))
    for (let i = 0; i < more.length; i += 100) {
      const batch = more.slice(i, i + 100)
      for (const e of batch) history.attempted(e.id)
      await transport.publish('r.t', batch)
      for (const e of batch) history.ok(e.id)
    }
    await waitFor(() => more.every((e) => history.isCompleted(e.id)), history.onChange)
    release()
    await waitFor(() => history.isCompleted(held.id), history.onChange)
    await waitFor(async () => (await transport.listGroups())[0]?.depth === 0, history.onChange)
    const check = history.check()
    console.log(`[redis] redis-retention-never-eats-pending: ${history.summary()}`)
    expect(check.lost).toEqual([])
    expect(history.deliveriesOf(held.id)).toBe(1)
  })

  it('connection-resets: every connection reset 10 times during a 10,000-message run; none lost', async () => {
    const s = await server('always')
    const proxy = await startFaultProxy({ port: s.port })
    const url = `redis://127.0.0.1:${proxy.port}`
    try {
      const publisher = await open(url)
      const consumer = await open(url, { leaseMs: 2_000 })
      const run = await runThroughConnectionResets({
        consumer,
        proxy,
        envelope,
        async publishUntilOk(topic, batch, record, onRetry) {
          for (const e of batch) record.attempted(e.id)
          for (;;) {
            try {
              await publisher.publish(topic, batch)
              break
            } catch {
              onRetry() // indeterminate: the same ids again
            }
          }
          for (const e of batch) record.ok(e.id)
        },
      })
      // Reconnected after the last reset, one connection each: the publisher's, and the consumer's two
      // (commands, blocking reads). No leak: exactly one new connection per connection reset.
      await pollUntil(async () => proxy.openConnections() === 3)
      const check = run.history.check()
      console.log(
        `[redis] connection-resets: ${run.summary} connectionsAccepted=${proxy.acceptedConnections()} open=${proxy.openConnections()}`,
      )
      expect(run.resets).toBe(10)
      expect(check.lost).toEqual([])
      expect(check.unexpected).toEqual([])
      expect(proxy.acceptedConnections()).toBe(3 + run.connectionsReset)
    } finally {
      await Promise.all(transports.splice(0).map((t) => t.close()))
      await proxy.close()
    }
  })

  it('half-open-connection-detected: a blackholed consumer times out its socket, its claims go to another, and it reconnects', async () => {
    const s = await server('always')
    const proxy = await startFaultProxy({ port: s.port })
    try {
      const history = createHistory()
      const timings = { commandTimeoutMs: 1_000, leaseMs: 1_500 }
      const cutOff = await open(`redis://127.0.0.1:${proxy.port}`, timings)
      const handledBy = { cutOff: 0, direct: 0 }
      let release!: () => void
      const held = new Promise<void>((resolve) => {
        release = resolve
      })
      await cutOff.subscribe({ group: 'g', patterns: ['h.t'], maxInFlight: 5 }, async (e) => {
        history.delivered(e.id)
        await held // holds its claims until the network is gone
        history.completed(e.id)
        handledBy.cutOff++
      })
      const direct = await open(s.url, timings)
      const sent = Array.from({ length: 5 }, (_, i) => envelope(`held${i}`))
      for (const e of sent) history.attempted(e.id)
      await direct.publish('h.t', sent)
      for (const e of sent) history.ok(e.id)
      await waitFor(() => history.counts.deliveries >= 5, history.onChange)
      proxy.setMode('blackhole')
      release()
      // The cut-off consumer can neither renew nor ack: its claims expire and the direct consumer takes them.
      await direct.subscribe({ group: 'g', patterns: ['h.t'] }, async (e) => {
        history.delivered(e.id)
        history.completed(e.id)
        handledBy.direct++
      })
      await waitFor(() => handledBy.direct >= 5, history.onChange, { timeoutMs: 60_000 })
      await pollUntil(async () => !(await cutOff.checkHealth()).ok, 30_000)
      proxy.setMode('pass')
      await pollUntil(async () => (await cutOff.checkHealth()).ok, 30_000)
      const after = Array.from({ length: 20 }, (_, i) => envelope(`after${i}`))
      for (const e of after) history.attempted(e.id)
      await cutOff.publish('h.t', after)
      for (const e of after) history.ok(e.id)
      await waitFor(() => history.check().lost.length === 0, history.onChange, { timeoutMs: 60_000 })
      const check = history.check()
      console.log(`[redis] half-open-connection-detected: ${history.summary()} handledBy=${JSON.stringify(handledBy)}`)
      expect(handledBy.direct).toBeGreaterThanOrEqual(5)
      expect(check.lost).toEqual([])
      expect(check.unexpected).toEqual([])
    } finally {
      await Promise.all(transports.splice(0).map((t) => t.close()))
      await proxy.close()
    }
  })
})

describe('redis bookkeeping written by another client', () => {
  it('malformed-bookkeeping-never-loses: entries missing fields are dead-lettered with a reason; forged delivery counts change nothing', async () => {
    const url = shared!.url
    const prefix = `forged${++prefixes}`
    const transport = await createRedisTransport({ url, prefix, pollIntervalMs: 20, onError: () => {} })
    const raw = new Redis(url)
    try {
      const history = createHistory()
      const calls = new Map<string, number[]>()
      const Tested = defineEvent('test.redis', { schema: objectSchema({ text: 'string' }) })
      const bus = createBus({
        transport,
        service: 'g',
        consumer: {
          immediateRetries: 0,
          retry: { maxAttempts: 3, backoff: { initialMs: 10, maxMs: 10, factor: 1, jitter: 0 } },
        },
      })
      // `fails-once` fails on its first call, `always-fails` on every call.
      bus.on(Tested, async (message, context) => {
        history.delivered(message.id)
        calls.set(message.id, [...(calls.get(message.id) ?? []), context.attempt])
        const { text } = message.data
        if (text === 'always-fails' || (text === 'fails-once' && context.attempt === 1)) throw new Error(text)
        history.completed(message.id)
      })
      await bus.start()
      const stream = `${prefix}:q:g`
      const headers = JSON.stringify({ type: 'test.redis' })
      const add = async (id: string, fields: string[]) => {
        history.attempted(id)
        await raw.xadd(stream, '*', 'i', id, 't', 'test.redis', ...fields)
        history.ok(id)
      }
      const body = (text: string) => JSON.stringify({ text })
      // Missing bookkeeping: each must reach the dead-letter queue (the old scripts deleted them, then failed).
      const noHeaders = uuidV7()
      await add(noHeaders, ['b', body('no headers')])
      const noBody = uuidV7()
      await add(noBody, ['h', headers])
      // Forged counts: NaN with a failing handler; 999 (was dead-lettered unrun); -20 (ran 23 times, not 3).
      const notANumber = uuidV7()
      await add(notANumber, ['h', headers, 'b', body('fails-once'), 'a', 'NaN', 'r', '1'])
      const huge = uuidV7()
      await add(huge, ['h', headers, 'b', body('fine'), 'a', '999', 'r', '1'])
      const negative = uuidV7()
      await add(negative, ['h', headers, 'b', body('always-fails'), 'a', '-20'])
      // And normal traffic around them.
      const normal: string[] = []
      for (let i = 0; i < 50; i++) {
        const id = await bus.publish(Tested, { text: `n-${i}` })
        history.attempted(id)
        history.ok(id)
        normal.push(id)
      }

      const deadLetters = async () => (await transport.listDeadLetters({ limit: 100 })).items
      await pollUntil(async () => (await deadLetters()).length === 3 && normal.every((id) => history.isCompleted(id)))
      const dead = new Map((await deadLetters()).map((l) => [l.envelope.id, l]))
      for (const id of dead.keys()) history.deadLettered(id)
      expect(dead.get(noHeaders)).toMatchObject({ reason: 'envelope_invalid', attempts: 1 })
      expect(dead.get(noBody)).toMatchObject({ reason: 'decode_error', attempts: 1 })
      expect(dead.get(negative)).toMatchObject({ reason: 'handler_error', attempts: 3 })
      expect(calls.get(negative)).toEqual([1, 2, 3])
      expect(calls.get(huge)).toEqual([1])
      expect(calls.get(notANumber)).toEqual([1, 2])
      // Nothing is left anywhere else: not in the stream, not pending, not delayed.
      await pollUntil(async () => (await raw.xlen(stream)) === 0)
      expect(await raw.zcard(`${prefix}:d:g`)).toBe(0)
      await bus.stop()
      const check = history.check()
      console.log(`[redis] malformed-bookkeeping-never-loses: ${history.summary()}`)
      expect(check.lost).toEqual([])
      expect(check.unexpected).toEqual([])
    } finally {
      raw.disconnect()
      await transport.close()
    }
  })
})

describe('redis consumers on skewed clocks', () => {
  const factory = { module: factoryModule, exportName: 'createRedisTransport' }

  it('consumer-clock-skew: delays and retry backoff are judged by the server clock, never a consumer running an hour ahead or behind', async () => {
    const url = shared!.url
    const prefix = `skew${++prefixes}`
    const options = { url, prefix, pollIntervalMs: 50, leaseMs: 5_000 }
    const publisher = await createRedisTransport(options)
    // Herald's own clock: when each delivery reached this process, which runs on the machine's clock.
    const delivered = new Map<string, { attempt: number; at: number }[]>()
    const record = (event: WorkerEvent) => {
      if (event.event !== 'delivered' || event.id === undefined) return
      delivered.set(event.id, [...(delivered.get(event.id) ?? []), { attempt: event.attempt ?? 0, at: Date.now() }])
    }
    const delays = { ...factory, options, group: 'delays', patterns: ['delay.#'] }
    const retries = {
      ...factory,
      options,
      group: 'retries',
      patterns: ['retry.#'],
      failFirstAttempt: true,
      retry: { maxAttempts: 5, backoff: { initialMs: 2_000, maxMs: 2_000, factor: 1, jitter: 0 } },
    }
    const workers = [
      spawnConsumer(delays, record, fakeClock('+1h')),
      spawnConsumer(delays, record, fakeClock('-1h')),
      // Retries: a consumer an hour behind fails first attempts; a normal one (this machine's clock) takes over.
      spawnConsumer(retries, record, fakeClock('-1h')),
      spawnConsumer(retries, record),
    ]
    try {
      await Promise.all(workers.map((w) => w.ready))
      const delayMs = 3_000
      const delayed = Array.from({ length: 20 }, (_, i) => envelope(`delayed-${i}`))
      const publishedAt = Date.now()
      await publisher.schedule('delay.tick', delayed, publishedAt + delayMs)
      const retried = Array.from({ length: 20 }, (_, i) => envelope(`retried-${i}`))
      await publisher.publish('retry.tick', retried)
      await pollUntil(
        async () =>
          delayed.every((e) => delivered.has(e.id)) && retried.every((e) => (delivered.get(e.id)?.length ?? 0) >= 2),
        60_000,
      )
      // Never early by the server's clock (less a little for the line to travel to this process), and not an
      // hour late either.
      const early = delayed.filter((e) => delivered.get(e.id)![0]!.at < publishedAt + delayMs - 20)
      expect(early.map((e) => delivered.get(e.id)![0]!.at - publishedAt)).toEqual([])
      const gaps = retried.map((e) => {
        const [first, second] = delivered.get(e.id)!
        return second!.at - first!.at
      })
      expect(gaps.filter((gap) => gap < 2_000 - 20)).toEqual([])
      console.log(
        `[redis] consumer-clock-skew: delayed=${delayed.length} earliest=${Math.min(...delayed.map((e) => delivered.get(e.id)![0]!.at - publishedAt))}ms (delay ${delayMs}) shortestBackoff=${Math.min(...gaps)}ms (backoff 2000)`,
      )
    } finally {
      await Promise.all(workers.map((w) => w.stop()))
      await publisher.close()
    }
  })
})
