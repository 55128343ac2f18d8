import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { PermanentError } from '@herald/core'
import { createSqliteNotificationStore } from '@herald/notifications/sqlite'
import { createSqliteEventStore, createSqliteTransport, type SqliteTransport } from '@herald/sqlite'
import { createLatch, pollUntil } from '@herald/testkit'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { runCli } from '../src/index.js'

const bin = fileURLToPath(new URL('../src/bin.ts', import.meta.url))

function capture() {
  const out: string[] = []
  const err: string[] = []
  return { out, err, output: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } }
}

describe('herald CLI on SQLite', () => {
  let dir: string
  let url: string
  let transport: SqliteTransport

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-cli-'))
    url = `sqlite:${join(dir, 'herald.db')}`
    transport = createSqliteTransport({ path: join(dir, 'herald.db') })
  })
  afterEach(async () => {
    await transport.close()
    rmSync(dir, { recursive: true, force: true })
  })

  async function deadLetterOne(payload: string): Promise<string> {
    const sub = await transport.subscribe({ group: 'billing', patterns: ['order.#'] }, async () => {
      throw new PermanentError('card declined')
    })
    const io = capture()
    expect(await runCli(['-t', url, 'publish', 'order.created', payload, '--json'], { output: io.output })).toBe(0)
    const { id } = JSON.parse(io.out[0]!) as { id: string }
    await pollUntil(async () => (await transport.getDeadLetter(id)) !== undefined)
    await sub.close()
    return id
  }

  it('lists, shows and purges dead letters, as a table or JSON lines', async () => {
    const id = await deadLetterOne('{"orderId":"o-1"}')
    const list = capture()
    expect(await runCli(['-t', url, 'dlq', 'list', '--json'], { output: list.output })).toBe(0)
    expect(JSON.parse(list.out[0]!)).toMatchObject({
      id,
      group: 'billing',
      reason: 'permanent_error',
      attempts: 1,
      error: 'card declined',
    })
    const table = capture()
    await runCli(['-t', url, 'dlq', 'list'], { output: table.output })
    expect(table.out[0]).toMatch(/^ID\s+GROUP\s+TYPE\s+REASON/)
    const show = capture()
    await runCli(['-t', url, 'dlq', 'show', id], { output: show.output })
    expect(JSON.parse(show.out.join('\n'))).toMatchObject({
      payload: { orderId: 'o-1' },
      headers: { type: 'order.created' },
    })
    const refused = capture()
    expect(await runCli(['-t', url, 'dlq', 'purge'], { output: refused.output })).toBe(1)
    expect(refused.err[0]).toMatch(/--all/)
    const purge = capture()
    await runCli(['-t', url, 'dlq', 'purge', '--reason', 'permanent_error', '--json'], { output: purge.output })
    expect(JSON.parse(purge.out[0]!)).toEqual({ purged: 1 })
  })

  it('a dead letter redriven by the herald command is handled by the fixed consumer', async () => {
    const id = await deadLetterOne('{"orderId":"o-2"}')
    const handled = createLatch()
    const seen: string[] = []
    await transport.subscribe({ group: 'billing', patterns: ['order.#'] }, async (envelope) => {
      seen.push(envelope.id)
      handled.open()
    })
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=herald-source', '--import', 'tsx', bin, 'dlq', 'redrive', id, '--json'],
      { env: { ...process.env, HERALD_TRANSPORT: url } },
    )
    expect(JSON.parse(stdout)).toEqual({ redriven: 1 })
    await handled.wait
    expect(seen).toEqual([id])
    expect(await transport.getDeadLetter(id)).toBeUndefined()
  })

  it('keys lists a key held by its dead letter, stats counts it, and keys release lets the key go on', async () => {
    const handled: string[] = []
    const next = createLatch()
    const sub = await transport.subscribe(
      { group: 'ledger', patterns: ['acct.#'], ordering: { afterDeadLetter: 'hold' } },
      async (envelope) => {
        if (envelope.id === 'poison') throw new PermanentError('bad amount')
        handled.push(envelope.id)
        next.open()
      },
    )
    const keyed = (id: string) => ({
      id,
      headers: { type: 'acct.moved', partitionkey: 'acc-1' },
      body: new Uint8Array(),
    })
    await transport.publish('acct.moved', [keyed('poison'), keyed('after')])
    await pollUntil(async () => (await transport.listHeldKeys('ledger')).length === 1)
    const list = capture()
    expect(await runCli(['-t', url, 'keys', '--json'], { output: list.output })).toBe(0)
    expect(list.out.map((l) => JSON.parse(l))).toEqual([
      { group: 'ledger', key: 'acc-1', deadLetterId: 'poison', waiting: 1 },
    ])
    const stats = capture()
    await runCli(['-t', url, 'stats', '--json', '--interval', '0'], { output: stats.output })
    expect(stats.out.map((l) => JSON.parse(l)).find((g) => g.group === 'ledger')).toMatchObject({
      heldKeys: 1,
      waitingOnKey: 1,
    })
    expect(handled).toEqual([])
    const release = capture()
    expect(await runCli(['-t', url, 'keys', 'release', 'ledger', 'acc-1'], { output: release.output })).toBe(0)
    expect(release.out).toEqual(['released key acc-1 of group ledger'])
    await next.wait
    expect(handled).toEqual(['after'])
    const again = capture()
    expect(await runCli(['-t', url, 'keys', 'release', 'ledger', 'acc-1'], { output: again.output })).toBe(1)
    expect(again.err[0]).toMatch(/not held/)
    await sub.close()
  })

  it('redrives 2,500 dead letters a page at a time, with progress, leaving other groups alone', async () => {
    const total = 2_500
    const failing = async () => {
      throw new PermanentError('card declined')
    }
    const billing = await transport.subscribe({ group: 'billing', patterns: ['order.#'], maxInFlight: 100 }, failing)
    const shipping = await transport.subscribe({ group: 'shipping', patterns: ['order.#'], maxInFlight: 100 }, failing)
    const body = new TextEncoder().encode('{}')
    for (let i = 0; i < total; i += 500)
      await transport.publish(
        'order.created',
        Array.from({ length: 500 }, (_, n) => ({ id: `m-${i + n}`, headers: { type: 'order.created' }, body })),
      )
    const deadIn = async (group: string) =>
      (await transport.listGroups()).find((g) => g.group === group)?.deadLetters ?? 0
    await pollUntil(async () => (await deadIn('billing')) === total && (await deadIn('shipping')) === total)
    await billing.close()
    await shipping.close()

    const io = capture()
    expect(await runCli(['-t', url, 'dlq', 'redrive', '--group', 'billing', '--json'], { output: io.output })).toBe(0)
    expect(JSON.parse(io.out[0]!)).toEqual({ redriven: total })
    // Progress on stderr, ending with the whole count.
    expect(io.err.at(-1)).toMatch(/^redrive \[#+\] 2500\/2500 100% \d+\/s, done$/)
    const groups = await transport.listGroups()
    expect(groups.find((g) => g.group === 'billing')).toMatchObject({ depth: total, deadLetters: 0 })
    expect(groups.find((g) => g.group === 'shipping')).toMatchObject({ depth: 0, deadLetters: total })
    // An id alone that shipping and (before the redrive) billing both dead-lettered must name its group.
    await transport.subscribe({ group: 'billing', patterns: ['order.#'] }, failing)
    await pollUntil(async () => (await deadIn('billing')) === total)
    const ambiguous = capture()
    expect(await runCli(['-t', url, 'dlq', 'purge', 'm-7'], { output: ambiguous.output })).toBe(1)
    expect(ambiguous.err[0]).toMatch(/m-7 was dead-lettered by billing, shipping: name one with --group/)
    const one = capture()
    expect(
      await runCli(['-t', url, 'dlq', 'purge', 'm-7', '--group', 'shipping', '--json'], { output: one.output }),
    ).toBe(0)
    expect(JSON.parse(one.out[0]!)).toEqual({ purged: 1 })
    expect(await transport.getDeadLetter('m-7', 'billing')).toBeDefined()
  })

  it('tail prints what is published while it runs', async () => {
    const stop = createLatch()
    const io = capture()
    const printed = createLatch()
    const output = {
      out: (l: string) => {
        io.out.push(l)
        printed.open()
      },
      err: io.output.err,
    }
    const tailing = runCli(['-t', url, 'tail', 'trip.#', '--json'], { output, untilInterrupted: () => stop.wait })
    await pollUntil(async () => (await transport.listGroups()).some((g) => g.group.startsWith('herald-tail-')))
    await runCli(['-t', url, 'publish', 'trip.event.created', '{"tripId":"t-1"}'], { output: capture().output })
    await printed.wait
    stop.open()
    expect(await tailing).toBe(0)
    expect(JSON.parse(io.out[0]!)).toMatchObject({ topic: 'trip.event.created', body: '{"tripId":"t-1"}' })
    expect(await transport.listGroups()).toEqual([])
  })

  it('topics create, list and delete bind and unbind groups; a delayed publish waits; health reports', async () => {
    const run = async (...args: string[]) => {
      const io = capture()
      const code = await runCli(['-t', url, ...args], { output: io.output })
      return { code, out: io.out, err: io.err }
    }
    expect((await run('topics', 'create', 'trip.event.*', '--group', 'drivers')).code).toBe(0)
    expect((await run('topics', 'create', 'trip.event.*', '--group', 'notify')).code).toBe(0)
    expect((await run('topics', 'create', 'order.#', '--group', 'notify')).code).toBe(0)
    const listed = await run('topics', 'list', '--json')
    expect(listed.out.map((l) => JSON.parse(l))).toEqual([
      { topic: 'order.#', groups: ['notify'] },
      { topic: 'trip.event.*', groups: ['drivers', 'notify'] },
    ])
    expect((await run('topics', 'delete', 'trip.event.*', '--group', 'notify')).out[0]).toBe(
      'unbound trip.event.* from notify',
    )
    expect((await run('topics', 'delete', 'trip.event.*')).out[0]).toBe('unbound trip.event.* from drivers')
    const missing = await run('topics', 'delete', 'trip.event.*')
    expect(missing.code).toBe(1)
    expect(missing.err[0]).toMatch(/no group is bound to trip.event.\*/)
    expect((await run('topics', 'list', '--json')).out).toEqual([
      JSON.stringify({ topic: 'order.#', groups: ['notify'] }),
    ])

    // A delayed publish is held by the transport's scheduler, then delivered no earlier than asked.
    const delivered: number[] = []
    await transport.subscribe({ group: 'notify', patterns: ['order.#'] }, async () => {
      delivered.push(Date.now())
    })
    const before = Date.now()
    const scheduled = await run('publish', 'order.created', '{"orderId":"o-1"}', '--delay-ms', '300', '--json')
    expect(scheduled.code).toBe(0)
    expect(JSON.parse(scheduled.out[0]!)).toHaveProperty('deliverAt')
    await pollUntil(async () => delivered.length === 1)
    expect(delivered[0]! - before).toBeGreaterThanOrEqual(300)

    const health = await run('health', '--json')
    expect(health.code).toBe(0)
    expect(JSON.parse(health.out[0]!)).toMatchObject({ ok: true })
  })

  it('dashboard serves the pages behind the token it prints', async () => {
    const stop = createLatch()
    const io = capture()
    const printed = createLatch()
    const output = {
      out: (l: string) => {
        io.out.push(l)
        printed.open()
      },
      err: io.output.err,
    }
    const serving = runCli(['-t', url, 'dashboard', '--port', '0'], {
      output,
      untilInterrupted: () => stop.wait,
      env: { HERALD_DASHBOARD_TOKEN: 'cli-token-0123456789abcdef' },
    })
    await printed.wait
    const link = io.out[0]!.replace('Herald dashboard: ', '')
    expect(link).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=cli-token-0123456789abcdef$/)
    // The link logs a browser in: a session cookie, and a redirect to the same page without the token.
    const login = await fetch(link, { redirect: 'manual' })
    expect(login.status).toBe(303)
    expect(login.headers.get('location')).toBe('/')
    const cookie = login.headers
      .getSetCookie()
      .find((c) => c.startsWith('herald_dashboard_session='))!
      .split(';')[0]!
    expect((await fetch(new URL('/dead-letters', link), { headers: { cookie } })).status).toBe(200)
    expect((await fetch(new URL('/dead-letters', link))).status).toBe(401)
    stop.open()
    expect(await serving).toBe(0)
  })

  it('a Kafka URL whose brokers are not host:port is refused at once, credentials unprinted', async () => {
    const io = capture()
    expect(await runCli(['-t', 'kafka://user:secret@localhost', 'dlq', 'list'], { output: io.output })).toBe(1)
    expect(io.err[0]).toMatch(/host:port/)
    expect(io.err[0]).not.toMatch(/secret/)
  })

  it('names the problem with an unknown transport scheme', async () => {
    const io = capture()
    expect(await runCli(['-t', 'nats://user:secret@localhost', 'dlq', 'list'], { output: io.output })).toBe(1)
    expect(io.err[0]).toMatch(/unknown scheme/)
    expect(io.err[0]).not.toMatch(/secret/)
  })

  it('queries the event store and replays a filtered selection with progress', async () => {
    const path = join(dir, 'herald.db')
    const store = createSqliteEventStore({ path })
    const encoder = new TextEncoder()
    const stored = (type: string, n: number) => ({
      topic: type,
      envelope: {
        id: `${type}-${n}`,
        headers: { type, source: 'shop', time: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString() },
        body: encoder.encode(JSON.stringify({ n })),
      },
    })
    await store.append([stored('order.placed', 1), stored('order.paid', 2), stored('order.placed', 3)])
    await store.close()

    const query = capture()
    expect(
      await runCli(['-t', url, 'events', 'query', '--type', 'order.placed', '--json'], { output: query.output }),
    ).toBe(0)
    expect(query.out.map((l) => (JSON.parse(l) as { id: string }).id)).toEqual(['order.placed-1', 'order.placed-3'])
    const ranged = capture()
    const window = ['--since', '2026-01-01T00:00:02Z', '--until', '2026-01-01T00:00:03Z']
    await runCli(['-t', url, 'events', 'query', ...window], { output: ranged.output })
    expect(ranged.out).toHaveLength(2) // header + the one event at exactly the inclusive start
    expect(ranged.out[1]).toContain('order.paid-2')

    const refused = capture()
    expect(await runCli(['-t', url, 'replay'], { output: refused.output })).toBe(1)
    expect(refused.err[0]).toMatch(/--all/)

    const seen: string[] = []
    const sub = await transport.subscribe({ group: 'projector', patterns: ['order.*'] }, async (e) => {
      seen.push(e.id)
    })
    const replay = capture()
    expect(await runCli(['-t', url, 'replay', '--type', 'order.placed'], { output: replay.output })).toBe(0)
    expect(replay.out).toEqual(['replayed 2 events'])
    expect(replay.err.at(-1)).toMatch(/2\/2 100%/)
    await pollUntil(async () => seen.length === 2)
    expect(seen.sort()).toEqual(['order.placed-1', 'order.placed-3'])
    await sub.close()
  })

  it('notifications lists records by user and status, and shows one with its last error', async () => {
    const store = createSqliteNotificationStore({ path: join(dir, 'herald.db') })
    const record = (id: string, user: string) => ({
      id,
      user,
      channel: 'sms' as const,
      to: '+15005550006',
      category: 'orders',
      template: 'paid',
      locale: 'zh-CN',
      data: { amount: 9 },
      rule: undefined,
      batch: 'b1',
    })
    await store.create(record('n-1', 'u1'), 1_000)
    await store.create(record('n-2', 'u1'), 2_000)
    await store.create(record('n-3', 'u2'), 3_000)
    await store.settle('n-1', 1, { kind: 'sent', providerId: 'SM1', subject: undefined, body: '支付成功 ¥9' }, 1_500)
    await store.settle(
      'n-2',
      1,
      { kind: 'failed', error: { name: 'PermanentError', message: 'twilio answered 400: bad number' } },
      2_500,
    )
    await store.close()

    const list = capture()
    expect(await runCli(['-t', url, 'notifications', '--user', 'u1', '--json'], { output: list.output })).toBe(0)
    expect(list.out.map((l) => JSON.parse(l).id)).toEqual(['n-2', 'n-1'])
    const failed = capture()
    expect(
      await runCli(['-t', url, 'notifications', '--status', 'failed', '--batch', 'b1'], { output: failed.output }),
    ).toBe(0)
    expect(failed.out[0]).toMatch(/^ID\s+USER\s+CHANNEL\s+STATUS/)
    expect(failed.out[1]).toMatch(/^n-2\s+u1\s+sms\s+failed\s+1\s.*twilio answered 400: bad number/)
    expect(failed.out.at(-1)).toBe('pending 1, sent 1, read 0, failed 1, suppressed 0')
    const show = capture()
    expect(await runCli(['-t', url, 'notifications', 'show', 'n-1'], { output: show.output })).toBe(0)
    expect(show.out).toContain('provider id  SM1')
    expect(show.out.at(-1)).toBe('支付成功 ¥9')
    const bad = capture()
    expect(await runCli(['-t', url, 'notifications', '--status', 'lost'], { output: bad.output })).toBe(1)
    expect(bad.err.join('\n')).toMatch(/--status must be one of pending, sent, read, failed, suppressed/)
    const missing = capture()
    expect(await runCli(['-t', url, 'notifications', 'show', 'nope'], { output: missing.output })).toBe(1)
    expect(missing.err.join('\n')).toMatch(/no notification nope/)
  })
})
