import { type Bus, createBus, type Transport } from '@herald/core'
import { books } from './catalogue.js'
import {
  AchievementUnlocked,
  allContracts,
  BookPurchased,
  BuyVip,
  ChapterPurchased,
  ChapterRead,
  CommentCreated,
  CommentReplied,
  ConfigChanged,
  ContentPublished,
  Deposit,
  DepositCompleted,
  FollowAdded,
  LikeAdded,
  MarkNotificationsRead,
  NotificationRead,
  NotificationSent,
  ProgressUpdated,
  Purchase,
  RegisterUser,
  RequestWithdrawal,
  RevenueEarned,
  ReviewApproved,
  SettlementGenerated,
  SettlePeriod,
  SubscriptionExpired,
  UserRegistered,
  UserRegisteredV1,
  VipActivated,
  VipExpired,
  WithdrawalApproved,
} from './contracts.js'

export interface SimulationOptions {
  readonly transport: Transport
  readonly readers: number
  /** Gives up waiting for what the run expects after this long, and reports what is missing as lost. */
  readonly deadlineMs: number
  readonly royaltyPercent: number
  readonly log?: (line: string) => void
}

/** What one run saw, counted from the events themselves (each message id once). */
export interface SimulationReport {
  readonly readers: number
  readonly registered: number
  readonly registered_v1: number
  readonly deposits: number
  readonly purchases: { readonly chapters: number; readonly books: number; readonly refused: number }
  readonly sales_fen: number
  readonly royalty_percent: number
  readonly revenue_fen: number
  readonly settled_fen: number
  readonly settlements: number
  readonly withdrawals: number
  readonly vip: { readonly activated: number; readonly expired: number }
  readonly chapters_read: number
  readonly achievements: number
  readonly published: number
  readonly notifications: Readonly<Record<string, number>>
  readonly notifications_read: number
  readonly lost: number
}

/** Counts each catalogue event once per message id, as a monitoring group of its own. */
function monitor(bus: Bus) {
  const seen = new Map<string, Map<string, unknown>>()
  const group = bus.group('platform-monitor')
  const watch = (contract: Parameters<typeof group.on>[0]) =>
    group.on(contract, async (message) => {
      let byId = seen.get(message.type)
      if (byId === undefined) {
        byId = new Map()
        seen.set(message.type, byId)
      }
      byId.set(message.id, message.data)
    })
  for (const contract of [
    UserRegistered,
    DepositCompleted,
    ChapterPurchased,
    BookPurchased,
    VipActivated,
    VipExpired,
    SubscriptionExpired,
    RevenueEarned,
    SettlementGenerated,
    WithdrawalApproved,
    AchievementUnlocked,
    NotificationSent,
    NotificationRead,
    ContentPublished,
    ChapterRead,
  ])
    watch(contract)
  const all = <T>(type: string) => [...(seen.get(type)?.values() ?? [])] as T[]
  return { all, count: (type: string) => seen.get(type)?.size ?? 0 }
}

/**
 * The fixed run: authors and readers sign up (some through the old client, at version 1), top up, buy chapters,
 * books and VIP days (the wallet refuses what the balance does not cover), read (local events), comment and
 * reply; a review publishes a chapter; the period is settled and authors withdraw; half the readers read their
 * notifications. It waits until every expected effect was seen, then reports.
 */
