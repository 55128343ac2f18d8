import type { ErrorInfo } from '@herald/core'
import { type DeadLetter, type DeadLetterReason, type Envelope, HeaderNames, uuidV7 } from '@herald/core'
import type { Message, Options } from 'amqplib'

/**
 * Envelopes on the wire follow the CloudEvents AMQP binding (binary mode): the body is the event data, the
 * content type is `content-type`, every other attribute is a `cloudEvents:<name>` header. A plain AMQP client in
 * any language reads them; Herald's own bookkeeping lives in `x-herald-*` headers next to them.
 */
const cePrefix = 'cloudEvents:'

/** Herald's bookkeeping headers. */
export const X = {
  /** Failed attempts before this copy was published (a retry or a redrive carries it on). */
  attempts: 'x-herald-attempts',
  topic: 'x-herald-topic',
  firstFailedAt: 'x-herald-first-failed-at',
  lastFailedAt: 'x-herald-last-failed-at',
  error: 'x-herald-error',
  group: 'x-herald-group',
  reason: 'x-herald-reason',
  deadLetteredAt: 'x-herald-dead-lettered-at',
} as const

export function publishOptions(
  envelope: Envelope,
  extra: Record<string, string | number> = {},
  mandatory = false,
): Options.Publish {
  const headers: Record<string, string | number> = { [`${cePrefix}id`]: envelope.id }
  for (const [name, value] of Object.entries(envelope.headers)) {
    if (name === HeaderNames.dataContentType) continue
    headers[`${cePrefix}${name}`] = value
  }
  Object.assign(headers, extra)
  const time = envelope.headers[HeaderNames.time]
  const options: Options.Publish = { persistent: true, mandatory, messageId: envelope.id, headers }
  const contentType = envelope.headers[HeaderNames.dataContentType]
  if (contentType !== undefined) options.contentType = contentType
  const type = envelope.headers[HeaderNames.type]
  if (type !== undefined) options.type = type
  const correlation = envelope.headers[HeaderNames.correlationId]
  if (correlation !== undefined) options.correlationId = correlation
  const millis = time === undefined ? Number.NaN : Date.parse(time)
  if (Number.isFinite(millis)) options.timestamp = Math.floor(millis / 1000)
  return options
}

function headerText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'string') return value
  if (Buffer.isBuffer(value)) return value.toString('utf8')
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value)
  return undefined
}

/** Herald's view of a delivered AMQP message. A plain client's message gets its id and type from the properties. */
export function envelopeFrom(message: Message): Envelope {
  const raw = (message.properties.headers ?? {}) as Record<string, unknown>
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(raw)) {
    if (!name.startsWith(cePrefix)) continue
    const text = headerText(value)
    if (text !== undefined) headers[name.slice(cePrefix.length)] = text
  }
  const id = headers.id ?? headerText(message.properties.messageId) ?? uuidV7()
  delete headers.id
  const props = message.properties
  if (headers[HeaderNames.type] === undefined && typeof props.type === 'string') headers[HeaderNames.type] = props.type
  if (headers[HeaderNames.source] === undefined && typeof props.appId === 'string')
    headers[HeaderNames.source] = props.appId
  if (headers[HeaderNames.correlationId] === undefined && typeof props.correlationId === 'string')
    headers[HeaderNames.correlationId] = props.correlationId
  if (headers[HeaderNames.time] === undefined && typeof props.timestamp === 'number')
    headers[HeaderNames.time] = new Date(props.timestamp * 1000).toISOString()
  if (typeof props.contentType === 'string') headers[HeaderNames.dataContentType] = props.contentType
  return { id, headers, body: message.content }
}

export function xHeader(message: Message, name: string): string | undefined {
  return headerText(message.properties.headers?.[name])
}

export function xNumber(message: Message, name: string): number | undefined {
  const text = xHeader(message, name)
  const value = text === undefined ? Number.NaN : Number(text)
  return Number.isFinite(value) ? value : undefined
}

/** The topic a message was published to: its first routing key unless a retry carried it in a header. */
export function topicOf(message: Message): string {
  return xHeader(message, X.topic) ?? message.fields.routingKey
}

