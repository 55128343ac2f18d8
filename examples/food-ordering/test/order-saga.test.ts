import { message, sagaSpec, timeout } from '@herald/saga'
import { describe, it } from 'vitest'
import {
  CancelPayment,
  CookingFailed,
  OrderCooked,
  OrderCreated,
  OrderPaid,
  OrderStatusChanged,
  ReleaseStock,
} from '../src/contracts.js'
import { orderSaga } from '../src/order-saga.js'

const spec = sagaSpec(orderSaga({ paymentTimeoutMs: 60_000 }))
const created = message(OrderCreated, {
  orderId: 'o1',
  customerId: 'c1',
  items: [{ id: 'noodles', quantity: 2 }],
  totalCents: 2400,
})
const paid = message(OrderPaid, {
  orderId: 'o1',
  sessionId: 'cs_1',
  amountCents: 2400,
  items: [{ id: 'noodles', quantity: 2 }],
})

describe('food-ordering order saga', () => {
  it('food-saga-paid-then-ready: created → paid → cooked completes, the payment timeout cancelled', () => {
    spec
      .given([])
      .when(created)
      .then({
        status: 'running',
        timeouts: [{ name: 'payment', afterMs: 60_000 }],
        messages: [{ type: OrderStatusChanged.type, data: { orderId: 'o1', status: 'awaiting_payment' } }],
      })
    spec.given([created]).when(paid).then({ pending: [] })
    spec
      .given([created, paid])
      .when(message(OrderCooked, { orderId: 'o1' }))
      .then({
        status: 'completed',
        messages: [{ type: OrderStatusChanged.type, data: { orderId: 'o1', status: 'ready' } }],
      })
  })

  it('food-saga-payment-timeout: no payment cancels the checkout, then releases the stock', () => {
    spec
      .given([created])
      .when(timeout('payment'))
      .then({
        status: 'compensated',
        messages: [
          { type: OrderStatusChanged.type, data: { orderId: 'o1', status: 'cancelled', reason: 'payment_timeout' } },
          { type: CancelPayment.type, data: { orderId: 'o1' } },
          { type: ReleaseStock.type, data: { orderId: 'o1' } },
        ],
      })
    // A payment that comes after the saga ended changes nothing here; CancelPayment refunds it.
    spec
      .given([created, timeout('payment')])
      .when(paid)
      .then({ ignored: 'ended', messages: [] })
  })

  it('food-saga-kitchen-failure: a kitchen failure refunds and releases; a duplicate payment changes nothing', () => {
    spec
      .given([created, paid])
      .when(message(CookingFailed, { orderId: 'o1', reason: 'burnt' }))
      .then({
        status: 'compensated',
        messages: [
          { type: OrderStatusChanged.type, data: { orderId: 'o1', status: 'cancelled', reason: 'kitchen: burnt' } },
          { type: CancelPayment.type, data: { orderId: 'o1' } },
          { type: ReleaseStock.type, data: { orderId: 'o1' } },
        ],
      })
    spec.given([created, paid]).when(paid).then({ status: 'running', messages: [] })
  })
})
