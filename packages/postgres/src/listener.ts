import pg from 'pg'

export interface NotificationListener {
  close(): Promise<void>
}

export interface ListenerOptions {
  readonly connectionString: string
  readonly channel: string
  /** A notification arrived with this payload. */
  readonly onNotify: (payload: string) => void
  /** (Re)connected: notifications sent while disconnected are lost, so look for work now. */
  readonly onConnected: () => void
  readonly onError: (err: unknown) => void
}

const minBackoffMs = 100
const maxBackoffMs = 5_000

/**
 * LISTENs on one dedicated connection and reconnects with backoff when it drops. Notifications are only
 * wake-ups: a consumer that misses one finds the work at its next poll.
 */
export function startListener(options: ListenerOptions): NotificationListener {
  let client: pg.Client | undefined
  let closed = false
  let backoffMs = minBackoffMs
  let retryTimer: NodeJS.Timeout | undefined

  function reconnectLater(): void {
    if (closed || retryTimer !== undefined) return
    retryTimer = setTimeout(() => {
      retryTimer = undefined
      void connect()
    }, backoffMs)
    retryTimer.unref()
    backoffMs = Math.min(maxBackoffMs, backoffMs * 2)
  }

  async function connect(): Promise<void> {
    const next = new pg.Client({ connectionString: options.connectionString, application_name: 'herald-listener' })
    client = next
    next.on('error', (err) => {
      options.onError(err)
      lost(next)
    })
    next.on('end', () => lost(next))
    next.on('notification', (message) => {
      try {
        options.onNotify(message.payload ?? '')
      } catch (err) {
        options.onError(err)
      }
    })
    try {
      await next.connect()
      await next.query(`LISTEN "${options.channel}"`)
      if (closed) {
        await next.end()
        return
      }
      backoffMs = minBackoffMs
      options.onConnected()
    } catch (err) {
      options.onError(err)
      lost(next)
    }
  }

  /** The current connection failed or ended: drop it and connect again later (a stale one is ignored). */
  function lost(which: pg.Client): void {
    if (client !== which) return
    client = undefined
    which.end().catch(() => {})
    reconnectLater()
  }

  void connect()
  return {
    async close() {
      closed = true
      clearTimeout(retryTimer)
      const current = client
      client = undefined
      await current?.end().catch(() => {})
    },
  }
}
