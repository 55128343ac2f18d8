import type { Bus } from '@herald/core'
import type { ServiceState } from '@herald/sqlite'
import {
  AllocateDevice,
  AppInstallCompleted,
  AppInstallRequested,
  CreateDevice,
  DeviceAllocated,
  DeviceAllocationFailed,
  DeviceCreated,
  DeviceDeleted,
  DeviceStarted,
  DeviceStopped,
  ReleaseDevice,
  StartDevice,
  StopDevice,
  UserCreated,
  UserDeleted,
  UserUpdated,
} from '../contracts.js'

export const deviceSchema = `CREATE TABLE IF NOT EXISTS owners (
  user_id TEXT PRIMARY KEY, username TEXT NOT NULL, email TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL, owner_name TEXT NOT NULL, owner_email TEXT NOT NULL,
  status TEXT NOT NULL, order_id TEXT UNIQUE, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS devices_user ON devices (user_id);
CREATE TABLE IF NOT EXISTS installs (
  id TEXT PRIMARY KEY, device_id TEXT NOT NULL, app_id TEXT NOT NULL, installed_at INTEGER NOT NULL)`

/** Plans this device pool can serve: an enterprise phone is never available, so its orders are refunded. */
export const allocatable: ReadonlySet<string> = new Set(['basic', 'pro'])

export interface DeviceRow {
  id: string
  user_id: string
  name: string
  owner_name: string
  owner_email: string
  status: 'stopped' | 'running'
  order_id: string | null
}

/**
 * The device service: cloud phones, each with a copy of its owner's name and email kept in sync from
 * `user.updated`; `user.deleted` removes the user's devices (each announced with `device.deleted`); the purchase saga
 * has it allocate a paid order's device (plans in `allocatable`) and release it when the order is refunded; an
 * install request on a device completes with `app.install.completed`.
 */
export function registerDeviceService(
  bus: Bus,
  state: ServiceState,
  options: { readonly now?: () => number } = {},
): void {
  const now = options.now ?? Date.now
  const { db } = state
  const owner = db.prepare<[string], { username: string; email: string }>('SELECT * FROM owners WHERE user_id = ?')
  const upsertOwner = db.prepare(
    `INSERT INTO owners (user_id, username, email) VALUES (@userId, @username, @email)
     ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, email = excluded.email`,
  )
  const syncCopies = db.prepare(
    'UPDATE devices SET owner_name = @username, owner_email = @email WHERE user_id = @userId',
  )
  const device = db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE id = ?')
  const devicesOf = db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE user_id = ? ORDER BY id')
  const insertDevice = db.prepare(
    `INSERT INTO devices (id, user_id, name, owner_name, owner_email, status, order_id, created_at)
     VALUES (@deviceId, @userId, @name, @ownerName, @ownerEmail, 'stopped', @orderId, @now)`,
  )
  const setStatus = db.prepare<[string, string]>('UPDATE devices SET status = ? WHERE id = ?')
  const removeUser = db.prepare<[string]>('DELETE FROM owners WHERE user_id = ?')
  const removeDevices = db.prepare<[string]>('DELETE FROM devices WHERE user_id = ?')
  const insertInstall = db.prepare(
    'INSERT OR IGNORE INTO installs (id, device_id, app_id, installed_at) VALUES (?, ?, ?, ?)',
  )
  const byOrder = db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE order_id = ?')
  const removeDevice = db.prepare<[string]>('DELETE FROM devices WHERE id = ?')
  const key = (id: string) => `device-service/${id}`

  function create(
    data: { deviceId: string; userId: string; name: string; orderId?: string },
    context: Pick<Bus, 'prepare'>,
  ) {
    const who = owner.get(data.userId)
    if (who === undefined || device.get(data.deviceId) !== undefined) return undefined
    return {
      write: () =>
        insertDevice.run({
          ...data,
          orderId: data.orderId ?? null,
          ownerName: who.username,
          ownerEmail: who.email,
          now: now(),
        }),
      send: [context.prepare(DeviceCreated, data)],
    }
  }

  bus
    .group('device-service')
    .on(UserCreated, (message) => state.apply(key(message.id), () => ({ write: () => upsertOwner.run(message.data) })))
    .on(UserUpdated, (message) =>
      state.apply(key(message.id), () => ({
        write: () => {
          upsertOwner.run(message.data)
          syncCopies.run(message.data)
        },
      })),
    )
    .on(UserDeleted, (message, context) =>
      state.apply(key(message.id), () => ({
        write: () => {
          removeDevices.run(message.data.userId)
          removeUser.run(message.data.userId)
        },
        send: devicesOf
          .all(message.data.userId)
          .map((d) => context.prepare(DeviceDeleted, { deviceId: d.id, userId: d.user_id, reason: 'user deleted' })),
      })),
    )
    .on(CreateDevice, (message, context) => state.apply(key(message.id), () => create(message.data, context)))
    .on(AllocateDevice, (message, context) =>
      state.apply(key(message.id), () => {
        const { orderId, userId, planId } = message.data
        if (!allocatable.has(planId))
          return {
            send: [
              context.prepare(DeviceAllocationFailed, { orderId, userId, reason: `no capacity for plan ${planId}` }),
            ],
          }
        const deviceId = `dev-${orderId}`
        const created = create({ deviceId, userId, name: 'cloud phone', orderId }, context)
        // Allocated before (a redelivery): say so again, the saga takes the first.
        if (created === undefined)
          return device.get(deviceId) === undefined
            ? { send: [context.prepare(DeviceAllocationFailed, { orderId, userId, reason: 'no such user' })] }
            : { send: [context.prepare(DeviceAllocated, { orderId, userId, deviceId })] }
        return { ...created, send: [...created.send, context.prepare(DeviceAllocated, { orderId, userId, deviceId })] }
      }),
    )
    .on(ReleaseDevice, (message, context) =>
      state.apply(key(message.id), () => {
        const found = byOrder.get(message.data.orderId)
        if (found === undefined) return undefined
        return {
          write: () => removeDevice.run(found.id),
          send: [
            context.prepare(DeviceDeleted, { deviceId: found.id, userId: found.user_id, reason: 'order refunded' }),
          ],
        }
      }),
    )
    .on(StartDevice, (message, context) =>
      state.apply(key(message.id), () => {
        const found = device.get(message.data.deviceId)
        if (found === undefined || found.status === 'running') return undefined
        return {
          write: () => setStatus.run('running', found.id),
          send: [context.prepare(DeviceStarted, { ...message.data, at: now() })],
        }
      }),
    )
    .on(StopDevice, (message, context) =>
      state.apply(key(message.id), () => {
        const found = device.get(message.data.deviceId)
        if (found === undefined || found.status !== 'running') return undefined
        return {
          write: () => setStatus.run('stopped', found.id),
          send: [context.prepare(DeviceStopped, { ...message.data, at: now() })],
        }
      }),
    )
    .on(AppInstallRequested, (message, context) =>
      state.apply(key(message.id), () => {
        if (device.get(message.data.deviceId) === undefined) return undefined
        return {
          write: () => insertInstall.run(message.data.installId, message.data.deviceId, message.data.appId, now()),
          send: [context.prepare(AppInstallCompleted, message.data)],
        }
      }),
    )
}

export function listDevices(state: ServiceState): DeviceRow[] {
  return state.db.prepare<[], DeviceRow>('SELECT * FROM devices ORDER BY id').all()
}
