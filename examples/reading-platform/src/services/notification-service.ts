import type { Bus } from '@herald/core'
import {
  createNotifications,
  InAppNotificationCreated,
  type NotificationStore,
  type TemplateInput,
} from '@herald/notifications'
import {
  AchievementUnlocked,
  CommentReplied,
  MarkNotificationsRead,
  NotificationRead,
  NotificationSent,
  RevenueEarned,
  SettlementGenerated,
  UserRegistered,
  VipExpired,
} from '../contracts.js'

const yuan = (fen: number) => (fen / 100).toFixed(2)
const inApp = (name: string, zh: string, en: string): TemplateInput[] => [
  { name, channel: 'in_app', locale: 'zh-CN', body: zh },
  { name, channel: 'in_app', locale: 'en', body: en },
]

export const templates: readonly TemplateInput[] = [
  ...inApp('welcome', '{{username}}，欢迎来到阅读平台！', 'Welcome to the reading platform, {{username}}!'),
  ...inApp('reply', '有人回复了你的评论：{{text}}', 'Someone replied to your comment: {{text}}'),
  ...inApp('royalty', '你获得了版税 ¥{{amount}}', 'You earned a royalty of ¥{{amount}}'),
  ...inApp('settlement', '{{period}} 结算单已生成：¥{{amount}}', 'Your {{period}} statement: ¥{{amount}}'),
  ...inApp('vip-expired', '你的 VIP 会员已到期', 'Your VIP membership has ended'),
  ...inApp('achievement', '解锁成就：{{achievement}}', 'Achievement unlocked: {{achievement}}'),
]

/**
 * Turns the platform's events into in-app notifications (at most one per event, user and rule) and reports them
 * as the catalogue's `notification.sent` and `notification.read`.
 */
export async function registerNotificationService(bus: Bus, store: NotificationStore) {
  const notifications = createNotifications({ bus, store, fallbackLocale: 'zh-CN', consumer: { maxInFlight: 20 } })
  for (const template of templates) {
    const stored = await store.templates.get(template.name, template.channel, template.locale)
    if (stored?.body !== template.body) await notifications.templates.save(template)
  }
  const rule = (name: string, group: string) => ({
    name,
    group: `notification-service.${group}`,
    channel: 'in_app' as const,
    template: name,
    category: name,
  })
  notifications
    .rule(UserRegistered, {
      ...rule('welcome', 'user-registered'),
      recipients: (m) => ({ user: m.data.userId, data: { username: m.data.username } }),
    })
    .rule(CommentReplied, {
      ...rule('reply', 'comment-replied'),
      recipients: (m) => ({ user: m.data.toUserId, data: { text: m.data.text } }),
    })
    .rule(RevenueEarned, {
      ...rule('royalty', 'revenue-earned'),
      recipients: (m) => ({ user: m.data.authorId, data: { amount: yuan(m.data.amountFen) } }),
    })
    .rule(SettlementGenerated, {
      ...rule('settlement', 'settlement-generated'),
      recipients: (m) => ({ user: m.data.authorId, data: { period: m.data.period, amount: yuan(m.data.amountFen) } }),
    })
    .rule(VipExpired, { ...rule('vip-expired', 'vip-expired'), recipients: (m) => ({ user: m.data.userId, data: {} }) })
    .rule(AchievementUnlocked, {
      ...rule('achievement', 'achievement-unlocked'),
      recipients: (m) => ({ user: m.data.userId, data: { achievement: m.data.achievement } }),
    })
  const group = bus.group('notification-service.catalogue')
  group.on(InAppNotificationCreated, (message, context) =>
    context
      .publish(NotificationSent, {
        notificationId: message.data.id,
        userId: message.data.user,
        kind: message.data.category,
      })
      .then(() => undefined),
  )
  group.on(MarkNotificationsRead, async (message, context) => {
    const unread = (await notifications.inbox.list(message.data.userId, { limit: 1_000 })).filter(
      (n) => n.status === 'sent',
    )
    // Reported before they are marked: a crash between the two reports them again rather than never.
    for (const n of unread)
      await context.publish(NotificationRead, { notificationId: n.id, userId: n.user, kind: n.category })
    await notifications.inbox.markRead(
      message.data.userId,
      unread.map((n) => n.id),
    )
  })
  return notifications
}
