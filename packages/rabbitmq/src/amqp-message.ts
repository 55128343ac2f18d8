import { createHash } from 'node:crypto'
import type { ErrorInfo } from '@herald/core'
import { type DeadLetter, type DeadLetterReason, type Envelope, HeaderNames } from '@herald/core'
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

/**
 * The id of a message that carries none (a plain client's, without `message-id`): derived from what the message
 * is (its properties' identity, its headers and its body), so every delivery and every copy of it has the same id.
 * Two identical messages without ids share it; give messages a `message-id` to tell them apart.
 */
function derivedId(message: Message): string {
  const props = message.properties
  const hash = createHash('sha256')
  hash.update(JSON.stringify([props.type ?? '', props.appId ?? '', props.timestamp ?? '', props.correlationId ?? '']))
  const headers = Object.entries(props.headers ?? {})
    .filter(([name]) => !name.startsWith('x-'))
    .map(([name, value]) => [name, headerText(value) ?? ''])
    .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0))
  hash.update(JSON.stringify(headers))
  hash.update(message.content)
  const hex = hash.digest('hex')
  // Shaped as a UUID (version 8: vendor-defined), so it fits wherever an id goes.
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${((Number.parseInt(hex[16]!, 16) & 3) | 8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`
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
  const id = headers.id ?? headerText(message.properties.messageId) ?? derivedId(message)
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

/**
 * The topic a message was published to: its routing key, unless it is a copy Herald sent on through its own
 * delay exchanges (a retry, a delayed publish, a redrive), which carries the topic in a header. `ownCopy` says
 * which, from the exchange the broker says it came through: a header alone proves nothing.
 */
export function topicOf(message: Message, ownCopy: boolean): string {
  return (ownCopy ? xHeader(message, X.topic) : undefined) ?? message.fields.routingKey
}

function count(value: number | undefined): number {
  return value !== undefined && Number.isSafeInteger(value) && value >= 0 ? value : 0
}

/**
 * The delivery number: failed attempts carried by Herald's own copy (see `topicOf`) plus the deliveries the broker
 * saw end without an outcome. `x-delivery-count` is the quorum queue's own count only on a redelivery: on a first
 * delivery the header, if any, came from the publisher and is ignored.
 */
export function attemptOf(message: Message, ownCopy: boolean): number {
  const done = ownCopy ? count(xNumber(message, X.attempts)) : 0
  const redelivered = message.fields.redelivered === true
  const returned = redelivered ? Math.max(1, count(xNumber(message, 'x-delivery-count'))) : 0
  return done + returned + 1
}

/** The largest header table amqplib can encode (its scratch buffer), and the longest short-string property. */
const maxHeaderTableBytes = 65_536
const maxShortString = 255
const shortStrings = [
  'messageId',
  'type',
  'correlationId',
  'contentType',
  'contentEncoding',
  'appId',
  'replyTo',
] as const

/**
 * Why amqplib could not encode a message with these options (it would throw on every try), or undefined. Checked
 * before anything is sent, so such a message fails at once instead of being retried until the publish times out.
 */
export function encodingProblem(options: Options.Publish): string | undefined {
  for (const name of shortStrings) {
    const value = options[name]
    // A UTF-16 unit takes at most 3 bytes in UTF-8: count bytes only for a string that might be too long.
    if (typeof value === 'string' && value.length * 3 > maxShortString && Buffer.byteLength(value) > maxShortString)
      return `property ${name} takes ${Buffer.byteLength(value)} bytes; AMQP allows ${maxShortString}`
  }
  // The same bound for the header table: most messages are far below it, and need no exact count.
  let units = 0
  let count = 0
  let longName = false
  for (const name in options.headers) {
    const value = (options.headers as Record<string, unknown>)[name]
    units += name.length + (typeof value === 'string' ? value.length : 8)
    longName ||= name.length * 3 > maxShortString
    count++
  }
  if (!longName && units * 3 + count * 6 + 4 <= maxHeaderTableBytes) return undefined
  let bytes = 4
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    const nameBytes = Buffer.byteLength(name)
    if (nameBytes > maxShortString) return `a header name takes ${nameBytes} bytes; AMQP allows ${maxShortString}`
    // Name length, name, type tag, then a long string (length and bytes) or at most 8 bytes for anything else.
    bytes +=
      2 +
      nameBytes +
      (typeof value === 'string' ? 4 + Buffer.byteLength(value) : Buffer.isBuffer(value) ? 4 + value.length : 9)
  }
  if (bytes > maxHeaderTableBytes)
    return `its headers take ${bytes} bytes encoded; the AMQP client can send at most ${maxHeaderTableBytes}`
  return undefined
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
export function copyOptions(message: Message, headers: Record<string, string | number>, id: string): Options.Publish {
  const props = message.properties
  // A copy carries the id the message was handled under, derived or not, so a dead letter keeps it.
  const result: Options.Publish = { persistent: true, headers, messageId: props.messageId ?? id }
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
