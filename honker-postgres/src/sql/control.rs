//! The statements of queue controls, named locks, schedules and the
//! store's health.

// ---------------------------------------------------------------- controls

/// The controls of queue $1.
pub const CONTROLS_GET: &str = "SELECT paused, max_running, rate_limit, rate_per
  FROM {s}.queue_controls WHERE queue = $1";

/// Every controlled queue.
pub const CONTROLS_ALL: &str = "SELECT queue, paused, max_running, rate_limit, rate_per
  FROM {s}.queue_controls ORDER BY queue";

/// The paused queues.
pub const CONTROLS_PAUSED: &str =
    "SELECT queue FROM {s}.queue_controls WHERE paused ORDER BY queue";

/// Pause ($2 true) or resume queue $1; returns whether it changed.
pub const CONTROLS_SET_PAUSED: &str = "WITH before AS (
    SELECT paused FROM {s}.queue_controls WHERE queue = $1)
  INSERT INTO {s}.queue_controls (queue, paused) VALUES ($1, $2)
  ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused, updated_at = {s}.now_s()
  RETURNING COALESCE((SELECT paused FROM before), false) <> $2";

/// Set queue $1's running limit to $2 (NULL: none).
pub const CONTROLS_SET_MAX_RUNNING: &str = "INSERT INTO {s}.queue_controls (queue, max_running)
  VALUES ($1, $2)
  ON CONFLICT (queue) DO UPDATE SET max_running = excluded.max_running, updated_at = {s}.now_s()";

/// Set queue $1's rate limit to $2 starts per $3 seconds (NULLs: none).
pub const CONTROLS_SET_RATE: &str = "INSERT INTO {s}.queue_controls (queue, rate_limit, rate_per)
  VALUES ($1, $2, $3)
  ON CONFLICT (queue) DO UPDATE SET rate_limit = excluded.rate_limit,
    rate_per = excluded.rate_per, updated_at = {s}.now_s()";

/// Serialize the claims of one limited queue across connections, so a
/// running or rate limit holds for every process: $1 the queue.
pub const LIMIT_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('honker-limit:' || $1, 0))";

/// Jobs of queue $1 running now (valid claims).
pub const CONTROLS_RUNNING: &str = "SELECT COUNT(*) FROM {s}.live
  WHERE queue = $1 AND state = 'processing' AND claim_expires_at >= {s}.now_s()";

/// The current window of rate limit $1 (length $2 s) and its count.
pub const RATE_WINDOW: &str = "SELECT w.start, COALESCE((SELECT count FROM {s}.rate_limits
    WHERE name = $1 AND window_start = w.start), 0)
  FROM (SELECT ({s}.now_s() / $2::bigint) * $2::bigint AS start) AS w";

/// Count $3 starts in rate limit $1's current window (length $2 s);
/// returns the window's start.
pub const RATE_COUNT: &str = "INSERT INTO {s}.rate_limits (name, window_start, count)
  VALUES ($1, ({s}.now_s() / $2::bigint) * $2::bigint, $3)
  ON CONFLICT (name, window_start) DO UPDATE SET count = {s}.rate_limits.count + excluded.count
  RETURNING window_start";

/// Windows of rate limits that ended: nothing reads them again.
pub const RATE_SWEEP: &str = "DELETE FROM {s}.rate_limits r
  WHERE r.window_start + COALESCE((SELECT c.rate_per FROM {s}.queue_controls c
      WHERE c.queue = r.name), 0) < {s}.now_s() - 86400";

// ---------------------------------------------------------------- locks

/// Drop lock $1 if its time ran out.
pub const LOCK_DROP_EXPIRED: &str =
    "DELETE FROM {s}.locks WHERE name = $1 AND expires_at <= {s}.now_s()";
/// Take lock $1 for owner $2 for $3 s, unless someone holds it; the
/// owner after.
pub const LOCK_TAKE: &str = "INSERT INTO {s}.locks (name, owner, expires_at)
  VALUES ($1, $2, {s}.now_s() + $3) ON CONFLICT (name) DO NOTHING";
/// The owner of lock $1.
pub const LOCK_OWNER: &str = "SELECT owner FROM {s}.locks WHERE name = $1";
/// Extend lock $1 of owner $2 to $3 s from now.
pub const LOCK_RENEW: &str =
    "UPDATE {s}.locks SET expires_at = {s}.now_s() + $3 WHERE name = $1 AND owner = $2";
/// Release lock $1 of owner $2.
pub const LOCK_RELEASE: &str = "DELETE FROM {s}.locks WHERE name = $1 AND owner = $2";

// ---------------------------------------------------------------- schedules

