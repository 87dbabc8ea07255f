//! Inspecting and managing jobs: get, cancel, sweep, dead jobs, stats.

use rusqlite::{Connection, OptionalExtension, Row};

use crate::job::{lenient_int, opt_text_lossy, text_lossy};
use crate::{atomically, sql, DeadJob, JobFate, JobRow, JobState, QueueStats, Result};

/// The `last_error` of a job that [`cancel`] moved to `_honker_dead`.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// honker_core::cancel(&conn, id).unwrap();
/// let dead = honker_core::get_dead(&conn, id).unwrap().unwrap();
/// assert_eq!(dead.last_error.as_deref(), Some(honker_core::CANCELLED));
/// ```
pub const CANCELLED: &str = "cancelled";

/// Read a live job by id. `None` once it was acked, cancelled or moved to
/// dead (see [`get_dead`]).
///
/// Never fails because of what the row holds: an integer column holding a
/// REAL is read as a saturating `i64`, one holding integer-looking TEXT as
/// that integer, anything else as 0 (each logged with `tracing::warn`);
/// text that is not UTF-8 is shown lossily.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// assert_eq!(honker_core::get_job(&conn, id).unwrap().unwrap().queue, "q");
/// assert!(honker_core::get_job(&conn, id + 1).unwrap().is_none());
/// ```
pub fn get_job(conn: &Connection, id: i64) -> Result<Option<JobRow>> {
    let mut stmt = conn.prepare_cached(sql::GET_JOB)?;
    Ok(stmt.query_row([id], JobRow::from_row).optional()?)
}

/// [`get_job`], only if the job belongs to `queue`: `None` for a job of
/// another queue.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "a", "1", &Default::default()).unwrap();
/// assert!(honker_core::get_job_in(&conn, "a", id).unwrap().is_some());
/// assert!(honker_core::get_job_in(&conn, "b", id).unwrap().is_none());
/// ```
pub fn get_job_in(conn: &Connection, queue: &str, id: i64) -> Result<Option<JobRow>> {
    let mut stmt = conn.prepare_cached(sql::GET_JOB_IN)?;
    Ok(stmt
        .query_row(rusqlite::params![id, queue], JobRow::from_row)
        .optional()?)
}

/// Cancel a pending or processing job: move it to `_honker_dead` with
/// `last_error` [`CANCELLED`], atomically. `true` when a row was moved.
///
/// The record stays, so a caller waiting for the job's outcome learns it
/// was cancelled ([`job_fate`]), and an operator can bring it back
/// ([`requeue_dead`]). A worker still running it finds its claim lost when
/// it acks, retries, fails or heartbeats.
///
/// ```
/// use honker_core::{cancel, get_dead, CANCELLED};
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// assert!(cancel(&conn, id).unwrap());
/// assert!(!cancel(&conn, id).unwrap());
/// assert_eq!(get_dead(&conn, id).unwrap().unwrap().last_error.as_deref(), Some(CANCELLED));
/// ```
pub fn cancel(conn: &Connection, id: i64) -> Result<bool> {
    cancel_where(conn, None, id)
}

/// [`cancel`], only if the job belongs to `queue`: `false`, touching
/// nothing, for a job of another queue.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "a", "1", &Default::default()).unwrap();
/// assert!(!honker_core::cancel_in(&conn, "b", id).unwrap());
/// assert!(honker_core::cancel_in(&conn, "a", id).unwrap());
/// ```
pub fn cancel_in(conn: &Connection, queue: &str, id: i64) -> Result<bool> {
    cancel_where(conn, Some(queue), id)
}

fn cancel_where(conn: &Connection, queue: Option<&str>, id: i64) -> Result<bool> {
    atomically(conn, |c| {
        let copied = c
            .prepare_cached(sql::CANCEL_TO_DEAD)?
            .execute(rusqlite::params![id, queue, CANCELLED])?;
        if copied == 0 {
            return Ok(false);
        }
        c.prepare_cached(sql::DELETE_LIVE)?.execute([id])?;
        Ok(true)
    })
}

/// Where job `id` is now, for a caller waiting on its outcome: still live
/// (in which state), dead (with its `last_error`: failed, exhausted,
/// expired, or [`CANCELLED`]), or [`JobFate::Gone`]. Reads the live table
/// first, then the dead one, in one statement (one snapshot).
///
/// `Gone` means the job was acked, or never existed: the format keeps no
/// record of acked jobs. A result it saved ([`get_result`](crate::get_result))
/// tells the two apart.
///
/// ```
/// use std::time::Duration;
/// use honker_core::{job_fate, JobFate};
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let job = honker_core::claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap().remove(0);
/// honker_core::ack(&conn, "w", job.lease()).unwrap();
/// assert_eq!(job_fate(&conn, id).unwrap(), JobFate::Gone);
/// ```
pub fn job_fate(conn: &Connection, id: i64) -> Result<JobFate> {
    let mut stmt = conn.prepare_cached(sql::JOB_FATE)?;
    let fate = stmt
        .query_row([id], |r| {
            Ok(if lenient_int(r.get_ref(0)?, "table", id) == 1 {
                JobFate::Live(JobState::from_value(r.get_ref(1)?))
            } else {
                JobFate::Dead {
                    last_error: opt_text_lossy(r.get_ref(2)?),
                }
            })
        })
        .optional()?;
    Ok(fate.unwrap_or(JobFate::Gone))
}

