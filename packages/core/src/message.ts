import type { Envelope } from './envelope.js'
import { HeaderNames } from './envelope.js'

/** A decoded, validated message as a handler sees it. */
export interface Message<TData> {
  readonly id: string
  readonly type: string
  readonly data: TData
  /** The service that produced it (CloudEvents `source`). */
  readonly source: string
  /** ISO 8601 time of production (CloudEvents `time`). */
  readonly time: string
  /** Shared by every message of one business flow. */
  readonly correlationId: string
  /** Id of the message whose handler produced this one, if any. */
  readonly causationId: string | undefined
  readonly subject: string | undefined
  readonly partitionKey: string | undefined
  readonly headers: Readonly<Record<string, string>>
}

export function toMessage<TData>(envelope: Envelope, data: TData): Message<TData> {
  const h = envelope.headers
  return {
    id: envelope.id,
    type: h[HeaderNames.type] ?? '',
    data,
    source: h[HeaderNames.source] ?? '',
    time: h[HeaderNames.time] ?? '',
    correlationId: h[HeaderNames.correlationId] ?? envelope.id,
    causationId: h[HeaderNames.causationId],
    subject: h[HeaderNames.subject],
    partitionKey: h[HeaderNames.partitionKey],
    headers: h,
  }
}
