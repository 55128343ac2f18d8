import { defineSaga, message } from '@herald/saga'
import { z } from 'zod'
import {
  AllocateDevice,
  DeviceAllocated,
  DeviceAllocationFailed,
  OrderCancelled,
  OrderCreated,
  OrderFulfilled,
  OrderPaid,
  RefundOrder,
  ReleaseDevice,
} from './contracts.js'

const byOrder = (data: { orderId: string }) => data.orderId

/**
 * A plan purchase: created → paid → a device allocated → fulfilled. An order not paid within `paymentMs` is
 * cancelled; an allocation that fails or takes longer than `allocationMs` releases whatever device was taken and
 * refunds the payment, newest first. The design ran this in billing with no timeouts and no undo.
 */
export function purchaseSaga(options: { readonly paymentMs: number; readonly allocationMs: number }) {
  return defineSaga('cloudphone.purchase', {
    state: z.object({
      orderId: z.string(),
      userId: z.string(),
      planId: z.string(),
      amountCents: z.number().int(),
      step: z.enum(['awaiting_payment', 'allocating']),
    }),
  })
    .startedBy(OrderCreated, byOrder, (state, { data }) =>
      state !== undefined
        ? {}
        : { state: { ...data, step: 'awaiting_payment' }, timeouts: [{ name: 'payment', afterMs: options.paymentMs }] },
    )
    .on(OrderPaid, byOrder, (state) => {
      if (state.step !== 'awaiting_payment') return {}
      const ids = { orderId: state.orderId, userId: state.userId }
      return {
        state: { ...state, step: 'allocating' },
        messages: [message(AllocateDevice, { ...ids, planId: state.planId })],
        compensation: [message(RefundOrder, { ...ids, reason: 'device not allocated' }), message(ReleaseDevice, ids)],
        cancelTimeouts: ['payment'],
        timeouts: [{ name: 'allocation', afterMs: options.allocationMs }],
      }
    })
    .on(DeviceAllocated, byOrder, (state, { data }) =>
      state.step !== 'allocating'
        ? {}
        : {
            complete: true,
            cancelTimeouts: ['allocation'],
            messages: [
              message(OrderFulfilled, { orderId: state.orderId, userId: state.userId, deviceId: data.deviceId }),
            ],
          },
    )
    .on(DeviceAllocationFailed, byOrder, (state) =>
      state.step !== 'allocating' ? {} : { compensate: 'allocation_failed' },
    )
    .onTimeout('payment', (state) => ({
      compensate: 'payment_timeout',
      messages: [message(OrderCancelled, { orderId: state.orderId, userId: state.userId, reason: 'payment_timeout' })],
    }))
    .onTimeout('allocation', () => ({ compensate: 'allocation_timeout' }))
}
