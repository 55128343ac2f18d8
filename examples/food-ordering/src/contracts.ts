import { defineCommand, defineEvent, type MessageContract } from '@herald/core'
import { z } from 'zod'

/** One line of an order: a dish and how many. */
export const itemWithQuantity = z.object({ id: z.string().min(1).max(64), quantity: z.number().int().min(1).max(50) })
const items = z.array(itemWithQuantity).min(1).max(20)
const byOrder = (data: { orderId: string }) => data.orderId

// Asked by the order service before it takes an order: all of its items are reserved, or none (with why not).
// Idempotent per order, so a retried request gets the same answer.
export const ReserveStock = defineCommand('stock.reserve', {
  schema: z.object({ orderId: z.string().min(1).max(64), items }),
  reply: z.object({ reserved: z.boolean(), totalCents: z.number().int(), reason: z.string() }),
  key: byOrder,
})

// The order service publishes it once the stock is reserved; the payment service opens a checkout for it.
export const OrderCreated = defineEvent('order.created', {
  schema: z.object({ orderId: z.string(), customerId: z.string(), items, totalCents: z.number().int().positive() }),
  key: byOrder,
})

export const PaymentLinkCreated = defineEvent('payment.link_created', {
  schema: z.object({ orderId: z.string(), sessionId: z.string(), checkoutUrl: z.string() }),
  key: byOrder,
})

// Broadcast by the payment service when the checkout's webhook says paid: the order and the kitchen both get it.
export const OrderPaid = defineEvent('order.paid', {
  schema: z.object({ orderId: z.string(), sessionId: z.string(), amountCents: z.number().int(), items }),
  key: byOrder,
})

export const OrderCooked = defineEvent('kitchen.cooked', { schema: z.object({ orderId: z.string() }), key: byOrder })
export const CookingFailed = defineEvent('kitchen.failed', {
  schema: z.object({ orderId: z.string(), reason: z.string() }),
  key: byOrder,
})

// The order's status as the order saga decides it; the order service's read model follows these.
export const OrderStatusChanged = defineEvent('order.status_changed', {
  schema: z.object({
    orderId: z.string(),
    status: z.enum(['awaiting_payment', 'paid', 'ready', 'cancelled']),
    reason: z.string().optional(),
  }),
  key: byOrder,
})

// Compensations: what the saga sends to undo a step.
export const ReleaseStock = defineCommand('stock.release', {
  schema: z.object({ orderId: z.string() }),
  key: byOrder,
})
// The order will not be paid for: close its checkout, and refund the payment if it was made (even later).
export const CancelPayment = defineCommand('payment.cancel', {
  schema: z.object({ orderId: z.string() }),
  key: byOrder,
})

export const StockReleased = defineEvent('stock.released', { schema: z.object({ orderId: z.string() }), key: byOrder })
export const PaymentCancelled = defineEvent('payment.cancelled', {
  schema: z.object({ orderId: z.string(), refundedCents: z.number().int() }),
  key: byOrder,
})

export const allContracts: readonly MessageContract[] = [
  ReserveStock,
  OrderCreated,
  PaymentLinkCreated,
  OrderPaid,
  OrderCooked,
  CookingFailed,
  OrderStatusChanged,
  ReleaseStock,
  CancelPayment,
  StockReleased,
  PaymentCancelled,
]
