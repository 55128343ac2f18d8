import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchChromium } from '@herald/testkit'
import { expect, it } from 'vitest'
import { menu } from '../src/menu.js'
import { startSystem } from './system.js'

// Screenshots stay after the run as test artifacts (git-ignored).
const artifacts = fileURLToPath(new URL('../test-artifacts/', import.meta.url))

it('in Chromium: pick a dish, pay at the checkout, watch the order become ready; a rejection shows its reason', async () => {
  mkdirSync(artifacts, { recursive: true })
  const hostile = '<img src=x onerror="window.__owned = true">'
  const system = await startSystem({
    menu: [...menu, { id: 'last-one', name: hostile, priceCents: 300, stock: 1 }],
  })
  const browser = await launchChromium()
  try {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } })
    await page.goto(system.services.order.url as string)
    const rows = page.locator('#menu tr')
    await rows.nth(menu.length).waitFor()
    // Dish names are shown as text: the hostile one is visible and ran nothing.
    const lastOne = page.locator('#menu tr', { has: page.locator('input[name="last-one"]') })
    expect(await lastOne.locator('td').first().textContent()).toBe(hostile)
    expect(await page.evaluate(() => (globalThis as { __owned?: boolean }).__owned)).toBeUndefined()

    await page.fill('input[name="noodles"]', '2')
    expect(await page.textContent('#total')).toBe('€24.00')
    await page.click('#place')
    await page.locator('#status[data-status="awaiting_payment"]').waitFor()
    await page.locator('#pay-line:not([hidden])').waitFor()
    await page.screenshot({ path: join(artifacts, 'food-awaiting-payment.png'), fullPage: true })
    const orderId = (await page.textContent('#order-id')) as string
    await page.click('#pay')
    // The (offline) checkout: pay, and land back on the order page, which follows the order to ready.
    expect(await page.textContent('#amount')).toBe('€24.00')
    await page.click('#pay')
    await page.waitForURL((url) => url.searchParams.get('order') === orderId)
    await page.locator('#status[data-status="ready"]').waitFor()
    expect(await page.isHidden('#pay-line')).toBe(true)
    await page.screenshot({ path: join(artifacts, 'food-ready.png'), fullPage: true })
    // The page fits a phone: nothing wider than the screen.
    expect(
      await page.evaluate(
        () =>
          (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement
            .scrollWidth,
      ),
    ).toBeLessThanOrEqual(390)

    await page.goto(system.services.order.url as string)
    await page.locator(`#menu input[name="last-one"]`).fill('2')
    await page.click('#place')
    await page.locator('#status[data-status="rejected"]').waitFor()
    expect(await page.textContent('#reason')).toBe('(out_of_stock: last-one (1 left, 2 asked))')
  } finally {
    await browser.close()
    await system.stop()
  }
})
