import { message, sagaSpec, timeout } from '@herald/saga'
import { describe, it } from 'vitest'
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
} from '../src/contracts.js'
import { purchaseSaga } from '../src/purchase-saga.js'

const spec = sagaSpec(purchaseSaga({ paymentMs: 60_000, allocationMs: 30_000 }))
const ids = { orderId: 'o1', userId: 'u1' }
const created = message(OrderCreated, { ...ids, planId: 'pro', amountCents: 29_900 })
const paid = message(OrderPaid, { ...ids, amountCents: 29_900 })
// Undone newest first: the phone goes back before the money does.
const undo = [
  { type: ReleaseDevice.type, data: ids },
  { type: RefundOrder.type, data: { ...ids, reason: 'device not allocated' } },
]

describe('the cloud-phone purchase saga', () => {
  it('cloud-phone purchase: created waits for payment; paid asks for a phone; allocated fulfils the order', () => {
    spec
      .given([])
      .when(created)
      .then({ status: 'running', timeouts: [{ name: 'payment', afterMs: 60_000 }] })
    spec
      .given([created])
      .when(paid)
      .then({
        status: 'running',
        pending: ['allocation'],
        timeouts: [{ name: 'allocation', afterMs: 30_000 }],
        messages: [{ type: AllocateDevice.type, data: { ...ids, planId: 'pro' } }],
      })
    spec
      .given([created, paid])
      .when(message(DeviceAllocated, { ...ids, deviceId: 'dev-o1' }))
      .then({ status: 'completed', messages: [{ type: OrderFulfilled.type, data: { ...ids, deviceId: 'dev-o1' } }] })
  })

  it('cloud-phone purchase: no phone, or none in time, releases and refunds, newest first', () => {
    spec
      .given([created, paid])
      .when(message(DeviceAllocationFailed, { ...ids, reason: 'no capacity for plan enterprise' }))
      .then({ status: 'compensated', messages: undo })
    spec.given([created, paid]).when(timeout('allocation')).then({ status: 'compensated', messages: undo })
  })

  it('cloud-phone purchase: an order nobody pays is cancelled with nothing to undo; a late payment is ignored', () => {
    spec
      .given([created])
      .when(timeout('payment'))
      .then({
        status: 'compensated',
        messages: [{ type: OrderCancelled.type, data: { ...ids, reason: 'payment_timeout' } }],
      })
    spec
      .given([created, timeout('payment')])
      .when(paid)
      .then({ ignored: 'ended', messages: [] })
  })
})
