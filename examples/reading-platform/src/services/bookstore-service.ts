import type { Bus } from '@herald/core'
import type { ServiceState } from '@herald/sqlite'
import { bookFen, books, vipDayFen } from '../catalogue.js'
import {
  BookPurchased,
  BuyVip,
  ChapterPurchased,
  ContentPublished,
  DebitWallet,
  Purchase,
  ReviewApproved,
  VipActivated,
  VipPurchased,
} from '../contracts.js'

export const bookstoreSchema = `CREATE TABLE IF NOT EXISTS purchases (id TEXT PRIMARY KEY, user_id TEXT NOT NULL,
  item TEXT NOT NULL, price_fen INTEGER NOT NULL, purchased INTEGER NOT NULL, reason TEXT NOT NULL,
  balance_fen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS vip (user_id TEXT PRIMARY KEY, until INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS published (content_id TEXT PRIMARY KEY, book_id TEXT NOT NULL, chapter INTEGER NOT NULL)`

type Answer = { purchased: boolean; reason: string; balanceFen: number }

/**
 * Sells chapters, whole books and VIP days. The wallet is asked synchronously (request/reply to the finance
 * service, idempotent per purchase); the purchase and its event commit together after the answer. Reviews that
 * pass publish the chapter.
 */
export function registerBookstoreService(bus: Bus, state: ServiceState, options: { readonly dayMs: number }): void {
  const { db } = state
  const answerOf = db.prepare<[string], { purchased: number; reason: string; balance_fen: number }>(
    'SELECT purchased, reason, balance_fen FROM purchases WHERE id = ?',
  )
  const recordPurchase = db.prepare('INSERT INTO purchases VALUES (?, ?, ?, ?, ?, ?, ?)')
  const answer = (id: string): Answer => {
    const row = answerOf.get(id)
    return { purchased: row?.purchased === 1, reason: row?.reason ?? 'unknown', balanceFen: row?.balance_fen ?? 0 }
  }
  const store = bus.group('bookstore-service')

  store.on(Purchase, async (message, context) => {
    const { purchaseId, userId, bookId, chapter } = message.data
    if (answerOf.get(purchaseId) !== undefined) return answer(purchaseId)
    const book = books.find((b) => b.id === bookId)
    if (book === undefined || (chapter !== undefined && chapter > book.chapters))
      return { purchased: false, reason: 'no_such_item', balanceFen: 0 }
    const priceFen = chapter === undefined ? bookFen(book) : book.chapterFen
    const paid = await bus.request(
      DebitWallet,
      { debitId: purchaseId, userId, amountFen: priceFen, reason: `${bookId}/${chapter ?? 'all'}` },
      { timeoutMs: 10_000, correlationId: purchaseId },
    )
    await state.apply(`${context.group}/${purchaseId}`, () => ({
      write: () =>
        recordPurchase.run(
          purchaseId,
          userId,
          `${bookId}/${chapter ?? 'all'}`,
          priceFen,
          paid.debited ? 1 : 0,
          paid.debited ? 'ok' : 'insufficient_balance',
          paid.balanceFen,
        ),
      send: !paid.debited
        ? []
        : chapter === undefined
          ? [context.prepare(BookPurchased, { purchaseId, userId, bookId, authorId: book.authorId, priceFen })]
          : [
              context.prepare(ChapterPurchased, {
                purchaseId,
                userId,
                bookId,
                chapter,
                authorId: book.authorId,
                priceFen,
              }),
            ],
    }))
    return answer(purchaseId)
  })

  store.on(BuyVip, async (message, context) => {
    const { purchaseId, userId, days } = message.data
    if (answerOf.get(purchaseId) !== undefined) return answer(purchaseId)
    const priceFen = days * vipDayFen
    const paid = await bus.request(
      DebitWallet,
      { debitId: purchaseId, userId, amountFen: priceFen, reason: `vip/${days}` },
      { timeoutMs: 10_000, correlationId: purchaseId },
    )
    await state.apply(`${context.group}/${purchaseId}`, () => {
      const current = db.prepare<[string], { until: number }>('SELECT until FROM vip WHERE user_id = ?').get(userId)
      const until = Math.max(current?.until ?? 0, Date.now()) + days * options.dayMs
      return {
        write: () => {
          recordPurchase.run(
            purchaseId,
            userId,
            `vip/${days}`,
            priceFen,
            paid.debited ? 1 : 0,
            paid.debited ? 'ok' : 'insufficient_balance',
            paid.balanceFen,
          )
          if (paid.debited)
            db.prepare(
              'INSERT INTO vip (user_id, until) VALUES (@userId, @until) ON CONFLICT (user_id) DO UPDATE SET until = @until',
            ).run({ userId, until })
        },
        send: paid.debited
          ? [
              context.prepare(VipPurchased, { purchaseId, userId, days, priceFen }),
              context.prepare(VipActivated, { userId, days, until }),
            ]
          : [],
      }
    })
    return answer(purchaseId)
  })

  store.on(ReviewApproved, (message, context) =>
    state.apply(`${context.group}/${message.id}`, () => ({
      write: () =>
        db
          .prepare('INSERT OR IGNORE INTO published VALUES (?, ?, ?)')
          .run(message.data.contentId, message.data.bookId, message.data.chapter),
      send: [context.prepare(ContentPublished, message.data)],
    })),
  )
}