/// Move expired rows of `queue` (or of every queue) to `_honker_dead`
/// with `'expired'`: pending rows past `expires_at`, and processing rows
/// whose claim lapsed after `expires_at` passed. Returns how many moved.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// conn.execute("UPDATE _honker_live SET expires_at = unixepoch() - 1 WHERE id = ?1", [id]).unwrap();
/// assert_eq!(honker_core::sweep_expired(&conn, Some("q")).unwrap(), 1);
/// assert_eq!(honker_core::get_dead(&conn, id).unwrap().unwrap().last_error.as_deref(), Some("expired"));
/// ```
pub fn sweep_expired(conn: &Connection, queue: Option<&str>) -> Result<usize> {
    atomically(conn, |c| {
        let now: i64 = c.prepare_cached(sql::NOW)?.query_row([], |r| r.get(0))?;
        let copied = c
            .prepare_cached(sql::SWEEP_EXPIRED_TO_DEAD)?
            .execute(rusqlite::params![queue, now])?;
        if copied == 0 {
            return Ok(0);
        }
        let deleted = c
            .prepare_cached(sql::SWEEP_EXPIRED_DELETE)?
            .execute(rusqlite::params![queue, now])?;
        debug_assert_eq!(copied, deleted);
        tracing::info!(queue, count = copied, "swept expired jobs to _honker_dead");
        Ok(copied)
    })
}

