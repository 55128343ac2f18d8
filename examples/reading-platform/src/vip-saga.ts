import { defineSaga, message } from '@herald/saga'
import { z } from 'zod'
import { SubscriptionExpired, VipActivated, VipExpired } from './contracts.js'

const byUser = (data: { userId: string }) => data.userId

/**
 * A reader's VIP membership as a durable timeout: activated for `days`, renewed by another purchase (which moves
 * the expiry), expired by the timeout (`vip.expired` and `subscription.expired`). The timeout survives restarts;
 * a renewal's new timeout replaces the pending one.
 */
export function vipSaga() {
  return defineSaga('reading.vip', { state: z.object({ userId: z.string(), days: z.number().int() }) })
    .startedBy(VipActivated, byUser, (state, { data, time }) => ({
      state: { userId: data.userId, days: (state?.days ?? 0) + data.days },
      // Measured from when the activation happened, so a handler run late (or again) asks for the same expiry.
      timeouts: [{ name: 'expiry', afterMs: Math.max(0, data.until - Date.parse(time)) }],
    }))
    .onTimeout('expiry', (state) => ({
      complete: true,
      messages: [
        message(VipExpired, { userId: state.userId }),
        message(SubscriptionExpired, { userId: state.userId, plan: 'vip' }),
      ],
    }))
}
