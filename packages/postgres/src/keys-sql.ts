/**
 * Per-key ordering in PostgreSQL (docs/decisions/0012): the columns, tables and functions, created idempotently
 * by `migrate` after the base tables. A keyed row is published `joining` (key_state 2, invisible to claims) and
 * joins its key in the claiming transaction once due: in play (0) while its key has room, else waiting (1) in the
 * key's order. Acks and dead letters of keyed rows free the place and admit the next waiting row in the same
 * function call, so no crash can leave a key's count wrong.
 */

/** `visible_at` of a row no claim may take: it waits for its key, or to join it. */
export const parkedAt = '8640000000000000'

export function keysSql(s: string): string {
  const now = '(extract(epoch from statement_timestamp()) * 1000)::bigint'
  const concurrency = (g: string) => `COALESCE((SELECT key_concurrency FROM ${s}.groups WHERE group_name = ${g}), 1)`
  return `
ALTER TABLE ${s}.queue ADD COLUMN IF NOT EXISTS order_key text;
ALTER TABLE ${s}.queue ADD COLUMN IF NOT EXISTS key_state smallint NOT NULL DEFAULT 0;
ALTER TABLE ${s}.queue ADD COLUMN IF NOT EXISTS key_position bigint;
ALTER TABLE ${s}.queue ADD COLUMN IF NOT EXISTS due_at bigint;
CREATE INDEX IF NOT EXISTS queue_waiting ON ${s}.queue (group_name, order_key, key_position) WHERE key_state = 1;
CREATE INDEX IF NOT EXISTS queue_joining ON ${s}.queue (group_name, due_at, seq) WHERE key_state = 2;

-- Per group and key with rows not yet settled: rows in play, the last position handed out (the key's order),
-- and the dead letter holding the key (policy hold).
CREATE TABLE IF NOT EXISTS ${s}.keys (
  group_name text NOT NULL,
  order_key text NOT NULL,
  active integer NOT NULL,
  position bigint NOT NULL,
  held_by text,
  PRIMARY KEY (group_name, order_key)
);

-- What publishers and claims need to know about a group beyond its bindings.
CREATE TABLE IF NOT EXISTS ${s}.groups (
  group_name text PRIMARY KEY,
  key_concurrency integer NOT NULL,
  after_dead_letter text NOT NULL
);
-- The rate limit (messages started per second across every process) and its token bucket.
ALTER TABLE ${s}.groups ADD COLUMN IF NOT EXISTS max_per_second double precision;
ALTER TABLE ${s}.groups ADD COLUMN IF NOT EXISTS rate_tokens double precision;
ALTER TABLE ${s}.groups ADD COLUMN IF NOT EXISTS rate_at bigint;

-- The key a stored message is ordered by: its partitionkey header when that is a non-empty string.
CREATE OR REPLACE FUNCTION ${s}.key_of(headers text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE h jsonb;
BEGIN
  h := headers::jsonb;
  IF jsonb_typeof(h -> 'partitionkey') = 'string' THEN RETURN NULLIF(h ->> 'partitionkey', ''); END IF;
  RETURN NULL;
EXCEPTION WHEN others THEN
  RETURN NULL;
END $$;

-- Every change to a group's key records runs under one transaction lock per group (joins only try it), so
-- joins, acks and dead letters never interleave on the same keys: no deadlock, and no count read half-way.
CREATE OR REPLACE FUNCTION ${s}.lock_keys(g text) RETURNS void LANGUAGE sql AS $$
  SELECT pg_advisory_xact_lock(hashtext('herald:${s}:join:' || g))
$$;

-- Puts waiting rows of a key in play while it has room; forgets the key when nothing of it is left.
CREATE OR REPLACE FUNCTION ${s}.admit_waiting(g text, k text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE st record; n integer;
BEGIN
  SELECT active, held_by INTO st FROM ${s}.keys WHERE group_name = g AND order_key = k FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  IF st.held_by IS NULL AND st.active < ${concurrency('g')} THEN
    UPDATE ${s}.queue SET key_state = 0, visible_at = ${now}
      WHERE seq IN (SELECT seq FROM ${s}.queue WHERE group_name = g AND order_key = k AND key_state = 1
                    ORDER BY key_position LIMIT ${concurrency('g')} - st.active);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
      UPDATE ${s}.keys SET active = active + n WHERE group_name = g AND order_key = k;
      RETURN;
    END IF;
  END IF;
  IF st.active = 0 AND st.held_by IS NULL THEN
    DELETE FROM ${s}.keys WHERE group_name = g AND order_key = k
      AND NOT EXISTS (SELECT 1 FROM ${s}.queue WHERE group_name = g AND order_key = k AND key_state = 1);
  END IF;
END $$;

-- A row of the key was acked or dead-lettered: frees its place (or, with held, holds the key) and admits the next.
CREATE OR REPLACE FUNCTION ${s}.free_key(g text, k text, held text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM ${s}.lock_keys(g);
  UPDATE ${s}.keys SET active = GREATEST(active - 1, 0), held_by = COALESCE(held, held_by)
    WHERE group_name = g AND order_key = k;
  IF FOUND THEN PERFORM ${s}.admit_waiting(g, k); END IF;
END $$;

-- Lets due joining rows of the group join their keys, in (due time, seq) order. One transaction per group at a
-- time: two claimers joining one key's rows at once could put a later row ahead.
CREATE OR REPLACE FUNCTION ${s}.join_keys(g text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE r record; k record; n integer := 0; c integer;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM ${s}.queue WHERE group_name = g AND key_state = 2 AND due_at <= ${now}) THEN
    RETURN 0;
  END IF;
  IF NOT pg_try_advisory_xact_lock(hashtext('herald:${s}:join:' || g)) THEN RETURN 0; END IF;
  c := ${concurrency('g')};
  FOR r IN SELECT seq, order_key, due_at FROM ${s}.queue
           WHERE group_name = g AND key_state = 2 AND due_at <= ${now} AND lease_token IS NULL
           ORDER BY due_at, seq LIMIT 500 LOOP
    INSERT INTO ${s}.keys AS x (group_name, order_key, active, position) VALUES (g, r.order_key, 0, 1)
      ON CONFLICT (group_name, order_key) DO UPDATE SET position = x.position + 1
      RETURNING active, position, held_by INTO k;
    IF k.held_by IS NULL AND k.active < c THEN
      UPDATE ${s}.keys SET active = active + 1 WHERE group_name = g AND order_key = r.order_key;
      UPDATE ${s}.queue SET key_state = 0, visible_at = r.due_at, key_position = k.position WHERE seq = r.seq;
    ELSE
      UPDATE ${s}.queue SET key_state = 1, key_position = k.position WHERE seq = r.seq;
    END IF;
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

-- Joins due keyed rows, then claims: one round trip, one transaction.
-- With per_second, the group's token bucket (a row of groups, locked for the claim) holds every process to the
-- rate: the claim takes no more rows than there are tokens. It holds a tenth of a second's worth.
CREATE OR REPLACE FUNCTION ${s}.claim(g text, token text, lease bigint, lim integer, per_second double precision)
RETURNS TABLE (seq bigint, message_id text, topic text, headers text, body bytea, attempts integer, order_key text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE take integer := lim; b record; tokens double precision; burst double precision; t bigint := ${now};
  n integer;
BEGIN
  PERFORM ${s}.join_keys(g);
  IF per_second IS NOT NULL THEN
    burst := GREATEST(1, per_second / 10);
    SELECT x.rate_tokens, x.rate_at INTO b FROM ${s}.groups x WHERE x.group_name = g FOR UPDATE;
    IF b.rate_tokens IS NULL OR b.rate_at IS NULL THEN tokens := burst;
    ELSE tokens := LEAST(burst, b.rate_tokens + GREATEST(0, t - b.rate_at) * per_second / 1000);
    END IF;
    take := LEAST(lim, floor(tokens)::integer);
    IF take <= 0 THEN
      UPDATE ${s}.groups x SET rate_tokens = tokens, rate_at = t WHERE x.group_name = g;
      RETURN;
    END IF;
  END IF;
  RETURN QUERY
    UPDATE ${s}.queue q SET attempts = GREATEST(q.attempts, 0) + 1, lease_token = token, visible_at = t + lease
    FROM (SELECT c.seq FROM ${s}.queue c WHERE c.group_name = g AND c.visible_at <= t
          ORDER BY c.visible_at, c.seq LIMIT take FOR UPDATE SKIP LOCKED) c
    WHERE q.seq = c.seq
    RETURNING q.seq, q.message_id, q.topic, q.headers, q.body, q.attempts, q.order_key;
  IF per_second IS NOT NULL THEN
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE ${s}.groups x SET rate_tokens = tokens - n, rate_at = t WHERE x.group_name = g;
  END IF;
END $$;

-- Acks keyed rows: deletes each row still held by its claim and frees its key's place, in key order (so two
-- calls lock keys in the same order and cannot deadlock).
CREATE OR REPLACE FUNCTION ${s}.ack_keyed(seqs bigint[], tokens text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN WITH gone AS (
             DELETE FROM ${s}.queue q USING unnest(seqs, tokens) AS a(seq, token)
             WHERE q.seq = a.seq AND q.lease_token = a.token RETURNING q.group_name, q.order_key)
           SELECT group_name, order_key FROM gone WHERE order_key IS NOT NULL ORDER BY group_name, order_key LOOP
    PERFORM ${s}.free_key(r.group_name, r.order_key, NULL);
  END LOOP;
END $$;

-- Dead-letters a keyed row held by its claim and frees (or, with hold, holds) its key.
CREATE OR REPLACE FUNCTION ${s}.dead_letter_keyed(s_seq bigint, s_token text, reason text, error text, hold boolean,
  attempts integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE m record;
BEGIN
  DELETE FROM ${s}.queue WHERE seq = s_seq AND lease_token = s_token RETURNING * INTO m;
  IF NOT FOUND THEN RETURN; END IF;
  INSERT INTO ${s}.dead_letters (group_name, message_id, topic, headers, body, reason, attempts,
    first_failed_at, last_failed_at, dead_lettered_at, error)
  VALUES (m.group_name, m.message_id, m.topic, m.headers, m.body, reason, dead_letter_keyed.attempts,
    COALESCE(m.first_failed_at, ${now}), ${now}, ${now}, error);
  IF m.order_key IS NOT NULL THEN
    PERFORM ${s}.free_key(m.group_name, m.order_key, CASE WHEN hold THEN m.message_id END);
  END IF;
END $$;

-- Lets a held key go on (id: only if that dead letter holds it; null: whichever). True when it was held.
CREATE OR REPLACE FUNCTION ${s}.unhold_key(g text, k text, id text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  PERFORM ${s}.lock_keys(g);
  UPDATE ${s}.keys SET held_by = NULL
    WHERE group_name = g AND order_key = k AND held_by IS NOT NULL AND (id IS NULL OR held_by = id);
  IF NOT FOUND THEN RETURN false; END IF;
  PERFORM ${s}.admit_waiting(g, k);
  RETURN true;
END $$;
`
}
