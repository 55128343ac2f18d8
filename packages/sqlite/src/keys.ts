import type { HeldKey } from '@herald/core'
import type Database from 'better-sqlite3'
import { parkedAt } from './schema.js'

/** A message as it goes into `herald_queue`. */
export interface QueueRow {
  readonly id: string
  readonly topic: string
  readonly headers: string
  readonly body: Buffer
}

/**
 * Per-key order in `herald_queue`, decided when a keyed row joins its key: it is put in play while the key has
 * fewer rows in play than the group's per-key concurrency (and no dead letter holds it), else it waits, in the
 * key's order, until one in play is acked or dead-lettered. Claims never look at keys: a waiting row is simply
 * invisible. Every function runs inside the caller's write transaction.
 */
export interface KeyQueue {
  /** Inserts a keyed row due at `visibleAt`: it joins its key now if due, else when due (see `joinDue`). */
  insert(group: string, key: string, row: QueueRow, visibleAt: number, now: number, concurrency: number): void
  /** Lets delayed keyed rows that are due join their keys. Returns how many joined. */
  joinDue(group: string, now: number, concurrency: number): number
  /** A row of `key` was acked or dead-lettered: frees its place (or, with `heldBy`, holds the key) and admits the next. */
  settled(group: string, key: string, heldBy: string | undefined, now: number, concurrency: number): void
  /** Puts a redriven dead letter back: first in its key if it held the key, else behind the key's rows. */
  redrive(group: string, key: string, row: QueueRow, now: number, concurrency: number): void
  /** A dead letter was purged: if it held its key, the key goes on. */
  purged(group: string, key: string, messageId: string, now: number, concurrency: number): void
  /** Lets a held key go on; false when it was not held. */
  release(group: string, key: string, now: number, concurrency: number): boolean
  listHeld(group: string | undefined): HeldKey[]
  heldCounts(): Map<string, number>
  deleteGroup(group: string): void
}

interface KeyRow {
  readonly active: number
  readonly position: number
  readonly held_by: string | null
}

