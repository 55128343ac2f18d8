import { z } from 'zod'
import type { Notifications } from './service.js'

const inboxMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('notifications.list'), limit: z.number().int().min(1).max(200).optional() }),
  z.object({ type: z.literal('notifications.read'), ids: z.array(z.string().max(512)).max(500) }),
  z.object({ type: z.literal('notifications.read_all') }),
  z.object({ type: z.literal('notifications.unread_count') }),
])

/** What a client of the gateway may ask of its own inbox. */
export type InboxMessage = z.infer<typeof inboxMessage>

/**
 * Answers a WebSocket client's inbox request for the user the gateway authenticated (never a user named in the
 * message): use it in the gateway's `onClientMessage`. Returns `undefined` for messages that are not inbox
 * requests, so other handlers can take them.
 */
export async function answerInboxMessage(
  notifications: Notifications,
  user: string,
  message: unknown,
): Promise<unknown | undefined> {
  const type = (message as { type?: unknown } | null)?.type
  if (typeof type !== 'string' || !type.startsWith('notifications.')) return undefined
  const parsed = inboxMessage.safeParse(message)
  if (!parsed.success) throw new InboxRequestError(`${type}: ${parsed.error.issues[0]?.message ?? 'invalid request'}`)
  const request = parsed.data
  switch (request.type) {
    case 'notifications.list': {
      const items = await notifications.inbox.list(user, { limit: request.limit ?? 50 })
      return {
        items: items.map((r) => ({
          id: r.id,
          subject: r.subject,
          body: r.body,
          status: r.status,
          createdAt: r.createdAt,
        })),
        unread: await notifications.inbox.unreadCount(user),
      }
    }
    case 'notifications.read':
      return {
        changed: await notifications.inbox.markRead(user, request.ids),
        unread: await notifications.inbox.unreadCount(user),
      }
    case 'notifications.read_all':
      return { changed: await notifications.inbox.markAllRead(user), unread: 0 }
    case 'notifications.unread_count':
      return { unread: await notifications.inbox.unreadCount(user) }
  }
}

/** The client asked for something malformed; its message is safe to show the client. */
export class InboxRequestError extends Error {
  override readonly name = 'InboxRequestError'
}