/// Dead jobs of `queue`, the newest death first (Sidekiq's and River's
/// order; ties: the newest id first), `limit` from `offset` (each
/// saturating at `i64::MAX`). Rows are read leniently, as by [`get_job`].
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// assert_eq!(honker_core::list_dead(&conn, "q", 100, 0).unwrap().len(), 0);
/// ```
pub fn list_dead(
    conn: &Connection,
    queue: &str,
    limit: usize,
    offset: usize,
) -> Result<Vec<DeadJob>> {
    let mut stmt = conn.prepare_cached(sql::LIST_DEAD)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let rows = stmt.query_map(rusqlite::params![queue, limit, offset], DeadJob::from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Read a dead job by id. Read leniently, as by [`get_job`].
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// assert!(honker_core::get_dead(&conn, 1).unwrap().is_none());
/// ```
pub fn get_dead(conn: &Connection, id: i64) -> Result<Option<DeadJob>> {
    let mut stmt = conn.prepare_cached(sql::GET_DEAD)?;
    Ok(stmt.query_row([id], DeadJob::from_row).optional()?)
}

/// Move a dead job back to live under its own id, attempts reset, due now.
/// `false` when no dead job has that id.
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let job = honker_core::claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap().remove(0);
/// honker_core::fail(&conn, "w", job.lease(), "oops").unwrap();
/// assert!(honker_core::requeue_dead(&conn, id).unwrap());
/// assert_eq!(honker_core::get_job(&conn, id).unwrap().unwrap().attempts, 0);
/// ```
pub fn requeue_dead(conn: &Connection, id: i64) -> Result<bool> {
    atomically(conn, |c| {
        crate::unique::check_requeue(c, id)?;
        if c.prepare_cached(sql::REQUEUE_DEAD_INSERT)?.execute([id])? == 0 {
            return Ok(false);
        }
        c.prepare_cached(sql::DELETE_DEAD)?.execute([id])?;
        Ok(true)
    })
}

/// [`requeue_dead`], only if the dead job belongs to `queue`: `false`,
/// touching nothing, for a job of another queue.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "a", "1", &Default::default()).unwrap();
/// honker_core::cancel(&conn, id).unwrap();
/// assert!(!honker_core::requeue_dead_in(&conn, "b", id).unwrap());
/// assert!(honker_core::requeue_dead_in(&conn, "a", id).unwrap());
/// assert!(honker_core::get_job(&conn, id).unwrap().is_some());
/// ```
pub fn requeue_dead_in(conn: &Connection, queue: &str, id: i64) -> Result<bool> {
    atomically(conn, |c| {
        crate::unique::check_requeue(c, id)?;
        let moved = c
            .prepare_cached(sql::REQUEUE_DEAD_INSERT_IN)?
            .execute(rusqlite::params![id, queue])?;
        if moved == 0 {
            return Ok(false);
        }
        c.prepare_cached(sql::DELETE_DEAD)?.execute([id])?;
        Ok(true)
    })
}

/// Counts for every queue the file knows, by name: every queue with a
/// live or dead row, and every queue with a control (so a paused, empty
/// queue is listed too), with how long its oldest due job has waited.
/// Reads every row. Never fails because of what a row holds (a queue name
/// that is not UTF-8 text is shown lossily).
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "a", "1", &Default::default()).unwrap();
/// honker_core::pause_queue(&conn, "b").unwrap();
/// let all = honker_core::stats(&conn).unwrap();
/// let names: Vec<_> = all.iter().map(|s| s.queue.as_str()).collect();
/// assert_eq!(names, ["a", "b"]);
/// assert_eq!((all[0].oldest_pending_age, all[1].paused), (Some(0), true));
/// ```
pub fn stats(conn: &Connection) -> Result<Vec<QueueStats>> {
    let mut stmt = conn.prepare_cached(sql::STATS_ALL)?;
    let rows = stmt.query_map([], |r| {
        let queue = text_lossy(r.get_ref(0)?);
        counts(r, 1, queue)
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Counts for one queue (zeros when it has no rows), each read through an
/// index that starts with the queue name: the cost grows with the rows of
/// this queue, not of the whole file. Pending rows are checked against
/// their `expires_at`; for the cheapest depth read see
/// [`pending_due_count`].
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// assert_eq!(honker_core::queue_stats(&conn, "none").unwrap().pending_due, 0);
/// ```
pub fn queue_stats(conn: &Connection, queue: &str) -> Result<QueueStats> {
    let mut stmt = conn.prepare_cached(sql::STATS_QUEUE)?;
    Ok(stmt.query_row([queue], |r| counts(r, 0, queue.to_string()))?)
}

/// The counts, the oldest due age and the pause, from column `first` on.
fn counts(r: &Row<'_>, first: usize, queue: String) -> rusqlite::Result<QueueStats> {
    let n = |i: usize, column: &'static str| -> rusqlite::Result<i64> {
        Ok(lenient_int(r.get_ref(first + i)?, column, 0))
    };
    let age = match r.get_ref(first + 4)? {
        rusqlite::types::ValueRef::Integer(a) => Some(a.max(0)),
        _ => None,
    };
    Ok(QueueStats {
        pending_due: n(0, "pending_due")?,
        scheduled: n(1, "scheduled")?,
        processing: n(2, "processing")?,
        dead: n(3, "dead")?,
        oldest_pending_age: age,
        paused: n(5, "paused")? != 0,
        next_due_at: match r.get_ref(first + 6)? {
            rusqlite::types::ValueRef::Integer(t) => Some(t),
            _ => None,
        },
        queue,
    })
}

/// How many pending jobs of `queue` are due now: a queue-depth gauge.
///
/// Counted on the index `_honker_live_pending_deadline` alone (a range of
/// one covering index, no table lookups), so it is cheap at any table
/// size. Unlike [`queue_stats`] it does not look at `expires_at`: a job
/// that expired but was not yet swept ([`sweep_expired`]) is still counted.
///
/// ```
/// use std::time::Duration;
/// use honker_core::{enqueue, pending_due_count, EnqueueOptions};
/// let conn = honker_core::open_in_memory().unwrap();
/// enqueue(&conn, "q", "1", &EnqueueOptions::default()).unwrap();
/// enqueue(&conn, "q", "2", &EnqueueOptions::default().delay(Duration::from_secs(60))).unwrap();
/// assert_eq!(pending_due_count(&conn, "q").unwrap(), 1);
/// ```
pub fn pending_due_count(conn: &Connection, queue: &str) -> Result<i64> {
    let mut stmt = conn.prepare_cached(sql::PENDING_DUE_COUNT)?;
    Ok(stmt.query_row([queue], |r| Ok(lenient_int(r.get_ref(0)?, "count", 0)))?)
}

/// The payloads of the jobs of `queue` waiting to run (pending, due or
/// scheduled), oldest first; a payload that is not text is shown lossily.
/// For tests and tools that check what was enqueued.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "q", "[1]", &Default::default()).unwrap();
/// assert_eq!(honker_core::waiting_payloads(&conn, "q").unwrap(), ["[1]"]);
/// ```
pub fn waiting_payloads(conn: &Connection, queue: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(sql::WAITING_PAYLOADS)?;
    let rows = stmt.query_map([queue], |r| Ok(text_lossy(r.get_ref(0)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::EnqueueOptions;

    #[test]
    fn waiting_payloads_are_the_queues_pending_rows_oldest_first() {
        let c = crate::open_in_memory().unwrap();
        let later = EnqueueOptions::default().delay(Duration::from_secs(3600));
        crate::enqueue(&c, "q", r#""scheduled""#, &later).unwrap();
        crate::enqueue(&c, "q", r#""running""#, &Default::default()).unwrap();
        crate::enqueue(&c, "other", r#""elsewhere""#, &Default::default()).unwrap();
        crate::enqueue(&c, "q", r#""due""#, &Default::default()).unwrap();
        let claimed = crate::claim_batch(&c, "q", "w", 1, Duration::from_secs(60)).unwrap();
        assert_eq!(claimed[0].payload, r#""running""#);
        assert_eq!(
            crate::waiting_payloads(&c, "q").unwrap(),
            [r#""scheduled""#, r#""due""#]
        );
        assert!(crate::waiting_payloads(&c, "none").unwrap().is_empty());
    }
}
