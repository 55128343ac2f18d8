import { type Bus, type HandlerContext, uuidV7 } from '@herald/core'
import type { ServiceState } from '@herald/sqlite'
import {
  BookPurchased,
  ChapterPurchased,
  ConfigChanged,
  DebitWallet,
  Deposit,
  DepositCompleted,
  RequestWithdrawal,
  RevenueEarned,
  SettlementGenerated,
  SettlePeriod,
  WithdrawalApproved,
} from '../contracts.js'

export const financeSchema = `CREATE TABLE IF NOT EXISTS wallets (user_id TEXT PRIMARY KEY, balance_fen INTEGER NOT NULL
    CHECK (balance_fen >= 0));
CREATE TABLE IF NOT EXISTS debits (debit_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, amount_fen INTEGER NOT NULL,
  debited INTEGER NOT NULL, balance_fen INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS revenue (purchase_id TEXT PRIMARY KEY, author_id TEXT NOT NULL, amount_fen INTEGER NOT NULL,
  settlement_id TEXT);
CREATE TABLE IF NOT EXISTS settlements (id TEXT PRIMARY KEY, author_id TEXT NOT NULL, period TEXT NOT NULL,
  amount_fen INTEGER NOT NULL, withdrawn_fen INTEGER NOT NULL DEFAULT 0, UNIQUE (author_id, period));
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value INTEGER NOT NULL)`

/**
 * Wallets, royalties and settlements. Every change and the event that reports it commit together; a debit is
 * answered once per `debitId` and the same answer is given again, so a purchase retried after a crash is never
 * charged twice.
 */