/** Failed attempts recorded in Herald's header plus the broker's count of deliveries that ended without an ack. */
export function attemptOf(message: Message): number {
  const done = xNumber(message, X.attempts) ?? 0
  const brokerCount = xNumber(message, 'x-delivery-count')
  const returned = brokerCount ?? (message.fields.redelivered ? 1 : 0)
  return done + returned + 1
}

export function parseError(text: string | undefined): ErrorInfo | undefined {
  if (text === undefined || text === '') return undefined
  try {
    return JSON.parse(text) as ErrorInfo
  } catch {
    return { name: 'Error', message: text }
  }
}

/**
 * A message of the dead-letter queue as a dead letter. Herald's own carry `x-herald-*` headers; those the broker
 * moved there (over the quorum queue's delivery limit) carry `x-death` and count as `max_deliveries_exceeded`.
 */
export function deadLetterFrom(message: Message, groupOfQueue: (queue: string) => string): DeadLetter {
  const envelope = envelopeFrom(message)
  const reason = xHeader(message, X.reason) as DeadLetterReason | undefined
  if (reason !== undefined) {
    const deadLetteredAt = xNumber(message, X.deadLetteredAt) ?? 0
    return {
      envelope,
      topic: xHeader(message, X.topic) ?? '',
      group: xHeader(message, X.group) ?? '',
      reason,
      attempts: xNumber(message, X.attempts) ?? 0,
      error: parseError(xHeader(message, X.error)),
      firstFailedAt: xNumber(message, X.firstFailedAt) ?? deadLetteredAt,
      lastFailedAt: xNumber(message, X.lastFailedAt) ?? deadLetteredAt,
      deadLetteredAt,
    }
  }
  const deaths = (message.properties.headers?.['x-death'] ?? []) as {
    queue?: string
    reason?: string
    'routing-keys'?: string[]
    time?: { value?: number } | number
  }[]
  const death = deaths[0]
  const seconds = typeof death?.time === 'object' ? death.time.value : death?.time
  const at = typeof seconds === 'number' ? seconds * 1000 : 0
  return {
    envelope,
    topic: xHeader(message, X.topic) ?? death?.['routing-keys']?.[0] ?? '',
    group: groupOfQueue(death?.queue ?? ''),
    reason: 'max_deliveries_exceeded',
    attempts: (xNumber(message, X.attempts) ?? 0) + (xNumber(message, 'x-delivery-count') ?? 0),
    error: { name: 'BrokerDeadLetter', message: `the broker dead-lettered it: ${death?.reason ?? 'unknown'}` },
    firstFailedAt: xNumber(message, X.firstFailedAt) ?? at,
    lastFailedAt: at,
    deadLetteredAt: at,
  }
}

/** Publish options for a copy of `message` (a retry, a dead letter, a redrive): same properties, these headers. */
export function copyOptions(message: Message, headers: Record<string, string | number>): Options.Publish {
  const props = message.properties
  const result: Options.Publish = { persistent: true, headers }
  if (props.messageId !== undefined) result.messageId = props.messageId
  if (props.contentType !== undefined) result.contentType = props.contentType
  if (props.type !== undefined) result.type = props.type
  if (props.correlationId !== undefined) result.correlationId = props.correlationId
  if (props.timestamp !== undefined) result.timestamp = props.timestamp
  if (props.appId !== undefined) result.appId = props.appId
  return result
}

/** Headers Herald adds to a message it moves on (retry, dead letter); everything else is kept as it was. */
export function carriedHeaders(message: Message): Record<string, string | number> {
  const kept: Record<string, string | number> = {}
  for (const [name, value] of Object.entries(message.properties.headers ?? {})) {
    if (name.startsWith('x-herald-') || name.startsWith('x-death') || name.startsWith('x-delivery-count')) continue
    if (name.startsWith('x-first-death') || name.startsWith('x-last-death')) continue
    const text = headerText(value)
    if (text !== undefined) kept[name] = text
  }
  return kept
}
