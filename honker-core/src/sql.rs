//! Every SQL statement honker-core issues, in one place.
//!
//! Some parameters are written `?1 || ''` or `?3 + 0`. The bundled SQLite is
//! built with STAT4, which re-plans a statement (re-parsing it) every time a
//! parameter that could change its plan is rebound. The claim runs many
//! times a second with a different LIMIT; hiding those values from the
//! planner keeps one prepared plan (the claim index either way), which
//! `statements_are_never_reprepared` in the tests checks.
//!
//! Every move to `_honker_dead` is `INSERT OR REPLACE`: the dead row keeps
//! the live row's id, and a stale dead record under the same id (left by a
//! peer that requeued the job without deleting it) must not make the move
//! fail, which would block the claim of the whole queue or a worker's
//! outcome. The latest death is the record.
//!
//! Times are integer unix seconds from SQLite's `unixepoch()`, the clock
//! every honker binding compares with. Statements that read "now" read it
//! once per statement, so a statement sees one consistent instant.
//!
//! Not a public API (hidden from the docs): the crate's functions are the
//! way to run these; the module is reachable only so that the crate's
//! integration tests can check plans and re-preparation.

mod control;
mod schedules;
pub use control::*;
pub use schedules::*;

/// Connection pragmas shared with the format's other bindings.
pub const PRAGMAS: &str = "PRAGMA busy_timeout = 5000;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
PRAGMA cache_size = -32000;
PRAGMA temp_store = MEMORY;
PRAGMA wal_autocheckpoint = 10000;";

/// The format's DDL, the tables every honker binding shares. Idempotent.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS _honker_live (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  payload TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending',
  priority INTEGER NOT NULL DEFAULT 0,
  run_at INTEGER NOT NULL DEFAULT (unixepoch()),
  worker_id TEXT,
  claim_expires_at INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL DEFAULT 3,
  created_at INTEGER NOT NULL DEFAULT (unixepoch()),
  expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS _honker_live_claim
  ON _honker_live(queue, priority DESC, run_at, id)
  WHERE state IN ('pending', 'processing');
