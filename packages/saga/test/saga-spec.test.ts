import { describe, expect, it } from 'vitest'
import { message, sagaSpec, timeout } from '../src/index.js'
import {
  KitchenFailed,
  OrderCancelled,
  OrderPlaced,
  OrderReady,
  orderSaga,
  PaymentReceived,
  RefundPayment,
  ReleaseStock,
  RequestPayment,
  ReserveStock,
  StartCooking,
  StockReserved,
} from './fixtures/order-saga.js'

const saga = orderSaga(60_000)
const spec = sagaSpec(saga)
const placed = message(OrderPlaced, { orderId: 'o1', amount: 30 })
const reserved = message(StockReserved, { orderId: 'o1' })
const paid = message(PaymentReceived, { orderId: 'o1' })

describe('saga spec (given / when / then, no transport)', () => {
  it('saga-spec-start: the first message starts an instance and sends its first command', () => {
    spec
      .given([])
      .when(placed)
      .then({
        state: { orderId: 'o1', amount: 30, step: 'reserving' },
        status: 'running',
        messages: [{ type: ReserveStock.type, data: { orderId: 'o1' } }],
        events: ['started'],
      })
  })

  it('saga-spec-timeout: a payment that never comes compensates with what the steps recorded', () => {
    spec
      .given([placed, reserved])
      .when(timeout('payment'))
      .then({
        status: 'compensated',
        messages: [
          { type: OrderCancelled.type, data: { orderId: 'o1', reason: 'payment_timeout' } },
          { type: ReleaseStock.type, data: { orderId: 'o1' } },
        ],
        events: ['timed_out', 'compensated'],
        pending: [],
      })
  })

  it('saga-spec-cancelled-timeout: once paid, the payment timeout is ignored', () => {
    spec.given([placed, reserved, paid]).when(timeout('payment')).then({ ignored: 'stale_timeout', messages: [] })
  })

  it('saga-spec-compensation-order: a kitchen failure undoes the steps newest first', () => {
    spec
      .given([placed, reserved, paid])
      .when(message(KitchenFailed, { orderId: 'o1' }))
      .then({
        status: 'compensated',
        messages: [
          { type: OrderCancelled.type, data: { orderId: 'o1', reason: 'kitchen_failed' } },
          { type: RefundPayment.type, data: { orderId: 'o1' } },
          { type: ReleaseStock.type, data: { orderId: 'o1' } },
        ],
      })
  })

  it('saga-spec-after-completion: a message for a completed saga is ignored', () => {
    const ready = message(OrderReady, { orderId: 'o1' })
    spec
      .given([placed, reserved, paid, ready])
      .when(ready)
      .then({ ignored: 'ended', status: 'completed', messages: [] })
  })

  it('saga-spec-out-of-order: payment before the order finds no instance and is retried', () => {
    spec.given([]).when(paid).then({ ignored: 'missing', state: undefined })
  })

  it('saga-spec-steps: requests and timeouts are what the handler returned', () => {
    const result = spec.given([placed]).when(reserved).result()
    expect(result.messages).toEqual([{ type: RequestPayment.type, data: { orderId: 'o1', amount: 30 } }])
    expect(result.timeouts).toEqual([{ name: 'payment', afterMs: 60_000 }])
    expect(spec.given([placed, reserved]).when(paid).result().messages).toEqual([
      { type: StartCooking.type, data: { orderId: 'o1' } },
    ])
  })

  it('saga-spec-mismatch: then() reports a difference, and messages of another instance are refused', () => {
    expect(() => spec.given([]).when(placed).then({ status: 'completed' })).toThrow(
      /Expected values to be strictly deep-equal/,
    )
    expect(() => spec.given([placed]).when(message(StockReserved, { orderId: 'o2' }))).not.toThrow()
    expect(() =>
      spec
        .given([placed])
        .when(message(StockReserved, { orderId: 'o2' }))
        .result(),
    ).toThrow(/one instance/)
  })
})
