import { type Browser, chromium } from 'playwright-core'

/**
 * Headless Chromium from the system (Debian's `chromium`, installed by `npm run provision`; `HERALD_CHROMIUM`
 * names another binary). Never a downloaded browser.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
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
}
