import type { Bus } from '@herald/core'
import type { ServiceState } from '@herald/sqlite'
import { RegisterUser, UserRegistered } from '../contracts.js'

export const userSchema = `CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY, username TEXT NOT NULL, email TEXT NOT NULL, user_type TEXT NOT NULL,
  referral TEXT, created_at INTEGER NOT NULL)`

/** Owns accounts: a registration and its `user.registered` (version 2) commit together. */
export function registerUserService(bus: Bus, state: ServiceState, authors: ReadonlySet<string>): void {
  const exists = state.db.prepare<[string], { id: string }>('SELECT id FROM users WHERE id = ?')
  const insert = state.db.prepare(
    `INSERT INTO users (id, username, email, user_type, referral, created_at)
     VALUES (@userId, @username, @email, @userType, @referral, @now)`,
  )
  bus.group('user-service').on(RegisterUser, (message, context) =>
    state.apply(`${context.group}/${message.id}`, () => {
      if (exists.get(message.data.userId) !== undefined) return undefined
      const user = {
        userId: message.data.userId,
        username: message.data.username,
        email: message.data.email,
        userType: authors.has(message.data.userId) ? ('author' as const) : ('standard' as const),
        referral: message.data.referral ?? null,
      }
      return {
        write: () => insert.run({ ...user, now: Date.now() }),
        send: [context.prepare(UserRegistered, user)],
      }
    }),
  )
}
