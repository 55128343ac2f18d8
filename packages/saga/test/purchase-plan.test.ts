import { describe, it } from 'vitest'
import { message, sagaSpec, timeout } from '../src/index.js'
import {
  AllocateDevice,
  DeviceAllocated,
  DeviceAllocationFailed,
  PlanOrderCancelled,
  PlanOrderCreated,
  PlanOrderFulfilled,
  PlanOrderPaid,
  purchasePlanSaga,
  RefundPayment,
  ReleaseDevice,
} from './fixtures/purchase-plan-saga.js'

const spec = sagaSpec(purchasePlanSaga({ paymentMs: 900_000, allocationMs: 120_000 }))
const created = message(PlanOrderCreated, { orderId: 'p1', userId: 'u1', planId: 'basic', amountCents: 9900 })
const paid = message(PlanOrderPaid, { orderId: 'p1', paymentId: 'pay_1' })
const cancelledFor = (reason: string) => ({
  type: PlanOrderCancelled.type,
  data: { orderId: 'p1', userId: 'u1', reason },
})
// Undone newest first: the device (if one was taken) goes back before the money does.
const undo = [
  { type: ReleaseDevice.type, data: { orderId: 'p1' } },
  { type: RefundPayment.type, data: { orderId: 'p1', paymentId: 'pay_1', amountCents: 9900 } },
]

describe('the cloud-phone plan purchase saga', () => {
  it('saga-purchase-plan-fulfilled: created → paid asks for a device → allocated fulfils the order', () => {
    spec
      .given([])
      .when(created)
      .then({ status: 'running', timeouts: [{ name: 'payment', afterMs: 900_000 }] })
    spec
      .given([created])
      .when(paid)
      .then({
        status: 'running',
        pending: ['allocation'],
        timeouts: [{ name: 'allocation', afterMs: 120_000 }],
        messages: [{ type: AllocateDevice.type, data: { orderId: 'p1', userId: 'u1', planId: 'basic' } }],
      })
    spec
      .given([created, paid])
      .when(message(DeviceAllocated, { orderId: 'p1', deviceId: 'dev-7' }))
      .then({
        status: 'completed',
        pending: [],
        messages: [{ type: PlanOrderFulfilled.type, data: { orderId: 'p1', userId: 'u1', deviceId: 'dev-7' } }],
      })
  })

  it('saga-purchase-plan-allocation-failed: no device releases what was taken and refunds, then cancels', () => {
    spec
      .given([created, paid])
      .when(message(DeviceAllocationFailed, { orderId: 'p1', reason: 'no_capacity' }))
      .then({ status: 'compensated', messages: [cancelledFor('no_capacity'), ...undo] })
    spec
      .given([created, paid])
      .when(timeout('allocation'))
      .then({ status: 'compensated', messages: [cancelledFor('allocation_timeout'), ...undo] })
  })

  it('saga-purchase-plan-unpaid: no payment cancels the order with nothing to undo; a late payment changes nothing here', () => {
    spec
      .given([created])
      .when(timeout('payment'))
      .then({ status: 'compensated', messages: [cancelledFor('payment_timeout')] })
    spec
      .given([created, timeout('payment')])
      .when(paid)
      .then({ ignored: 'ended', messages: [] })
    // A device reported before the payment (out of order) is not this step's: nothing happens.
    spec
      .given([created])
      .when(message(DeviceAllocated, { orderId: 'p1', deviceId: 'dev-7' }))
      .then({ status: 'running', messages: [] })
  })
})
