//! The honker file format and every queue operation.
//!
//! Jobs are rows in the application's own SQLite file, in the tables of the
//! honker format (shared with the `honker` Python package and the other
//! bindings). Every operation here is a plain function over a
//! [`rusqlite::Connection`]: called on a connection inside the
//! application's transaction, it commits or rolls back with it. Operations
//! that write more than one statement are atomic ([`atomically`]).
//!
//! This crate is synchronous and has no runtime; `honker-actors` builds
//! the worker pool on top of it.
//!
//! ```
//! use std::time::Duration;
//! use honker_core::{ack, claim_batch, enqueue, EnqueueOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let conn = honker_core::open(dir.path().join("app.db")).unwrap();
//! let id = enqueue(&conn, "emails", r#"{"to":"a@b.c"}"#, &EnqueueOptions::default()).unwrap();
//! let jobs = claim_batch(&conn, "emails", "worker-1", 10, Duration::from_secs(300)).unwrap();
//! assert_eq!(jobs[0].id, id);
//! assert!(ack(&conn, "worker-1", jobs[0].lease()).unwrap());
//! ```

mod admin;
mod browse;
mod claim;
mod complete;
mod controls;
mod cron;
pub mod durations;
mod enqueue;
mod error;
mod existing;
mod health;
mod job;
mod locks;
mod open;
mod results;
mod schedules;
/// The statements: crate-private; the `internals` feature shows them to
/// this workspace's plan tests and the benchmark's raw-SQL floor. Not an
/// API: use the functions.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod sql;
#[cfg(not(feature = "internals"))]
mod sql;
mod task;
mod tx;
mod unique;

pub use admin::{
    cancel, cancel_in, get_dead, get_job, get_job_in, job_fate, list_dead, pending_due_count,
    queue_stats, requeue_dead, requeue_dead_in, stats, sweep_expired, waiting_payloads, CANCELLED,
};
pub use browse::{
    find_jobs, list_dead_where, list_jobs, purge_dead_in, purge_dead_where, requeue_dead_where,
    DeadFilter, LiveState,
};
pub use claim::{
    claim_batch, claim_counted, has_claimable, next_claim_at, next_expiry_any, next_expiry_at,
    Counted, DEFAULT_VISIBILITY_TIMEOUT,
};
pub use complete::{
    ack, ack_batch, fail, heartbeat, heartbeat_batch, lost_claims, release, retry, ClaimGone,
    RetryOutcome,
};
pub use controls::{
    check_max_running, check_rate_limit, controlled_queues, next_claim_allowed_at, pause_queue,
    paused_queues, queue_controls, rate_reopens_at, resume_queue, set_max_running, set_rate_limit,
    QueueControls, RateLimit,
};
pub use cron::{next_boundary, CronFields, Schedule};
pub use durations::MAX_DURATION;
pub use enqueue::{
    enqueue, enqueue_json, enqueue_outcome, prepare_enqueue, validate_queue_name, EnqueueOptions,
    PreparedEnqueue, DEFAULT_MAX_ATTEMPTS,
};
pub use error::{Error, Result};
pub use existing::{open_existing, open_read_only, open_snapshot};
pub use health::{
    health, row_totals, running_ids, schema_objects, Health, RowTotals, SchemaObject,
};
pub use job::{ClaimedJob, DeadJob, JobFate, JobRow, JobState, Lease, QueueStats};
pub use locks::{check_lock, lock_holder, renew_lock, try_lock, unlock};
pub use open::{migrate, open, open_connection, open_in_memory};
pub use results::{get_result, save_result, sweep_results};
pub use rusqlite;
pub use schedules::{
    boundaries_to_fire, check_schedule, fire_due, fired_for, first_boundary, get_schedule,
    list_schedules, next_fire_at, register_schedule, remove_schedule, run_schedule_now,
    set_schedule_enabled, Fired, Misfire, ScheduleRow, ScheduleSpec, MISFIRE_AFTER,
};
pub use task::{
    leading_task_name, read_payload, task_name, task_payload, Payload, TaskCall, TaskError,
    TASK_ENVELOPE,
};
pub use tx::atomically;
pub use unique::{check_unique, sweep_unique, Enqueued, Unique, UniqueWhile};

/// The current time as SQLite sees it (`unixepoch()`), the clock every
/// honker binding compares with.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// assert!(honker_core::now(&conn).unwrap() > 1_700_000_000);
/// ```
pub fn now(conn: &rusqlite::Connection) -> Result<i64> {
    Ok(conn.prepare_cached(sql::NOW)?.query_row([], |r| r.get(0))?)
}
