import type Database from 'better-sqlite3'

type ClaimParams = { token: string; leaseUntil: number; group: string; now: number; limit: number; live: string }

interface ClaimedRow {
  readonly seq: number
  readonly message_id: string
  readonly topic: string
  readonly headers: string
  readonly body: Buffer
  readonly attempts: number
  readonly order_key: string | null
}

interface GroupDepthRow {
  readonly group_name: string
  readonly depth: number
  readonly in_flight: number
  readonly scheduled: number
  readonly waiting_on_key: number
  readonly oldest_due: number | null
}

/** Every statement Herald runs against its tables. */
export interface Statements {
  readonly bindingsVersion: Database.Statement<[], { value: number }>
  readonly bumpBindingsVersion: Database.Statement<unknown[], unknown>
  readonly allBindings: Database.Statement<[], { group_name: string; pattern: string }>
  readonly allGroupSettings: Database.Statement<[], { group_name: string; key_concurrency: number }>
  readonly upsertGroupSettings: Database.Statement<[string, number, string, number | null], unknown>
  readonly rateBucket: Database.Statement<[string], { tokens: number | null; at: number | null }>
  readonly spendRate: Database.Statement<[number, number, string], unknown>
  readonly deleteGroupSettings: Database.Statement<[string], unknown>
  readonly hasJoining: Database.Statement<[string, number], { seq: number }>
  readonly nextJoinAt: Database.Statement<[string], { due: number | null }>
  readonly insertBinding: Database.Statement<[string, string, number], unknown>
  readonly deleteBindings: Database.Statement<[string], unknown>
  readonly deleteBinding: Database.Statement<[string, string], unknown>
  readonly deleteGroupRows: Database.Statement<[string], unknown>
  readonly insertMessage: Database.Statement<[string, string, string, string, Buffer, number, number], unknown>
  readonly hasVisible: Database.Statement<[string, number], { seq: number }>
  readonly nextVisibleAt: Database.Statement<[string], { due: number | null }>
  readonly claim: Database.Statement<ClaimParams, ClaimedRow>
  readonly renew: Database.Statement<[number, number, string], unknown>
  readonly ack: Database.Statement<[number, string], unknown>
  readonly retry: Database.Statement<[number, number, string, number, string], unknown>
  readonly release: Database.Statement<[number, number, string], unknown>
  readonly deadLetter: Database.Statement<
    { seq: number; token: string; reason: string; attempts: number; now: number; error: string | null },
    unknown
  >
  readonly groupDepths: Database.Statement<{ now: number }, GroupDepthRow>
  readonly groupDeadLetters: Database.Statement<[], { group_name: string; count: number }>
}

