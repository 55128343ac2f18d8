import { ConfigurationError } from '@herald/core'
import type { Channel } from 'amqplib'

/**
 * Delays without plugins: `levels` pairs of (topic exchange, quorum queue with a fixed TTL of 2^k ms), NServiceBus
 * style. A delayed message's routing key starts with its delay in binary, one word per level, highest first; level k
 * routes a `1` in its word into its queue (which, after 2^k ms, dead-letters to level k-1) and a `0` straight on to
 * level k-1. After level 0 the message reaches the `delayed` exchange, where every group queue is bound twice: once
 * per pattern behind `levels` `*` words and a `t`, once for its own name behind a `g` (retries of one group).
 * Every queue in a level holds messages of one TTL, so expiry at the head of the queue is never late for the rest.
 */
export const delayLevels = 36
/** The longest delay the levels can express: 2^36 - 1 ms, about 2.2 years. */
export const maxDelayMs = 2 ** delayLevels - 1
/** Delays are rounded up (never down) to this many significant bits, so a message makes at most this many hops. */
const significantBits = 6

export interface Names {
  readonly exchange: string
  readonly deadLetterQueue: string
  readonly delayedExchange: string
  delayExchange(level: number): string
  delayQueue(level: number): string
  queueFor(group: string): string
}

export function namesFor(namespace: string, exchange: string, queueFor: (group: string) => string): Names {
  return {
    exchange,
    deadLetterQueue: `${namespace}.dead-letters`,
    delayedExchange: `${namespace}.delayed`,
    delayExchange: (level) => `${namespace}.delay.${level}`,
    delayQueue: (level) => `${namespace}.delay.${level}`,
    queueFor,
  }
}

export type QueueType = 'quorum' | 'classic'

/** Rounds a delay up to `significantBits` significant bits: never early, at most that many TTL queues on the way. */
export function roundDelay(delayMs: number): number {
  const ms = Math.max(0, Math.ceil(delayMs))
  const bits = ms === 0 ? 0 : Math.floor(Math.log2(ms)) + 1
  if (bits <= significantBits) return ms
  const unit = 2 ** (bits - significantBits)
  return Math.ceil(ms / unit) * unit
}

function delayBits(delayMs: number): string {
  const words: string[] = []
  for (let level = delayLevels - 1; level >= 0; level--)
    words.push(Math.floor(delayMs / 2 ** level) % 2 === 1 ? '1' : '0')
  return words.join('.')
}

const anyDelay = Array.from({ length: delayLevels }, () => '*').join('.')

/** A routing-key word can hold anything but a dot: escape dots (and the escape character) in queue names. */
function word(text: string): string {
  return text.replaceAll('%', '%25').replaceAll('.', '%2E')
}

/** Routing key of a delayed message fanned out by topic once due. */
export function delayedTopicKey(delayMs: number, topic: string): string {
  return `${delayBits(delayMs)}.t.${topic}`
}

/** Routing key of a delayed message for one group's queue (a retry). */
export function delayedQueueKey(delayMs: number, queue: string): string {
  return `${delayBits(delayMs)}.g.${word(queue)}`
}

export function queueArguments(names: Names, type: QueueType, deliveryLimit: number): Record<string, string | number> {
  const common = {
    // Messages the broker gives up on (over the delivery limit) go to Herald's dead-letter queue, not the void.
    'x-dead-letter-exchange': '',
    'x-dead-letter-routing-key': names.deadLetterQueue,
  }
  if (type === 'classic') return { ...common, 'x-queue-type': 'classic' }
  return {
    ...common,
    'x-queue-type': 'quorum',
    'x-delivery-limit': deliveryLimit,
    // Dead-lettering is at-most-once unless asked; at-least-once needs reject-publish overflow.
    'x-dead-letter-strategy': 'at-least-once',
    'x-overflow': 'reject-publish',
  }
}

/** Declares the main exchange, the dead-letter queue and the delay levels. Idempotent. */
export async function declareInfrastructure(channel: Channel, names: Names, type: QueueType): Promise<void> {
  await channel.assertExchange(names.exchange, 'topic', { durable: true })
  await channel.assertExchange(names.delayedExchange, 'topic', { durable: true })
  await channel.assertQueue(names.deadLetterQueue, { durable: true, arguments: { 'x-queue-type': type } })
  for (let level = 0; level < delayLevels; level++) {
    const exchange = names.delayExchange(level)
    const next = level === 0 ? names.delayedExchange : names.delayExchange(level - 1)
    const queue = names.delayQueue(level)
    await channel.assertExchange(exchange, 'topic', { durable: true })
    const ttl =
      type === 'quorum'
        ? {
            'x-queue-type': 'quorum',
            'x-dead-letter-strategy': 'at-least-once',
            'x-overflow': 'reject-publish',
          }
        : { 'x-queue-type': 'classic' }
    await channel.assertQueue(queue, {
      durable: true,
      arguments: { ...ttl, 'x-message-ttl': 2 ** level, 'x-dead-letter-exchange': next },
    })
    const prefix = Array.from({ length: delayLevels - 1 - level }, () => '*')
    await channel.bindQueue(queue, exchange, [...prefix, '1', '#'].join('.'))
    await channel.bindExchange(next, exchange, [...prefix, '0', '#'].join('.'))
  }
}

/** The entry point of the delay levels: every delayed message is published here. */
export function delayEntry(names: Names): string {
  return names.delayExchange(delayLevels - 1)
}

/** Declares a group's queue and binds it to its patterns, directly and behind the delay levels. Idempotent. */
export async function declareGroupQueue(
  channel: Channel,
  names: Names,
  group: string,
  patterns: readonly string[],
  type: QueueType,
  deliveryLimit: number,
): Promise<void> {
  const queue = names.queueFor(group)
  try {
    await channel.assertQueue(queue, { durable: true, arguments: queueArguments(names, type, deliveryLimit) })
  } catch (err) {
    // The broker refuses to redeclare a queue with other arguments, and its message is cryptic: name the fix.
    const inequivalent = /inequivalent arg '([^']+)'/.exec(String(err))
    if (inequivalent === null) throw err
    throw new ConfigurationError(
      'group',
      `queue "${queue}" of group "${group}" already exists with another ${inequivalent[1]} than Herald declares (${String(err).replace(/^.*PRECONDITION_FAILED - /, '')}); delete that queue, name the group's queue differently (queueName), or match queueType and deliveryLimit to it`,
    )
  }
  await channel.bindQueue(queue, names.delayedExchange, `${anyDelay}.g.${word(queue)}`)
  for (const pattern of patterns) {
    await channel.bindQueue(queue, names.exchange, pattern)
    await channel.bindQueue(queue, names.delayedExchange, `${anyDelay}.t.${pattern}`)
  }
}

/** Removes patterns from a group's queue bindings, direct and behind the delay levels. */
export async function unbindGroupQueue(
  channel: Channel,
  names: Names,
  group: string,
  patterns: readonly string[],
): Promise<void> {
  const queue = names.queueFor(group)
  for (const pattern of patterns) {
    await channel.unbindQueue(queue, names.exchange, pattern)
    await channel.unbindQueue(queue, names.delayedExchange, `${anyDelay}.t.${pattern}`)
  }
}
