/**
 * The broker's management HTTP API (the `rabbitmq_management` plugin, shipped with RabbitMQ): the one place a client
 * can list queues, their bindings and their rates. AMQP itself can only ask about a queue it already knows by name.
 */
export interface QueueFigures {
  /** Ready plus unacknowledged. */
  readonly messages: number
  readonly unacknowledged: number
  /** Acknowledgements per second, as the broker averages them; absent before the broker has a sample. */
  readonly ackedPerS: number | undefined
}

export interface ManagementClient {
  /** Every queue bound to `exchange`, with the routing keys (patterns) it is bound with. */
  queuesBoundTo(exchange: string): Promise<Map<string, string[]>>
  queue(name: string): Promise<QueueFigures | undefined>
}

interface Binding {
  readonly destination: string
  readonly destination_type: string
  readonly routing_key: string
}

interface QueueInfo {
  readonly messages?: number
  readonly messages_unacknowledged?: number
  readonly message_stats?: { readonly ack_details?: { readonly rate?: number } }
}

/** `managementUrl` is `http(s)://user:pass@host:15672`; `vhost` the AMQP URL's virtual host. */
export function createManagementClient(managementUrl: string, vhost: string, timeoutMs: number): ManagementClient {
  const url = new URL(managementUrl)
  // fetch refuses URLs with credentials: they go in the Authorization header instead.
  const authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`
  url.username = ''
  url.password = ''
  const base = url.toString().replace(/\/$/, '')
  const v = encodeURIComponent(vhost)

  async function get<T>(path: string): Promise<T | undefined> {
    const response = await fetch(`${base}/api/${path}`, {
      headers: { authorization },
      signal: AbortSignal.timeout(timeoutMs),
    })
    if (response.status === 404) return undefined
    if (!response.ok) throw new Error(`RabbitMQ management API ${path}: HTTP ${response.status}`)
    return (await response.json()) as T
  }

  return {
    async queuesBoundTo(exchange) {
      const bindings = (await get<Binding[]>(`exchanges/${v}/${encodeURIComponent(exchange)}/bindings/source`)) ?? []
      const byQueue = new Map<string, string[]>()
      for (const b of bindings) {
        if (b.destination_type !== 'queue') continue
        const keys = byQueue.get(b.destination)
        if (keys === undefined) byQueue.set(b.destination, [b.routing_key])
        else keys.push(b.routing_key)
      }
      return byQueue
    },
    async queue(name) {
      const info = await get<QueueInfo>(`queues/${v}/${encodeURIComponent(name)}`)
      if (info === undefined) return undefined
      return {
        messages: info.messages ?? 0,
        unacknowledged: info.messages_unacknowledged ?? 0,
        ackedPerS: info.message_stats?.ack_details?.rate,
      }
    },
  }
}

/** The virtual host an AMQP URL names: its path without the slash, `/` when empty. */
export function vhostOf(amqpUrl: string): string {
  const path = new URL(amqpUrl).pathname.slice(1)
  return path === '' ? '/' : decodeURIComponent(path)
}
