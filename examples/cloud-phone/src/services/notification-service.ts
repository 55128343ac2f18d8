import type { Bus } from '@herald/core'
import {
  createNotifications,
  type NotificationStore,
  type Notifications,
  type Provider,
  type TemplateInput,
} from '@herald/notifications'
import { AppInstallCompleted, Broadcast, OrderPaid, OrderRefunded, UserCreated } from '../contracts.js'

const yuan = (cents: number) => (cents / 100).toFixed(2)

/** The platform's templates, in Chinese first as its users write, with English beside. */
export const templates: readonly TemplateInput[] = [
  {
    name: 'welcome',
    channel: 'in_app',
    locale: 'zh-CN',
    subject: '欢迎加入',
    body: '{{username}}，欢迎使用云手机平台！',
  },
  {
    name: 'welcome',
    channel: 'in_app',
    locale: 'en',
    subject: 'Welcome',
    body: 'Welcome to the cloud phone platform, {{username}}!',
  },
  {
    name: 'welcome',
    channel: 'email',
    locale: 'zh-CN',
    subject: '欢迎加入云手机平台',
    body: '<p>{{username}}，您好：</p><p>欢迎使用云手机平台！</p>',
  },
  { name: 'welcome', channel: 'sms', locale: 'zh-CN', body: '【云手机】{{username}}，欢迎使用云手机平台！' },
  { name: 'maintenance', channel: 'sms', locale: 'zh-CN', body: '【云手机】{{username}}，系统将于今晚 02:00 维护。' },
  {
    name: 'order-paid',
    channel: 'in_app',
    locale: 'zh-CN',
    subject: '支付成功',
    body: '您的订单已支付成功，金额：¥{{amount}}',
  },
  {
    name: 'order-refunded',
    channel: 'in_app',
    locale: 'zh-CN',
    subject: '退款成功',
    body: '您的订单已退款，金额：¥{{amount}}',
  },
  {
    name: 'app-installed',
    channel: 'in_app',
    locale: 'zh-CN',
    subject: '安装完成',
    body: '应用 {{appId}} 已安装到设备 {{deviceId}}',
  },
]

/**
 * The notification service the design left out: it subscribes, with the design's queue names, to the events users
 * should hear of and turns each into an in-app notification (and a welcome email or SMS when a provider is given).
 */
export async function registerNotificationService(
  bus: Bus,
  options: { readonly store: NotificationStore; readonly email?: Provider; readonly sms?: Provider },
): Promise<Notifications> {
  const notifications = createNotifications({
    bus,
    store: options.store,
    providers: [options.email, options.sms].filter((p) => p !== undefined),
    fallbackLocale: 'zh-CN',
    consumer: { maxInFlight: 20 },
  })
  for (const template of templates) {
    if (template.channel === 'email' && options.email === undefined) continue
    if (template.channel === 'sms' && options.sms === undefined) continue
    const stored = await options.store.templates.get(template.name, template.channel, template.locale)
    if (stored?.body !== template.body || stored.subject !== template.subject)
      await notifications.templates.save(template)
  }
  notifications
    .rule(UserCreated, {
      name: 'welcome',
      group: 'notification-service.user-created',
      channel: 'in_app',
      template: 'welcome',
      recipients: (m) => ({ user: m.data.userId, data: { username: m.data.username } }),
    })
    .rule(OrderPaid, {
      name: 'order-paid',
      group: 'notification-service.order-paid',
      channel: 'in_app',
      template: 'order-paid',
      category: 'orders',
      recipients: (m) => ({ user: m.data.userId, data: { amount: yuan(m.data.amountCents) } }),
    })
    .rule(OrderRefunded, {
      name: 'order-refunded',
      group: 'notification-service.order-refunded',
      channel: 'in_app',
      template: 'order-refunded',
      category: 'orders',
      recipients: (m) => ({ user: m.data.userId, data: { amount: yuan(m.data.amountCents) } }),
    })
    .rule(AppInstallCompleted, {
      name: 'app-installed',
      group: 'notification-service.app-install-completed',
      channel: 'in_app',
      template: 'app-installed',
      category: 'apps',
      recipients: (m) => ({ user: m.data.userId, data: m.data }),
    })
  if (options.email !== undefined)
    notifications.rule(UserCreated, {
      name: 'welcome-email',
      group: 'notification-service.user-created',
      channel: 'email',
      template: 'welcome',
      recipients: (m) => ({ user: m.data.userId, to: m.data.email, data: { username: m.data.username } }),
    })
  if (options.sms !== undefined)
    // A broadcast is one batch under its id: delivered again after a crash, it sends only what was not yet sent.
    bus.group('notification-service.broadcast').on(Broadcast, async (message) => {
      await notifications.sendBatch({
        batch: message.data.broadcastId,
        channel: 'sms',
        template: message.data.template,
        category: 'announcements',
        recipients: message.data.recipients.map((r) => ({ user: r.userId, to: r.phone, data: r.data ?? {} })),
      })
    })
  if (options.sms !== undefined)
    notifications.rule(UserCreated, {
      name: 'welcome-sms',
      group: 'notification-service.user-created',
      channel: 'sms',
      template: 'welcome',
      recipients: (m) => ({ user: m.data.userId, to: m.data.phone, data: { username: m.data.username } }),
    })
  return notifications
}