export function createKeyQueue(db: Database.Database): KeyQueue {
  // One statement takes the key's next position and, if the key has room, its place in play (SET expressions
  // read the row as it was, so `admitted` says whether this call took a place).
  const join = db.prepare<{ group: string; key: string; concurrency: number }, { position: number; admitted: number }>(
    `INSERT INTO herald_keys (group_name, order_key, active, position, admitted) VALUES (@group, @key, 1, 1, 1)
     ON CONFLICT (group_name, order_key) DO UPDATE SET position = position + 1,
       admitted = (held_by IS NULL AND active < @concurrency),
       active = active + (held_by IS NULL AND active < @concurrency)
     RETURNING position, admitted`,
  )
  // After an ack: the key's next waiting row takes the freed place, unless a dead letter holds the key or the
  // key is over its concurrency (it was lowered). Then the count of rows in play does not change.
  const handOver = db.prepare<{ group: string; key: string; concurrency: number; now: number }>(
    `UPDATE herald_queue SET key_state = 0, visible_at = @now
     WHERE seq = (SELECT seq FROM herald_queue WHERE group_name = @group AND order_key = @key AND key_state = 1
                  ORDER BY key_position LIMIT 1)
       AND NOT EXISTS (SELECT 1 FROM herald_keys WHERE group_name = @group AND order_key = @key
                         AND (held_by IS NOT NULL OR active > @concurrency))`,
  )
  // Or, with nothing waiting, the key's last row in play is gone: forget the key.
  const forgetLast = db.prepare<{ group: string; key: string }>(
    `DELETE FROM herald_keys WHERE group_name = @group AND order_key = @key AND active <= 1 AND held_by IS NULL
       AND NOT EXISTS (SELECT 1 FROM herald_queue WHERE group_name = @group AND order_key = @key AND key_state = 1)`,
  )
  const addActive = db.prepare<{ group: string; key: string; n: number }>(
    'UPDATE herald_keys SET active = active + @n WHERE group_name = @group AND order_key = @key',
  )
  const insertRow = db.prepare<Record<string, unknown>>(
    `INSERT INTO herald_queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at,
       order_key, key_state, key_position, due_at)
     VALUES (@group, @id, @topic, @headers, @body, @visibleAt, @now, @key, @state, @position, @dueAt)`,
  )
  const dueJoining = db.prepare<{ group: string; now: number }, { seq: number; order_key: string; due_at: number }>(
    `SELECT seq, order_key, due_at FROM herald_queue
     WHERE group_name = @group AND key_state = 2 AND due_at <= @now AND lease_token IS NULL
     ORDER BY due_at, seq LIMIT 500`,
  )
  const placeRow = db.prepare<{ seq: number; state: number; visibleAt: number; position: number }>(
    'UPDATE herald_queue SET key_state = @state, visible_at = @visibleAt, key_position = @position WHERE seq = @seq',
  )
  const free = db.prepare<{ group: string; key: string; heldBy: string | null }, KeyRow>(
    `UPDATE herald_keys SET active = MAX(active - 1, 0), held_by = COALESCE(@heldBy, held_by)
     WHERE group_name = @group AND order_key = @key RETURNING active, position, held_by`,
  )
  const keyRow = db.prepare<{ group: string; key: string }, KeyRow>(
    'SELECT active, position, held_by FROM herald_keys WHERE group_name = @group AND order_key = @key',
  )
  const nextWaiting = db.prepare<{ group: string; key: string; limit: number }, { seq: number }>(
    `SELECT seq FROM herald_queue WHERE group_name = @group AND order_key = @key AND key_state = 1
     ORDER BY key_position LIMIT @limit`,
  )
  const admitRow = db.prepare<{ seq: number; now: number }>(
    'UPDATE herald_queue SET key_state = 0, visible_at = @now WHERE seq = @seq',
  )
  const forget = db.prepare<{ group: string; key: string }>(
    `DELETE FROM herald_keys WHERE group_name = @group AND order_key = @key AND active = 0 AND held_by IS NULL
       AND NOT EXISTS (SELECT 1 FROM herald_queue WHERE group_name = @group AND order_key = @key AND key_state = 1)`,
  )
  const unhold = db.prepare<{ group: string; key: string; id: string | null }>(
    `UPDATE herald_keys SET held_by = NULL
     WHERE group_name = @group AND order_key = @key AND held_by IS NOT NULL AND (@id IS NULL OR held_by = @id)`,
  )
  const held = db.prepare<{ group: string | null }, { group_name: string; order_key: string; held_by: string }>(
    `SELECT group_name, order_key, held_by FROM herald_keys
     WHERE held_by IS NOT NULL AND (@group IS NULL OR group_name = @group) ORDER BY group_name, order_key`,
  )
  const waiting = db.prepare<{ group: string; key: string }, { n: number }>(
    'SELECT COUNT(*) AS n FROM herald_queue WHERE group_name = @group AND order_key = @key AND key_state = 1',
  )
  const heldCounts = db.prepare<[], { group_name: string; n: number }>(
    'SELECT group_name, COUNT(*) AS n FROM herald_keys WHERE held_by IS NOT NULL GROUP BY group_name',
  )
  const deleteKeys = db.prepare<[string]>('DELETE FROM herald_keys WHERE group_name = ?')

  /** Takes the key's next position; true when the row may be in play at once. */
  function place(group: string, key: string, concurrency: number): { position: number; inPlay: boolean } {
    const row = join.get({ group, key, concurrency })!
    return { position: row.position, inPlay: row.admitted === 1 }
  }

  /** Puts waiting rows in play while the key has room, then forgets the key if nothing of it is left. */
  function admitWaiting(group: string, key: string, state: KeyRow, now: number, concurrency: number): void {
    if (state.held_by === null && state.active < concurrency) {
      const next = nextWaiting.all({ group, key, limit: concurrency - state.active })
      for (const { seq } of next) admitRow.run({ seq, now })
      if (next.length > 0) {
        addActive.run({ group, key, n: next.length })
        return
      }
    }
    if (state.active === 0 && state.held_by === null) forget.run({ group, key })
  }

  function insertInPlay(group: string, key: string, row: QueueRow, now: number, position: number): void {
    insertRow.run({ group, ...row, visibleAt: now, now, key, state: 0, position, dueAt: now })
  }

  return {
    insert(group, key, row, visibleAt, now, concurrency) {
      if (visibleAt > now) {
        insertRow.run({ group, ...row, visibleAt: parkedAt, now, key, state: 2, position: null, dueAt: visibleAt })
        return
      }
      const { position, inPlay } = place(group, key, concurrency)
      if (inPlay) insertInPlay(group, key, row, now, position)
      else insertRow.run({ group, ...row, visibleAt: parkedAt, now, key, state: 1, position, dueAt: now })
    },

    joinDue(group, now, concurrency) {
      const due = dueJoining.all({ group, now })
      for (const row of due) {
        const { position, inPlay } = place(group, row.order_key, concurrency)
        placeRow.run({ seq: row.seq, state: inPlay ? 0 : 1, visibleAt: inPlay ? row.due_at : parkedAt, position })
      }
      return due.length
    },

    settled(group, key, heldBy, now, concurrency) {
      // The common cases in one or two statements: the next row takes the place, or the key is done.
      if (heldBy === undefined) {
        if (handOver.run({ group, key, concurrency, now }).changes > 0) return
        if (forgetLast.run({ group, key }).changes > 0) return
      }
      const state = free.get({ group, key, heldBy: heldBy ?? null })
      if (state !== undefined) admitWaiting(group, key, state, now, concurrency)
    },

    redrive(group, key, row, now, concurrency) {
      if (unhold.run({ group, key, id: row.id }).changes > 0) {
        addActive.run({ group, key, n: 1 })
        insertInPlay(group, key, row, now, 0)
        return
      }
      this.insert(group, key, row, now, now, concurrency)
    },

    purged(group, key, messageId, now, concurrency) {
      if (unhold.run({ group, key, id: messageId }).changes === 0) return
      const state = keyRow.get({ group, key })
      if (state !== undefined) admitWaiting(group, key, state, now, concurrency)
    },

    release(group, key, now, concurrency) {
      if (unhold.run({ group, key, id: null }).changes === 0) return false
      const state = keyRow.get({ group, key })
      if (state !== undefined) admitWaiting(group, key, state, now, concurrency)
      return true
    },

    listHeld(group) {
      return held.all({ group: group ?? null }).map((row) => ({
        group: row.group_name,
        key: row.order_key,
        deadLetterId: row.held_by,
        waiting: waiting.get({ group: row.group_name, key: row.order_key })?.n ?? 0,
      }))
    },

    heldCounts() {
      return new Map(heldCounts.all().map((r) => [r.group_name, r.n]))
    },

    deleteGroup(group) {
      deleteKeys.run(group)
    },
  }
}
