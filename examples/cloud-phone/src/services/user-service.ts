import type { Bus } from '@herald/core'
import type { ServiceState } from '@herald/sqlite'
import { CreateUser, DeleteUser, UpdateUser, UserCreated, UserDeleted, UserUpdated } from '../contracts.js'

export const userSchema = `CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY, username TEXT NOT NULL, email TEXT NOT NULL, phone TEXT NOT NULL, tenant_id TEXT NOT NULL,
  status TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`

export interface UserRow {
  id: string
  username: string
  email: string
  phone: string
  tenant_id: string
  status: string
}

/**
 * The user service owns users. Each change and the event that tells the platform about it commit together
 * (`user.created`, `user.updated`, `user.deleted`: the design published only `user.updated`), so no other service
 * misses one or hears of one that did not happen.
 */
export function registerUserService(bus: Bus, state: ServiceState): void {
  const { db } = state
  const byId = db.prepare<[string], UserRow>('SELECT * FROM users WHERE id = ?')
  const insert = db.prepare(
    `INSERT INTO users (id, username, email, phone, tenant_id, status, created_at, updated_at)
     VALUES (@userId, @username, @email, @phone, @tenantId, 'active', @now, @now)`,
  )
  const update = db.prepare(
    'UPDATE users SET username = @username, email = @email, phone = @phone, updated_at = @now WHERE id = @userId',
  )
  const remove = db.prepare<[string]>('DELETE FROM users WHERE id = ?')

  bus
    .group('user-service')
    .on(CreateUser, (message, context) =>
      state.apply(`user-service/${message.id}`, () => {
        if (byId.get(message.data.userId) !== undefined) return undefined // created before: nothing to tell
        return {
          write: () => insert.run({ ...message.data, now: Date.now() }),
          send: [context.prepare(UserCreated, message.data)],
        }
      }),
    )
    .on(UpdateUser, (message, context) =>
      state.apply(`user-service/${message.id}`, () => {
        if (byId.get(message.data.userId) === undefined) return undefined
        return {
          write: () => update.run({ ...message.data, now: Date.now() }),
          send: [context.prepare(UserUpdated, message.data)],
        }
      }),
    )
    .on(DeleteUser, (message, context) =>
      state.apply(`user-service/${message.id}`, () => {
        const user = byId.get(message.data.userId)
        if (user === undefined) return undefined
        return {
          write: () => remove.run(user.id),
          send: [context.prepare(UserDeleted, { userId: user.id, username: user.username })],
        }
      }),
    )
}

export function listUsers(state: ServiceState): UserRow[] {
  return state.db.prepare<[], UserRow>('SELECT * FROM users ORDER BY id').all()
}
