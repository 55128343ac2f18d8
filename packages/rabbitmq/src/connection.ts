import {
  BrokerBlockedError,
  InvalidHeaderError,
  NoRouteError,
  PublishIndeterminateError,
  TransportClosedError,
} from '@herald/core'
import amqp, { type ChannelModel, type ConfirmChannel, type Message, type Options } from 'amqplib'

/** One message for the broker: where it goes and how. */
export interface Outgoing {
  readonly exchange: string
  readonly routingKey: string
  readonly content: Buffer
  readonly options: Options.Publish
  /** The topic named in a `NoRouteError` when a mandatory message is returned. */
  readonly topic: string
}

/** A live connection with its publishing channel; replaced whole on every reconnect. */
export interface Generation {
  readonly model: ChannelModel
  readonly publisher: ConfirmChannel
  readonly closed: Promise<void>
  isOpen(): boolean
  /** Calls `listener` once when this connection or its publishing channel closes; returns the way to unregister. */
  onLost(listener: () => void): () => void
}

export interface BrokerConnectionOptions {
  readonly url: string
  readonly heartbeatSeconds: number
  readonly publishTimeoutMs: number
  readonly reconnectDelayMs: { readonly initial: number; readonly max: number }
  /** Declares topology and restarts consumers on each new connection, before publishes are let through. */
  readonly onConnect: (generation: Generation) => Promise<void>
  readonly onError: (err: unknown) => void
}

export interface BrokerConnection {
  /** Sends and waits for every confirm; re-sends what a lost connection left unconfirmed, until the timeout. */
  publish(messages: readonly Outgoing[]): Promise<void>
  /** The current connection, waiting for one up to the publish timeout. */
  current(): Promise<Generation>
  /** Whether the connection is up and not blocked. */
  status(): { readonly connected: boolean; readonly blocked: string | undefined; readonly reconnects: number }
  close(): Promise<void>
}

class ChannelLost extends Error {}

function withHeartbeat(url: string, seconds: number): string {
  const parsed = new URL(url)
  if (!parsed.searchParams.has('heartbeat')) parsed.searchParams.set('heartbeat', String(seconds))
  return parsed.toString()
}

/**
 * The broker connection: reconnects on its own (amqplib's recovery), re-runs `onConnect` each time, and
 * publishes on a confirm channel so a publish resolves only once the broker has taken responsibility.
 * While disconnected or blocked (memory or disk alarm), publishes wait up to `publishTimeoutMs`, never buffer
 * without bound, and then reject: `BrokerBlockedError` (nothing sent) or `PublishIndeterminateError`.
 */
