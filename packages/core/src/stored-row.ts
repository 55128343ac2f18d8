import type { DeadLetter } from './dead-letter.js'
import type { Envelope } from './envelope.js'
import type { DeadLetterReason } from './errors.js'
import type { StoredEvent } from './event-store/event-store.js'
import type { ErrorInfo } from './retry-policy.js'

/**
 * Header values a row written by Herald leaves out when they are the defaults every bus message carries, each
 * with its bit in the row's field of empty name (docs/decisions/0013). A bus message's headers shrink by about half, and
 * with them what PostgreSQL writes to its log for each message.
 */
const defaults: readonly (readonly [name: string, value: string, bit: number])[] = [
  ['specversion', '1.0', 1],
  ['datacontenttype', 'application/json', 2],
  ['schemaversion', '1', 4],
  ['heraldkind', 'event', 8],
]
/** `correlationid` is left out when it equals the message's id (a message that starts its flow). */
const correlationBit = 16
// The empty name: never a header the bus publishes (it refuses empty names), so no header is mistaken for it.
const marker = ''

/**
 * An envelope's headers as the JSON text a database transport stores: without the values `parseStoredHeaders`
 * restores, and a field of empty name saying which those were. Headers that already use that name are stored
 * whole.
 */
export function storedHeadersText(envelope: Envelope): string {
  const headers = envelope.headers
  if (headers[marker] !== undefined) return JSON.stringify(headers)
  let left = 0
  const kept: Record<string, string> = { [marker]: '' }
  for (const name in headers) {
    const value = headers[name]!
    const bit = elidedBit(name, value, envelope.id)
    if (bit === 0) kept[name] = value
    else left |= bit
  }
  if (left === 0) return JSON.stringify(headers)
  kept[marker] = String(left)
  return JSON.stringify(kept)
}

function elidedBit(name: string, value: string, id: string): number {
  if (name === 'correlationid') return value === id ? correlationBit : 0
  for (const [defaultName, defaultValue, bit] of defaults)
    if (name === defaultName) return value === defaultValue ? bit : 0
  return 0
}

/**
 * Reads headers stored as JSON text by a database transport, restoring what `storedHeadersText` left out (`id` is
 * the message's). Rows written by other tools may hold anything: bad JSON yields no headers (the consumer then
 * dead-letters the message as `envelope_invalid`), and values that are not strings are dropped.
 */
export function parseStoredHeaders(text: string, id?: string): Record<string, string> {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return {}
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {}
  const headers: Record<string, string> = {}
  for (const [key, value] of Object.entries(parsed)) if (typeof value === 'string') headers[key] = value
  const left = headers[marker] === undefined ? Number.NaN : Number(headers[marker])
  if (!Number.isInteger(left) || left <= 0 || left >= 2 * correlationBit) return headers
  delete headers[marker]
  for (const [name, value, bit] of defaults)
    if ((left & bit) !== 0 && headers[name] === undefined) headers[name] = value
  if ((left & correlationBit) !== 0 && id !== undefined && headers.correlationid === undefined)
    headers.correlationid = id
  return headers
}

/**
 * A stored body as bytes. SQLite keeps whatever type a row was written with: a body another tool wrote as TEXT
 * comes back as a string, and stands for its UTF-8 bytes (anything else that is not bytes stands for none).
 */
export function storedBody(body: unknown): Uint8Array {
  if (body instanceof Uint8Array) return body
  if (typeof body === 'string') return Buffer.from(body, 'utf8')
  return new Uint8Array()
}

/** A body as a Node Buffer without copying. */
export function toBuffer(body: Uint8Array): Buffer {
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
}

/** A dead letter as SQL stores keep it (integers may come back as strings, e.g. PostgreSQL bigint). */
export interface DeadLetterRow {
  /** Its place in the dead-letter table: the paging key. */
  readonly seq: number | string
  readonly group_name: string
  readonly message_id: string
  readonly topic: string
  readonly headers: string
  readonly body: Uint8Array
  readonly reason: string
  readonly attempts: number
  readonly first_failed_at: number | string
  readonly last_failed_at: number | string
  readonly dead_lettered_at: number | string
  readonly error: string | null
}

export function deadLetterFromRow(row: DeadLetterRow): DeadLetter {
  return {
    envelope: {
      id: row.message_id,
      headers: parseStoredHeaders(row.headers, row.message_id),
      body: storedBody(row.body),
    },
    topic: row.topic,
    group: row.group_name,
    reason: row.reason as DeadLetterReason,
    attempts: row.attempts,
    error: row.error === null ? undefined : (JSON.parse(row.error) as ErrorInfo),
    firstFailedAt: Number(row.first_failed_at),
    lastFailedAt: Number(row.last_failed_at),
    deadLetteredAt: Number(row.dead_lettered_at),
  }
}

/** A stored event as SQL stores keep it. */
export interface EventRow {
  readonly position: number | string
  readonly message_id: string
  readonly topic: string
  readonly type: string
  readonly source: string
  readonly time: number | string
  readonly correlation_id: string | null
  readonly stream: string | null
  readonly stream_version: number | null
  readonly headers: string
  readonly body: Uint8Array
  readonly recorded_at: number | string
}

export function storedEventFromRow(row: EventRow): StoredEvent {
  return {
    position: Number(row.position),
    topic: row.topic,
    envelope: { id: row.message_id, headers: parseStoredHeaders(row.headers), body: storedBody(row.body) },
    type: row.type,
    source: row.source,
    time: Number(row.time),
    correlationId: row.correlation_id ?? undefined,
    stream: row.stream ?? undefined,
    streamVersion: row.stream_version ?? undefined,
    recordedAt: Number(row.recorded_at),
  }
}
