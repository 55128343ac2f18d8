import type { DeadLetter, DeadLetterReason, Envelope, ErrorInfo } from '@herald/core'
import { toBuffer } from '@herald/core/adapter'
import type { Outgoing } from './producer.js'

/**
 * Herald's own record headers. Envelope headers are CloudEvents names (lowercase letters and digits), so a name
 * with a dot can never be one of them.
 */
export const H = {
  id: 'herald.id',
  topic: 'herald.topic',
  /** Deliveries already made (on copies a group wrote to its own topic: retries). */
  attempt: 'herald.attempt',
  /** Epoch ms before which the record is not handed out (delayed publishes, retries). */
  due: 'herald.due',
  firstFailed: 'herald.first-failed',
  group: 'herald.group',
  reason: 'herald.reason',
  attempts: 'herald.attempts',
  error: 'herald.error',
  lastFailed: 'herald.last-failed',
  deadLettered: 'herald.dead-lettered',
} as const

const internal = new Set<string>(Object.values(H))

export type Headers = ReadonlyMap<string, Buffer | undefined> | readonly (readonly [Buffer | null, Buffer | null])[]

/** A record's headers by name, whichever way the client handed them over. */
export function headerMap(headers: Headers): Map<string, string> {
  const map = new Map<string, string>()
  if (headers instanceof Map) {
    for (const [k, v] of headers) if (v !== undefined) map.set(String(k), v.toString())
  } else {
    for (const [k, v] of headers as readonly (readonly [Buffer | null, Buffer | null])[]) {
      if (k !== null && v !== null) map.set(k.toString(), v.toString())
    }
  }
  return map
}

/** The record of one envelope, as published to `kafkaTopic`. */
export function outgoing(
  kafkaTopic: string,
  heraldTopic: string,
  envelope: Envelope,
  key: string | undefined,
  extra: Readonly<Record<string, string>> = {},
): Outgoing {
  const headers: Record<string, Buffer> = {}
  for (const name in envelope.headers) headers[name] = Buffer.from(envelope.headers[name] as string)
  headers[H.id] = Buffer.from(envelope.id)
  headers[H.topic] = Buffer.from(heraldTopic)
  for (const name in extra) headers[name] = Buffer.from(extra[name] as string)
  return {
    topic: kafkaTopic,
    key: key === undefined ? undefined : Buffer.from(key),
    value: toBuffer(envelope.body),
    headers,
  }
}

/** What a consumer reads back: the envelope, its Herald topic and Herald's bookkeeping. */
export interface Incoming {
  readonly envelope: Envelope
  readonly topic: string
  readonly meta: ReadonlyMap<string, string>
}

/** Reads a record. Records nobody published through Herald get an id from their position, and no topic. */
export function incoming(
  headers: Map<string, string>,
  value: Buffer | undefined,
  where: { topic: string; partition: number; offset: bigint },
): Incoming {
  const envelopeHeaders: Record<string, string> = {}
  for (const [name, v] of headers) if (!internal.has(name)) envelopeHeaders[name] = v
  return {
    envelope: {
      id: headers.get(H.id) ?? `kafka:${where.topic}:${where.partition}:${where.offset}`,
      headers: envelopeHeaders,
      body: value ?? Buffer.alloc(0),
    },
    topic: headers.get(H.topic) ?? '',
    meta: headers,
  }
}

/** Dead letters are keyed by group and id, so a compacted topic keeps the latest of each and drops purged ones. */
export function deadLetterKey(group: string, id: string): string {
  return `${group}\u0000${id}`
}

export function deadLetterRecord(topic: string, facts: DeadLetter): Outgoing {
  const record = outgoing(topic, facts.topic, facts.envelope, deadLetterKey(facts.group, facts.envelope.id), {
    [H.group]: facts.group,
    [H.reason]: facts.reason,
    [H.attempts]: String(facts.attempts),
    [H.error]: facts.error === undefined ? '' : JSON.stringify(facts.error),
    [H.firstFailed]: String(facts.firstFailedAt),
    [H.lastFailed]: String(facts.lastFailedAt),
    [H.deadLettered]: String(facts.deadLetteredAt),
  })
  return record
}

export function deadLetterOf(headers: Map<string, string>, value: Buffer | undefined): DeadLetter {
  const read = incoming(headers, value, { topic: '', partition: 0, offset: 0n })
  const error = headers.get(H.error)
  return {
    envelope: read.envelope,
    topic: read.topic,
    group: headers.get(H.group) ?? '',
    reason: (headers.get(H.reason) ?? 'handler_error') as DeadLetterReason,
    attempts: Number(headers.get(H.attempts) ?? '0'),
    error: error === undefined || error === '' ? undefined : (JSON.parse(error) as ErrorInfo),
    firstFailedAt: Number(headers.get(H.firstFailed) ?? '0'),
    lastFailedAt: Number(headers.get(H.lastFailed) ?? '0'),
    deadLetteredAt: Number(headers.get(H.deadLettered) ?? '0'),
  }
}
