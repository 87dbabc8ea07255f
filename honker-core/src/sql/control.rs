//! The statements of job control: unique keys, named locks, queue
//! controls and rate limits.

// ---------------------------------------------------------------- unique jobs

/// The job that holds key ?2 of queue ?1 now (other than job ?3): within
/// its period, or live in a state its rule names (pending; or pending or
/// processing) and still able to run. A job that expired can never run
/// (the sweep's rows: pending past `expires_at`, or processing with its
/// claim lapsed after it) and holds no key. The newest, when several do.
pub const UNIQUE_BLOCKING: &str = "SELECT u.job_id FROM _honker_unique u
  WHERE u.queue = ?1 AND u.key = ?2 AND (?3 IS NULL OR u.job_id != ?3) AND (
    (u.until IS NOT NULL AND u.until > unixepoch())
    OR EXISTS (SELECT 1 FROM _honker_live l WHERE l.id = u.job_id AND l.queue = u.queue
      AND (l.state = 'pending' OR (u.while_state = 'active' AND l.state = 'processing'))
      AND NOT (l.expires_at IS NOT NULL AND l.expires_at <= unixepoch()
        AND (l.state = 'pending' OR l.claim_expires_at IS NULL
             OR l.claim_expires_at < unixepoch()))))
  ORDER BY u.job_id DESC LIMIT 1";

/// Job ?1 holds key ?3 of queue ?2, while ?4, and for ?5 seconds (NULL:
/// no period).
pub const UNIQUE_HOLD: &str = "INSERT OR REPLACE INTO _honker_unique
  (job_id, queue, key, while_state, until)
  VALUES (?1, ?2, ?3, ?4, CASE WHEN ?5 IS NULL THEN NULL ELSE unixepoch() + ?5 END)";

/// Whether job ?1 is dead.
pub const IS_DEAD: &str = "SELECT 1 FROM _honker_dead WHERE id = ?1";

/// The queue and key job ?1 holds, if it is unique.
pub const UNIQUE_OF_JOB: &str = "SELECT queue, key FROM _honker_unique WHERE job_id = ?1";

/// Keys that block nothing and never will again: period over (or none),
/// and the job gone from live and dead (done or purged; a dead job may be
/// requeued, and takes its key back).
pub const UNIQUE_SWEEP: &str = "DELETE FROM _honker_unique
  WHERE (until IS NULL OR until <= unixepoch())
    AND NOT EXISTS (SELECT 1 FROM _honker_live l WHERE l.id = _honker_unique.job_id)
    AND NOT EXISTS (SELECT 1 FROM _honker_dead d WHERE d.id = _honker_unique.job_id)";

// ---------------------------------------------------------------- named locks
// The rows and statements of the Python package's `db.lock`.

/// Drop lock ?1 if its time ran out.
pub const LOCK_DROP_EXPIRED: &str =
    "DELETE FROM _honker_locks WHERE name = ?1 AND expires_at <= unixepoch()";

/// Take lock ?1 for owner ?2 for ?3 s, unless someone holds it.
pub const LOCK_TAKE: &str = "INSERT OR IGNORE INTO _honker_locks (name, owner, expires_at)
  VALUES (?1, ?2, unixepoch() + ?3)";

/// The owner of lock ?1.
pub const LOCK_OWNER: &str = "SELECT owner FROM _honker_locks WHERE name = ?1";

/// Extend lock ?1 of owner ?2 to ?3 s from now, while its row is the
/// owner's (run out but not taken over by anyone, it is still the owner's
/// to extend).
pub const LOCK_RENEW: &str = "UPDATE _honker_locks SET expires_at = unixepoch() + ?3
  WHERE name = ?1 AND owner = ?2";

/// Release lock ?1 of owner ?2.
pub const LOCK_RELEASE: &str = "DELETE FROM _honker_locks WHERE name = ?1 AND owner = ?2";

/// The holder of lock ?1 whose time has not run out, and until when.
pub const LOCK_HOLDER: &str = "SELECT owner, expires_at FROM _honker_locks
  WHERE name = ?1 AND expires_at > unixepoch()";

// ---------------------------------------------------------------- controls

/// The controls of queue ?1: paused, max_running, rate_limit, rate_per.
pub const CONTROLS_GET: &str = "SELECT paused, max_running, rate_limit, rate_per
  FROM _honker_queue_controls WHERE queue = ?1";

/// Pause (?2 = 1) or resume (?2 = 0) queue ?1.
pub const CONTROLS_SET_PAUSED: &str = "INSERT INTO _honker_queue_controls (queue, paused)
  VALUES (?1, ?2)
  ON CONFLICT(queue) DO UPDATE SET paused = excluded.paused, updated_at = unixepoch()";

