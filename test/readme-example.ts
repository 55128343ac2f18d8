import { createBus, defineEvent, PermanentError } from '@herald/core'
import { createSqliteTransport } from '@herald/sqlite'
import { z } from 'zod'

const OrderPlaced = defineEvent('order.placed', {
  version: 1,
  schema: z.object({ orderId: z.string(), amountCents: z.number().int().positive() }),
})
const InvoiceIssued = defineEvent('invoice.issued', {
  schema: z.object({ orderId: z.string(), invoiceId: z.string() }),
})

const transport = createSqliteTransport({ path: './herald.db' })
const bus = createBus({ transport, service: 'billing' })

bus.on(OrderPlaced, async (message, context) => {
  // message.data is typed from the schema; a throw is retried with backoff, a PermanentError is dead-lettered.
  if (message.data.amountCents > 1_000_000) throw new PermanentError('needs manual review')
  // Published through the context, the invoice carries the order's correlation id and names the order as its cause.
  await context.publish(InvoiceIssued, { orderId: message.data.orderId, invoiceId: `inv-${message.data.orderId}` })
})

// Another group gets its own copy of every invoice.issued event.
let mailed = (): void => {}
const invoiceMailed = new Promise<void>((resolve) => (mailed = resolve))
bus.group('mailer').on(InvoiceIssued, async ({ data, correlationId }) => {
  console.log(`invoice ${data.invoiceId} for order ${data.orderId} (flow ${correlationId})`)
  mailed()
})

await bus.start()
await bus.publish(OrderPlaced, { orderId: 'o-1', amountCents: 1250 })
await invoiceMailed
await bus.stop() // lets running handlers finish
await transport.close()
