import type { DeadLetter, DeadLetterFilter, DeadLetterPage, DeadLetterQuery } from '@herald/core'
import { type DeadLetterRow, deadLetterFromRow } from '@herald/core/adapter'
import type pg from 'pg'
import type { Statements } from './statements.js'

/** The filter as the statements' parameters $1..$6. */
function bind(filter: DeadLetterFilter): unknown[] {
  return [
    filter.ids ?? null,
    filter.group ?? null,
    filter.topic ?? null,
    filter.reason ?? null,
    filter.since ?? null,
    filter.until ?? null,
  ]
}

/** The dead-letter queue in `<schema>.dead_letters`: keyset-paged listing, redrive and purge by filter. */
export function createDeadLetterQueries(pool: pg.Pool, sql: Statements) {
  return {
    async list(query: DeadLetterQuery): Promise<DeadLetterPage> {
      const limit = query.limit ?? 50
      const result = await pool.query<DeadLetterRow>({
        ...sql.listDeadLetters,
        values: [...bind(query), query.cursor ?? '0', limit + 1],
      })
      const rows = result.rows
      const items = rows.slice(0, limit).map(deadLetterFromRow)
      const last = rows[limit - 1]
      return rows.length > limit && last !== undefined ? { items, nextCursor: String(last.seq) } : { items }
    },
    async get(id: string, group?: string): Promise<DeadLetter | undefined> {
      const result = await pool.query<DeadLetterRow>({ ...sql.getDeadLetter, values: [id, group ?? null] })
      const row = result.rows[0]
      return row === undefined ? undefined : deadLetterFromRow(row)
    },
    /** One statement: the rows leave the dead letters and enter their queues together, or not at all. */
    async redrive(filter: DeadLetterFilter): Promise<{ count: number; groups: string[] }> {
      const result = await pool.query<{ group_name: string; n: number }>({ ...sql.redrive, values: bind(filter) })
      return {
        count: result.rows.reduce((sum, row) => sum + row.n, 0),
        groups: result.rows.map((row) => row.group_name),
      }
    },
    async purge(filter: DeadLetterFilter): Promise<number> {
      const result = await pool.query<{ n: number }>({ ...sql.purgeDeadLetters, values: bind(filter) })
      return result.rows[0]?.n ?? 0
    },
  }
}
