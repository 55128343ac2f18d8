/** Version of the tables below; recorded in `<schema>.meta`. */
export const schemaVersion = 2

/** Herald's schema name: a plain lower-case identifier, so it can be spliced into SQL without quoting rules. */
export function assertSchemaName(schema: string): void {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new Error(`schema "${schema}" must be a lower-case identifier (a-z, 0-9, _; not starting with a digit)`)
  }
}

/** The tables, created idempotently under an advisory lock (concurrent first starts must not race on DDL). */
export function schemaSql(s: string): string {
  return `
CREATE SCHEMA IF NOT EXISTS ${s};

CREATE TABLE IF NOT EXISTS ${s}.meta (
  key text PRIMARY KEY,
  value bigint NOT NULL
);

-- regex is the pattern compiled by Herald (topic-regex.ts), matched against '.' || topic at publish time.
CREATE TABLE IF NOT EXISTS ${s}.bindings (
  group_name text NOT NULL,
  pattern text NOT NULL,
  regex text NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (group_name, pattern)
);

-- One row per message per bound group, routed in the publishing statement. visible_at (epoch ms, database
-- clock) is when the row may be claimed next: now, a delay's or retry's due time, or its lease's end.
-- Consumers claim by visibility with FOR UPDATE SKIP LOCKED, never by a high-water mark of seq, so a row
-- whose transaction commits after a later seq is never skipped.
CREATE TABLE IF NOT EXISTS ${s}.queue (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  group_name text NOT NULL,
  message_id text NOT NULL,
  topic text NOT NULL,
  headers text NOT NULL,
  body bytea NOT NULL,
  visible_at bigint NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  lease_token text,
  enqueued_at bigint NOT NULL,
  first_failed_at bigint,
  last_error text
);
CREATE INDEX IF NOT EXISTS queue_due ON ${s}.queue (group_name, visible_at, seq);

CREATE TABLE IF NOT EXISTS ${s}.dead_letters (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  group_name text NOT NULL,
  message_id text NOT NULL,
  topic text NOT NULL,
  headers text NOT NULL,
  body bytea NOT NULL,
  reason text NOT NULL,
  attempts integer NOT NULL,
  first_failed_at bigint NOT NULL,
  last_failed_at bigint NOT NULL,
  dead_lettered_at bigint NOT NULL,
  error text
);
CREATE INDEX IF NOT EXISTS dead_letters_message ON ${s}.dead_letters (message_id, group_name);
CREATE INDEX IF NOT EXISTS dead_letters_time ON ${s}.dead_letters (dead_lettered_at);

-- The event store. Appends hold a transaction-scoped advisory lock from before their positions are drawn until
-- commit, so positions become visible in order: a reader past p never later finds a smaller one.
CREATE TABLE IF NOT EXISTS ${s}.events (
  position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id text NOT NULL,
  topic text NOT NULL,
  type text NOT NULL,
  source text NOT NULL,
  time bigint NOT NULL,
  correlation_id text,
  stream text,
  stream_version integer,
  headers text NOT NULL,
  body bytea NOT NULL,
  recorded_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS events_message ON ${s}.events (message_id);
CREATE INDEX IF NOT EXISTS events_type ON ${s}.events (type, position);
CREATE INDEX IF NOT EXISTS events_source ON ${s}.events (source, position);
CREATE INDEX IF NOT EXISTS events_correlation ON ${s}.events (correlation_id, position)
  WHERE correlation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_time ON ${s}.events (time);
CREATE INDEX IF NOT EXISTS events_recorded ON ${s}.events (recorded_at);
CREATE UNIQUE INDEX IF NOT EXISTS events_stream ON ${s}.events (stream, stream_version) WHERE stream IS NOT NULL;

CREATE TABLE IF NOT EXISTS ${s}.checkpoints (
  name text PRIMARY KEY,
  position bigint NOT NULL,
  updated_at bigint NOT NULL
);

-- The transactional outbox: rows staged in the application's transaction, sent and deleted by a relay.
-- not_before holds a failed send's retry time and, while claim_token is set, the claim's lease.
CREATE TABLE IF NOT EXISTS ${s}.outbox (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id text NOT NULL,
  topic text NOT NULL,
  headers text NOT NULL,
  body bytea NOT NULL,
  mandatory boolean NOT NULL,
  partition_key text,
  deliver_at bigint,
  created_at bigint NOT NULL,
  claim_token text,
  not_before bigint NOT NULL DEFAULT 0,
  attempts integer NOT NULL DEFAULT 0,
  last_error text
);
CREATE INDEX IF NOT EXISTS outbox_key ON ${s}.outbox (partition_key, seq);

-- The inbox: one row per message a group has handled, written in the handler's transaction.
CREATE TABLE IF NOT EXISTS ${s}.inbox (
  group_name text NOT NULL,
  message_id text NOT NULL,
  handled_at bigint NOT NULL,
  PRIMARY KEY (group_name, message_id)
);
CREATE INDEX IF NOT EXISTS inbox_time ON ${s}.inbox (handled_at);

INSERT INTO ${s}.meta (key, value) VALUES ('events_truncated_through', 0) ON CONFLICT DO NOTHING;
INSERT INTO ${s}.meta (key, value) VALUES ('schema_version', ${schemaVersion}) ON CONFLICT DO NOTHING;
`
}
