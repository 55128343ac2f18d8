import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Transport } from '@herald/core'
import { createSqliteTransport } from '@herald/sqlite'
import type { Order } from '../src/services/order-service.js'
import { type RunningService, type ServiceConfig, type ServiceName, startService } from '../src/system.js'

export interface TestSystem {
  readonly dir: string
  readonly transport: Transport
  readonly services: Record<ServiceName, RunningService>
  /** Further order-service instances (sharing the first one's database files). */
  readonly orders: readonly RunningService[]
  readonly config: ServiceConfig
  placeOrder(
    customerId: string,
    items: ReadonlyArray<{ id: string; quantity: number }>,
    orderUrl?: string,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: Order & { error?: string; message?: string; order?: Order } }>
  getOrder(customerId: string, orderId: string): Promise<Order>
  stop(): Promise<void>
}

/** Every food-ordering service in this process, on one SQLite bus in a temp dir. */
export async function startSystem(
  options: Partial<ServiceConfig> & {
    readonly orderInstances?: number
    /** Wraps the bus's transport (with `createObservability().instrument`, say). */
    readonly wrapTransport?: (transport: Transport) => Transport
  } = {},
): Promise<TestSystem> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-food-'))
  const bare = createSqliteTransport({ path: join(dir, 'bus.db') })
  const transport = options.wrapTransport?.(bare) ?? bare
  const errors: unknown[] = []
  const config: ServiceConfig = {
    transport,
    dataDir: dir,
    host: '127.0.0.1',
    port: 0,
    paymentTimeoutMs: 60_000,
    cookMs: 10,
    failingDishes: new Set(['souffle']),
    webhookSecret: `whsec_${randomBytes(24).toString('hex')}`,
    onError: (err) => errors.push(err),
    ...options,
  }
  const stock = await startService('stock', config)
  const orderConfig = { ...config, stockAddress: stock.url as string }
  const order = await startService('order', { ...orderConfig, instance: 'a' })
  const orders = [order]
  for (let i = 1; i < (options.orderInstances ?? 1); i++)
    orders.push(await startService('order', { ...orderConfig, instance: String.fromCharCode(97 + i) }))
  const payment = await startService('payment', { ...config, orderPublicUrl: order.url as string })
  const kitchen = await startService('kitchen', config)
  const services = { stock, order, payment, kitchen }
  return {
    dir,
    transport,
    services,
    orders,
    config,
    async placeOrder(customerId, items, orderUrl = order.url, headers = {}) {
      const response = await fetch(`${orderUrl}/customer/${customerId}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ items }),
      })
      return { status: response.status, body: (await response.json()) as Order & { error?: string } }
    },
    async getOrder(customerId, orderId) {
      return (await (await fetch(`${order.url}/customer/${customerId}/orders/${orderId}`)).json()) as Order
    },
    async stop() {
      for (const service of [kitchen, payment, ...orders.slice(1), order, stock]) await service.stop()
      await transport.close()
      rmSync(dir, { recursive: true, force: true })
      if (errors.length > 0) throw new AggregateError(errors, 'a food-ordering service reported errors')
    },
  }
}
