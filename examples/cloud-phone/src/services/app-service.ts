import type { Bus } from '@herald/core'
import type { ServiceState } from '@herald/sqlite'
import { AppInstallCompleted, AppInstallRequested, InstallApp } from '../contracts.js'

export const appSchema = `CREATE TABLE IF NOT EXISTS installs (
  id TEXT PRIMARY KEY, device_id TEXT NOT NULL, user_id TEXT NOT NULL, app_id TEXT NOT NULL, status TEXT NOT NULL)`

/** The app store: an install is requested here, carried out by the device service, and marked done when it says so. */
export function registerAppService(bus: Bus, state: ServiceState): void {
  const { db } = state
  const install = db.prepare<[string], { status: string }>('SELECT status FROM installs WHERE id = ?')
  const insert = db.prepare(
    `INSERT INTO installs (id, device_id, user_id, app_id, status) VALUES (@installId, @deviceId, @userId, @appId, 'requested')`,
  )
  const done = db.prepare<[string]>(`UPDATE installs SET status = 'completed' WHERE id = ?`)
  const key = (id: string) => `app-service/${id}`
  bus
    .group('app-service')
    .on(InstallApp, (message, context) =>
      state.apply(key(message.id), () =>
        install.get(message.data.installId) !== undefined
          ? undefined
          : { write: () => insert.run(message.data), send: [context.prepare(AppInstallRequested, message.data)] },
      ),
    )
    .on(AppInstallCompleted, (message) =>
      state.apply(key(message.id), () => ({ write: () => done.run(message.data.installId) })),
    )
}

export function countInstalls(state: ServiceState): Record<string, number> {
  const rows = state.db
    .prepare<[], { status: string; n: number }>('SELECT status, count(*) AS n FROM installs GROUP BY status')
    .all()
  return Object.fromEntries(rows.map((r) => [r.status, r.n]))
}
