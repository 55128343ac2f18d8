import { defineSaga, message } from '@herald/saga'
import { z } from 'zod'
import {
  CancelPayment,
  CookingFailed,
  OrderCooked,
  OrderCreated,
  OrderPaid,
  OrderStatusChanged,
  ReleaseStock,
} from './contracts.js'

const byOrder = (data: { orderId: string }) => data.orderId

/**
 * The order's flow, after its stock was reserved: payment link → paid → kitchen → ready. A payment that does not
 * come within `paymentTimeoutMs` cancels the checkout and releases the stock; a kitchen failure refunds, then
 * releases. Each reply that does not fit the step the order is at (a duplicate, a late one) changes nothing.
 */
export function orderSaga(options: { readonly paymentTimeoutMs: number }) {
  return defineSaga('food.order', {
    state: z.object({
      orderId: z.string(),
      totalCents: z.number().int(),
      step: z.enum(['awaiting_payment', 'cooking']),
    }),
  })
    .startedBy(OrderCreated, byOrder, (state, { data }) =>
      state !== undefined
        ? {}
        : {
            state: { orderId: data.orderId, totalCents: data.totalCents, step: 'awaiting_payment' },
            messages: [message(OrderStatusChanged, { orderId: data.orderId, status: 'awaiting_payment' })],
            // Undone newest first: the checkout is closed (refunded if paid) before the stock goes back.
            compensation: [
              message(ReleaseStock, { orderId: data.orderId }),
              message(CancelPayment, { orderId: data.orderId }),
            ],
            timeouts: [{ name: 'payment', afterMs: options.paymentTimeoutMs }],
          },
    )
    .on(OrderPaid, byOrder, (state) =>
      state.step !== 'awaiting_payment'
        ? {}
        : {
            state: { ...state, step: 'cooking' },
            messages: [message(OrderStatusChanged, { orderId: state.orderId, status: 'paid' })],
            cancelTimeouts: ['payment'],
          },
    )
    .on(OrderCooked, byOrder, (state) =>
      state.step !== 'cooking'
        ? {}
        : { complete: true, messages: [message(OrderStatusChanged, { orderId: state.orderId, status: 'ready' })] },
    )
    .on(CookingFailed, byOrder, (state, { data }) =>
      state.step !== 'cooking'
        ? {}
        : {
            compensate: 'kitchen_failed',
            messages: [
              message(OrderStatusChanged, {
                orderId: state.orderId,
                status: 'cancelled',
                reason: `kitchen: ${data.reason}`,
              }),
            ],
          },
    )
    .onTimeout('payment', (state) => ({
      compensate: 'payment_timeout',
      messages: [
        message(OrderStatusChanged, { orderId: state.orderId, status: 'cancelled', reason: 'payment_timeout' }),
      ],
    }))
}
