import { isTopologyAdmin } from './capabilities.js'
import type { Clock, ClockTimer } from './clock.js'
import type { Codec } from './codec.js'
import type { RequestContract } from './contract.js'
import { validateSchema } from './contract.js'
import type { Envelope } from './envelope.js'
import { HeraldError, poisonError, RequestTimeoutError } from './errors.js'
import type { Subscription, Transport } from './transport.js'
import { uuidV7 } from './uuid-v7.js'

/** Where a request says its reply goes, and which request a reply answers. */
export const replyHeaders = {
  replyTo: 'heraldreplyto',
  inReplyTo: 'heraldinreplyto',
  /** Set on a reply that reports the request failed for good (it was dead-lettered): the error's message. */
  failed: 'heraldreplyerror',
} as const
export const replyType = 'herald.reply'
/** Replies go only to topics under this prefix: a forged `replyto` cannot make a handler publish elsewhere. */
export const replyTopicPrefix = 'herald.reply.'

interface Waiting {
  readonly contract: RequestContract
  readonly timer: ClockTimer
  resolve(value: unknown): void
  reject(err: unknown): void
}

/**
 * A bus's own reply queue: one group and topic per bus instance, subscribed at the first request and deleted
 * when the bus stops. Each request waits in a map by id until its reply or its timeout, whichever comes first;
 * a late or unknown reply is dropped.
 */
export function createReplyChannel(options: { transport: Transport; codec: Codec; clock: Clock }) {
  const { transport, codec, clock } = options
  const topic = `${replyTopicPrefix}${uuidV7(clock.now()).replaceAll('-', '')}`
  const waiting = new Map<string, Waiting>()
  let subscribed: Promise<Subscription> | undefined
  let closed = false

  async function onReply(envelope: Envelope): Promise<void> {
    const id = envelope.headers[replyHeaders.inReplyTo]
    const entry = id === undefined ? undefined : waiting.get(id)
    if (id === undefined || entry === undefined) return
    waiting.delete(id)
    entry.timer.cancel()
    try {
      const failure = envelope.headers[replyHeaders.failed]
      if (failure !== undefined) throw new HeraldError('PERMANENT', `"${entry.contract.type}" failed: ${failure}`)
      entry.resolve(
        await validateSchema(entry.contract.reply, codec.decode(envelope.body), `reply to ${entry.contract.type}`),
      )
    } catch (err) {
      entry.reject(err)
    }
  }

  return {
    topic,
    /** Subscribes the reply group, once. */
    ready(): Promise<void> {
      if (closed) return Promise.reject(new HeraldError('TRANSPORT_CLOSED', 'The bus is stopped; it sends no requests'))
      subscribed ??= transport.subscribe(
        { group: topic, patterns: [topic], maxInFlight: 100, retry: { maxAttempts: 1 } },
        onReply,
      )
      return subscribed.then(() => undefined)
    },
    /** Waits for the reply to request `id`; call before sending it. */
    expect(id: string, contract: RequestContract, timeoutMs: number): Promise<unknown> {
      return new Promise((resolve, reject) => {
        const timer = clock.setTimer(() => {
          waiting.delete(id)
          reject(new RequestTimeoutError(contract.type, timeoutMs, id))
        }, timeoutMs)
        waiting.set(id, { contract, timer, resolve, reject })
      })
    },
    /** The request was never sent: stop waiting for it. */
    cancel(id: string): void {
      waiting.get(id)?.timer.cancel()
      waiting.delete(id)
    },
    async close(): Promise<void> {
      closed = true
      for (const [id, entry] of waiting) {
        entry.timer.cancel()
        entry.reject(
          new HeraldError(
            'TRANSPORT_CLOSED',
            `The bus stopped before "${entry.contract.type}" was answered (request ${id})`,
          ),
        )
      }
      waiting.clear()
      if (subscribed === undefined) return
      await (await subscribed).close()
      if (isTopologyAdmin(transport)) await transport.deleteGroup(topic).catch(() => {})
    },
  }
}

export type ReplyChannel = ReturnType<typeof createReplyChannel>

/** Checks a request's reply address before its handler runs; a forged one dead-letters the request. */
export function replyTopicOf(envelope: Envelope): string | undefined {
  const topic = envelope.headers[replyHeaders.replyTo]
  if (topic === undefined) return undefined
  if (!topic.startsWith(replyTopicPrefix) || !/^[a-z0-9.]{1,100}$/.test(topic)) {
    throw poisonError(
      'HEADER_INVALID',
      'envelope_invalid',
      `Header "${replyHeaders.replyTo}" is not a reply address: "${topic.slice(0, 100)}"`,
    )
  }
  return topic
}