macro_rules! schedule_columns {
    () => {
        "SELECT name, queue, cron_expr, payload, priority, expires_s, next_fire_at, enabled,
    max_attempts, zone, misfire FROM {s}.schedules"
    };
}

/// Schedule $1.
pub const SCHEDULE_GET: &str = concat!(schedule_columns!(), " WHERE name = $1");
/// Every schedule, by name.
pub const SCHEDULE_LIST: &str = concat!(schedule_columns!(), " ORDER BY name");
/// Enabled schedules due at $1.
pub const SCHEDULE_DUE: &str = concat!(
    schedule_columns!(),
    " WHERE next_fire_at <= $1 AND enabled ORDER BY next_fire_at, name"
);
/// Insert or update a schedule.
pub const SCHEDULE_UPSERT: &str = "INSERT INTO {s}.schedules
    (name, queue, cron_expr, payload, priority, expires_s, next_fire_at, max_attempts, zone, misfire)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
  ON CONFLICT (name) DO UPDATE SET queue = excluded.queue, cron_expr = excluded.cron_expr,
    payload = excluded.payload, priority = excluded.priority, expires_s = excluded.expires_s,
    next_fire_at = excluded.next_fire_at, max_attempts = excluded.max_attempts,
    zone = excluded.zone, misfire = excluded.misfire";
/// Delete schedule $1.
pub const SCHEDULE_DELETE: &str = "DELETE FROM {s}.schedules WHERE name = $1";
/// Enable or disable schedule $1; a row only when it changed.
pub const SCHEDULE_SET_ENABLED: &str =
    "UPDATE {s}.schedules SET enabled = $2 WHERE name = $1 AND enabled <> $2";
/// The soonest boundary of an enabled schedule.
pub const SCHEDULE_SOONEST: &str = "SELECT MIN(next_fire_at) FROM {s}.schedules WHERE enabled";
/// Move schedule $1 from boundary $3 to $2, unless another scheduler did
/// (or it was disabled meanwhile).
pub const SCHEDULE_ADVANCE: &str = "UPDATE {s}.schedules SET next_fire_at = $2
  WHERE name = $1 AND next_fire_at = $3 AND enabled";
/// Record that job $1 fired for schedule $2's boundary $3.
pub const SCHEDULE_RUN_RECORD: &str = "INSERT INTO {s}.schedule_runs (job_id, schedule, boundary)
  VALUES ($1, $2, $3)
  ON CONFLICT (job_id) DO UPDATE SET schedule = excluded.schedule, boundary = excluded.boundary";
/// The schedule and boundary of job $1.
pub const SCHEDULE_RUN_GET: &str =
    "SELECT schedule, boundary FROM {s}.schedule_runs WHERE job_id = $1";

// ---------------------------------------------------------------- health

/// Overdue claims: how many.
pub const HEALTH_EXPIRED_CLAIMS_COUNT: &str = "SELECT COUNT(*) FROM {s}.live
  WHERE state = 'processing' AND claim_expires_at < {s}.now_s()";
/// Overdue claims, longest overdue first, $1 of them.
pub const HEALTH_EXPIRED_CLAIMS: &str = concat!(
    "SELECT ",
    live_columns!(),
    " FROM {s}.live WHERE state = 'processing' AND claim_expires_at < {s}.now_s()
  ORDER BY claim_expires_at, id LIMIT $1"
);
/// Pending rows with no attempt left.
pub const HEALTH_EXHAUSTED_COUNT: &str = "SELECT COUNT(*) FROM {s}.live
  WHERE state = 'pending' AND attempts >= max_attempts";
/// How far ahead of the server's clock the newest `created_at` is.
pub const HEALTH_CREATED_AHEAD: &str = "SELECT MAX(t) - {s}.now_s() FROM (
  SELECT MAX(created_at) AS t FROM {s}.live
  UNION ALL SELECT MAX(created_at) FROM {s}.dead) AS x";
/// Live rows, dead rows, ids handed out.
pub const HEALTH_ROW_TOTALS: &str = "SELECT (SELECT COUNT(*) FROM {s}.live),
  (SELECT COUNT(*) FROM {s}.dead),
  COALESCE((SELECT last_value FROM pg_sequences
    WHERE schemaname = $1 AND sequencename = 'live_id_seq'), 0)";
/// Ids of running jobs, $1 of them.
pub const HEALTH_RUNNING_IDS: &str =
    "SELECT id FROM {s}.live WHERE state = 'processing' ORDER BY id LIMIT $1";
/// The schema's tables and indexes: kind and name.
pub const HEALTH_OBJECTS: &str = "SELECT CASE c.relkind WHEN 'r' THEN 'table' ELSE 'index' END,
    c.relname::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND c.relkind IN ('r', 'i')";
