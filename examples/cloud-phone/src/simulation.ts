import { createBus, type EventContract, type Transport } from '@herald/core'
import {
  AppInstallCompleted,
  allContracts,
  CancelOrder,
  CreateUser,
  DeleteUser,
  DeviceCreated,
  DeviceDeleted,
  DeviceStarted,
  DeviceStopped,
  InstallApp,
  OrderCancelled,
  OrderCreated,
  OrderPaid,
  OrderRefunded,
  PayOrder,
  PlaceOrder,
  StartDevice,
  StopDevice,
  UpdateUser,
  UserCreated,
  UserUpdated,
} from './contracts.js'

export interface SimulationReport {
  readonly users: number
  /** What the users did, counted as they saw it happen. */
  readonly steps: Record<string, number>
  /** Users whose flow did not finish by the deadline, with the step they were waiting for. */
  readonly unfinished: readonly string[]
}

/**
 * Users of the platform, as its web client would drive it: sign up, buy a plan (some never pay and the order
 * times out; some buy a plan no device serves and are refunded; some cancel after paying and are refunded), get the
 * device the order allocates, start and stop it (metered), install an app, sometimes change their name; the first
 * one deletes their account at the end. Each step waits for the event that says it
 * happened, so the run checks the platform's flows end to end.
 */
export async function simulateUsers(options: {
  readonly transport: Transport
  readonly users: number
  /** Users at a time. */
  readonly concurrency: number
  readonly deadlineMs: number
  readonly onActivity?: (line: string) => void
}): Promise<SimulationReport> {
  const bus = createBus({ transport: options.transport, service: 'cloud-phone-client', contracts: allContracts })
  const waiters = new Map<string, () => void>()
  const seen = new Set<string>()
  const watch = <C extends EventContract>(contract: C, id: (data: never) => string) =>
    bus.group('cloud-phone-client').on(contract, async (message) => {
      const key = `${contract.type}:${id(message.data as never)}`
      seen.add(key)
      waiters.get(key)?.()
    })
  watch(UserCreated, (d: { userId: string }) => d.userId)
  watch(UserUpdated, (d: { userId: string; username: string }) => `${d.userId}:${d.username}`)
  watch(OrderCreated, (d: { orderId: string }) => d.orderId)
  watch(OrderPaid, (d: { orderId: string }) => d.orderId)
  watch(OrderRefunded, (d: { orderId: string }) => d.orderId)
  watch(OrderCancelled, (d: { orderId: string }) => d.orderId)
  watch(DeviceCreated, (d: { deviceId: string }) => d.deviceId)
  watch(DeviceStarted, (d: { deviceId: string }) => d.deviceId)
  watch(DeviceStopped, (d: { deviceId: string }) => d.deviceId)
  watch(DeviceDeleted, (d: { deviceId: string }) => d.deviceId)
  watch(AppInstallCompleted, (d: { installId: string }) => d.installId)
  await bus.start()

  const deadline = Date.now() + options.deadlineMs
  const steps: Record<string, number> = {}
  const unfinished: string[] = []
  const step = (name: string) => {
    steps[name] = (steps[name] ?? 0) + 1
  }

  /** Resolves when the event `key` has been seen; rejects at the run's deadline. */
  function until(key: string): Promise<void> {
    if (seen.has(key)) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => {
          waiters.delete(key)
          reject(new Error(key))
        },
        Math.max(0, deadline - Date.now()),
      )
      waiters.set(key, () => {
        clearTimeout(timer)
        waiters.delete(key)
        resolve()
      })
    })
  }

  async function user(i: number): Promise<void> {
    const userId = `u${String(i).padStart(3, '0')}`
    const orderId = `o-${userId}`
    const deviceId = `dev-${orderId}`
    const profile = {
      userId,
      username: `用户${i}`,
      email: `${userId}@example.com`,
      phone: `+86138${String(i).padStart(8, '0')}`,
    }
    await bus.send(CreateUser, { ...profile, tenantId: 'tenant-1' })
    await until(`${UserCreated.type}:${userId}`)
    step('signed_up')
    // Every tenth from 8 never pays; every tenth from 9 buys the enterprise plan, which no device can serve.
    const plan = i % 10 === 9 ? 'enterprise' : i % 3 === 0 ? 'pro' : 'basic'
    await bus.send(PlaceOrder, { orderId, userId, planId: plan })
    await until(`${OrderCreated.type}:${orderId}`)
    if (i % 10 === 8) {
      await until(`${OrderCancelled.type}:${orderId}`)
      step('payment_timed_out')
      return
    }
    await bus.send(PayOrder, { orderId, userId })
    await until(`${OrderPaid.type}:${orderId}`)
    step('paid')
    if (plan === 'enterprise') {
      await until(`${OrderRefunded.type}:${orderId}`)
      step('allocation_failed_refunded')
      return
    }
    await until(`${DeviceCreated.type}:${deviceId}`)
    step('device_allocated')
    await bus.send(StartDevice, { deviceId, userId })
    await until(`${DeviceStarted.type}:${deviceId}`)
    await bus.send(StopDevice, { deviceId, userId })
    await until(`${DeviceStopped.type}:${deviceId}`)
    step('device_used')
    const installId = `inst-${userId}`
    await bus.send(InstallApp, { installId, deviceId, userId, appId: 'wechat' })
    await until(`${AppInstallCompleted.type}:${installId}`)
    step('app_installed')
    if (i % 10 === 4) {
      // Cancelled after paying: refunded, and the phone goes back.
      await bus.send(CancelOrder, { orderId, userId, reason: 'changed my mind' })
      await until(`${OrderRefunded.type}:${orderId}`)
      await until(`${DeviceDeleted.type}:${deviceId}`)
      step('refunded')
    }
    if (i % 4 === 0) {
      const username = `${profile.username}（新）`
      await bus.send(UpdateUser, { ...profile, username })
      await until(`${UserUpdated.type}:${userId}:${username}`)
      step('renamed')
    }
    if (i === 0) {
      await bus.send(DeleteUser, { userId })
      await until(`${DeviceDeleted.type}:${deviceId}`)
      step('deleted')
    }
    options.onActivity?.(`${userId}: done`)
  }

  let next = 0
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (next < options.users) {
        const i = next++
        await user(i).catch((err: Error) =>
          unfinished.push(`u${String(i).padStart(3, '0')} waiting for ${err.message}`),
        )
      }
    }),
  )
  await bus.stop()
  return { users: options.users, steps, unfinished }
}
