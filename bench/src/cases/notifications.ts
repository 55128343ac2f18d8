import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createBus, createInMemoryTransport } from '@herald/core'
import { createNotifications, webhookProvider } from '@herald/notifications'
import { createSqliteNotificationStore } from '@herald/notifications/sqlite'
import Handlebars from 'handlebars'
import type { BenchSide } from '../measure.js'

const recipients = 5_000
const concurrency = 100
const body =
  '<p>您好 {{name}}，您的订单 {{orderId}} 已支付成功，金额：¥{{amount}}</p>{{#if coupon}}<p>{{coupon}}</p>{{/if}}'

/** The vendor: a local HTTP endpoint that accepts every request and counts them. */
async function startVendor(expected: number) {
  let received = 0
  let all!: () => void
  const done = new Promise<void>((resolve) => {
    all = resolve
  })
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"v"}')
      if (++received === expected) all()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/send`
  return { url, done, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

const dataOf = (i: number) => ({ name: `用户${i}`, orderId: `o-${i}`, amount: (i % 100) + 0.5 })

/**
 * Herald: `sendBatch` of 5,000 recipients through the webhook provider, records on `@herald/notifications/sqlite`,
 * the template cache warm; the rate is from the batch's start to the last record settled.
 */
export const heraldNotifications: BenchSide = async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-notify-'))
  const vendor = await startVendor(recipients)
  const transport = createInMemoryTransport()
  const bus = createBus({ transport, service: 'bench', consumer: { maxInFlight: concurrency } })
  const store = createSqliteNotificationStore({ path: join(dir, 'notifications.db') })
  const notifications = createNotifications({
    bus,
    store,
    providers: [webhookProvider({ channel: 'email', url: vendor.url })],
  })
  await notifications.templates.save({ name: 'paid', channel: 'email', locale: 'zh-CN', subject: '支付成功', body })
  await notifications.templates.render('paid', 'email', 'zh-CN', dataOf(0))
  await bus.start()
  const begin = performance.now()
  const report = await notifications.sendBatch({
    channel: 'email',
    template: 'paid',
    recipients: Array.from({ length: recipients }, (_, i) => ({
      user: `u${i}`,
      to: `u${i}@example.com`,
      locale: 'zh-CN',
      data: dataOf(i),
    })),
  })
  await vendor.done
  while ((await notifications.batchStatus(report.batch)).sent < recipients)
    await new Promise((resolve) => setImmediate(resolve))
  const perSecond = recipients / ((performance.now() - begin) / 1_000)
  await bus.stop()
  await transport.close()
  await store.close()
  await vendor.close()
  rmSync(dir, { recursive: true, force: true })
  return { perSecond }
}

/** The baseline: the same template compiled once with Handlebars and POSTed with fetch, 100 at a time, no records. */
export const rawNotifications: BenchSide = async () => {
  const vendor = await startVendor(recipients)
  const render = Handlebars.create().compile(body, { strict: true })
  const begin = performance.now()
  let next = 0
  const worker = async () => {
    while (next < recipients) {
      const i = next++
      const response = await fetch(vendor.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: `n${i}`, to: `u${i}@example.com`, subject: '支付成功', body: render(dataOf(i)) }),
      })
      await response.text()
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  await vendor.done
  const perSecond = recipients / ((performance.now() - begin) / 1_000)
  await vendor.close()
  return { perSecond }
}
