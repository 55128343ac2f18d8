import type { DeadLetter, DeadLetterReason, ErrorInfo } from '@herald/core'
import { parseStoredHeaders } from '@herald/core/adapter'

/** A stream entry's fields by name, values as Redis returned them. */
export type Fields = Map<string, Buffer>

export function toFields(list: readonly Buffer[]): Fields {
  const fields: Fields = new Map()
  for (let i = 0; i + 1 < list.length; i += 2) fields.set(list[i]!.toString(), list[i + 1]!)
  return fields
}

export function text(fields: Fields, name: string): string | undefined {
  return fields.get(name)?.toString()
}

/** Stream ids compare as (milliseconds, sequence). */
export function compareIds(a: string, b: string): number {
  return compareKeys(idKey(a), idKey(b))
}

/** A stream id (`<ms>-<seq>`) as its two numbers. */
function idKey(id: string): readonly [number, number] {
  const dash = id.indexOf('-')
  return dash === -1 ? [Number(id), 0] : [Number(id.slice(0, dash)), Number(id.slice(dash + 1))]
}

function compareKeys(a: readonly [number, number], b: readonly [number, number]): number {
  return a[0] - b[0] || a[1] - b[1]
}

export function deadLetterFrom(fields: Fields): DeadLetter {
  const error = text(fields, 'e')
  const id = text(fields, 'i') ?? ''
  return {
    envelope: {
      id,
      headers: parseStoredHeaders(text(fields, 'h') ?? '', id),
      body: fields.get('b') ?? Buffer.alloc(0),
    },
    topic: text(fields, 't') ?? '',
    group: text(fields, 'g') ?? '',
    reason: (text(fields, 'r') ?? 'handler_error') as DeadLetterReason,
    attempts: Number(text(fields, 'n') ?? '0'),
    error: error === undefined || error === '' ? undefined : (JSON.parse(error) as ErrorInfo),
    firstFailedAt: Number(text(fields, 'ff') ?? '0'),
    lastFailedAt: Number(text(fields, 'lf') ?? '0'),
    deadLetteredAt: Number(text(fields, 'at') ?? '0'),
  }
}

/** The lowest and highest of some stream entry ids. */
export function idRange(ids: readonly string[]): [string, string] {
  let lowest = ids[0] as string
  let highest = lowest
  let low = idKey(lowest)
  let high = low
  // Each id parsed once: this runs for every ack batch.
  for (const id of ids) {
    const key = idKey(id)
    if (compareKeys(key, low) < 0) [lowest, low] = [id, key]
    if (compareKeys(key, high) > 0) [highest, high] = [id, key]
  }
  return [lowest, highest]
}
