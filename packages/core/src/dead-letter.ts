import type { Envelope } from './envelope.js'
import type { DeadLetterReason } from './errors.js'
import type { ErrorInfo } from './retry-policy.js'

/** A message a group gave up on, with everything needed to understand and redrive it. */
export interface DeadLetter {
  readonly envelope: Envelope
  readonly topic: string
  readonly group: string
  readonly reason: DeadLetterReason
  /** Deliveries made before giving up. */
  readonly attempts: number
  /** The error of the last attempt; absent when none was thrown (e.g. the consumer crashed every time). */
  readonly error: ErrorInfo | undefined
  /** Epoch ms of the first failed attempt, the last one, and the move to the dead-letter store. */
  readonly firstFailedAt: number
  readonly lastFailedAt: number
  readonly deadLetteredAt: number
}

/** Selects dead letters. Every field narrows; an empty filter selects all. `since` inclusive, `until` exclusive. */
export interface DeadLetterFilter {
  readonly ids?: readonly string[]
  readonly group?: string
  readonly topic?: string
  readonly reason?: DeadLetterReason
  readonly since?: number
  readonly until?: number
}

export interface DeadLetterPage {
  readonly items: readonly DeadLetter[]
  /** Pass back as `cursor` for the next page; absent on the last page. */
  readonly nextCursor?: string
}

export interface DeadLetterQuery extends DeadLetterFilter {
  /** Page size, default 50. */
  readonly limit?: number
  readonly cursor?: string
}

/** True when `letter` is selected by `filter`; transports without query languages filter with it. */
export function matchesDeadLetterFilter(letter: DeadLetter, filter: DeadLetterFilter): boolean {
  if (filter.ids !== undefined && !filter.ids.includes(letter.envelope.id)) return false
  if (filter.group !== undefined && filter.group !== letter.group) return false
  if (filter.topic !== undefined && filter.topic !== letter.topic) return false
  if (filter.reason !== undefined && filter.reason !== letter.reason) return false
  if (filter.since !== undefined && letter.deadLetteredAt < filter.since) return false
  if (filter.until !== undefined && letter.deadLetteredAt >= filter.until) return false
  return true
}

/** Dead letters in the order pages list them: by time dead-lettered, then id. */
export function compareDeadLetters(a: DeadLetter, b: DeadLetter): number {
  return (
    a.deadLetteredAt - b.deadLetteredAt || (a.envelope.id < b.envelope.id ? -1 : a.envelope.id > b.envelope.id ? 1 : 0)
  )
}

/**
 * One page of `letters` (already in `compareDeadLetters` order) for `query`: its filter, its cursor, its limit.
 * For transports that read their whole dead-letter store and page it in memory (RabbitMQ, Kafka).
 */
export function pageOfDeadLetters(letters: readonly DeadLetter[], query: DeadLetterQuery): DeadLetterPage {
  const limit = query.limit ?? 50
  let at = Number.NEGATIVE_INFINITY
  let id = ''
  if (query.cursor !== undefined) {
    const split = query.cursor.indexOf(':')
    at = Number(query.cursor.slice(0, split))
    id = query.cursor.slice(split + 1)
  }
  const selected = letters.filter(
    (l) =>
      matchesDeadLetterFilter(l, query) &&
      (query.cursor === undefined || l.deadLetteredAt > at || (l.deadLetteredAt === at && l.envelope.id > id)),
  )
  const page = selected.slice(0, limit)
  const last = page.at(-1)
  return selected.length > limit && last !== undefined
    ? { items: page, nextCursor: `${last.deadLetteredAt}:${last.envelope.id}` }
    : { items: page }
}