/// Set queue ?1's running limit to ?2 (NULL: none).
pub const CONTROLS_SET_MAX_RUNNING: &str = "INSERT INTO _honker_queue_controls (queue, max_running)
  VALUES (?1, ?2)
  ON CONFLICT(queue) DO UPDATE SET max_running = excluded.max_running, updated_at = unixepoch()";

/// Set queue ?1's rate limit to ?2 starts per ?3 seconds (NULLs: none).
pub const CONTROLS_SET_RATE: &str =
    "INSERT INTO _honker_queue_controls (queue, rate_limit, rate_per)
  VALUES (?1, ?2, ?3)
  ON CONFLICT(queue) DO UPDATE SET rate_limit = excluded.rate_limit,
    rate_per = excluded.rate_per, updated_at = unixepoch()";

/// Every controlled queue: queue, paused, max_running, rate_limit, rate_per.
pub const CONTROLS_ALL: &str = "SELECT queue, paused, max_running, rate_limit, rate_per
  FROM _honker_queue_controls ORDER BY queue";

/// The paused queues.
pub const CONTROLS_PAUSED: &str =
    "SELECT queue FROM _honker_queue_controls WHERE paused != 0 ORDER BY queue";

/// Jobs of queue ?1 running now: valid claims (lapsed ones are reclaimable).
pub const CONTROLS_RUNNING: &str = "SELECT count(*) FROM _honker_live
  WHERE queue = ?1 AND state = 'processing' AND claim_expires_at >= unixepoch()";

/// The current window of rate limit ?1 (length ?2 s), as the Python
/// package's `try_rate_limit` computes it, and its count so far.
pub const RATE_WINDOW: &str = "SELECT w.start, COALESCE((SELECT count FROM _honker_rate_limits
    WHERE name = ?1 AND window_start = w.start), 0)
  FROM (SELECT (unixepoch() / ?2) * ?2 AS start) AS w";

/// Count ?3 starts in rate limit ?1's current window (length ?2 s);
/// returns the window's start.
pub const RATE_COUNT: &str = "INSERT INTO _honker_rate_limits (name, window_start, count)
  VALUES (?1, (unixepoch() / ?2) * ?2, ?3)
  ON CONFLICT(name, window_start) DO UPDATE SET count = count + excluded.count
  RETURNING window_start";

// ---------------------------------------------------------------- health

/// Live rows still `processing` past their claim deadline (their worker is
/// gone or stalled; the next claim on the queue takes them back): how many,
/// and the ?1 longest overdue.
pub const HEALTH_EXPIRED_CLAIMS_COUNT: &str = "SELECT COUNT(*) FROM _honker_live
  WHERE state = 'processing' AND claim_expires_at < unixepoch()";
/// The rows of `HEALTH_EXPIRED_CLAIMS_COUNT`, longest overdue first, ?1 of them.
pub const HEALTH_EXPIRED_CLAIMS: &str = "SELECT id, queue, payload, state, priority, run_at,
  worker_id, claim_expires_at, attempts, max_attempts, created_at, expires_at
  FROM _honker_live WHERE state = 'processing' AND claim_expires_at < unixepoch()
  ORDER BY claim_expires_at, id LIMIT ?1 + 0";
/// Pending rows with no attempt left (the next claim moves them to dead).
pub const HEALTH_EXHAUSTED_COUNT: &str = "SELECT COUNT(*) FROM _honker_live
  WHERE state = 'pending' AND attempts >= max_attempts";
/// How far in the future the newest `created_at` of live and dead rows
/// is, in seconds (positive: a writer's clock runs ahead of this one).
pub const HEALTH_CREATED_AHEAD: &str = "SELECT MAX(t) - unixepoch() FROM (
  SELECT MAX(created_at) AS t FROM _honker_live
  UNION ALL SELECT MAX(created_at) FROM _honker_dead)";
/// Which of the main database's objects (tables and indexes) exist.
pub const HEALTH_OBJECTS: &str = "SELECT type, name FROM main.sqlite_schema
  WHERE type IN ('table', 'index') AND name LIKE '\\_honker\\_%' ESCAPE '\\'";
/// Live rows, dead rows, ids handed out.
pub const HEALTH_ROW_TOTALS: &str = "SELECT (SELECT COUNT(*) FROM _honker_live),
  (SELECT COUNT(*) FROM _honker_dead),
  COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '_honker_live'), 0)";
/// Ids of every running (claimed) job, through the processing index alone,
/// ?1 of them.
pub const HEALTH_RUNNING_IDS: &str = "SELECT id FROM _honker_live
  INDEXED BY _honker_live_processing_deadline WHERE state = 'processing' LIMIT ?1 + 0";
