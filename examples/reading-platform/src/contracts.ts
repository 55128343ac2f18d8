import { defineCommand, defineEvent, type MessageContract } from '@herald/core'
import { z } from 'zod'

// The reading platform's event catalogue: users, reading, social, bookstore, finance, notifications, system.
// Amounts are in fen (1/100 yuan). `reading.#` is what the hybrid bus keeps in process (herald.config.yaml);
// everything else, money first, goes to the broker.

const id = z.string().min(1).max(64)
const fen = z.number().int().nonnegative()
const byUser = (data: { userId: string }) => data.userId
const byAuthor = (data: { authorId: string }) => data.authorId

// ---- users ----------------------------------------------------------------------------------------------------

export const RegisterUser = defineCommand('user.register', {
  schema: z.object({ userId: id, username: z.string().min(1).max(40), email: z.email(), referral: id.optional() }),
  key: byUser,
})

/** Version 1, as the first sign-up client still publishes it. */
export const userRegisteredV1 = z.object({ userId: id, username: z.string(), email: z.string() })

/**
 * Version 2 adds `userType` and `referral`. A version-1 event is upgraded on the way in: every handler sees
 * version 2, whoever published it and whenever (a replay of old stored events too).
 */
export const UserRegistered = defineEvent('user.registered', {
  version: 2,
  schema: userRegisteredV1.extend({ userType: z.enum(['standard', 'author']), referral: id.nullable() }),
  upcasters: {
    1: (data) => ({ ...(data as z.infer<typeof userRegisteredV1>), userType: 'standard', referral: null }),
  },
  key: byUser,
})

/** The old client's contract: the same type at version 1, for the simulation's legacy sign-ups. */
export const UserRegisteredV1 = defineEvent('user.registered', { schema: userRegisteredV1, key: byUser })

// ---- reading (local) --------------------------------------------------------------------------------------------

export const ChapterRead = defineEvent('reading.chapter_read', {
  schema: z.object({ userId: id, bookId: id, chapter: z.number().int().min(1), seconds: z.number().int().min(1) }),
  key: byUser,
})

export const ProgressUpdated = defineEvent('reading.progress_updated', {
  schema: z.object({ userId: id, bookId: id, percent: z.number().min(0).max(100) }),
  key: byUser,
})

export const AchievementUnlocked = defineEvent('achievement.unlocked', {
  schema: z.object({ userId: id, achievement: z.string() }),
  key: byUser,
})

// ---- social -----------------------------------------------------------------------------------------------------

const social = z.object({ userId: id, targetType: z.enum(['book', 'user', 'comment']), targetId: id })
export const LikeAdded = defineEvent('like.added', { schema: social, key: byUser })
export const FollowAdded = defineEvent('follow.added', { schema: social, key: byUser })
export const CommentCreated = defineEvent('comment.created', {
  schema: social.extend({ commentId: id, text: z.string().max(2_000) }),
  key: byUser,
})
/** `toUserId` wrote the comment being answered: the one to notify. */
export const CommentReplied = defineEvent('comment.replied', {
  schema: social.extend({ commentId: id, toUserId: id, text: z.string().max(2_000) }),
  key: byUser,
})

// ---- bookstore --------------------------------------------------------------------------------------------------

/**
 * Asked by a reader: debits the wallet and, when the balance covers it, publishes `chapter.purchased` (or
 * `book.purchased` for a whole book, with no `chapter`).
 */
export const Purchase = defineCommand('bookstore.purchase', {
  schema: z.object({ purchaseId: id, userId: id, bookId: id, chapter: z.number().int().min(1).optional() }),
  reply: z.object({ purchased: z.boolean(), reason: z.string(), balanceFen: fen }),
  key: byUser,
})

export const ChapterPurchased = defineEvent('chapter.purchased', {
  schema: z.object({ purchaseId: id, userId: id, bookId: id, chapter: z.number().int(), authorId: id, priceFen: fen }),
  key: byUser,
})
export const BookPurchased = defineEvent('book.purchased', {
  schema: z.object({ purchaseId: id, userId: id, bookId: id, authorId: id, priceFen: fen }),
  key: byUser,
})

