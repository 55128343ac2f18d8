import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createBus, createInMemoryTransport, defineEvent, PermanentError } from '@herald/core'
import { createObservability } from '@herald/observability'
import { createSqliteEventStore, createSqliteTransport } from '@herald/sqlite'
import { createLatch, launchChromium, pollUntil } from '@herald/testkit'
import { pino } from 'pino'
import { expect, it } from 'vitest'
import { z } from 'zod'
import { createDashboard } from '../src/index.js'

// Screenshots stay after the run as test artifacts (git-ignored).
const artifacts = fileURLToPath(new URL('../test-artifacts/', import.meta.url))
const token = 'browser-token-0123456789abcdef'
const OrderPlaced = defineEvent('order.placed', { version: 1, schema: z.object({ note: z.string() }) })
const OrderBilled = defineEvent('order.billed', { version: 1, schema: z.object({ note: z.string() }) })

it('in Chromium: pages refuse without the token, show a hostile payload as text, and a click redrives a dead letter', async () => {
  mkdirSync(artifacts, { recursive: true })
  const dir = mkdtempSync(join(tmpdir(), 'herald-browser-'))
  const transport = createSqliteTransport({ path: join(dir, 'herald.db') })
  const eventStore = createSqliteEventStore({ path: join(dir, 'herald.db') })
  const bus = createBus({ transport, service: 'shop', consumer: { immediateRetries: 0 }, audit: { store: eventStore } })
  let fixed = false
  const handled = createLatch()
  bus.group('billing').on(OrderPlaced, async (_message, context) => {
    if (!fixed) throw new PermanentError('card declined')
    await context.publish(OrderBilled, { note: 'billed' })
    handled.open()
  })
  await bus.start()
  const app = await createDashboard({ transport, token, eventStore })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const browser = await launchChromium()
  try {
    const id = await bus.publish(OrderPlaced, { note: '<img src=x onerror="window.__owned = true">' })
    await pollUntil(async () => (await transport.getDeadLetter(id)) !== undefined)
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } })

    const refused = await page.goto(`${base}/dead-letters`)
    expect(refused?.status()).toBe(401)
    expect(await page.textContent('body')).toContain('a valid token is required')

    expect((await page.goto(`${base}/?token=${token}`))?.status()).toBe(200)
    // The login leaves a clean address bar and a session cookie that is not the token.
    expect(page.url()).toBe(`${base}/`)
    for (const cookie of await page.context().cookies()) expect(cookie.value).not.toContain(token)
    // The overview lands first, and keeps itself current: a second dead letter shows up without a reload.
    const billing = page.locator('tr[data-group="billing"]')
    await billing.waitFor()
    expect(await billing.locator('td').nth(6).textContent()).toBe('1')
    await bus.publish(OrderPlaced, { note: 'a second one' })
    await page.locator('tr[data-group="billing"] td:nth-child(7)', { hasText: '2' }).waitFor()
    await page.screenshot({ path: join(artifacts, 'overview.png'), fullPage: true })
    await page.goto(`${base}/failures`)
    await page.locator('#failures tr', { hasText: 'card declined' }).waitFor()
    expect(await page.locator('#failures tr', { hasText: 'card declined' }).locator('td').first().textContent()).toBe(
      '2',
    )
    await page.screenshot({ path: join(artifacts, 'failures.png'), fullPage: true })
    await page.goto(`${base}/dead-letters`)
    const row = page.locator(`tr[data-id="${id}"]`)
    await row.waitFor()
    expect(await row.textContent()).toContain('permanent_error')
    await page.screenshot({ path: join(artifacts, 'dead-letters.png'), fullPage: true })

    await page.goto(`${base}/dead-letters/${id}`)
    await page.screenshot({ path: join(artifacts, 'dead-letter.png'), fullPage: true })
    expect(await page.textContent('#payload')).toBe('{\n  "note": "<img src=x onerror=\\"window.__owned = true\\">"\n}')
    // Times read in the reader's zone and as how long ago; the id has a copy button with the whole id.
    expect(await page.locator('time').first().textContent()).toMatch(/ago\)$|just now\)$/)
    expect(await page.evaluate(() => (globalThis as { __owned?: boolean }).__owned)).toBeUndefined()
    expect(await page.locator('#payload img').count()).toBe(0)

    fixed = true
    await page.goto(`${base}/dead-letters`)
    await page.locator(`tr[data-id="${id}"] button`, { hasText: 'Redrive' }).click()
    await page.locator('#result', { hasText: 'Redrove 1 dead letter.' }).waitFor()
    await page.screenshot({ path: join(artifacts, 'redriven.png'), fullPage: true })
    await handled.wait
    expect(await transport.getDeadLetter(id)).toBeUndefined()

    // Every other page, as an operator sees it.
    await pollUntil(async () => (await eventStore.queryEvents({ types: ['order.billed'] })).items.length === 1)
    await page.goto(`${base}/events`)
    await page.locator('#events tr', { hasText: 'order.billed' }).waitFor()
    await page.screenshot({ path: join(artifacts, 'events.png'), fullPage: true })
    const correlationId = (await eventStore.getEvent(id))!.correlationId!
    await page.goto(`${base}/flows/${encodeURIComponent(correlationId)}`)
    await page.locator('#timeline tr', { hasText: 'order.billed' }).waitFor()
    await page.screenshot({ path: join(artifacts, 'flow.png'), fullPage: true })
    await page.goto(`${base}/tail?pattern=order.%23`)
    // The tail sees what is published once its temporary group exists.
    await pollUntil(async () => (await transport.listGroups()).some((g) => g.group.startsWith('herald-dashboard-')))
    await bus.publish(OrderPlaced, { note: 'tailed' })
    await page.locator('#tail tr', { hasText: 'tailed' }).first().waitFor()
    await page.screenshot({ path: join(artifacts, 'tail.png'), fullPage: true })
    // Paused, the rows hold still while arrivals are still counted; resumed, new ones show again.
    await page.click('#tail-pause')
    const received = Number(await page.locator('#tail-rate').getAttribute('data-received'))
    await bus.publish(OrderPlaced, { note: 'while paused' })
    // It arrives (and the billing it causes, also order.#): counted, not shown.
    await expect
      .poll(async () => Number(await page.locator('#tail-rate').getAttribute('data-received')), { timeout: 30_000 })
      .toBeGreaterThanOrEqual(received + 2)
    expect(await page.locator('#tail tr', { hasText: 'while paused' }).count()).toBe(0)
    await page.click('#tail-pause')
    await bus.publish(OrderPlaced, { note: 'after resume' })
    await page.locator('#tail tr', { hasText: 'after resume' }).first().waitFor()
    // On a phone the page fits its width: wide tables scroll inside themselves, the page does not.
    await page.setViewportSize({ width: 390, height: 844 })
    for (const path of ['/', '/failures', '/dead-letters']) {
      await page.goto(`${base}${path}`)
      const width = await page.evaluate(
        () =>
          (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement
            .scrollWidth,
      )
      expect(width, path).toBeLessThanOrEqual(390)
    }
    await page.screenshot({ path: join(artifacts, 'dead-letters-phone.png'), fullPage: true })
    await page.setViewportSize({ width: 1366, height: 900 })
    await page.goto(`${base}/topology`)
    await page.locator('#topology-groups tr', { hasText: 'billing' }).waitFor()
    await page.screenshot({ path: join(artifacts, 'topology.png'), fullPage: true })
  } finally {
    await browser.close()
    await app.close()
    await bus.stop()
    await eventStore.close()
    await transport.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

it('in Chromium: charts draw with uPlot, update live from server-sent events, and a legend click hides a series', async () => {
  mkdirSync(artifacts, { recursive: true })
  const obs = createObservability({ service: 'shop', logger: pino({ level: 'silent' }) })
  const transport = obs.instrument(createInMemoryTransport())
  const bus = createBus({ transport, service: 'shop' })
  bus.group('billing').on(OrderPlaced, async () => {})
  bus.group('shipping').on(OrderPlaced, async () => {})
  await bus.start()
  const app = await createDashboard({ transport, token, metrics: obs.registry, sampleIntervalMs: 200 })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const browser = await launchChromium()
  let publishing = true
  const traffic = (async () => {
    for (let n = 0; publishing; n++) {
      await bus.publish(OrderPlaced, { note: `o-${n}` })
      await new Promise((done) => setTimeout(done, 5))
    }
  })()
  try {
    const page = await browser.newPage({ viewport: { width: 1366, height: 900 } })
    await page.goto(`${base}/charts?token=${token}`)
    const throughput = page.locator('figure[data-chart="throughput"]')
    await throughput.locator('canvas').waitFor()
    await page.locator('figure[data-chart="latency-billing"] .u-legend', { hasText: 'p99' }).waitFor()
    expect(await throughput.locator('.u-title').textContent()).toBe('Messages handled per second, by type')
    expect(await throughput.locator('.u-legend').textContent()).toContain('order.placed')
    // Live: the chart gains samples without a reload (each redraw records how many it holds).
    const points = Number(await throughput.getAttribute('data-points'))
    await expect
      .poll(async () => Number(await throughput.getAttribute('data-points')), { timeout: 30_000 })
      .toBeGreaterThan(points + 2)
    // A click on a legend entry hides its series.
    await throughput.locator('.u-legend tr.u-series', { hasText: 'order.placed' }).click()
    await throughput.locator('.u-legend tr.u-series.u-off', { hasText: 'order.placed' }).waitFor()
    await page.screenshot({ path: join(artifacts, 'charts.png'), fullPage: true })
  } finally {
    publishing = false
    await traffic
    await browser.close()
    await app.close()
    await bus.stop()
    await transport.close()
  }
})

it('in Chromium: a page on another port cannot purge, redrive or frame the dashboard; purging one group keeps the other', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-browser-'))
  const transport = createSqliteTransport({ path: join(dir, 'herald.db') })
  const bus = createBus({ transport, service: 'shop', consumer: { immediateRetries: 0 } })
  const fail = async () => {
    throw new PermanentError('declined')
  }
  bus.group('billing').on(OrderPlaced, fail)
  bus.group('shipping').on(OrderPlaced, fail)
  await bus.start()
  const app = await createDashboard({ transport, token })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  // The attacker: another port of the same host, so the same site, which SameSite=Strict does not stop.
  const hostile = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/html' })
    if (request.url === '/frame') {
      response.end(`<!doctype html><iframe id="victim" src="${base}/dead-letters"></iframe>`)
      return
    }
    response.end(`<!doctype html><body>
<form id="f" method="post" action="${base}/dead-letters/purge"><input name="all" value="true"></form>
<script>
fetch('${base}/dead-letters/redrive', { method: 'POST', mode: 'no-cors', credentials: 'include',
  headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'all=true' })
  .finally(() => document.getElementById('f').submit())
</script></body>`)
  })
  await new Promise<void>((done) => hostile.listen(0, '127.0.0.1', done))
  const evil = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}`
  const browser = await launchChromium()
  try {
    const id = await bus.publish(OrderPlaced, { note: 'two groups' })
    const count = async () => (await transport.listDeadLetters()).items.length
    await pollUntil(async () => (await count()) === 2)
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${base}/?token=${token}`)

    const refusals: number[] = []
    page.on('response', (r) => {
      if (r.url().startsWith(`${base}/dead-letters/`) && r.request().method() === 'POST') refusals.push(r.status())
    })
    const submitted = page.waitForResponse((r) => r.url() === `${base}/dead-letters/purge`)
    await page.goto(evil)
    expect((await submitted).status()).toBe(403)
    await pollUntil(async () => refusals.length === 2)
    expect(refusals).toEqual([403, 403])
    expect(await count()).toBe(2)

    // Framed from the other origin: the browser refuses to render the dashboard inside it.
    // (A page of its own: the first one may still be navigating to the refused form's answer.)
    const framer = await context.newPage()
    await framer.goto(`${evil}/frame`)
    const frame = framer.frames().find((f) => f !== framer.mainFrame())
    expect(frame).toBeDefined()
    const framed = await frame!
      .evaluate(() => (globalThis as { document?: { body?: { innerText?: string } } }).document?.body?.innerText ?? '')
      .catch(() => '')
    expect(framed).not.toContain('Dead letters')

    // On the dashboard itself: purge billing's copy only.
    await page.waitForURL(`${base}/dead-letters/purge`)
    await page.goto(`${base}/dead-letters`)
    page.on('dialog', (dialog) => void dialog.accept())
    const billingRow = page.locator(`tr[data-id="${id}"]`, { hasText: 'billing' })
    await billingRow.locator('input[type=checkbox]').check()
    await page.locator('button', { hasText: 'Purge selected' }).click()
    await page.locator('#result', { hasText: 'Purged 1 dead letter.' }).waitFor()
    await billingRow.waitFor({ state: 'detached' })
    const left = (await transport.listDeadLetters()).items
    expect(left.map((l) => [l.group, l.envelope.id])).toEqual([['shipping', id]])
    await page.screenshot({ path: join(artifacts, 'purged-one-group.png'), fullPage: true })
  } finally {
    await browser.close()
    await new Promise((done) => hostile.close(done))
    await app.close()
    await bus.stop()
    await transport.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
