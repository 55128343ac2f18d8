import { parkedAt } from './keys-sql.js'

/** Epoch milliseconds by the database clock, fixed for the statement (so `visible_at <= now` can use the index). */
const nowMs = '(extract(epoch from statement_timestamp()) * 1000)::bigint'

/** Selects dead letters; parameters $1..$6 are ids, group, topic, reason, since, until (null = any). */
const deadLetterFilter = `($1::text[] IS NULL OR message_id = ANY($1)) AND ($2::text IS NULL OR group_name = $2)
  AND ($3::text IS NULL OR topic = $3) AND ($4::text IS NULL OR reason = $4)
  AND ($5::bigint IS NULL OR dead_lettered_at >= $5) AND ($6::bigint IS NULL OR dead_lettered_at < $6)`

/** A named statement: pg prepares it once per connection. */
export interface Statement {
  readonly name: string
  readonly text: string
}

/** Every statement Herald runs against its tables in schema `s`. */
export function statements(s: string, notifyChannel: string | undefined) {
  const named = (name: string, text: string): Statement => ({ name: `herald:${s}:${name}`, text })
  // NOTIFY is a wake-up hint for consumers in other processes; one per group per transaction (PostgreSQL folds
  // identical payloads). Delivery never depends on it: consumers also poll.
  const notify = notifyChannel === undefined ? '' : `, pg_notify('${notifyChannel}', group_name)`
  return {
    /**
     * Publishes a batch of items in one statement (one commit): $1 item index, $2 topic, $3 id, $4 headers,
     * $5 body, $6 visible_at (null = now), $7 key (null = none), one array element per message. Routes each item to every group whose
     * binding matches its topic, in the same snapshot; returns the routes so an unrouted mandatory item can fail.
     */
    publish: named(
      'publish',
      `WITH input AS (
         SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[], $7::text[])
           WITH ORDINALITY AS t(item, topic, message_id, headers, body, visible_at, order_key, ord)
       ), routes AS (
         SELECT DISTINCT i.item, b.group_name
         FROM (SELECT DISTINCT item, topic FROM input) i JOIN ${s}.bindings b ON ('.' || i.topic) ~ b.regex
       ), inserted AS (
         -- A keyed row joins its key when a claim finds it due (key_state 2): see keys-sql.ts.
         INSERT INTO ${s}.queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at, order_key,
           key_state, due_at)
         SELECT r.group_name, i.message_id, i.topic, i.headers, i.body,
           CASE WHEN i.order_key IS NULL THEN COALESCE(i.visible_at, ${nowMs}) ELSE ${parkedAt} END, ${nowMs},
           i.order_key, CASE WHEN i.order_key IS NULL THEN 0 ELSE 2 END,
           CASE WHEN i.order_key IS NULL THEN NULL ELSE COALESCE(i.visible_at, ${nowMs}) END
         FROM input i JOIN routes r ON r.item = i.item ORDER BY i.ord, r.group_name
       )
       SELECT item, group_name${notify} FROM routes`,
    ),
    /** Lets due keyed rows join their keys, then claims: $1 group, $2 token, $3 lease ms, $4 limit. */
    claim: named('claim', `SELECT * FROM ${s}.claim($1, $2, $3, $4, $5::float8)`),
    ackKeyed: named('ack-keyed', `SELECT ${s}.ack_keyed($1::bigint[], $2::text[])`),
    deadLetterKeyed: named(
      'dead-letter-keyed',
      `SELECT ${s}.dead_letter_keyed($1::bigint, $2::text, $3::text, $4::text, $5::boolean, $6::integer)`,
    ),
    releaseKey: named('release-key', `SELECT ${s}.unhold_key($1, $2, NULL) AS released`),
    heldKeys: named(
      'held-keys',
      `SELECT k.group_name, k.order_key, k.held_by,
         (SELECT count(*) FROM ${s}.queue q WHERE q.group_name = k.group_name AND q.order_key = k.order_key
            AND q.key_state = 1)::int AS waiting
       FROM ${s}.keys k WHERE k.held_by IS NOT NULL AND ($1::text IS NULL OR k.group_name = $1)
       ORDER BY k.group_name, k.order_key`,
    ),
    groupSettings: named(
      'group-settings',
      `INSERT INTO ${s}.groups (group_name, key_concurrency, after_dead_letter, max_per_second)
       VALUES ($1, $2, $3, $4)
       ON CONFLICT (group_name) DO UPDATE SET key_concurrency = excluded.key_concurrency,
         after_dead_letter = excluded.after_dead_letter, max_per_second = excluded.max_per_second`,
    ),
    /** Milliseconds until the group's next row becomes visible (negative: one is visible now), or null. */
    nextVisible: named(
      'next-visible',
      `SELECT LEAST(MIN(visible_at), (SELECT MIN(due_at) FROM ${s}.queue WHERE group_name = $1 AND key_state = 2))
         - ${nowMs} AS wait FROM ${s}.queue WHERE group_name = $1`,
    ),
    renew: named(
      'renew',
      `UPDATE ${s}.queue q SET visible_at = ${nowMs} + $3
       FROM unnest($1::bigint[], $2::text[]) AS a(seq, token) WHERE q.seq = a.seq AND q.lease_token = a.token`,
    ),
    ack: named(
      'ack',
      `DELETE FROM ${s}.queue q USING unnest($1::bigint[], $2::text[]) AS a(seq, token)
       WHERE q.seq = a.seq AND q.lease_token = a.token`,
    ),
    retry: named(
      'retry',
      `UPDATE ${s}.queue SET visible_at = ${nowMs} + $3, lease_token = NULL,
         first_failed_at = COALESCE(first_failed_at, ${nowMs}), last_error = $4
       WHERE seq = $1 AND lease_token = $2`,
    ),
    release: named(
      'release',
      `UPDATE ${s}.queue SET visible_at = ${nowMs}, lease_token = NULL, attempts = GREATEST(attempts - 1, 0)
       WHERE seq = $1 AND lease_token = $2`,
    ),
    deadLetter: named(
      'dead-letter',
      `WITH moved AS (DELETE FROM ${s}.queue WHERE seq = $1 AND lease_token = $2 RETURNING *)
       INSERT INTO ${s}.dead_letters (group_name, message_id, topic, headers, body, reason, attempts,
         first_failed_at, last_failed_at, dead_lettered_at, error)
       SELECT group_name, message_id, topic, headers, body, $3::text, $5::integer,
         COALESCE(first_failed_at, ${nowMs}), ${nowMs}, ${nowMs}, $4
       FROM moved`,
    ),
    declareGroup: named(
      'declare-group',
      `INSERT INTO ${s}.bindings (group_name, pattern, regex, created_at)
       SELECT $1, p, r, ${nowMs} FROM unnest($2::text[], $3::text[]) AS t(p, r) ON CONFLICT DO NOTHING`,
    ),
    unbindGroup: named('unbind-group', `DELETE FROM ${s}.bindings WHERE group_name = $1 AND pattern = ANY($2::text[])`),
    deleteGroup: named(
      'delete-group',
      `WITH unbound AS (DELETE FROM ${s}.bindings WHERE group_name = $1),
         keys AS (DELETE FROM ${s}.keys WHERE group_name = $1),
         settings AS (DELETE FROM ${s}.groups WHERE group_name = $1)
       DELETE FROM ${s}.queue WHERE group_name = $1`,
    ),
    listGroups: named(
      'list-groups',
      `SELECT b.group_name, b.patterns,
         (SELECT count(*) FROM ${s}.queue q WHERE q.group_name = b.group_name)::int AS depth,
         (SELECT count(*) FROM ${s}.queue q WHERE q.group_name = b.group_name AND q.lease_token IS NULL
            AND q.visible_at > $1 AND q.key_state <> 1)::int AS scheduled,
         (SELECT count(*) FROM ${s}.queue q WHERE q.group_name = b.group_name AND q.key_state = 1)::int
            AS waiting_on_key,
         (SELECT count(*) FROM ${s}.keys k WHERE k.group_name = b.group_name AND k.held_by IS NOT NULL)::int
            AS held_keys,
         (SELECT count(*) FROM ${s}.queue q WHERE q.group_name = b.group_name AND q.lease_token IS NOT NULL
            AND q.visible_at > $1)::int AS in_flight,
         (SELECT min(q.enqueued_at) FROM ${s}.queue q WHERE q.group_name = b.group_name
            AND q.visible_at <= $1)::float8 AS oldest_due,
         (SELECT count(*) FROM ${s}.dead_letters d WHERE d.group_name = b.group_name)::int AS dead
       FROM (SELECT group_name, array_agg(pattern ORDER BY pattern) AS patterns FROM ${s}.bindings
             GROUP BY group_name) b
       ORDER BY b.group_name`,
    ),
    listDeadLetters: named(
      'list-dead-letters',
      `SELECT * FROM ${s}.dead_letters WHERE ${deadLetterFilter} AND seq > $7 ORDER BY seq LIMIT $8`,
    ),
    getDeadLetter: named(
      'get-dead-letter',
      `SELECT * FROM ${s}.dead_letters WHERE message_id = $1 AND ($2::text IS NULL OR group_name = $2)
       ORDER BY seq LIMIT 1`,
    ),
    /** Moves the selected dead letters back to their groups' queues, attempts reset; one row per group. */
    redrive: named(
      'redrive',
      // A keyed dead letter joins its key again; one that held its key lets go of it here (without admitting the
      // rows waiting behind it), so that it joins first.
      `WITH moved AS (DELETE FROM ${s}.dead_letters WHERE ${deadLetterFilter} RETURNING *),
       unheld AS (
         UPDATE ${s}.keys k SET held_by = NULL FROM moved m
         WHERE k.group_name = m.group_name AND k.held_by = m.message_id
       ),
       requeued AS (
         INSERT INTO ${s}.queue (group_name, message_id, topic, headers, body, visible_at, enqueued_at, order_key,
           key_state, due_at)
         SELECT group_name, message_id, topic, headers, body,
           CASE WHEN k IS NULL THEN ${nowMs} ELSE ${parkedAt} END, ${nowMs}, k,
           CASE WHEN k IS NULL THEN 0 ELSE 2 END, CASE WHEN k IS NULL THEN NULL ELSE ${nowMs} END
         FROM (SELECT *, ${s}.key_of(headers) AS k FROM moved) m ORDER BY seq
         RETURNING group_name
       )
       SELECT group_name, count(*)::int AS n${notify} FROM requeued GROUP BY group_name`,
    ),
    /** Deletes the selected dead letters; a purged one that held its key lets the key go on. */
    purgeDeadLetters: named(
      'purge-dead-letters',
      `WITH purged AS (DELETE FROM ${s}.dead_letters WHERE ${deadLetterFilter} RETURNING group_name, message_id)
       SELECT count(*)::int AS n,
         (SELECT count(${s}.unhold_key(k.group_name, k.order_key, k.held_by)) FROM ${s}.keys k
          JOIN purged p ON k.group_name = p.group_name AND k.held_by = p.message_id) AS unheld
       FROM purged`,
    ),
  }
}

export type Statements = ReturnType<typeof statements>