export function registerFinanceService(bus: Bus, state: ServiceState): void {
  const { db } = state
  const balanceOf = (user: string) =>
    (db.prepare<[string], { balance_fen: number }>('SELECT balance_fen FROM wallets WHERE user_id = ?').get(user)
      ?.balance_fen ?? 0) as number
  const upsert = db.prepare<{ user: string; fen: number }>(
    `INSERT INTO wallets (user_id, balance_fen) VALUES (@user, @fen)
     ON CONFLICT (user_id) DO UPDATE SET balance_fen = balance_fen + @fen`,
  )
  const credit = (user: string, fen: number) => upsert.run({ user, fen })
  const debit = db.prepare<[number, string]>('UPDATE wallets SET balance_fen = balance_fen - ? WHERE user_id = ?')
  const debitRow = db.prepare<[string], { debited: number; balance_fen: number }>(
    'SELECT debited, balance_fen FROM debits WHERE debit_id = ?',
  )
  const royaltyPercent = () =>
    (db.prepare<[], { value: number }>("SELECT value FROM settings WHERE key = 'royalty_percent'").get()?.value ??
      70) as number

  const finance = bus.group('finance-service')
  finance.on(Deposit, (message, context) =>
    state.apply(`${context.group}/${message.id}`, () => {
      const { depositId, userId, amountFen } = message.data
      return {
        write: () => credit(userId, amountFen),
        send: [
          context.prepare(DepositCompleted, {
            depositId,
            userId,
            amountFen,
            balanceFen: balanceOf(userId) + amountFen,
          }),
        ],
      }
    }),
  )
  finance.on(DebitWallet, async (message, context) => {
    const { debitId, userId, amountFen, reason } = message.data
    await state.apply(`${context.group}/${debitId}`, () => {
      if (debitRow.get(debitId) !== undefined) return undefined
      const balance = balanceOf(userId)
      const debited = balance >= amountFen
      return {
        write: () => {
          if (debited) debit.run(amountFen, userId)
          db.prepare('INSERT INTO debits VALUES (?, ?, ?, ?, ?, ?)').run(
            debitId,
            userId,
            amountFen,
            debited ? 1 : 0,
            debited ? balance - amountFen : balance,
            reason,
          )
        },
      }
    })
    const row = debitRow.get(debitId)
    return { debited: row?.debited === 1, balanceFen: row?.balance_fen ?? 0 }
  })

  // Royalties: one per purchase, at the rate in force when the purchase is handled.
  const royalties = bus.group('finance-service.royalty')
  const insertRevenue = db.prepare(
    'INSERT OR IGNORE INTO revenue (purchase_id, author_id, amount_fen) VALUES (?, ?, ?)',
  )
  const royalty = (
    data: { purchaseId: string; authorId: string; priceFen: number },
    context: HandlerContext,
    messageId: string,
  ) =>
    state.apply(`${context.group}/${messageId}`, () => {
      const percent = royaltyPercent()
      const amountFen = Math.floor((data.priceFen * percent) / 100)
      return {
        write: () => insertRevenue.run(data.purchaseId, data.authorId, amountFen),
        send: [
          context.prepare(RevenueEarned, { purchaseId: data.purchaseId, authorId: data.authorId, amountFen, percent }),
        ],
      }
    })
  royalties.on(ChapterPurchased, (message, context) => royalty(message.data, context, message.id))
  royalties.on(BookPurchased, (message, context) => royalty(message.data, context, message.id))

  // Every finance instance keeps the rate: a copy of `config.changed` reaches each.
  bus.group('finance-service.config').on(ConfigChanged, (message, context) =>
    state.apply(`${context.group}/${message.id}`, () => ({
      write: () =>
        db
          .prepare(
            'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
          )
          .run(message.data.key, message.data.value),
    })),
  )

  // A period's settlement: one per author with unsettled revenue, each statement once.
  finance.on(SettlePeriod, (message, context) =>
    state.apply(`${context.group}/${message.id}`, () => {
      const owed = db
        .prepare<[], { author_id: string; amount: number; items: number }>(
          `SELECT author_id, sum(amount_fen) AS amount, count(*) AS items FROM revenue
           WHERE settlement_id IS NULL GROUP BY author_id ORDER BY author_id`,
        )
        .all()
      const statements = owed.map((o) => ({
        settlementId: uuidV7(),
        authorId: o.author_id,
        period: message.data.period,
        amountFen: o.amount,
        items: o.items,
      }))
      return {
        write: () => {
          for (const s of statements) {
            db.prepare('INSERT INTO settlements (id, author_id, period, amount_fen) VALUES (?, ?, ?, ?)').run(
              s.settlementId,
              s.authorId,
              s.period,
              s.amountFen,
            )
            db.prepare('UPDATE revenue SET settlement_id = ? WHERE author_id = ? AND settlement_id IS NULL').run(
              s.settlementId,
              s.authorId,
            )
          }
        },
        send: statements.map((s) => context.prepare(SettlementGenerated, s)),
      }
    }),
  )

  // Withdrawals are approved up to what was settled and not yet withdrawn.
  finance.on(RequestWithdrawal, (message, context) =>
    state.apply(`${context.group}/${message.id}`, () => {
      const { withdrawalId, authorId, amountFen } = message.data
      const available =
        db
          .prepare<[string], { left: number | null }>(
            'SELECT sum(amount_fen - withdrawn_fen) AS left FROM settlements WHERE author_id = ?',
          )
          .get(authorId)?.left ?? 0
      if (available < amountFen) return undefined
      return {
        write: () => {
          let left = amountFen
          for (const s of db
            .prepare<[string], { id: string; free: number }>(
              'SELECT id, amount_fen - withdrawn_fen AS free FROM settlements WHERE author_id = ? AND amount_fen > withdrawn_fen ORDER BY period, id',
            )
            .all(authorId)) {
            const take = Math.min(left, s.free)
            db.prepare('UPDATE settlements SET withdrawn_fen = withdrawn_fen + ? WHERE id = ?').run(take, s.id)
            left -= take
            if (left === 0) break
          }
        },
        send: [context.prepare(WithdrawalApproved, { withdrawalId, authorId, amountFen })],
      }
    }),
  )
}