export const BuyVip = defineCommand('bookstore.buy_vip', {
  schema: z.object({ purchaseId: id, userId: id, days: z.number().int().min(1).max(366) }),
  reply: z.object({ purchased: z.boolean(), reason: z.string(), balanceFen: fen }),
  key: byUser,
})
export const VipPurchased = defineEvent('vip.purchased', {
  schema: z.object({ purchaseId: id, userId: id, days: z.number().int(), priceFen: fen }),
  key: byUser,
})
export const VipActivated = defineEvent('vip.activated', {
  schema: z.object({ userId: id, days: z.number().int(), until: z.number() }),
  key: byUser,
})
export const VipExpired = defineEvent('vip.expired', { schema: z.object({ userId: id }), key: byUser })
export const SubscriptionExpired = defineEvent('subscription.expired', {
  schema: z.object({ userId: id, plan: z.literal('vip') }),
  key: byUser,
})

// ---- finance ----------------------------------------------------------------------------------------------------

export const Deposit = defineCommand('finance.deposit', {
  schema: z.object({ depositId: id, userId: id, amountFen: fen.min(1) }),
  key: byUser,
})
export const DepositCompleted = defineEvent('deposit.completed', {
  schema: z.object({ depositId: id, userId: id, amountFen: fen, balanceFen: fen }),
  key: byUser,
})

/** Debits a wallet, once per `debitId`: the same request asked twice gets the same answer. */
export const DebitWallet = defineCommand('finance.debit', {
  schema: z.object({ debitId: id, userId: id, amountFen: fen.min(1), reason: z.string() }),
  reply: z.object({ debited: z.boolean(), balanceFen: fen }),
  key: byUser,
})

/** The author's royalty on a purchase, at the rate in force (`config.changed` key `royalty_percent`). */
export const RevenueEarned = defineEvent('revenue.earned', {
  schema: z.object({ purchaseId: id, authorId: id, amountFen: fen, percent: z.number().int() }),
  key: byAuthor,
})

export const SettlePeriod = defineCommand('finance.settle', { schema: z.object({ period: z.string().min(1) }) })
export const SettlementGenerated = defineEvent('settlement.generated', {
  schema: z.object({ settlementId: id, authorId: id, period: z.string(), amountFen: fen, items: z.number().int() }),
  key: byAuthor,
})

export const RequestWithdrawal = defineCommand('finance.request_withdrawal', {
  schema: z.object({ withdrawalId: id, authorId: id, amountFen: fen.min(1) }),
  key: byAuthor,
})
export const WithdrawalApproved = defineEvent('withdrawal.approved', {
  schema: z.object({ withdrawalId: id, authorId: id, amountFen: fen }),
  key: byAuthor,
})

// ---- notifications ----------------------------------------------------------------------------------------------

const notice = z.object({ notificationId: z.string().min(1).max(256), userId: id, kind: z.string() })
export const NotificationSent = defineEvent('notification.sent', { schema: notice, key: byUser })
export const NotificationRead = defineEvent('notification.read', { schema: notice, key: byUser })
export const MarkNotificationsRead = defineCommand('notification.mark_read', {
  schema: z.object({ userId: id }),
  key: byUser,
})

// ---- system -----------------------------------------------------------------------------------------------------

export const ConfigChanged = defineEvent('config.changed', {
  schema: z.object({ key: z.enum(['royalty_percent']), value: z.number().int().min(0).max(100) }),
})
export const ReviewApproved = defineEvent('review.approved', {
  schema: z.object({ contentId: id, bookId: id, authorId: id, chapter: z.number().int().min(1) }),
  key: byAuthor,
})
export const ContentPublished = defineEvent('content.published', {
  schema: z.object({ contentId: id, bookId: id, authorId: id, chapter: z.number().int().min(1) }),
  key: byAuthor,
})

export const allContracts: readonly MessageContract[] = [
  RegisterUser,
  UserRegistered,
  ChapterRead,
  ProgressUpdated,
  AchievementUnlocked,
  LikeAdded,
  FollowAdded,
  CommentCreated,
  CommentReplied,
  Purchase,
  ChapterPurchased,
  BookPurchased,
  BuyVip,
  VipPurchased,
  VipActivated,
  VipExpired,
  SubscriptionExpired,
  Deposit,
  DepositCompleted,
  DebitWallet,
  RevenueEarned,
  SettlePeriod,
  SettlementGenerated,
  RequestWithdrawal,
  WithdrawalApproved,
  NotificationSent,
  NotificationRead,
  MarkNotificationsRead,
  ConfigChanged,
  ReviewApproved,
  ContentPublished,
]
