import type { DeadLetterFilter, DeadLetterReason, EventFilter } from '@herald/core'
import type { EventSearch } from './pages.js'

// What the console's forms and query strings say, read and checked: anything malformed is refused with a 400.

/** Reads a form or query field that may be repeated. */
function list(value: unknown): string[] {
  if (value === undefined || value === null || value === '') return []
  return (Array.isArray(value) ? value : [value]).map(String).filter((v) => v !== '')
}

export function filterFrom(fields: Record<string, unknown>): DeadLetterFilter {
  const filter: { group?: string; reason?: DeadLetterReason } = {}
  if (typeof fields.group === 'string' && fields.group !== '') filter.group = fields.group
  if (typeof fields.reason === 'string' && fields.reason !== '') filter.reason = fields.reason as DeadLetterReason
  return filter
}

/**
 * The dead letters a form selected, by (group, id): one message dead-lettered by two groups is two dead letters,
 * and acting on one leaves the other. Each `selected` value is a JSON `[group, id]`; anything else is refused.
 */
export function selectionFrom(fields: Record<string, unknown>): Map<string, string[]> | undefined {
  const byGroup = new Map<string, string[]>()
  for (const value of list(fields.selected)) {
    let pair: unknown
    try {
      pair = JSON.parse(value)
    } catch {
      return undefined
    }
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((p) => typeof p === 'string' && p !== ''))
      return undefined
    const [group, id] = pair as [string, string]
    byGroup.set(group, [...(byGroup.get(group) ?? []), id])
  }
  return byGroup
}

/** The event search form's fields, as given (for the form) and as a query; a string is what was wrong. */
export function eventSearchFrom(
  q: Record<string, unknown>,
): { fields: EventSearch; query: EventFilter; before?: number } | string {
  const field = (name: string) => (typeof q[name] === 'string' && q[name] !== '' ? (q[name] as string) : undefined)
  const fields: EventSearch = {
    type: field('type'),
    source: field('source'),
    correlationId: field('correlationId'),
    since: field('since'),
    until: field('until'),
  }
  const query: { -readonly [K in keyof EventFilter]: EventFilter[K] } = {}
  if (fields.type !== undefined) {
    // `order.placed` exactly; `order.#` (or `order.*` for one level, read as the same prefix) under a prefix.
    const tokens = fields.type.split(/[\s,]+/).filter((t) => t !== '' && t !== '#')
    const exact = tokens.filter((t) => !/\.[#*]$/.test(t))
    const under = tokens.filter((t) => /\.[#*]$/.test(t)).map((t) => t.slice(0, -2))
    if (exact.length > 0) query.types = exact
    if (under.length > 0) query.typesUnder = under
  }
  if (fields.source !== undefined) query.source = fields.source
  if (fields.correlationId !== undefined) query.correlationId = fields.correlationId
  for (const bound of ['since', 'until'] as const) {
    const value = fields[bound]
    if (value === undefined) continue
    const ms = Date.parse(value)
    if (!Number.isFinite(ms)) return `"${bound}" is not a time: ${value} (ISO 8601, e.g. 2026-12-01T09:00:00Z)`
    query[bound] = ms
  }
  const cursor = field('before')
  if (cursor === undefined) return { fields, query }
  const before = Number(cursor)
  if (!Number.isSafeInteger(before) || before < 1) return 'the page cursor is malformed'
  return { fields, query, before }
}

/** The group a failure-group key (base64url JSON `[group, reason, error, message]`) names; undefined if malformed. */
export function groupOfFailure(failure: unknown): string | undefined {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(String(failure ?? ''), 'base64url').toString('utf8'))
  } catch {
    return undefined
  }
  const group = Array.isArray(parsed) ? parsed[0] : undefined
  return typeof group === 'string' && group !== '' ? group : undefined
}
