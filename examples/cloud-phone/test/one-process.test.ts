import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { withFixedRun } from '@herald/example-kit'
import { createSqliteNotificationStore } from '@herald/notifications/sqlite'
import { expect, it } from 'vitest'

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))

it('npm run start:cloud-phone -- --exit-when-idle --json: every lifecycle event reaches its services and its users, on SQLite in one process', async () => {
  await withFixedRun(main, async (summary, dir) => {
    // 20 users: 16 buy a plan, get its device, run it and install an app (2 of them then cancel and are refunded,
    // their phones released); 2 never pay and the purchase saga cancels their orders; 2 buy the enterprise plan no
    // device serves and the saga refunds them. Every fourth renames; the first deletes the account and its device.
    expect(summary).toEqual({
      users: 19,
      users_deleted: 1,
      devices: 13,
      orders: { paid: 14, refunded: 4, cancelled: 2 },
      metered: 16,
      installs: { completed: 16 },
      sagas: { running: 0, completed: 16, compensated: 4, failed: 0 },
      // A welcome each, 18 payment confirmations, 16 install notices and 4 refund notices.
      notifications_sent: 58,
      notifications_failed: 0,
      dead_lettered: 0,
      copies_in_sync: true,
      lost: 0,
    })
    const store = createSqliteNotificationStore({ path: join(dir, 'notification.db') })
    const inbox = await store.query({ user: 'u001' })
    expect(inbox.map((r) => [r.rule, r.subject, r.body]).sort()).toEqual([
      ['app-installed', '安装完成', '应用 wechat 已安装到设备 dev-o-u001'],
      ['order-paid', '支付成功', '您的订单已支付成功，金额：¥99.00'],
      ['welcome', '欢迎加入', '用户1，欢迎使用云手机平台！'],
    ])
    expect((await store.query({ user: 'u000', status: 'sent' })).find((r) => r.rule === 'order-paid')?.body).toBe(
      '您的订单已支付成功，金额：¥299.00',
    )
    expect(await store.unreadCount('u004')).toBe(4)
    await store.close()
  })
})
