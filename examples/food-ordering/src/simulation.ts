import type { Order } from './services/order-service.js'

export interface CustomerPlan {
  /** Pays at once, never pays (the order's payment timeout cancels it), or declines first, then pays. */
  readonly pays: 'now' | 'never' | 'after_decline'
  readonly items: ReadonlyArray<{ id: string; quantity: number }>
}

export interface SimulationReport {
  readonly placed: number
  /** Orders asked for again after a 503. */
  readonly retried: number
  readonly statuses: Record<string, number>
  readonly reasons: Record<string, number>
  /** Orders still not finished when the run ended. */
  readonly unfinished: readonly string[]
}

const finished = new Set(['ready', 'cancelled', 'rejected'])

async function json<T>(response: Response): Promise<T> {
  const text = await response.text()
  try {
    return JSON.parse(text) as T
  } catch {
    throw new Error(`${response.url}: HTTP ${response.status} ${text.slice(0, 200)}`)
  }
}

/** Picks what the n-th customer orders and how they pay, the same way every run. */
export function planCustomer(n: number): CustomerPlan {
  const dishes = ['noodles', 'dumplings', 'mapo-tofu', 'fried-rice']
  const items = [{ id: dishes[n % dishes.length] as string, quantity: 1 + (n % 3) }]
  if (n % 7 === 3) items.push({ id: 'souffle', quantity: 1 })
  if (n % 13 === 6) items.push({ id: 'chefs-special', quantity: 1 })
  return { items, pays: n % 10 === 4 ? 'never' : n % 10 === 7 ? 'after_decline' : 'now' }
}

/**
 * Customers against the order service's HTTP API, as the web page does it: place an order, wait for its payment
 * link, pay at the checkout, and poll until the order is finished.
 */
export async function simulateCustomers(options: {
  readonly orderUrl: string
  readonly customers: number
  readonly intervalMs: number
  readonly signal: AbortSignal
  readonly deadlineMs: number
  readonly onActivity?: (line: string) => void
}): Promise<SimulationReport> {
  const statuses: Record<string, number> = {}
  const reasons: Record<string, number> = {}
  const unfinished: string[] = []
  let placed = 0
  let retried = 0
  const deadline = Date.now() + options.deadlineMs

  async function customer(n: number): Promise<void> {
    const plan = planCustomer(n)
    const customerId = `customer-${n}`
    let order: Order | undefined
    // A 503 (the stock service is down or slow) placed nothing: the customer tries again, as the web page lets them.
    while (order === undefined) {
      const created = await fetch(`${options.orderUrl}/customer/${customerId}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ items: plan.items }),
      })
      const body = await json<Order & { order?: Order; error?: string }>(created)
      if (created.status === 503 && Date.now() < deadline) {
        retried += 1
        await new Promise((resolve) => setTimeout(resolve, 200))
        continue
      }
      order = body.order ?? body
      if (order.id === undefined) throw new Error(`order not placed: HTTP ${created.status} ${body.error}`)
    }
    placed += 1
    options.onActivity?.(`${order.id.slice(0, 8)} placed (${order.status})`)
    let paid = plan.pays === 'never'
    for (;;) {
      const current = await json<Order>(await fetch(`${options.orderUrl}/customer/${customerId}/orders/${order.id}`))
      if (finished.has(current.status)) {
        statuses[current.status] = (statuses[current.status] ?? 0) + 1
        if (current.reason !== undefined) reasons[current.reason] = (reasons[current.reason] ?? 0) + 1
        options.onActivity?.(`${order.id.slice(0, 8)} ${current.status}${current.reason ? ` (${current.reason})` : ''}`)
        return
      }
      if (!paid && current.paymentLink !== undefined) {
        if (plan.pays === 'after_decline') await checkout(current.paymentLink, 'decline')
        await checkout(current.paymentLink, 'pay')
        paid = true
      }
      if (Date.now() > deadline || options.signal.aborted) {
        unfinished.push(order.id)
        return
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  async function checkout(link: string, outcome: 'pay' | 'decline'): Promise<void> {
    const response = await fetch(link, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ outcome }),
    })
    if (!response.ok) throw new Error(`checkout ${outcome} failed: HTTP ${response.status} ${await response.text()}`)
  }

  const running: Promise<void>[] = []
  for (let n = 0; n < options.customers && !options.signal.aborted; n++) {
    running.push(customer(n))
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs))
  }
  await Promise.all(running)
  return { placed, retried, statuses, reasons, unfinished }
}
