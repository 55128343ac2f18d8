import {
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterPage,
  type DeadLetterQuery,
  orderingKeyOf,
} from '@herald/core'
import { type DeadLetterRow, deadLetterFromRow, parseStoredHeaders } from '@herald/core/adapter'
import type Database from 'better-sqlite3'
import type { KeyQueue } from './keys.js'

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
export function createDeadLetterQueries(
  db: Database.Database,
  keys: KeyQueue,
  keyConcurrency: (group: string) => number,
) {
  const list = db.prepare<Record<string, unknown>, DeadLetterRow>(
    `SELECT * FROM herald_dead_letters WHERE ${filterSql} AND seq > @after ORDER BY seq LIMIT @limit`,
  )
  const get = db.prepare<{ id: string; group: string | null }, DeadLetterRow>(
    'SELECT * FROM herald_dead_letters WHERE message_id = @id AND (@group IS NULL OR group_name = @group) ORDER BY seq LIMIT 1',
  )
  const selected = db.prepare<
    Record<string, unknown>,
    { group_name: string; message_id: string; topic: string; headers: string; body: Buffer }
  >(`SELECT group_name, message_id, topic, headers, body FROM herald_dead_letters WHERE ${filterSql} ORDER BY seq`)
  const selectedIds = db.prepare<Record<string, unknown>, { group_name: string; message_id: string; headers: string }>(
    `SELECT group_name, message_id, headers FROM herald_dead_letters WHERE ${filterSql}
       AND EXISTS (SELECT 1 FROM herald_keys k WHERE k.group_name = herald_dead_letters.group_name
                     AND k.held_by = herald_dead_letters.message_id)`,
  )
  const requeue = db.prepare<Record<string, unknown>>(
    `INSERT INTO herald_queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at)
     VALUES (@group, @id, @topic, @headers, @body, @now, @now)`,
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
    /**
     * Call inside a transaction: copies back to the queue with attempts reset, then deletes. A keyed dead letter
     * that holds its key goes first in it; any other goes behind its key's rows, as a new publish would.
     */
    redrive(filter: DeadLetterFilter, now: number): number {
      for (const letter of selected.all(bind(filter))) {
        const row = { id: letter.message_id, topic: letter.topic, headers: letter.headers, body: letter.body }
        const key = orderingKeyOf({ id: row.id, headers: parseStoredHeaders(row.headers, row.id), body: row.body })
        const group = letter.group_name
        if (key === undefined) requeue.run({ group, ...row, now })
        else keys.redrive(group, key, row, now, keyConcurrency(group))
      }
      return purge.run(bind(filter)).changes
    },
    /** Call inside a transaction. A purged dead letter that held its key lets the key go on. */
    purge(filter: DeadLetterFilter, now: number): number {
      for (const letter of selectedIds.all(bind(filter))) {
        const key = orderingKeyOf({
          id: letter.message_id,
          headers: parseStoredHeaders(letter.headers, letter.message_id),
          body: Buffer.of(),
        })
        if (key !== undefined)
          keys.purged(letter.group_name, key, letter.message_id, now, keyConcurrency(letter.group_name))
      }
      return purge.run(bind(filter)).changes
    },
  }
}