export async function simulate(options: SimulationOptions): Promise<SimulationReport> {
  const log = options.log ?? (() => {})
  const bus = createBus({ transport: options.transport, service: 'reader-app', contracts: allContracts })
  const seen = monitor(bus)
  await bus.start()
  // The old sign-up client still publishes version 1.
  const legacy = createBus({ transport: options.transport, service: 'signup-v1', contracts: [UserRegisteredV1] })
  await legacy.start()
  const deadline = Date.now() + options.deadlineMs
  const until = async (what: string, done: () => boolean): Promise<boolean> => {
    while (!done()) {
      if (Date.now() > deadline) {
        log(`gave up waiting for ${what}`)
        return false
      }
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    return true
  }
  try {
    await bus.publish(ConfigChanged, { key: 'royalty_percent', value: options.royaltyPercent })
    const authors = [...new Set(books.map((b) => b.authorId))]
    const readers = Array.from({ length: options.readers }, (_, i) => `reader-${String(i).padStart(3, '0')}`)
    const viaV1 = readers.filter((_, i) => i % 6 === 5)
    for (const userId of [...authors, ...readers]) {
      if (viaV1.includes(userId))
        await legacy.publish(UserRegisteredV1, { userId, username: userId, email: `${userId}@example.com` })
      else await bus.send(RegisterUser, { userId, username: userId, email: `${userId}@example.com` })
    }
    const everyone = authors.length + readers.length
    await until('registrations', () => seen.count(UserRegistered.type) >= everyone)
    log(`${everyone} users registered (${viaV1.length} by the version-1 client)`)

    for (const [i, userId] of readers.entries())
      await bus.send(Deposit, { depositId: `dep-${userId}`, userId, amountFen: 100 + (i % 4) * 150 })
    await until('deposits', () => seen.count(DepositCompleted.type) >= readers.length)

    // Each reader, on their own, buys what they want in order; readers run side by side.
    let purchased = 0
    let refused = 0
    let vipBought = 0
    const readEvents: { userId: string; bookId: string; chapter: number }[] = []
    await Promise.all(
      readers.map(async (userId, i) => {
        const book = books[i % books.length]!
        const wants: { chapter?: number }[] =
          i % 5 === 0 ? [{}] : Array.from({ length: 3 + (i % 6) }, (_, c) => ({ chapter: c + 1 }))
        for (const [n, want] of wants.entries()) {
          const answer = await bus.request(
            Purchase,
            { purchaseId: `buy-${userId}-${n}`, userId, bookId: book.id, ...want },
            { timeoutMs: 20_000 },
          )
          if (!answer.purchased) {
            refused++
            continue
          }
          purchased++
          const chapters = want.chapter === undefined ? [1, 2, 3] : [want.chapter]
          for (const chapter of chapters) readEvents.push({ userId, bookId: book.id, chapter })
        }
        if (i % 4 === 1) {
          const vip = await bus.request(BuyVip, { purchaseId: `vip-${userId}`, userId, days: 1 }, { timeoutMs: 20_000 })
          if (vip.purchased) vipBought++
          else refused++
        }
      }),
    )
    log(`${purchased} purchases, ${refused} refused for want of balance, ${vipBought} VIP memberships`)

    for (const r of readEvents) {
      await bus.publish(ChapterRead, { ...r, seconds: 60 + r.chapter * 7 })
      const book = books.find((b) => b.id === r.bookId)!
      await bus.publish(ProgressUpdated, {
        userId: r.userId,
        bookId: r.bookId,
        percent: Math.min(100, (r.chapter / book.chapters) * 100),
      })
    }
    let replies = 0
    for (const [i, userId] of readers.entries()) {
      const book = books[i % books.length]!
      await bus.publish(LikeAdded, { userId, targetType: 'book', targetId: book.id })
      await bus.publish(FollowAdded, { userId, targetType: 'user', targetId: book.authorId })
      const commentId = `c-${userId}`
      await bus.publish(CommentCreated, { userId, targetType: 'book', targetId: book.id, commentId, text: '好看！' })
      if (i % 3 === 0) {
        const replier = readers[(i + 1) % readers.length]!
        await bus.publish(CommentReplied, {
          userId: replier,
          targetType: 'comment',
          targetId: commentId,
          commentId: `r-${userId}`,
          toUserId: userId,
          text: '同意',
        })
        replies++
      }
    }
    await bus.publish(ReviewApproved, { contentId: 'santi-13', bookId: 'b-santi', authorId: 'author-liu', chapter: 13 })

    await until('royalties', () => seen.count(RevenueEarned.type) >= purchased)
    await until('VIP expiries', () => seen.count(VipExpired.type) >= vipBought)
    await until('reading events', () => seen.count(ChapterRead.type) >= readEvents.length)

    await bus.send(SettlePeriod, { period: '2026-12' })
    const earning = new Set(seen.all<{ authorId: string }>(RevenueEarned.type).map((r) => r.authorId))
    await until('settlements', () => seen.count(SettlementGenerated.type) >= earning.size)
    for (const s of seen.all<{ authorId: string; amountFen: number }>(SettlementGenerated.type))
      if (s.amountFen >= 2)
        await bus.send(RequestWithdrawal, {
          withdrawalId: `wd-${s.authorId}`,
          authorId: s.authorId,
          amountFen: Math.floor(s.amountFen / 2),
        })
    const withdrawing = seen.all<{ amountFen: number }>(SettlementGenerated.type).filter((s) => s.amountFen >= 2)
    await until('withdrawals', () => seen.count(WithdrawalApproved.type) >= withdrawing.length)

    const achievements = () => seen.count(AchievementUnlocked.type)
    const expectedNotices = () => ({
      welcome: everyone,
      reply: replies,
      royalty: purchased,
      settlement: earning.size,
      'vip-expired': vipBought,
      achievement: achievements(),
    })
    const noticeCounts = () => {
      const counts: Record<string, number> = {}
      for (const n of seen.all<{ kind: string }>(NotificationSent.type)) counts[n.kind] = (counts[n.kind] ?? 0) + 1
      return counts
    }
    const missing = () =>
      Object.entries(expectedNotices()).reduce((sum, [k, v]) => sum + Math.max(0, v - (noticeCounts()[k] ?? 0)), 0)
    await until('notifications', () => missing() === 0)

    const readersReading = readers.filter((_, i) => i % 2 === 0)
    for (const userId of readersReading) await bus.send(MarkNotificationsRead, { userId })
    const unreadOf = (users: readonly string[]) =>
      seen.all<{ userId: string }>(NotificationSent.type).filter((n) => users.includes(n.userId)).length
    await until('read receipts', () => seen.count(NotificationRead.type) >= unreadOf(readersReading))

    const sum = (type: string) => seen.all<{ amountFen: number }>(type).reduce((s, r) => s + r.amountFen, 0)
    const sales = [
      ...seen.all<{ priceFen: number }>(ChapterPurchased.type),
      ...seen.all<{ priceFen: number }>(BookPurchased.type),
    ]
    const expected: Record<string, [number, number]> = {
      registered: [everyone, seen.count(UserRegistered.type)],
      deposits: [readers.length, seen.count(DepositCompleted.type)],
      purchases: [purchased, seen.count(ChapterPurchased.type) + seen.count(BookPurchased.type)],
      royalties: [purchased, seen.count(RevenueEarned.type)],
      vip: [vipBought, seen.count(VipActivated.type)],
      expiries: [vipBought, seen.count(SubscriptionExpired.type)],
      reads: [readEvents.length, seen.count(ChapterRead.type)],
      published: [1, seen.count(ContentPublished.type)],
      withdrawals: [withdrawing.length, seen.count(WithdrawalApproved.type)],
      read_receipts: [unreadOf(readersReading), seen.count(NotificationRead.type)],
    }
    const lost = Object.values(expected).reduce((s, [want, got]) => s + Math.max(0, want - got), 0) + missing()
    return {
      readers: readers.length,
      registered: seen.count(UserRegistered.type),
      registered_v1: viaV1.length,
      deposits: seen.count(DepositCompleted.type),
      purchases: {
        chapters: seen.count(ChapterPurchased.type),
        books: seen.count(BookPurchased.type),
        refused,
      },
      sales_fen: sales.reduce((s, r) => s + r.priceFen, 0),
      royalty_percent: options.royaltyPercent,
      revenue_fen: sum(RevenueEarned.type),
      settled_fen: sum(SettlementGenerated.type),
      settlements: seen.count(SettlementGenerated.type),
      withdrawals: seen.count(WithdrawalApproved.type),
      vip: { activated: seen.count(VipActivated.type), expired: seen.count(VipExpired.type) },
      chapters_read: seen.count(ChapterRead.type),
      achievements: achievements(),
      published: seen.count(ContentPublished.type),
      notifications: noticeCounts(),
      notifications_read: seen.count(NotificationRead.type),
      lost,
    }
  } finally {
    await legacy.stop()
    await bus.stop()
  }
}