export async function openBrokerConnection(options: BrokerConnectionOptions): Promise<BrokerConnection> {
  let generation: Generation | undefined
  let blocked: string | undefined
  let closing = false
  let reconnects = -1
  let changed: (() => void)[] = []
  const notify = () => {
    const waiting = changed
    changed = []
    for (const wake of waiting) wake()
  }
  const nextChange = () => new Promise<void>((resolve) => changed.push(resolve))

  async function setup(model: ChannelModel): Promise<void> {
    // Until recovery binds its own listeners (after setup), a socket error here must not go unhandled.
    model.on('error', options.onError)
    const publisher = await model.createConfirmChannel()
    let open = true
    // One listener set per connection, emptied as publishes settle: reactions on `closed` would pile up forever.
    const lostListeners = new Set<() => void>()
    const closed = new Promise<void>((resolve) => {
      const onClose = () => {
        if (!open) return
        open = false
        for (const listener of lostListeners) listener()
        lostListeners.clear()
        resolve()
      }
      publisher.once('close', onClose)
      model.once('close', onClose)
    })
    publisher.on('error', options.onError)
    publisher.on('return', (message: Message) => {
      const id = message.properties.messageId
      if (typeof id === 'string') returned.add(id)
    })
    model.on('blocked', (reason: string) => {
      blocked = reason
      notify()
    })
    model.on('unblocked', () => {
      blocked = undefined
      notify()
    })
    const next: Generation = {
      model,
      publisher,
      closed,
      isOpen: () => open,
      onLost(listener) {
        if (!open) {
          listener()
          return () => {}
        }
        lostListeners.add(listener)
        return () => lostListeners.delete(listener)
      },
    }
    await options.onConnect(next)
    blocked = undefined
    generation = next
    reconnects++
    notify()
    void closed.then(() => {
      if (generation === next) generation = undefined
      notify()
    })
  }

  // Ids of mandatory messages the broker returned (no queue bound); the confirm that follows turns them into errors.
  const returned = new Set<string>()
  const connection = await amqp.connect(withHeartbeat(options.url, options.heartbeatSeconds), {
    noDelay: true,
    // A connection attempt that hangs (a half-open network) is abandoned and retried, never waited on forever.
    timeout: Math.max(2_000, options.heartbeatSeconds * 2_000),
    recovery: {
      initialDelay: options.reconnectDelayMs.initial,
      maxDelay: options.reconnectDelayMs.max,
      initialMaxRetries: 0,
      maxRetries: Number.POSITIVE_INFINITY,
      setup,
    },
  })
  connection.on('error', options.onError)
  connection.on('disconnect', (err: Error) => options.onError(err))
  connection.on('connect-failed', (err: Error) => options.onError(err))

  function timeoutError(why: string): Error {
    return new PublishIndeterminateError('rabbitmq', why, options.publishTimeoutMs)
  }

  async function currentBefore(deadline: number, canBeBlocked: boolean): Promise<Generation> {
    for (;;) {
      if (generation?.isOpen() && (canBeBlocked || blocked === undefined)) return generation
      const left = deadline - Date.now()
      if (left <= 0) {
        if (blocked !== undefined && generation?.isOpen())
          throw new BrokerBlockedError('rabbitmq', blocked, options.publishTimeoutMs)
        throw timeoutError('no connection to the broker')
      }
      let timer: NodeJS.Timeout | undefined
      await Promise.race([nextChange(), new Promise((r) => (timer = setTimeout(r, left)))])
      clearTimeout(timer)
    }
  }

  /** One `publish` call: its messages, which of them the broker confirmed, and how the call ends. */
  interface Call {
    readonly messages: readonly Outgoing[]
    readonly confirmed: boolean[]
    unconfirmed: number
    settled: boolean
    readonly resolve: () => void
    readonly reject: (err: unknown) => void
  }

  function settle(call: Call, err?: unknown): void {
    if (call.settled) return
    call.settled = true
    if (err === undefined) call.resolve()
    else call.reject(err)
  }

  /**
   * Sends the unconfirmed messages of `calls` on one channel and settles each call as its confirms arrive.
   * Resolves once every call is settled; rejects with `ChannelLost` if the channel goes first.
   */
  function sendOn(gen: Generation, calls: readonly Call[], deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let open = calls.filter((c) => !c.settled).length
      let done = false
      let forget = () => {}
      const finish = (err?: Error) => {
        if (done) return
        done = true
        clearTimeout(timer)
        forget()
        if (err) reject(err)
        else resolve()
      }
      const end = (call: Call, err?: unknown) => {
        if (call.settled) return
        settle(call, err)
        if (--open === 0) finish()
      }
      const timer = setTimeout(
        () => {
          for (const call of calls) if (!call.settled) settle(call, timeoutError('no confirm from the broker'))
          finish()
        },
        Math.max(0, deadline - Date.now()),
      )
      forget = gen.onLost(() => finish(new ChannelLost('channel closed before every confirm arrived')))
      const sendFrom = (c: number, m: number) => {
        for (; c < calls.length; c++, m = 0) {
          const call = calls[c] as Call
          for (; m < call.messages.length; m++) {
            if (call.settled || done) break
            if (call.confirmed[m]) continue
            const message = call.messages[m] as Outgoing
            const index = m
            let more: boolean
            try {
              more = gen.publisher.publish(
                message.exchange,
                message.routingKey,
                message.content,
                message.options,
                (err: unknown) => {
                  const id = message.options.messageId
                  const wasReturned = message.options.mandatory === true && id !== undefined && returned.delete(id)
                  if (err) return finish(new ChannelLost(String(err)))
                  call.confirmed[index] = true
                  if (wasReturned) return end(call, new NoRouteError(message.topic))
                  if (--call.unconfirmed === 0) end(call)
                },
              )
            } catch (err) {
              // amqplib throws before it writes anything (and before it counts a confirm) when it cannot encode
              // the message. Sending it again would throw again: this call fails, the rest go on.
              end(
                call,
                new InvalidHeaderError(
                  `message ${message.options.messageId ?? ''}`,
                  `cannot be encoded: ${String(err)}`,
                ),
              )
              continue
            }
            if (!more) {
              // The socket buffer is full: wait for it to drain rather than buffering without bound.
              gen.publisher.once('drain', () => sendFrom(c, index + 1))
              return
            }
          }
        }
      }
      if (open === 0) finish()
      else sendFrom(0, 0)
    })
  }

  /** Sends a batch of calls, again on the next connection after a lost one, until each is settled or timed out. */
  async function sendCalls(calls: readonly Call[], deadline: number): Promise<void> {
    for (;;) {
      const waiting = calls.filter((c) => !c.settled)
      if (waiting.length === 0) return
      let gen: Generation
      try {
        gen = await currentBefore(deadline, false)
      } catch (err) {
        for (const call of waiting) settle(call, err)
        return
      }
      try {
        await sendOn(gen, waiting, deadline)
      } catch (err) {
        // A lost channel leaves the unconfirmed messages indeterminate: send them again on the next connection.
        if (Date.now() >= deadline) for (const call of waiting) settle(call, timeoutError(String(err)))
      }
    }
  }

  // Publishes made in one event-loop turn go out together: one timer, one loss listener, one wait per batch.
  let queued: Call[] = []
  const inFlight = new Set<Promise<void>>()

  function flush(): void {
    const calls = queued
    queued = []
    const sending = sendCalls(calls, Date.now() + options.publishTimeoutMs)
    inFlight.add(sending)
    void sending.then(() => inFlight.delete(sending))
  }

  return {
    publish(messages) {
      if (closing) return Promise.reject(new TransportClosedError('rabbitmq'))
      if (messages.length === 0) return Promise.resolve()
      return new Promise<void>((resolve, reject) => {
        if (queued.length === 0) setImmediate(flush)
        queued.push({
          messages,
          confirmed: messages.map(() => false),
          unconfirmed: messages.length,
          settled: false,
          resolve,
          reject,
        })
      })
    },
    current: () => currentBefore(Date.now() + options.publishTimeoutMs, true),
    status: () => ({
      connected: generation?.isOpen() === true,
      blocked,
      reconnects: Math.max(0, reconnects),
    }),
    async close() {
      if (closing) return
      // Publishes already under way get their confirms (bounded by the publish timeout); new ones are refused.
      closing = true
      if (queued.length > 0) flush()
      await Promise.all(inFlight)
      notify()
      await connection.close().catch(() => {})
    },
  }
}
