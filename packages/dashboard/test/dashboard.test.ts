import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createBus, createInMemoryTransport, defineEvent, PermanentError } from '@herald/core'
import { createObservability } from '@herald/observability'
import { createSqliteEventStore, createSqliteTransport, type SqliteTransport } from '@herald/sqlite'
import { createHistory, createLatch, pollUntil } from '@herald/testkit'
import Database from 'better-sqlite3'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { escapeHtml } from '../src/html.js'
import { createDashboard } from '../src/index.js'

const token = 'test-token-0123456789abcdef'
const auth = { authorization: `Bearer ${token}` }
const OrderPlaced = defineEvent('order.placed', { version: 1, schema: z.object({ note: z.string() }) })
const OrderBilled = defineEvent('order.billed', { version: 1, schema: z.object({ note: z.string() }) })

/** Follows a console job from its first fragment until it ends; returns its last text and every text seen. */
async function follow(app: FastifyInstance, fragment: string): Promise<{ last: string; seen: string[] }> {
  const id = fragment.match(/id="job-([\w-]+)"/)?.[1]
  if (id === undefined) throw new Error(`not a job: ${fragment}`)
  const seen = [fragment]
  await pollUntil(async () => {
    const body = (await app.inject({ url: `/jobs/${id}`, headers: auth })).body
    seen.push(body)
    return !body.includes('data-state="running"')
  }, 120_000)
  const text = (html: string) => html.replace(/<[^>]+>/g, '')
  return { last: text(seen.at(-1)!), seen: seen.map(text) }
}

