/** Schema of the Herald tables. Applied idempotently at open; `herald_meta.schema_version` records the version. */
export const schemaVersion = 2

/** `visible_at` of a row no claim may take yet: it waits for its key. The largest time a JavaScript Date holds. */
export const parkedAt = 8_640_000_000_000_000

export const schemaSql = `
CREATE TABLE IF NOT EXISTS herald_meta (
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS herald_bindings (
  group_name TEXT NOT NULL,
  pattern TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (group_name, pattern)
) WITHOUT ROWID;

-- One row per message per bound group: routing happens at publish time, in the publishing transaction.
-- visible_at is when the row may be claimed next: publish time, a delay's due time, a retry's due time,
-- or the end of the current claim's lease. lease_token fences settlement to the claim that is current.
-- A keyed row (order_key) is in play (key_state 0), waits behind earlier rows of its key (1), or is delayed and
-- joins its key when due_at comes (2); rows in states 1 and 2 have visible_at = ${parkedAt}, so claims never see them.
CREATE TABLE IF NOT EXISTS herald_queue (
  seq INTEGER PRIMARY KEY,
  group_name TEXT NOT NULL,
  message_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  headers TEXT NOT NULL,
  body BLOB NOT NULL,
  visible_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_token TEXT,
  enqueued_at INTEGER NOT NULL,
  first_failed_at INTEGER,
  last_error TEXT,
  order_key TEXT,
  key_state INTEGER NOT NULL DEFAULT 0,
  key_position INTEGER,
  due_at INTEGER
);
CREATE INDEX IF NOT EXISTS herald_queue_due ON herald_queue (group_name, visible_at, seq);

-- Per group and key with rows not yet settled: how many are in play, the last position handed out (the key's
-- publish order), the dead letter holding the key (policy hold), and whether the last row to join was put in play.
CREATE TABLE IF NOT EXISTS herald_keys (
  group_name TEXT NOT NULL,
  order_key TEXT NOT NULL,
  active INTEGER NOT NULL,
  position INTEGER NOT NULL,
  held_by TEXT,
  admitted INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (group_name, order_key)
) WITHOUT ROWID;

-- What publishers need to know about a group beyond its bindings.
CREATE TABLE IF NOT EXISTS herald_groups (
  group_name TEXT PRIMARY KEY,
  key_concurrency INTEGER NOT NULL,
  after_dead_letter TEXT NOT NULL,
  -- The rate limit (messages started per second across every process) and its token bucket.
  max_per_second REAL,
  rate_tokens REAL,
  rate_at INTEGER
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS herald_dead_letters (
  seq INTEGER PRIMARY KEY,
  group_name TEXT NOT NULL,
  message_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  headers TEXT NOT NULL,
  body BLOB NOT NULL,
  reason TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  first_failed_at INTEGER NOT NULL,
  last_failed_at INTEGER NOT NULL,
  dead_lettered_at INTEGER NOT NULL,
  error TEXT
);
CREATE INDEX IF NOT EXISTS herald_dead_letters_message ON herald_dead_letters (message_id, group_name);
CREATE INDEX IF NOT EXISTS herald_dead_letters_time ON herald_dead_letters (dead_lettered_at);

-- The event store. AUTOINCREMENT: a position is never reused, even after retention deleted the highest ones.
-- One writer at a time (SQLite), so positions commit in order: a reader past p never later finds a smaller one.
CREATE TABLE IF NOT EXISTS herald_events (
  position INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  type TEXT NOT NULL,
  source TEXT NOT NULL,
  time INTEGER NOT NULL,
  correlation_id TEXT,
  stream TEXT,
  stream_version INTEGER,
  headers TEXT NOT NULL,
  body BLOB NOT NULL,
  recorded_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS herald_events_message ON herald_events (message_id);
CREATE INDEX IF NOT EXISTS herald_events_type ON herald_events (type, position);
CREATE INDEX IF NOT EXISTS herald_events_source ON herald_events (source, position);
CREATE INDEX IF NOT EXISTS herald_events_correlation ON herald_events (correlation_id, position)
  WHERE correlation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS herald_events_time ON herald_events (time);
CREATE INDEX IF NOT EXISTS herald_events_recorded ON herald_events (recorded_at);
CREATE UNIQUE INDEX IF NOT EXISTS herald_events_stream ON herald_events (stream, stream_version)
  WHERE stream IS NOT NULL;

CREATE TABLE IF NOT EXISTS herald_checkpoints (
  name TEXT PRIMARY KEY,
  position INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- The transactional outbox: rows staged in the application's transaction, sent and deleted by a relay.
-- not_before holds a failed send's retry time and, while claim_token is set, the claim's lease.
CREATE TABLE IF NOT EXISTS herald_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  headers TEXT NOT NULL,
  body BLOB NOT NULL,
  mandatory INTEGER NOT NULL,
  partition_key TEXT,
  deliver_at INTEGER,
  created_at INTEGER NOT NULL,
  claim_token TEXT,
  not_before INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT
);
CREATE INDEX IF NOT EXISTS herald_outbox_key ON herald_outbox (partition_key, seq);

-- The inbox: one row per message a group has handled, written in the handler's transaction.
CREATE TABLE IF NOT EXISTS herald_inbox (
  group_name TEXT NOT NULL,
  message_id TEXT NOT NULL,
  handled_at INTEGER NOT NULL,
  PRIMARY KEY (group_name, message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS herald_inbox_time ON herald_inbox (handled_at);

INSERT OR IGNORE INTO herald_meta (key, value) VALUES ('events_truncated_through', 0);

INSERT OR IGNORE INTO herald_meta (key, value) VALUES ('schema_version', ${schemaVersion});
INSERT OR IGNORE INTO herald_meta (key, value) VALUES ('bindings_version', 0);
`

/** Columns added since version 1, for databases made before them. */
export const addedColumns: readonly (readonly [table: string, column: string, definition: string])[] = [
  ['herald_queue', 'order_key', 'TEXT'],
  ['herald_queue', 'key_state', 'INTEGER NOT NULL DEFAULT 0'],
  ['herald_queue', 'key_position', 'INTEGER'],
  ['herald_queue', 'due_at', 'INTEGER'],
  ['herald_keys', 'admitted', 'INTEGER NOT NULL DEFAULT 0'],
  ['herald_groups', 'max_per_second', 'REAL'],
  ['herald_groups', 'rate_tokens', 'REAL'],
  ['herald_groups', 'rate_at', 'INTEGER'],
]

/** Indexes over added columns: created once the columns exist. */
export const keyIndexSql = `
CREATE INDEX IF NOT EXISTS herald_queue_waiting ON herald_queue (group_name, order_key, key_position)
  WHERE key_state = 1;
CREATE INDEX IF NOT EXISTS herald_queue_joining ON herald_queue (group_name, due_at) WHERE key_state = 2;
UPDATE herald_meta SET value = ${schemaVersion} WHERE key = 'schema_version' AND value < ${schemaVersion};
`
