//! The statements of schedules (`_honker_scheduler_tasks` and its side
//! tables).

// ---------------------------------------------------------------- schedules

/// The columns of a schedule: the format's, then the extras.
macro_rules! schedule_columns {
    () => {
        "SELECT t.name, t.queue, t.cron_expr, t.payload, t.priority, t.expires_s,
    t.next_fire_at, t.enabled, t.max_attempts, x.zone, x.misfire
  FROM _honker_scheduler_tasks t LEFT JOIN _honker_schedule_extras x ON x.name = t.name"
    };
}

/// Schedule ?1.
pub const SCHEDULE_GET: &str = concat!(schedule_columns!(), " WHERE t.name = ?1");

/// Every schedule, by name.
pub const SCHEDULE_LIST: &str = concat!(schedule_columns!(), " ORDER BY t.name");

/// The enabled schedules due at ?1.
pub const SCHEDULE_DUE: &str = concat!(
    schedule_columns!(),
    " WHERE t.next_fire_at <= ?1 AND t.enabled = 1 ORDER BY t.next_fire_at, t.name"
);

/// Register schedule ?1 (queue ?2, expression ?3, payload ?4, priority
/// ?5, expires ?6 s, next_fire_at ?7, max_attempts ?8), as Python's does.
pub const SCHEDULE_UPSERT: &str = "INSERT INTO _honker_scheduler_tasks
    (name, queue, cron_expr, payload, priority, expires_s, next_fire_at, max_attempts)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
  ON CONFLICT(name) DO UPDATE SET queue = excluded.queue, cron_expr = excluded.cron_expr,
    payload = excluded.payload, priority = excluded.priority, expires_s = excluded.expires_s,
    next_fire_at = excluded.next_fire_at, max_attempts = excluded.max_attempts";

/// Schedule ?1's zone ?2 and misfire policy ?3.
pub const SCHEDULE_EXTRAS_UPSERT: &str =
    "INSERT OR REPLACE INTO _honker_schedule_extras (name, zone, misfire) VALUES (?1, ?2, ?3)";

/// Wake the Python package's schedulers, as its own writes do.
pub const SCHEDULER_WAKE: &str =
    "INSERT INTO _honker_notifications (channel, payload) VALUES ('honker:scheduler', 'wake')";

/// Delete schedule ?1.
pub const SCHEDULE_DELETE: &str = "DELETE FROM _honker_scheduler_tasks WHERE name = ?1";

/// Delete schedule ?1's extras.
pub const SCHEDULE_EXTRAS_DELETE: &str = "DELETE FROM _honker_schedule_extras WHERE name = ?1";

/// Enable (?2 = 1) or pause (?2 = 0) schedule ?1, if it is not so.
pub const SCHEDULE_SET_ENABLED: &str = "UPDATE _honker_scheduler_tasks SET enabled = ?2
  WHERE name = ?1 AND enabled != ?2";

/// The earliest next_fire_at of the enabled schedules.
pub const SCHEDULE_SOONEST: &str =
    "SELECT MIN(next_fire_at) FROM _honker_scheduler_tasks WHERE enabled = 1";

/// Advance schedule ?1 to ?2, only from ?3 (the value read).
pub const SCHEDULE_ADVANCE: &str = "UPDATE _honker_scheduler_tasks SET next_fire_at = ?2
  WHERE name = ?1 AND next_fire_at = ?3";

/// Job ?1 was fired by schedule ?2 for boundary ?3.
pub const SCHEDULE_RUN_RECORD: &str =
    "INSERT OR REPLACE INTO _honker_schedule_runs (job_id, schedule, boundary) VALUES (?1, ?2, ?3)";

/// The schedule and boundary of job ?1.
pub const SCHEDULE_RUN_GET: &str =
    "SELECT schedule, boundary FROM _honker_schedule_runs WHERE job_id = ?1";