/** Prepares every statement once per connection. */
export function prepareStatements(db: Database.Database): Statements {
  return {
    bindingsVersion: db.prepare<[], { value: number }>(`SELECT value FROM herald_meta WHERE key = 'bindings_version'`),
    bumpBindingsVersion: db.prepare(`UPDATE herald_meta SET value = value + 1 WHERE key = 'bindings_version'`),
    allBindings: db.prepare<[], { group_name: string; pattern: string }>(
      'SELECT group_name, pattern FROM herald_bindings ORDER BY group_name, pattern',
    ),
    allGroupSettings: db.prepare<[], { group_name: string; key_concurrency: number }>(
      'SELECT group_name, key_concurrency FROM herald_groups',
    ),
    upsertGroupSettings: db.prepare<[string, number, string, number | null]>(
      `INSERT INTO herald_groups (group_name, key_concurrency, after_dead_letter, max_per_second) VALUES (?, ?, ?, ?)
       ON CONFLICT (group_name) DO UPDATE SET key_concurrency = excluded.key_concurrency,
         after_dead_letter = excluded.after_dead_letter, max_per_second = excluded.max_per_second`,
    ),
    rateBucket: db.prepare<[string], { tokens: number | null; at: number | null }>(
      'SELECT rate_tokens AS tokens, rate_at AS at FROM herald_groups WHERE group_name = ?',
    ),
    spendRate: db.prepare<[number, number, string]>(
      'UPDATE herald_groups SET rate_tokens = ?, rate_at = ? WHERE group_name = ?',
    ),
    deleteGroupSettings: db.prepare<[string]>('DELETE FROM herald_groups WHERE group_name = ?'),
    hasJoining: db.prepare<[string, number], { seq: number }>(
      'SELECT seq FROM herald_queue WHERE group_name = ? AND key_state = 2 AND due_at <= ? LIMIT 1',
    ),
    nextJoinAt: db.prepare<[string], { due: number | null }>(
      'SELECT MIN(due_at) AS due FROM herald_queue WHERE group_name = ? AND key_state = 2',
    ),
    insertBinding: db.prepare<[string, string, number]>(
      'INSERT OR IGNORE INTO herald_bindings (group_name, pattern, created_at) VALUES (?, ?, ?)',
    ),
    deleteBindings: db.prepare<[string]>('DELETE FROM herald_bindings WHERE group_name = ?'),
    deleteBinding: db.prepare<[string, string]>('DELETE FROM herald_bindings WHERE group_name = ? AND pattern = ?'),
    deleteGroupRows: db.prepare<[string]>('DELETE FROM herald_queue WHERE group_name = ?'),
    insertMessage: db.prepare<[string, string, string, string, Buffer, number, number]>(
      `INSERT INTO herald_queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    hasVisible: db.prepare<[string, number], { seq: number }>(
      'SELECT seq FROM herald_queue WHERE group_name = ? AND visible_at <= ? LIMIT 1',
    ),
    nextVisibleAt: db.prepare<[string], { due: number | null }>(
      'SELECT MIN(visible_at) AS due FROM herald_queue WHERE group_name = ?',
    ),
    claim: db.prepare<ClaimParams, ClaimedRow>(
      // A count that is not a whole number from 0 (written around Herald) counts as 0.
      `UPDATE herald_queue SET lease_token = @token, visible_at = @leaseUntil,
         attempts = (CASE WHEN typeof(attempts) = 'integer' AND attempts > 0 THEN attempts ELSE 0 END) + 1
       WHERE seq IN (SELECT seq FROM herald_queue WHERE group_name = @group AND visible_at <= @now
                       AND (lease_token IS NULL OR lease_token NOT IN (SELECT value FROM json_each(@live)))
                     ORDER BY visible_at, seq LIMIT @limit)
       RETURNING seq, message_id, topic, headers, body, attempts, order_key`,
    ),
    renew: db.prepare<[number, number, string]>(
      'UPDATE herald_queue SET visible_at = ? WHERE seq = ? AND lease_token = ?',
    ),
    ack: db.prepare<[number, string]>('DELETE FROM herald_queue WHERE seq = ? AND lease_token = ?'),
    retry: db.prepare<[number, number, string, number, string]>(
      `UPDATE herald_queue SET visible_at = ?, lease_token = NULL, first_failed_at = COALESCE(first_failed_at, ?),
       last_error = ? WHERE seq = ? AND lease_token = ?`,
    ),
    release: db.prepare<[number, number, string]>(
      'UPDATE herald_queue SET visible_at = ?, lease_token = NULL, attempts = MAX(attempts - 1, 0) WHERE seq = ? AND lease_token = ?',
    ),
    deadLetter: db.prepare<{
      seq: number
      token: string
      reason: string
      attempts: number
      now: number
      error: string | null
    }>(
      `INSERT INTO herald_dead_letters (group_name, message_id, topic, headers, body, reason, attempts,
         first_failed_at, last_failed_at, dead_lettered_at, error)
       SELECT group_name, message_id, topic, headers, body, @reason, @attempts, COALESCE(first_failed_at, @now), @now, @now, @error
       FROM herald_queue WHERE seq = @seq AND lease_token = @token`,
    ),
    // Scheduled: unclaimed and not yet due. Due: visible now (never claimed, retried and due, or its lease ran out).
    groupDepths: db.prepare<{ now: number }, GroupDepthRow>(
      `SELECT group_name, COUNT(*) AS depth,
         SUM(CASE WHEN lease_token IS NOT NULL AND visible_at > @now THEN 1 ELSE 0 END) AS in_flight,
         SUM(CASE WHEN lease_token IS NULL AND visible_at > @now AND key_state <> 1 THEN 1 ELSE 0 END) AS scheduled,
         SUM(CASE WHEN key_state = 1 THEN 1 ELSE 0 END) AS waiting_on_key,
         MIN(CASE WHEN visible_at <= @now THEN enqueued_at END) AS oldest_due
       FROM herald_queue GROUP BY group_name`,
    ),
    groupDeadLetters: db.prepare<[], { group_name: string; count: number }>(
      'SELECT group_name, COUNT(*) AS count FROM herald_dead_letters GROUP BY group_name',
    ),
  }
}