describe('dashboard', () => {
  let dir: string
  let transport: SqliteTransport
  let app: FastifyInstance

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'herald-dashboard-'))
    transport = createSqliteTransport({ path: join(dir, 'herald.db') })
  })
  afterEach(async () => {
    await app?.close()
    await transport.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('refuses every page and API call without the token; a token link logs in with a cookie', async () => {
    app = await createDashboard({ transport, token })
    for (const url of ['/', '/dead-letters', '/api/dead-letters', '/events', '/assets/htmx.min.js'])
      expect((await app.inject({ url })).statusCode, url).toBe(401)
    expect(
      (await app.inject({ url: '/', headers: { authorization: 'Bearer wrong-token-0123456789ab' } })).statusCode,
    ).toBe(401)
    expect(
      (await app.inject({ method: 'POST', url: '/dead-letters/redrive', payload: { all: 'true' } })).statusCode,
    ).toBe(401)
    expect((await app.inject({ url: '/', headers: auth })).statusCode).toBe(200)
    // The token link swaps the token for a session and sends the browser to the same page without it.
    const login = await app.inject({ url: `/dead-letters?group=billing&token=${token}` })
    expect(login.statusCode).toBe(303)
    expect(login.headers.location).toBe('/dead-letters?group=billing')
    const cookies = ([] as string[]).concat(login.headers['set-cookie'] ?? [])
    const session = cookies.find((c) => c.startsWith('herald_dashboard_session='))!
    expect(session).toMatch(/HttpOnly; SameSite=Strict; Path=\/; Max-Age=28800/)
    // The session is an opaque, signed value: never the token.
    expect(cookies.join(';')).not.toContain(token)
    expect(cookies.join(';')).not.toContain(encodeURIComponent(token))
    const cookie = session.split(';')[0]!
    expect((await app.inject({ url: '/dead-letters', headers: { cookie } })).statusCode).toBe(200)
    // A forged, tampered, malformed or expired cookie is refused, never a 500.
    const tampered = cookie.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A'))
    for (const bad of [tampered, 'herald_dashboard_session=%E0%A4%A', `herald_dashboard_session=${token}`])
      expect((await app.inject({ url: '/dead-letters', headers: { cookie: bad } })).statusCode, bad).toBe(401)
    const shortApp = await createDashboard({ transport, token, sessionTtlMs: 1 })
    const shortLogin = await shortApp.inject({ url: `/?token=${token}` })
    const shortCookie = String(([] as string[]).concat(shortLogin.headers['set-cookie'] ?? [])[0]).split(';')[0]!
    await new Promise((resolve) => setTimeout(resolve, 5))
    expect((await shortApp.inject({ url: '/', headers: { cookie: shortCookie } })).statusCode).toBe(401)
    await shortApp.close()
  })

  it('every response forbids framing, referrers and inline script; bad input is a 400, not a 500', async () => {
    app = await createDashboard({ transport, token })
    for (const url of ['/', '/tail', '/failures', '/dead-letters', '/nowhere']) {
      const response = await app.inject({ url, headers: auth })
      const csp = String(response.headers['content-security-policy'])
      expect(csp).toContain("frame-ancestors 'none'")
      expect(csp).toMatch(/script-src 'self';/)
      expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/)
      expect(response.headers['x-frame-options']).toBe('DENY')
      expect(response.headers['referrer-policy']).toBe('no-referrer')
    }
    const page = await app.inject({ url: '/tail', headers: auth })
    expect(page.body).not.toMatch(/<script>(?!<\/script>)/)
    expect((await app.inject({ url: '/tail?pattern=a..b', headers: auth })).statusCode).toBe(400)
    for (const payload of [{}, { group: 'g' }])
      expect((await app.inject({ method: 'POST', url: '/keys/release', headers: auth, payload })).statusCode).toBe(400)
    for (const failure of ['not base64 json', Buffer.from('[1]').toString('base64url')])
      expect(
        (await app.inject({ method: 'POST', url: '/failures/redrive', headers: auth, payload: { failure } }))
          .statusCode,
      ).toBe(400)
    expect((await app.inject({ url: '/tail/stream?pattern=%23.%23x', headers: auth })).statusCode).toBe(400)
    const malformed = await app.inject({
      method: 'POST',
      url: '/dead-letters/purge',
      headers: auth,
      payload: { selected: 'not json' },
    })
    expect(malformed.statusCode).toBe(400)
  })

  it('shows dead letters escaped, never as markup, and redrives one to the fixed consumer', async () => {
    app = await createDashboard({ transport, token })
    const bus = createBus({ transport, service: 'shop', consumer: { immediateRetries: 0 } })
    let fixed = false
    const handled = createLatch()
    bus.group('billing').on(OrderPlaced, async (message) => {
      if (!fixed) throw new PermanentError(`cannot bill <b>${message.data.note}</b>`)
      handled.open()
    })
    await bus.start()
    const id = await bus.publish(OrderPlaced, { note: '<script>alert("x")</script>' })
    await pollUntil(async () => (await transport.getDeadLetter(id)) !== undefined)

    const list = await app.inject({ url: '/dead-letters?group=billing', headers: auth })
    expect(list.statusCode).toBe(200)
    expect(list.body).toContain(id)
    expect(list.body).toContain('permanent_error')
    expect(list.body).toContain('cannot bill &lt;b&gt;')
    // The id shortened in the table, whole on hover and in its copy button; the time machine-readable.
    expect(list.body).toContain(`<code class="id" title="${id}">${id.slice(0, 8)}…${id.slice(-4)}</code>`)
    expect(list.body).toContain(`data-copy="${id}"`)
    expect(list.body).toMatch(/<time datetime="\d{4}-\d\d-\d\dT[\d:.]+Z"/)
    expect(list.headers['content-security-policy']).toContain("default-src 'self'")
    const detail = await app.inject({ url: `/dead-letters/${id}`, headers: auth })
    // Pretty-printed, and escaped: the payload is text, never markup.
    expect(detail.body).toContain('&quot;note&quot;: &quot;&lt;script&gt;alert(')
    expect(detail.body).not.toContain('<script>alert')

    expect(
      (await app.inject({ method: 'POST', url: '/dead-letters/redrive', headers: auth, payload: {} })).statusCode,
    ).toBe(400)
    fixed = true
    const redrive = await app.inject({
      method: 'POST',
      url: '/dead-letters/redrive',
      headers: auth,
      payload: { selected: JSON.stringify(['billing', id]) },
    })
    expect(redrive.body).toMatch(/^Redrove 1 dead letter\.<tr id="dl-[\w-]+" hx-swap-oob="delete"><\/tr>$/)
    await handled.wait
    expect(await transport.getDeadLetter(id)).toBeUndefined()
    await bus.stop()
  })

  it('overview: every group with its depth, scheduled, on-key, dead-letter and held-key figures, and the health', async () => {
    app = await createDashboard({ transport, token })
    await transport.declareGroup('billing', ['order.placed'], { ordering: { afterDeadLetter: 'hold' } })
    await transport.declareGroup('shipping', ['order.#'])
    const bus = createBus({ transport, service: 'shop', consumer: { immediateRetries: 0, retry: { maxAttempts: 1 } } })
    await bus.publish(OrderPlaced, { note: 'k-head' }, { partitionKey: 'k' })
    await bus.publish(OrderPlaced, { note: 'k-next' }, { partitionKey: 'k' })
    await bus.publish(OrderPlaced, { note: 'later' }, { delayMs: 3_600_000 })
    // billing's consumer fails the key's head: the key is held, its next message waits.
    bus.group('billing', { ordering: { afterDeadLetter: 'hold' } }).on(OrderPlaced, async (message) => {
      if (message.data.note === 'k-head') throw new PermanentError('no')
    })
    await bus.start()
    await pollUntil(async () => (await transport.listHeldKeys()).length === 1)
    await bus.stop()

    const response = await app.inject({ url: '/', headers: auth })
    expect(response.statusCode).toBe(200)
    const row = (group: string) => response.body.match(new RegExp(`<tr data-group="${group}">([\\s\\S]*?)</tr>`))?.[1]
    const cells = (group: string) =>
      [...(row(group) ?? '').matchAll(/<td class="n">([\s\S]*?)<\/td>/g)].map((m) => m[1]!.replace(/<[^>]+>/g, ''))
    // depth, in flight, scheduled, on key, dead letters, held keys, lag
    expect(cells('billing').slice(0, 6)).toEqual(['2', '0', '1', '1', '1', '1'])
    // shipping has no consumer: key k's second message waits behind its first there too.
    expect(cells('shipping').slice(0, 6)).toEqual(['3', '0', '1', '1', '0', '0'])
    expect(response.body).toContain('healthy')
    // Without the metrics registry there are no rates: a dash, not a zero.
    expect(row('billing')).not.toContain('class="spark"')
    expect(response.body).toContain('hx-get="/overview/figures"')
    expect(response.body).toMatch(/<table id="held-keys">[\s\S]*<code>k<\/code>/)

    // Releasing the key from the page lets its next message go; the dead letter stays.
    const release = await app.inject({
      method: 'POST',
      url: '/keys/release',
      headers: auth,
      payload: { group: 'billing', key: 'k' },
    })
    expect(release.body).toBe('Released key k of group billing.')
    expect(await transport.listHeldKeys()).toEqual([])
    const figures = await app.inject({ url: '/overview/figures', headers: auth })
    expect(figures.body).toContain('No key is held by a dead letter.')
    expect((await transport.listDeadLetters()).items).toHaveLength(1)
  })

  it('failure-group-bulk-redrive: a failure group of 100,000 dead letters is redriven with progress shown, none lost', async () => {
    app = await createDashboard({ transport, token })
    await transport.declareGroup('billing', ['order.placed'])
    // 100,000 dead letters of one failure, and 10 of another that must stay, written straight into the store.
    const raw = new Database(join(dir, 'herald.db'))
    const insert = raw.prepare(
      `INSERT INTO herald_dead_letters (group_name, message_id, topic, headers, body, reason, attempts,
         first_failed_at, last_failed_at, dead_lettered_at, error) VALUES ('billing', ?, 'order.placed', ?, ?, ?, 5, ?, ?, ?, ?)`,
    )
    const history = createHistory()
    const now = Date.now()
    raw.transaction(() => {
      for (let n = 0; n < 100_010; n++) {
        const id = `dl-${n}`
        const timeout = n < 100_000
        if (timeout) {
          history.attempted(id)
          history.ok(id)
        }
        const error = timeout
          ? { name: 'HandlerTimeoutError', message: `Handler did not finish within ${30_000 + (n % 7)} ms` }
          : { name: 'Error', message: 'card declined' }
        const reason = timeout ? 'max_deliveries_exceeded' : 'handler_error'
        const body = Buffer.from(`{"note":"${n}"}`)
        insert.run(id, JSON.stringify({ type: 'order.placed' }), body, reason, now, now, now, JSON.stringify(error))
      }
    })()
    raw.close()
    const failures = await app.inject({ url: '/failures?group=billing', headers: auth })
    expect(failures.body).toContain('100010 dead letters.')
    const timeoutGroup = failures.body.match(/<tr id="failure-([\w-]+)"><td class="n"><b>100000<\/b>/)?.[1]
    expect(timeoutGroup).toBeDefined()

    await transport.subscribe({ group: 'billing', patterns: ['order.placed'], maxInFlight: 200 }, async (e) => {
      history.delivered(e.id)
      history.completed(e.id)
    })
    const started = await app.inject({
      method: 'POST',
      url: '/failures/redrive',
      headers: auth,
      payload: { failure: timeoutGroup },
    })
    expect(started.body).toContain('data-state="running"')
    const { last, seen } = await follow(app, started.body)
    expect(last).toBe('Redrove 100000 dead letters of group billing.')
    // Progress was shown on the way: some answer said how many of the 100,000 were done.
    expect(seen.some((t) => /: \d+ of 100000 \(\d+%\)/.test(t))).toBe(true)
    await pollUntil(async () => history.check().lost.length === 0, 120_000)
    console.log(`[sqlite] failure-group-bulk-redrive: ${history.summary()}`)
    expect(history.check().lost).toEqual([])
    const left = (await transport.listDeadLetters({ group: 'billing' })).items
    expect(left.map((l) => l.error?.message)).toEqual(Array(10).fill('card declined'))
  })

  it('topology: where publishes go, each group with its patterns and queue, and which groups each pattern feeds', async () => {
    app = await createDashboard({ transport, token })
    await transport.declareGroup('billing', ['order.placed'])
    await transport.declareGroup('audit', ['order.#', 'order.placed'])
    const response = await app.inject({ url: '/topology', headers: auth })
    expect(response.statusCode).toBe(200)
    const topology = await transport.describeTopology()
    expect(response.body).toContain(`<code>${escapeHtml(topology.entry)}</code>`)
    const billing = response.body.match(/<tr data-group="billing">([\s\S]*?)<\/tr>/)?.[1] ?? ''
    expect(billing).toContain('<code>order.placed</code>')
    expect(billing).toContain(`<code>${escapeHtml(topology.groups.find((g) => g.group === 'billing')!.queue)}</code>`)
    const patterns = response.body.slice(response.body.indexOf('id="topology-patterns"'))
    expect(patterns).toMatch(/<code>order\.placed<\/code><\/td><td>(billing, audit|audit, billing)<\/td>/)
    expect(patterns).toMatch(/<code>order\.#<\/code><\/td><td>audit<\/td>/)
  })

  it('failures: dead letters grouped by cause with ids and numbers masked; redriving one group leaves the others', async () => {
    app = await createDashboard({ transport, token })
    const finished = async (fragment: string) => (await follow(app, fragment)).last
    const bus = createBus({ transport, service: 'shop', consumer: { immediateRetries: 0, retry: { maxAttempts: 1 } } })
    let fixed = false
    const billed: string[] = []
    bus.group('billing').on(OrderPlaced, async (message) => {
      const note = message.data.note
      if (!fixed && note.startsWith('card')) throw new PermanentError(`card declined for order ${note.slice(5)}`)
      if (note.startsWith('stock')) throw new Error(`no stock for item "${note}"`)
      billed.push(note)
    })
    await bus.start()
    for (let n = 0; n < 5; n++) await bus.publish(OrderPlaced, { note: `card-${n}` })
    for (let n = 0; n < 3; n++) await bus.publish(OrderPlaced, { note: `stock-${n}` })
    await pollUntil(async () => (await transport.listDeadLetters()).items.length === 8)

    const page = await app.inject({ url: '/failures', headers: auth })
    expect(page.statusCode).toBe(200)
    const rows = [
      ...page.body.matchAll(/<tr id="failure-([\w-]+)"><td class="n"><b>(\d+)<\/b>[\s\S]*?<code>([^<]*)<\/code>/g),
    ]
    expect(rows.map((r) => [r[2], r[3]])).toEqual([
      ['5', 'card declined for order &lt;n&gt;'],
      ['3', 'no stock for item &lt;text&gt;'],
    ])
    expect(page.body).toContain('8 dead letters.')

    fixed = true
    const card = rows[0]![1]!
    const redrive = await app.inject({
      method: 'POST',
      url: '/failures/redrive',
      headers: auth,
      payload: { failure: card },
    })
    expect(await finished(redrive.body)).toBe('Redrove 5 dead letters of group billing.')
    await pollUntil(async () => billed.length === 5)
    const left = (await transport.listDeadLetters()).items.map((l) => l.error?.message)
    expect(left).toHaveLength(3)
    expect(left.every((m) => m?.startsWith('no stock'))).toBe(true)
    const purge = await app.inject({
      method: 'POST',
      url: '/failures/purge',
      headers: auth,
      payload: { failure: rows[1]![1]! },
    })
    expect(await finished(purge.body)).toBe('Purged 3 dead letters of group billing.')
    expect((await transport.listDeadLetters()).items).toHaveLength(0)
    await bus.stop()
  })

  it('tails published messages over server-sent events and removes its temporary group afterwards', async () => {
    app = await createDashboard({ transport, token })
    const address = await app.listen({ port: 0, host: '127.0.0.1' })
    const controller = new AbortController()
    const response = await fetch(`${address}/tail/stream?pattern=order.%23`, {
      headers: auth,
      signal: controller.signal,
    })
    expect(response.headers.get('content-type')).toBe('text/event-stream')
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    let received = ''
    await reader.read() // the opening comment: the temporary group is bound from here on
    await pollUntil(async () => (await transport.listGroups()).some((g) => g.group.startsWith('herald-dashboard-')))
    const bus = createBus({ transport, service: 'shop' })
    await bus.publish(OrderPlaced, { note: 'hello <tail>' })
    while (!received.includes('\n\n')) received += decoder.decode((await reader.read()).value)
    const event = JSON.parse(received.slice(received.indexOf('data: ') + 6, received.indexOf('\n\n')))
    expect(event).toMatchObject({ topic: 'order.placed', type: 'order.placed', body: '{"note":"hello <tail>"}' })
    controller.abort()
    await pollUntil(async () => !(await transport.listGroups()).some((g) => g.group.startsWith('herald-dashboard-')))
  })

  it('searches the event store and draws one flow as a timeline, its dead-lettered step marked', async () => {
    const store = createSqliteEventStore({ path: join(dir, 'herald.db') })
    app = await createDashboard({ transport, eventStore: store, token })
    const bus = createBus({ transport, service: 'shop', audit: { store }, consumer: { immediateRetries: 0 } })
    bus.group('billing').on(OrderPlaced, async (message, ctx) => {
      await ctx.publish(OrderBilled, { note: `billed ${message.data.note}` })
    })
    bus.group('mail').on(OrderBilled, async () => {
      throw new PermanentError('mail server refused')
    })
    await bus.start()
    const id = await bus.publish(OrderPlaced, { note: 'o-1' })
    await pollUntil(async () => (await transport.listDeadLetters({ group: 'mail' })).items.length === 1)
    await bus.stop()
    const placed = await store.getEvent(id)
    const correlationId = placed!.correlationId!
    const billedId = (await transport.listDeadLetters({ group: 'mail' })).items[0]!.envelope.id

    const search = await app.inject({ url: '/events?type=order.billed', headers: auth })
    expect(search.body).toContain('billed o-1')
    expect(search.body).not.toContain('"note":"o-1"')
    // A type pattern: order.# is every type under order.
    const family = await app.inject({ url: '/events?type=order.%23', headers: auth })
    expect([...family.body.matchAll(/<tr data-position=/g)]).toHaveLength(2)
    const flow = await app.inject({ url: `/flows/${correlationId}`, headers: auth })
    expect(flow.statusCode).toBe(200)
    // One row per event, the caused one after its cause and indented one level deeper; the failed one marked.
    const rows = [
      ...flow.body.matchAll(
        /<tr class="(failed)?" data-id="([^"]+)">\s*<td style="padding-left:([\d.]+)rem"><b>([^<]+)<\/b>/g,
      ),
    ]
    expect(rows.map((r) => [r[4], r[2], r[1] ?? ''])).toEqual([
      ['order.placed', id, ''],
      ['order.billed', billedId, 'failed'],
    ])
    expect(Number(rows[1]![3])).toBeGreaterThan(Number(rows[0]![3]))
    expect(flow.body).toContain('1 dead-lettered')
    // The dead letter links back to its flow.
    const letter = await app.inject({ url: `/dead-letters/${billedId}?group=mail`, headers: auth })
    expect(letter.body).toContain(`href="/flows/${encodeURIComponent(correlationId)}"`)
    await store.close()
  })

  it('searches the whole history newest first: an old flow behind 10,000 newer events is found, then paged by cursor', async () => {
    const store = createSqliteEventStore({ path: join(dir, 'herald.db') })
    app = await createDashboard({ transport, eventStore: store, token })
    const encoder = new TextEncoder()
    const at = Date.parse('2026-11-01T00:00:00Z')
    const stored = (n: number, correlationId: string) => ({
      topic: 'order.placed',
      envelope: {
        id: `e-${n}`,
        headers: {
          type: 'order.placed',
          source: 'shop',
          time: new Date(at + n * 1_000).toISOString(),
          correlationid: correlationId,
        },
        body: encoder.encode(JSON.stringify({ n })),
      },
    })
    // The flow's 150 events come first; 10,500 newer events of other flows follow.
    await store.append(Array.from({ length: 150 }, (_, n) => stored(n, 'old-flow')))
    for (let start = 150; start < 10_650; start += 1_500)
      await store.append(Array.from({ length: 1_500 }, (_, i) => stored(start + i, `flow-${start + i}`)))

    const first = await app.inject({ url: '/events?correlationId=old-flow', headers: auth })
    expect(first.statusCode).toBe(200)
    const positions = (body: string) => [...body.matchAll(/<tr data-position="(\d+)">/g)].map((m) => Number(m[1]))
    const page1 = positions(first.body)
    expect(page1).toHaveLength(100)
    expect(page1).toEqual([...page1].sort((a, b) => b - a))
    const older = first.body.match(/<a id="older" href="([^"]+)">/)?.[1]?.replaceAll('&amp;', '&')
    expect(older).toContain('correlationId=old-flow')
    const second = await app.inject({ url: older!, headers: auth })
    const page2 = positions(second.body)
    expect(page2).toHaveLength(50)
    expect(Math.max(...page2)).toBeLessThan(Math.min(...page1))
    expect(second.body).not.toContain('id="older"')
    // A time range: the flow's events 10 to 19 by their own time.
    const range = await app.inject({
      url: `/events?correlationId=old-flow&since=${new Date(at + 10_000).toISOString()}&until=${new Date(at + 20_000).toISOString()}`,
      headers: auth,
    })
    expect(positions(range.body)).toHaveLength(10)
    expect((await app.inject({ url: '/events?since=yesterday', headers: auth })).statusCode).toBe(400)
    expect((await app.inject({ url: '/events?before=-3', headers: auth })).statusCode).toBe(400)
    await store.close()
  })

  it('charts throughput per type and handler latency per group from the observability metrics', async () => {
    const obs = createObservability({ service: 'shop', logger: pino({ level: 'silent' }) })
    const instrumented = obs.instrument(createInMemoryTransport())
    app = await createDashboard({ transport: instrumented, token, metrics: obs.registry, sampleIntervalMs: 50 })
    const bus = createBus({ transport: instrumented, service: 'shop' })
    let handled = 0
    bus.group('billing').on(OrderPlaced, async () => {
      handled++
    })
    await bus.start()
    for (let i = 0; i < 20; i++) await bus.publish(OrderPlaced, { note: `o-${i}` })
    await pollUntil(async () => handled === 20)
    // A live tail open meanwhile: its temporary group is handled and timed too, but never charted.
    const tail = await app.listen({ port: 0, host: '127.0.0.1' })
    const controller = new AbortController()
    const stream = await fetch(`${tail}/tail/stream?pattern=order.%23`, { headers: auth, signal: controller.signal })
    await pollUntil(async () => (await instrumented.listGroups()).some((g) => g.group.startsWith('herald-dashboard-')))
    await bus.publish(OrderPlaced, { note: 'seen by the tail' })
    // Wait for two samples after the work: then one interval's differences hold the deliveries.
    type Chart = { id: string; title: string; unit: string; series: string[]; data: (number | null)[][] }
    const data = async () => (await app.inject({ url: '/charts/data', headers: auth })).json() as Chart[]
    const placedRate = (charts: Chart[]) => {
      const throughput = charts.find((c) => c.id === 'throughput')
      const column = throughput?.data[1 + (throughput?.series.indexOf('order.placed') ?? -2)] ?? []
      return column.some((v) => v !== null && v > 0)
    }
    await pollUntil(async () => placedRate(await data()))
    await pollUntil(async () => (await data()).some((c) => c.id === 'latency-billing' && c.data[0]!.length > 0))
    const charts = await data()
    const throughput = charts.find((c) => c.id === 'throughput')!
    expect(throughput).toMatchObject({ title: 'Messages handled per second, by type', unit: 'msg/s' })
    // Aligned columns: times in seconds, then one value (or null) per time for each series.
    for (const column of throughput.data) expect(column).toHaveLength(throughput.data[0]!.length)
    const latency = charts.find((c) => c.id === 'latency-billing')!
    expect(latency).toMatchObject({
      title: 'Handler latency in group billing',
      unit: 'ms',
      series: ['p50', 'p95', 'p99'],
    })
    expect(charts.map((c) => c.title).join()).not.toContain('herald-dashboard-')
    // The overview shows each group's handled and failed per second, with a sparkline of the recent samples.
    const overview = await app.inject({ url: '/', headers: auth })
    const billingRow = overview.body.match(/<tr data-group="billing">([\s\S]*?)<\/tr>/)?.[1] ?? ''
    expect(billingRow).toMatch(/<span class="rate">[\d.]+<\/span>\s*<svg class="spark"/)
    const page = await app.inject({ url: '/charts', headers: auth })
    expect(page.body).toContain('<script src="/assets/uplot.iife.min.js"></script>')
    expect((await app.inject({ url: '/assets/uplot.iife.min.js', headers: auth })).body).toContain('uPlot')
    // The tail's group has series of its own while it is open; they go when it closes and its group is deleted.
    await pollUntil(async () => (await obs.registry.metrics()).includes('group="herald-dashboard-'))
    controller.abort()
    await stream.body?.cancel().catch(() => {})
    await pollUntil(async () => !(await obs.registry.metrics()).includes('herald-dashboard-'))
    expect(await obs.registry.metrics()).toContain('group="billing"')
    await bus.stop()
    await instrumented.close()
  })
})
