import {
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterPage,
  type DeadLetterQuery,
  type DeadLetterRow,
  deadLetterFromRow,
} from '@herald/core'
import type Database from 'better-sqlite3'

const filterSql = `(@ids IS NULL OR message_id IN (SELECT value FROM json_each(@ids)))
  AND (@group IS NULL OR group_name = @group) AND (@topic IS NULL OR topic = @topic)
  AND (@reason IS NULL OR reason = @reason)
  AND (@since IS NULL OR dead_lettered_at >= @since) AND (@until IS NULL OR dead_lettered_at < @until)`

function bind(filter: DeadLetterFilter) {
  return {
    ids: filter.ids === undefined ? null : JSON.stringify(filter.ids),
    group: filter.group ?? null,
    topic: filter.topic ?? null,
    reason: filter.reason ?? null,
    since: filter.since ?? null,
    until: filter.until ?? null,
  }
}

/** The dead-letter queue in `herald_dead_letters`: keyset-paged listing, redrive and purge by filter. */
export function createDeadLetterQueries(db: Database.Database) {
  const list = db.prepare<Record<string, unknown>, DeadLetterRow>(
    `SELECT * FROM herald_dead_letters WHERE ${filterSql} AND seq > @after ORDER BY seq LIMIT @limit`,
  )
  const get = db.prepare<{ id: string; group: string | null }, DeadLetterRow>(
    'SELECT * FROM herald_dead_letters WHERE message_id = @id AND (@group IS NULL OR group_name = @group) ORDER BY seq LIMIT 1',
  )
  const requeue = db.prepare<Record<string, unknown>>(
    `INSERT INTO herald_queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at)
     SELECT group_name, message_id, topic, headers, body, @now, @now FROM herald_dead_letters WHERE ${filterSql}
     ORDER BY seq`,
  )
  const purge = db.prepare<Record<string, unknown>>(`DELETE FROM herald_dead_letters WHERE ${filterSql}`)

  return {
    list(query: DeadLetterQuery): DeadLetterPage {
      const limit = query.limit ?? 50
      const rows = list.all({ ...bind(query), after: Number(query.cursor ?? 0), limit: limit + 1 })
      const items = rows.slice(0, limit).map(deadLetterFromRow)
      const last = rows[limit - 1]
      return rows.length > limit && last !== undefined ? { items, nextCursor: String(last.seq) } : { items }
    },
    get(id: string, group?: string): DeadLetter | undefined {
      const row = get.get({ id, group: group ?? null })
      return row === undefined ? undefined : deadLetterFromRow(row)
    },
    /** Call inside a transaction: copies back to the queue with attempts reset, then deletes. */
    redrive(filter: DeadLetterFilter, now: number): number {
      requeue.run({ ...bind(filter), now })
      return purge.run(bind(filter)).changes
    },
    purge(filter: DeadLetterFilter): number {
      return purge.run(bind(filter)).changes
    },
  }
}
