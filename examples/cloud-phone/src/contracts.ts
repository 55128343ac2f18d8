import { defineCommand, defineEvent, type MessageContract } from '@herald/core'
import { z } from 'zod'

// Every message of the platform is about one user, and is keyed by the user: a group handles one user's messages
// in publish order across all its consumers, so a copy never sees `user.updated` before `user.created`, and a
// device is never started after `user.deleted` removed it.
const byUser = (data: { userId: string }) => data.userId
const id = z.string().min(1).max(64)
const profile = { userId: id, username: z.string().min(1).max(64), email: z.email(), phone: z.string().max(32) }

// ---- lifecycle events, on the `cloudphone.events` topic exchange ----

export const UserCreated = defineEvent('user.created', {
  schema: z.object({ ...profile, tenantId: id }),
  key: byUser,
})
export const UserUpdated = defineEvent('user.updated', { schema: z.object(profile), key: byUser })
export const UserDeleted = defineEvent('user.deleted', {
  schema: z.object({ userId: id, username: z.string() }),
  key: byUser,
})
export const UserStatusChanged = defineEvent('user.status.changed', {
  schema: z.object({ userId: id, from: z.enum(['active', 'suspended']), to: z.enum(['active', 'suspended']) }),
  key: byUser,
})

const device = { deviceId: id, userId: id }
export const DeviceCreated = defineEvent('device.created', {
  schema: z.object({ ...device, name: z.string(), orderId: z.string().optional() }),
  key: byUser,
})
export const DeviceStarted = defineEvent('device.started', {
  schema: z.object({ ...device, at: z.number().int() }),
  key: byUser,
})
export const DeviceStopped = defineEvent('device.stopped', {
  schema: z.object({ ...device, at: z.number().int() }),
  key: byUser,
})
export const DeviceUpdated = defineEvent('device.updated', {
  schema: z.object({ ...device, ownerName: z.string() }),
  key: byUser,
})
export const DeviceDeleted = defineEvent('device.deleted', {
  schema: z.object({ ...device, reason: z.string() }),
  key: byUser,
})

const order = { orderId: id, userId: id }
export const OrderCreated = defineEvent('order.created', {
  schema: z.object({ ...order, planId: z.string(), amountCents: z.number().int().positive() }),
  key: byUser,
})
export const OrderPaid = defineEvent('order.paid', {
  schema: z.object({ ...order, amountCents: z.number().int().positive() }),
  key: byUser,
})
export const OrderCancelled = defineEvent('order.cancelled', {
  schema: z.object({ ...order, reason: z.string() }),
  key: byUser,
})
export const OrderRefunded = defineEvent('order.refunded', {
  schema: z.object({ ...order, amountCents: z.number().int().positive() }),
  key: byUser,
})

// The purchase saga's steps: the device service allocates the paid order's phone, or says why it cannot.
export const DeviceAllocated = defineEvent('device.allocated', {
  schema: z.object({ ...order, deviceId: id }),
  key: byUser,
})
export const DeviceAllocationFailed = defineEvent('device.allocation_failed', {
  schema: z.object({ ...order, reason: z.string() }),
  key: byUser,
})
export const OrderFulfilled = defineEvent('order.fulfilled', {
  schema: z.object({ ...order, deviceId: id }),
  key: byUser,
})
export const AllocateDevice = defineCommand('device.allocate', {
  schema: z.object({ ...order, planId: z.string() }),
  key: byUser,
})
export const ReleaseDevice = defineCommand('device.release', { schema: z.object(order), key: byUser })
export const RefundOrder = defineCommand('order.refund', {
  schema: z.object({ ...order, reason: z.string() }),
  key: byUser,
})

const install = { installId: id, deviceId: id, userId: id, appId: id }
export const AppInstallRequested = defineEvent('app.install.requested', { schema: z.object(install), key: byUser })
export const AppInstallCompleted = defineEvent('app.install.completed', { schema: z.object(install), key: byUser })

// ---- what clients ask of the services (the platform's HTTP API, as commands) ----

export const CreateUser = defineCommand('user.create', { schema: z.object({ ...profile, tenantId: id }), key: byUser })
export const UpdateUser = defineCommand('user.update', { schema: z.object(profile), key: byUser })
export const DeleteUser = defineCommand('user.delete', { schema: z.object({ userId: id }), key: byUser })
export const CreateDevice = defineCommand('device.create', {
  schema: z.object({ ...device, name: z.string() }),
  key: byUser,
})
export const StartDevice = defineCommand('device.start', { schema: z.object(device), key: byUser })
export const StopDevice = defineCommand('device.stop', { schema: z.object(device), key: byUser })
export const PlaceOrder = defineCommand('order.place', {
  schema: z.object({ ...order, planId: z.enum(['basic', 'pro', 'enterprise']) }),
  key: byUser,
})
export const PayOrder = defineCommand('order.pay', { schema: z.object(order), key: byUser })
export const CancelOrder = defineCommand('order.cancel', {
  schema: z.object({ ...order, reason: z.string() }),
  key: byUser,
})
export const InstallApp = defineCommand('app.install', { schema: z.object(install), key: byUser })

// An operator's announcement to many users at once (maintenance, a new plan): one batch of the notification service.
export const Broadcast = defineCommand('notification.broadcast', {
  schema: z.object({
    broadcastId: id,
    template: z.string(),
    recipients: z
      .array(z.object({ userId: id, phone: z.string().max(32), data: z.record(z.string(), z.string()).optional() }))
      .min(1)
      .max(5_000),
  }),
  key: (data) => data.broadcastId,
})

export const allContracts: readonly MessageContract[] = [
  UserCreated,
  UserUpdated,
  UserDeleted,
  UserStatusChanged,
  DeviceCreated,
  DeviceStarted,
  DeviceStopped,
  DeviceUpdated,
  DeviceDeleted,
  OrderCreated,
  OrderPaid,
  OrderCancelled,
  OrderRefunded,
  AppInstallRequested,
  AppInstallCompleted,
  CreateUser,
  UpdateUser,
  DeleteUser,
  CreateDevice,
  StartDevice,
  StopDevice,
  PlaceOrder,
  PayOrder,
  CancelOrder,
  InstallApp,
  DeviceAllocated,
  DeviceAllocationFailed,
  OrderFulfilled,
  AllocateDevice,
  ReleaseDevice,
  RefundOrder,
  Broadcast,
]

/** Plans on sale, in fen (1/100 yuan). */
export const plans = { basic: 9_900, pro: 29_900, enterprise: 99_900 } as const
