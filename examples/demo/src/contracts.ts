import { defineCommand, defineEvent } from '@herald/core'
import { z } from 'zod'

/** The demo's messages, defined once and shared by every service. */
export const OrderPlaced = defineEvent('order.placed', {
  version: 2,
  schema: z.object({ orderId: z.string(), dish: z.string(), amountCents: z.number().int().positive() }),
  // Version 1 carried the amount in whole euros.
  upcasters: { 1: (v1) => ({ ...(v1 as object), amountCents: Math.round((v1 as { amount: number }).amount * 100) }) },
})

export const PaymentCaptured = defineEvent('payment.captured', {
  schema: z.object({ orderId: z.string(), dish: z.string(), amountCents: z.number().int() }),
})

export const PrepareDish = defineCommand('kitchen.prepare', {
  schema: z.object({ orderId: z.string(), dish: z.string() }),
})

export const OrderReady = defineEvent('order.ready', {
  schema: z.object({ orderId: z.string(), dish: z.string() }),
})