CREATE INDEX IF NOT EXISTS _honker_live_pending_deadline
  ON _honker_live(queue, run_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS _honker_live_processing_deadline
  ON _honker_live(queue, claim_expires_at) WHERE state = 'processing';
-- honker-rs addition (additive; peers ignore it): finds expiring rows for the sweep.
CREATE INDEX IF NOT EXISTS _honker_live_expiry
  ON _honker_live(expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS _honker_dead (
  id INTEGER PRIMARY KEY,
  queue TEXT NOT NULL,
  payload TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  run_at INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  created_at INTEGER NOT NULL DEFAULT (unixepoch()),
  died_at INTEGER NOT NULL DEFAULT (unixepoch())
);
-- honker-rs addition (additive; peers ignore it): a queue's dead rows, by id,
-- for its dead count and for listing them without scanning every dead row.
CREATE INDEX IF NOT EXISTS _honker_dead_queue ON _honker_dead(queue);
-- honker-rs addition (additive; peers ignore it): a queue's dead rows by
-- time of death, to list the newest first without sorting every one.
CREATE INDEX IF NOT EXISTS _honker_dead_died ON _honker_dead(queue, died_at);

CREATE TABLE IF NOT EXISTS _honker_results (
  job_id INTEGER PRIMARY KEY,
  value TEXT,
  created_at INTEGER NOT NULL DEFAULT (unixepoch()),
  expires_at INTEGER
);

CREATE TABLE IF NOT EXISTS _honker_scheduler_tasks (
  name TEXT PRIMARY KEY,
  queue TEXT NOT NULL,
  cron_expr TEXT NOT NULL,
  payload TEXT NOT NULL,
  priority INTEGER NOT NULL DEFAULT 0,
  expires_s INTEGER,
  next_fire_at INTEGER NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  max_attempts INTEGER NOT NULL DEFAULT 3
);

CREATE TABLE IF NOT EXISTS _honker_locks (
  name TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS _honker_rate_limits (
  name TEXT NOT NULL,
  window_start INTEGER NOT NULL,
  count INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (name, window_start)
);

-- honker-rs addition (a table peers ignore): queue controls every honker-rs
-- process honours at claim time (pause, running limit, rate limit).
CREATE TABLE IF NOT EXISTS _honker_queue_controls (
  queue TEXT PRIMARY KEY,
  paused INTEGER NOT NULL DEFAULT 0,
  max_running INTEGER,
  rate_limit INTEGER,
  rate_per INTEGER,
  updated_at INTEGER NOT NULL DEFAULT (unixepoch())
);

-- honker-rs addition (a table peers ignore): the uniqueness key of each
-- unique job, kept while the job is live or dead (a requeue takes it back).
CREATE TABLE IF NOT EXISTS _honker_unique (
  job_id INTEGER PRIMARY KEY,
  queue TEXT NOT NULL,
  key TEXT NOT NULL,
  while_state TEXT NOT NULL DEFAULT 'active',
  until INTEGER,
  created_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX IF NOT EXISTS _honker_unique_key ON _honker_unique(queue, key);

-- honker-rs additions (tables peers ignore): a schedule's time zone and
-- misfire policy; and the schedule and boundary each fired job was for.
CREATE TABLE IF NOT EXISTS _honker_schedule_extras (
  name TEXT PRIMARY KEY,
  zone TEXT,
  misfire TEXT NOT NULL DEFAULT 'latest'
);
CREATE TABLE IF NOT EXISTS _honker_schedule_runs (
  job_id INTEGER PRIMARY KEY,
  schedule TEXT NOT NULL,
  boundary INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS _honker_notifications (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  channel TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX IF NOT EXISTS _honker_notifications_recent
  ON _honker_notifications(channel, id);

CREATE TABLE IF NOT EXISTS _honker_stream (
  offset INTEGER PRIMARY KEY AUTOINCREMENT,
  topic TEXT NOT NULL,
  key TEXT,
  payload TEXT NOT NULL,
  created_at INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX IF NOT EXISTS _honker_stream_topic ON _honker_stream(topic, offset);
CREATE TABLE IF NOT EXISTS _honker_stream_consumers (
  name TEXT NOT NULL,
  topic TEXT NOT NULL,
  offset INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (name, topic)
);
";

/// The tables and indexes of `SCHEMA` that every binding creates (the
/// others are honker-rs's additive side tables and indexes).
pub const SHARED_OBJECTS: &[&str] = &[
    "_honker_live",
    "_honker_live_claim",
    "_honker_live_pending_deadline",
    "_honker_live_processing_deadline",
    "_honker_dead",
    "_honker_results",
    "_honker_scheduler_tasks",
    "_honker_locks",
    "_honker_rate_limits",
    "_honker_notifications",
    "_honker_notifications_recent",
    "_honker_stream",
    "_honker_stream_topic",
    "_honker_stream_consumers",
];

/// Columns added to the format after its first release: (table, column, DDL).
/// Older files get them with `ALTER TABLE .. ADD COLUMN`.
pub const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    (
        "_honker_scheduler_tasks",
        "enabled",
        "ALTER TABLE _honker_scheduler_tasks ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1",
    ),
    (
        "_honker_scheduler_tasks",
        "max_attempts",
        "ALTER TABLE _honker_scheduler_tasks ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 3",
    ),
];

/// Whether table ?1 has column ?2.
pub const HAS_COLUMN: &str = "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2";

/// Whether the main database (not a temp shadow) has table ?1.
pub const MAIN_HAS_TABLE: &str =
    "SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?1";

/// SQLite's clock, in unix seconds.
pub const NOW: &str = "SELECT unixepoch()";

// ---------------------------------------------------------------- enqueue

/// The first whole second at or after now + ?4 milliseconds, so that a
/// delayed job never becomes due early; a zero delay is due now.
macro_rules! due_after_ms {
    ($p:literal) => {
        concat!(
            "CASE WHEN ",
            $p,
            " <= 0 THEN unixepoch()
             ELSE CAST((unixepoch('subsec') * 1000 + ",
            $p,
            " + 999) / 1000 AS INTEGER) END"
        )
    };
}

/// ?1 queue, ?2 payload, ?3 run_at (NULL = now), ?4 delay milliseconds (NULL =
/// none; wins over run_at), ?5 priority, ?6 max_attempts, ?7 expires-in seconds.
/// The new id is `last_insert_rowid()` (cheaper than `RETURNING`).
pub const ENQUEUE: &str = concat!(
    "INSERT INTO _honker_live
    (queue, payload, run_at, priority, max_attempts, expires_at)
  VALUES (?1, ?2,
    CASE WHEN ?4 IS NULL THEN COALESCE(?3, unixepoch()) ELSE ",
    due_after_ms!("?4"),
    " END,
    ?5, ?6,
    CASE WHEN ?7 IS NULL THEN NULL ELSE unixepoch() + ?7 END)"
);

// ---------------------------------------------------------------- claim

/// The head of both claims: take the rows of `WHERE id IN (..)` for worker
/// ?2 for ?4 seconds, counting the attempt.
macro_rules! claim_update {
    () => {
        "UPDATE _honker_live
  SET state = 'processing',
      worker_id = ?2,
      claim_expires_at = unixepoch() + ?4,
      attempts = attempts + 1
  WHERE id IN ("
    };
}

/// What both claims return: the claimed row, as `ClaimedJob` reads it.
macro_rules! claimed_columns {
    () => {
        "
  RETURNING id, queue, payload, priority, run_at, worker_id, claim_expires_at,
            attempts, max_attempts, created_at, expires_at"
    };
}

/// Claim up to ?3 rows of queue ?1 for worker ?2 for ?4 seconds, through the
/// partial claim index, in claim order. Returns the claimed rows. Rows a
/// foreign writer left odd are taken too, so that the claim dead-letters
/// them instead of leaving them forever: a due time that is TEXT or a BLOB
/// (`>= ''`: they sort after every number), a processing row with no claim
/// deadline (a worker that died before setting it: reclaimed).
pub const CLAIM: &str = concat!(
    claim_update!(),
    "
    SELECT id FROM _honker_live INDEXED BY _honker_live_claim
    WHERE queue = ?1 || ''
      AND state IN ('pending', 'processing')
      AND (expires_at IS NULL OR expires_at > unixepoch())
      AND ((state = 'pending' AND (run_at <= unixepoch() OR run_at >= ''))
        OR (state = 'processing' AND (claim_expires_at < unixepoch()
             OR claim_expires_at IS NULL OR claim_expires_at >= '')))
    ORDER BY priority DESC, run_at ASC, id ASC
    LIMIT ?3 + 0
  )",
    claimed_columns!()
);

/// Whether every row of queue ?1 in the claim index (pending or
/// processing) has one priority: the first and last entries of the index
/// for the queue, two seeks, no table row read. Then [`CLAIM_ONE_PRIORITY`]
/// claims in the same order as [`CLAIM`].
pub const ONE_PRIORITY: &str = "SELECT
  (SELECT priority FROM _honker_live INDEXED BY _honker_live_claim
    WHERE queue = ?1 || '' AND state IN ('pending', 'processing')
    ORDER BY priority DESC LIMIT 1)
  IS
  (SELECT priority FROM _honker_live INDEXED BY _honker_live_claim
    WHERE queue = ?1 || '' AND state IN ('pending', 'processing')
    ORDER BY priority ASC LIMIT 1)";

/// [`CLAIM`] for a queue whose rows share one priority, where claim order
/// is `run_at, id`: due pending rows through the pending index and lapsed
/// claims through the processing index, merged in that order. It never
/// walks past the rows other claims hold (the claim index keeps them, at
/// the front of a first-in, first-out queue, and each costs a table read).
/// Same parameters, same rows taken as [`CLAIM`] under that condition.
pub const CLAIM_ONE_PRIORITY: &str = concat!(
    claim_update!(),
    "
    SELECT id FROM (
      SELECT id, run_at FROM _honker_live INDEXED BY _honker_live_pending_deadline
      WHERE queue = ?1 || '' AND state = 'pending'
        AND (run_at <= unixepoch() OR run_at >= '')
        AND (expires_at IS NULL OR expires_at > unixepoch())
      UNION ALL
      SELECT id, run_at FROM _honker_live INDEXED BY _honker_live_processing_deadline
      WHERE queue = ?1 || '' AND state = 'processing'
        AND (claim_expires_at < unixepoch() OR claim_expires_at IS NULL
             OR claim_expires_at >= '')
        AND (expires_at IS NULL OR expires_at > unixepoch())
      ORDER BY 2, 1
      LIMIT ?3 + 0))",
    claimed_columns!()
);

/// Move a row the claim just took, whose attempts were already exhausted
/// before this claim, to dead. ?1 id. The claim incremented `attempts`;
/// the dead row records the attempts actually made.
pub const CLAIM_EXHAUSTED_TO_DEAD: &str = "INSERT OR REPLACE INTO _honker_dead
    (id, queue, payload, priority, run_at, attempts, max_attempts, last_error, created_at)
  SELECT id, queue, payload, priority, run_at, attempts - 1, max_attempts,
         'max attempts exceeded', created_at
  FROM _honker_live WHERE id = ?1";

/// Whether queue ?1 has a row the claim would take (or dead-letter): index
/// seeks only (due pending rows by `run_at`, lapsed claims by
/// `claim_expires_at`, and the odd rows a foreign writer can leave: a
/// processing row with no deadline, a time that is TEXT or a BLOB, which
/// sort after every number), never a walk past rows not yet due; no write
/// lock.
pub const HAS_CLAIMABLE: &str = "SELECT EXISTS (
    SELECT 1 FROM _honker_live INDEXED BY _honker_live_pending_deadline
    WHERE queue = ?1 || '' AND state = 'pending' AND run_at <= unixepoch()
      AND (expires_at IS NULL OR expires_at > unixepoch()))
  OR EXISTS (
    SELECT 1 FROM _honker_live INDEXED BY _honker_live_processing_deadline
    WHERE queue = ?1 || '' AND state = 'processing' AND claim_expires_at < unixepoch()
      AND (expires_at IS NULL OR expires_at > unixepoch()))
  OR EXISTS (
    SELECT 1 FROM _honker_live INDEXED BY _honker_live_processing_deadline
    WHERE queue = ?1 || '' AND state = 'processing' AND claim_expires_at IS NULL)
  OR EXISTS (
    SELECT 1 FROM _honker_live INDEXED BY _honker_live_pending_deadline
    WHERE queue = ?1 || '' AND state = 'pending' AND run_at >= '')
  OR EXISTS (
    SELECT 1 FROM _honker_live INDEXED BY _honker_live_processing_deadline
    WHERE queue = ?1 || '' AND state = 'processing' AND claim_expires_at >= '')";

/// Move a row the claim just took, whose payload is unusable, to dead with
/// the reason ?2.
pub const CLAIMED_TO_DEAD: &str = "INSERT OR REPLACE INTO _honker_dead
    (id, queue, payload, priority, run_at, attempts, max_attempts, last_error, created_at)
  SELECT id, queue, payload, priority, run_at, attempts, max_attempts, ?2, created_at
  FROM _honker_live WHERE id = ?1";

/// Delete live row ?1 (after it was copied elsewhere).
pub const DELETE_LIVE: &str = "DELETE FROM _honker_live WHERE id = ?1";

// ---------------------------------------------------------------- completion

/// The predicate every fenced operation shares: ?1 id, ?2 worker, ?3 attempts.
macro_rules! fenced {
    () => {
        "id = ?1 AND worker_id = ?2 AND attempts = ?3 AND state = 'processing'
         AND claim_expires_at >= unixepoch()"
    };
}

/// Delete a finished job while the claim (?1 id, ?2 worker, ?3 attempts) is valid.
pub const ACK: &str = concat!("DELETE FROM _honker_live WHERE ", fenced!());

/// ?1 id, ?2 worker, ?3 attempts, ?4 delay milliseconds.
pub const RETRY_TO_PENDING: &str = concat!(
    "UPDATE _honker_live SET state = 'pending', run_at = ",
    due_after_ms!("?4"),
    ", worker_id = NULL, claim_expires_at = NULL
     WHERE attempts < max_attempts AND ",
    fenced!()
);

/// ?1 id, ?2 worker, ?3 attempts, ?4 error.
pub const FENCED_TO_DEAD: &str = concat!(
    "INSERT OR REPLACE INTO _honker_dead
       (id, queue, payload, priority, run_at, attempts, max_attempts, last_error, created_at)
     SELECT id, queue, payload, priority, run_at, attempts, max_attempts, ?4, created_at
     FROM _honker_live WHERE ",
    fenced!()
);

/// ?1 id, ?2 worker, ?3 attempts, ?4 extend seconds. Never shortens a claim.
pub const HEARTBEAT: &str = concat!(
    "UPDATE _honker_live SET claim_expires_at = MAX(claim_expires_at, unixepoch() + ?4)
     WHERE ",
    fenced!(),
    " RETURNING claim_expires_at"
);

/// Give a claim back without burning its attempt: ?1 id, ?2 worker, ?3 attempts.
pub const RELEASE: &str = concat!(
    "UPDATE _honker_live SET state = 'pending', attempts = attempts - 1,
        worker_id = NULL, claim_expires_at = NULL
     WHERE ",
    fenced!()
);

// ---------------------------------------------------------------- admin

/// Copy pending or processing job ?1 of queue ?2 (NULL = any queue) to dead
/// with last_error ?3 (`'cancelled'`). `DELETE_LIVE` follows, in the same
/// transaction.
pub const CANCEL_TO_DEAD: &str = "INSERT OR REPLACE INTO _honker_dead
    (id, queue, payload, priority, run_at, attempts, max_attempts, last_error, created_at)
  SELECT id, queue, payload, priority, run_at, attempts, max_attempts, ?3, created_at
  FROM _honker_live
  WHERE id = ?1 AND (?2 IS NULL OR queue = ?2) AND state IN ('pending', 'processing')";

/// Live row ?1.
pub const GET_JOB: &str = "SELECT id, queue, payload, state, priority, run_at, worker_id,
  claim_expires_at, attempts, max_attempts, created_at, expires_at
  FROM _honker_live WHERE id = ?1";

/// Live row ?1, only if it belongs to queue ?2.
pub const GET_JOB_IN: &str = "SELECT id, queue, payload, state, priority, run_at, worker_id,
  claim_expires_at, attempts, max_attempts, created_at, expires_at
  FROM _honker_live WHERE id = ?1 AND queue = ?2";

/// Where job ?1 is: `(1, state, NULL)` from live, else `(2, NULL, last_error)`
/// from dead, else no row. One statement, so one snapshot: a job moving
/// between the tables is never missed.
pub const JOB_FATE: &str = "SELECT 1, state, NULL FROM _honker_live WHERE id = ?1
  UNION ALL
  SELECT 2, NULL, last_error FROM _honker_dead WHERE id = ?1
  ORDER BY 1 LIMIT 1";

/// The expired rows of queue ?1 (NULL = every queue) at time ?2: pending
/// past `expires_at`, or processing whose claim lapsed after `expires_at`.
/// "Now" is a parameter so the copy to dead and the delete from live that
/// follows it select exactly the same rows.
macro_rules! expired {
    () => {
        "(?1 IS NULL OR queue = ?1) AND expires_at IS NOT NULL AND expires_at <= ?2
         AND (state = 'pending' OR (state = 'processing'
              AND (claim_expires_at < ?2 OR claim_expires_at IS NULL)))"
    };
}

/// Copy the expired rows (queue ?1, now ?2) to dead as `expired`.
pub const SWEEP_EXPIRED_TO_DEAD: &str = concat!(
    "INSERT OR REPLACE INTO _honker_dead
       (id, queue, payload, priority, run_at, attempts, max_attempts, last_error, created_at)
     SELECT id, queue, payload, priority, run_at, attempts, max_attempts, 'expired', created_at
     FROM _honker_live WHERE ",
    expired!()
);

/// Delete the expired rows (queue ?1, now ?2) just copied.
pub const SWEEP_EXPIRED_DELETE: &str = concat!("DELETE FROM _honker_live WHERE ", expired!());

/// Earliest future moment at which queue ?1 may have something to do for
/// a claim: the next due `run_at` of a pending row that will not have
/// expired by then, or one second after the claim of ANY processing row
/// lapses (the claim re-takes it, or dead-letters it when its attempts are
/// exhausted; the sweep moves it when it expired meanwhile).
///
/// `x = CAST(x AS INTEGER)` keeps only integers (and integral REALs within
/// `i64`): a value some foreign writer left there (TEXT, `1e30`) never hides
/// the next real deadline behind it, and the range stays on the index.
pub const NEXT_CLAIM_AT: &str = "SELECT MIN(t) FROM (
    SELECT MIN(run_at) AS t FROM _honker_live INDEXED BY _honker_live_pending_deadline
    WHERE queue = ?1 || '' AND state = 'pending' AND run_at > unixepoch()
      AND run_at = CAST(run_at AS INTEGER)
      AND (expires_at IS NULL OR expires_at > run_at)
    UNION ALL
    SELECT MIN(claim_expires_at) + 1 FROM _honker_live INDEXED BY _honker_live_processing_deadline
    WHERE queue = ?1 || '' AND state = 'processing' AND claim_expires_at >= unixepoch()
      AND claim_expires_at = CAST(claim_expires_at AS INTEGER)
  )";

/// Earliest `expires_at` still ahead among live rows of queue ?1 (integers
/// only, as in `NEXT_CLAIM_AT`).
pub const NEXT_EXPIRY_AT: &str = "SELECT MIN(expires_at) FROM _honker_live
  WHERE queue = ?1 || '' AND expires_at > unixepoch()
    AND expires_at = CAST(expires_at AS INTEGER)";

/// Earliest `expires_at` still ahead among all live rows (integers only):
/// the first entry of the expiry index past now (no `INDEXED BY`: a file
/// opened without our schema step may lack that index).
pub const NEXT_EXPIRY_ANY: &str = "SELECT MIN(expires_at) FROM _honker_live
  WHERE expires_at IS NOT NULL AND expires_at > unixepoch()
    AND expires_at = CAST(expires_at AS INTEGER)";

/// Payloads of the pending rows of queue ?1 (due or not), oldest first.
pub const WAITING_PAYLOADS: &str = "SELECT payload FROM _honker_live
  WHERE queue = ?1 AND state = 'pending' ORDER BY id";

/// Dead rows of queue ?1, the newest death first (then the newest id),
/// ?2 rows from offset ?3.
pub const LIST_DEAD: &str = "SELECT id, queue, payload, priority, run_at, attempts, max_attempts,
  last_error, created_at, died_at
  FROM _honker_dead WHERE queue = ?1 || '' ORDER BY died_at DESC, id DESC LIMIT ?2 + 0 OFFSET ?3 + 0";

/// Due pending rows of queue ?1 in claim order, ?2 from offset ?3; with
/// ?4, only those whose payload contains it (in each `LIST_*`).
pub const LIST_PENDING: &str = "SELECT id, queue, payload, state, priority, run_at, worker_id,
  claim_expires_at, attempts, max_attempts, created_at, expires_at
  FROM _honker_live WHERE queue = ?1 AND state = 'pending' AND run_at <= unixepoch()
  AND (?4 IS NULL OR instr(CAST(payload AS TEXT), ?4) > 0)
  ORDER BY priority DESC, run_at, id LIMIT ?2 + 0 OFFSET ?3 + 0";

/// Scheduled (future) pending rows of queue ?1, soonest first.
pub const LIST_SCHEDULED: &str = "SELECT id, queue, payload, state, priority, run_at, worker_id,
  claim_expires_at, attempts, max_attempts, created_at, expires_at
  FROM _honker_live WHERE queue = ?1 AND state = 'pending' AND run_at > unixepoch()
  AND (?4 IS NULL OR instr(CAST(payload AS TEXT), ?4) > 0)
  ORDER BY run_at, id LIMIT ?2 + 0 OFFSET ?3 + 0";

/// Processing rows of queue ?1, by claim deadline.
pub const LIST_RUNNING: &str = "SELECT id, queue, payload, state, priority, run_at, worker_id,
  claim_expires_at, attempts, max_attempts, created_at, expires_at
  FROM _honker_live WHERE queue = ?1 AND state = 'processing'
  AND (?4 IS NULL OR instr(CAST(payload AS TEXT), ?4) > 0)
  ORDER BY claim_expires_at, id LIMIT ?2 + 0 OFFSET ?3 + 0";

/// The dead-row filter: ?1 queue, ?2 text in last_error, ?3 died before,
/// ?4 text in the payload (its job's name and arguments) (each NULL: any).
macro_rules! dead_where {
    () => {
        "(?1 IS NULL OR queue = ?1)
    AND (?2 IS NULL OR instr(COALESCE(last_error, ''), ?2) > 0)
    AND (?3 IS NULL OR died_at < ?3)
    AND (?4 IS NULL OR instr(CAST(payload AS TEXT), ?4) > 0)"
    };
}

/// Dead rows matching the filter, the newest death first, ?4 from offset
/// ?5.
pub const LIST_DEAD_WHERE: &str = concat!(
    "SELECT id, queue, payload, priority, run_at, attempts, max_attempts,
  last_error, created_at, died_at FROM _honker_dead WHERE ",
    dead_where!(),
    " ORDER BY died_at DESC, id DESC LIMIT ?5 + 0 OFFSET ?6 + 0"
);

/// Ids of the dead rows matching the filter whose id is not live.
pub const DEAD_IDS_WHERE: &str = concat!(
    "SELECT id FROM _honker_dead WHERE ",
    dead_where!(),
    " AND id NOT IN (SELECT id FROM _honker_live) ORDER BY id"
);

/// Delete every dead row matching the filter.
pub const PURGE_DEAD_WHERE: &str = concat!("DELETE FROM _honker_dead WHERE ", dead_where!());

/// Delete dead row ?1 of queue ?2.
pub const PURGE_DEAD_IN: &str = "DELETE FROM _honker_dead WHERE id = ?1 AND queue = ?2";

/// Dead row ?1.
pub const GET_DEAD: &str = "SELECT id, queue, payload, priority, run_at, attempts, max_attempts,
  last_error, created_at, died_at FROM _honker_dead WHERE id = ?1";

/// Requeue dead ?1 into live under its own id, attempts reset, due now.
pub const REQUEUE_DEAD_INSERT: &str = "INSERT INTO _honker_live
    (id, queue, payload, state, priority, run_at, attempts, max_attempts, created_at)
  SELECT id, queue, payload, 'pending', priority, unixepoch(), 0, max_attempts, created_at
  FROM _honker_dead WHERE id = ?1";

/// `REQUEUE_DEAD_INSERT`, only if dead ?1 belongs to queue ?2.
pub const REQUEUE_DEAD_INSERT_IN: &str = "INSERT INTO _honker_live
    (id, queue, payload, state, priority, run_at, attempts, max_attempts, created_at)
  SELECT id, queue, payload, 'pending', priority, unixepoch(), 0, max_attempts, created_at
  FROM _honker_dead WHERE id = ?1 AND queue = ?2";

/// Delete dead row ?1 (after it was requeued).
pub const DELETE_DEAD: &str = "DELETE FROM _honker_dead WHERE id = ?1";

/// Per-queue counts of every queue the file knows (a live or dead row, a
/// control, or a schedule that enqueues into it), by name: queue, pending and due (not expired), scheduled
/// (not expired), processing, dead, seconds since the oldest due pending
/// row fell due, paused. Reads every row (it counts every queue).
pub const STATS_ALL: &str = "SELECT q.queue,
    SUM(pending_due), SUM(scheduled), SUM(processing), SUM(dead),
    unixepoch() - MIN(oldest_due),
    COALESCE((SELECT paused FROM _honker_queue_controls c WHERE c.queue = q.queue), 0),
    MIN(next_due)
  FROM (
    SELECT queue,
      SUM(state = 'pending' AND run_at <= unixepoch()
          AND (expires_at IS NULL OR expires_at > unixepoch())) AS pending_due,
      SUM(state = 'pending' AND run_at > unixepoch()
          AND (expires_at IS NULL OR expires_at > unixepoch())) AS scheduled,
      SUM(state = 'processing') AS processing,
      0 AS dead,
      MIN(CASE WHEN state = 'pending' AND run_at <= unixepoch()
          AND (expires_at IS NULL OR expires_at > unixepoch()) THEN run_at END) AS oldest_due,
      MIN(CASE WHEN state = 'pending' AND run_at > unixepoch()
          AND (expires_at IS NULL OR expires_at > unixepoch()) THEN run_at END) AS next_due
    FROM _honker_live GROUP BY queue
    UNION ALL
    SELECT queue, 0, 0, 0, COUNT(*), NULL, NULL FROM _honker_dead GROUP BY queue
    UNION ALL
    SELECT queue, 0, 0, 0, 0, NULL, NULL FROM _honker_queue_controls
    UNION ALL
    SELECT queue, 0, 0, 0, 0, NULL, NULL FROM _honker_scheduler_tasks
  ) AS q GROUP BY q.queue ORDER BY q.queue";

/// The counts of `STATS_ALL` for queue ?1 alone, each through an index
/// that starts with the queue, so other queues' rows are never read:
///
/// - pending due and scheduled: counted on `_honker_live_pending_deadline`
///   alone (covering ranges), minus the rows among them that expired but
///   were not yet swept, found through `_honker_live_expiry` (every queue's
///   expired rows, which the sweep keeps few; the `+` keeps the planner on
///   that index);
/// - processing: `_honker_live_processing_deadline` (covering);
/// - dead: `_honker_dead_queue` (covering).
pub const STATS_QUEUE: &str = "SELECT
  (SELECT COUNT(*) FROM _honker_live INDEXED BY _honker_live_pending_deadline
    WHERE queue = ?1 || '' AND state = 'pending' AND run_at <= unixepoch())
  - (SELECT COUNT(*) FROM _honker_live
    WHERE expires_at <= unixepoch() AND +queue = ?1 || '' AND +state = 'pending'
      AND +run_at <= unixepoch()),
  (SELECT COUNT(*) FROM _honker_live INDEXED BY _honker_live_pending_deadline
    WHERE queue = ?1 || '' AND state = 'pending' AND run_at > unixepoch())
  - (SELECT COUNT(*) FROM _honker_live
    WHERE expires_at <= unixepoch() AND +queue = ?1 || '' AND +state = 'pending'
      AND +run_at > unixepoch()),
  (SELECT COUNT(*) FROM _honker_live INDEXED BY _honker_live_processing_deadline
    WHERE queue = ?1 || '' AND state = 'processing'),
  (SELECT COUNT(*) FROM _honker_dead WHERE queue = ?1 || ''),
  unixepoch() - (SELECT run_at FROM _honker_live INDEXED BY _honker_live_pending_deadline
    WHERE queue = ?1 || '' AND state = 'pending' AND run_at <= unixepoch()
      AND (expires_at IS NULL OR expires_at > unixepoch())
    ORDER BY run_at LIMIT 1),
  COALESCE((SELECT paused FROM _honker_queue_controls WHERE queue = ?1), 0),
  (SELECT run_at FROM _honker_live INDEXED BY _honker_live_pending_deadline
    WHERE queue = ?1 || '' AND state = 'pending' AND run_at > unixepoch()
      AND (expires_at IS NULL OR expires_at > unixepoch())
    ORDER BY run_at LIMIT 1)";

/// The pending rows of queue ?1 that are due now, counted on
/// `_honker_live_pending_deadline` alone (a covering index range, no table
/// lookups). Counts rows that expired but were not yet swept.
pub const PENDING_DUE_COUNT: &str = "SELECT COUNT(*)
  FROM _honker_live INDEXED BY _honker_live_pending_deadline
  WHERE queue = ?1 || '' AND state = 'pending' AND run_at <= unixepoch()";

/// Whether claim (id ?1, attempts ?3) of worker ?2 is held now.
pub const CLAIM_HELD: &str = "SELECT 1 FROM _honker_live
  WHERE id = ?1 AND worker_id = ?2 AND attempts = ?3 AND state = 'processing'
    AND claim_expires_at >= unixepoch()";

/// Why job ?1 is no longer claimed: 1 while it is live (lapsed or taken
/// by another worker) or dead for another reason than ?2 (cancelled); 0
/// when cancelled; no row when it is gone from both tables (deleted).
pub const CLAIM_GONE_WHY: &str = "SELECT 1 FROM _honker_live WHERE id = ?1
  UNION ALL SELECT CASE WHEN last_error = ?2 THEN 0 ELSE 1 END FROM _honker_dead WHERE id = ?1
  LIMIT 1";

// ---------------------------------------------------------------- results

/// ?1 job id, ?2 JSON value, ?3 ttl seconds (NULL = keep).
pub const RESULT_SAVE: &str = "INSERT INTO _honker_results (job_id, value, expires_at)
  VALUES (?1, ?2, CASE WHEN ?3 IS NULL THEN NULL ELSE unixepoch() + ?3 END)
  ON CONFLICT(job_id) DO UPDATE SET value = excluded.value,
    created_at = unixepoch(), expires_at = excluded.expires_at";

/// The unexpired result of job ?1.
pub const RESULT_GET: &str = "SELECT value FROM _honker_results
  WHERE job_id = ?1 AND (expires_at IS NULL OR expires_at > unixepoch())";

/// Delete expired results.
pub const RESULT_SWEEP: &str =
    "DELETE FROM _honker_results WHERE expires_at IS NOT NULL AND expires_at <= unixepoch()";
