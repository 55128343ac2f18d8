import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createBus, defineEvent, PermanentError } from '@herald/core'
import { createSqliteTransport } from '@herald/sqlite'
import { createLatch, pollUntil } from '@herald/testkit'
import { chromium } from 'playwright-core'
import { expect, it } from 'vitest'
import { z } from 'zod'
import { createDashboard } from '../src/index.js'

// Screenshots stay after the run as test artifacts (git-ignored).
const artifacts = fileURLToPath(new URL('../test-artifacts/', import.meta.url))
const token = 'browser-token-0123456789abcdef'
const OrderPlaced = defineEvent('order.placed', { version: 1, schema: z.object({ note: z.string() }) })

it('in Chromium: pages refuse without the token, show a hostile payload as text, and a click redrives a dead letter', async () => {
  mkdirSync(artifacts, { recursive: true })
  const dir = mkdtempSync(join(tmpdir(), 'herald-browser-'))
  const transport = createSqliteTransport({ path: join(dir, 'herald.db') })
  const bus = createBus({ transport, service: 'shop', consumer: { immediateRetries: 0 } })
  let fixed = false
  const handled = createLatch()
  bus.group('billing').on(OrderPlaced, async () => {
    if (!fixed) throw new PermanentError('card declined')
    handled.open()
  })
  await bus.start()
  const app = await createDashboard({ transport, token })
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const browser = await chromium.launch({
    executablePath: process.env.HERALD_CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  try {
    const id = await bus.publish(OrderPlaced, { note: '<img src=x onerror="window.__owned = true">' })
    await pollUntil(async () => (await transport.getDeadLetter(id)) !== undefined)
    const page = await browser.newPage()

    const refused = await page.goto(`${base}/dead-letters`)
    expect(refused?.status()).toBe(401)
    expect(await page.textContent('body')).toContain('a valid token is required')

    expect((await page.goto(`${base}/?token=${token}`))?.status()).toBe(200)
    await page.goto(`${base}/dead-letters`)
    const row = page.locator(`tr[data-id="${id}"]`)
    await row.waitFor()
    expect(await row.textContent()).toContain('permanent_error')
    await page.screenshot({ path: join(artifacts, 'dead-letters.png'), fullPage: true })

    await page.goto(`${base}/dead-letters/${id}`)
    expect(await page.textContent('#payload')).toBe('{"note":"<img src=x onerror=\\"window.__owned = true\\">"}')
    expect(await page.evaluate(() => (globalThis as { __owned?: boolean }).__owned)).toBeUndefined()
    expect(await page.locator('#payload img').count()).toBe(0)

    fixed = true
    await page.goto(`${base}/dead-letters`)
    await page.locator(`tr[data-id="${id}"] button`, { hasText: 'Redrive' }).click()
    await page.locator('#result', { hasText: 'Redrove 1 dead letter.' }).waitFor()
    await page.screenshot({ path: join(artifacts, 'redriven.png'), fullPage: true })
    await handled.wait
    expect(await transport.getDeadLetter(id)).toBeUndefined()
  } finally {
    await browser.close()
    await app.close()
    await bus.stop()
    await transport.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
