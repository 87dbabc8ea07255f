//! Inspecting and managing jobs: get, cancel, sweep, dead jobs, stats.

use rusqlite::{Connection, OptionalExtension};

use crate::{atomically, sql, DeadJob, Job, QueueStats, Result};

/// Read a live job by id. `None` once it was acked, cancelled or moved to
/// dead (see [`get_dead`]).
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// assert_eq!(honker_core::get_job(&conn, id).unwrap().unwrap().queue, "q");
/// assert!(honker_core::get_job(&conn, id + 1).unwrap().is_none());
/// ```
pub fn get_job(conn: &Connection, id: i64) -> Result<Option<Job>> {
    let mut stmt = conn.prepare_cached(sql::GET_JOB)?;
    Ok(stmt.query_row([id], Job::from_row).optional()?)
}

/// Delete a pending or processing job. `true` when a row was removed. A
/// worker still running it finds its claim lost when it acks.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// assert!(honker_core::cancel(&conn, id).unwrap());
/// assert!(!honker_core::cancel(&conn, id).unwrap());
/// ```
pub fn cancel(conn: &Connection, id: i64) -> Result<bool> {
    Ok(conn.prepare_cached(sql::CANCEL)?.execute([id])? == 1)
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

/// Dead jobs of `queue`, oldest id first, `limit` from `offset`.
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
    let rows = stmt.query_map(
        rusqlite::params![queue, limit as i64, offset as i64],
        DeadJob::from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Read a dead job by id.
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
        if c.prepare_cached(sql::REQUEUE_DEAD_INSERT)?.execute([id])? == 0 {
            return Ok(false);
        }
        c.prepare_cached(sql::DELETE_DEAD)?.execute([id])?;
        Ok(true)
    })
}

/// Counts for every queue that has a live or dead row, by queue name.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "a", "1", &Default::default()).unwrap();
/// honker_core::enqueue(&conn, "b", "1", &Default::default()).unwrap();
/// let names: Vec<_> = honker_core::stats(&conn).unwrap().into_iter().map(|s| s.queue).collect();
/// assert_eq!(names, ["a", "b"]);
/// ```
pub fn stats(conn: &Connection) -> Result<Vec<QueueStats>> {
    stats_where(conn, None)
}

/// Counts for one queue (zeros when it has no rows).
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// assert_eq!(honker_core::queue_stats(&conn, "none").unwrap().pending_due, 0);
/// ```
pub fn queue_stats(conn: &Connection, queue: &str) -> Result<QueueStats> {
    Ok(stats_where(conn, Some(queue))?
        .pop()
        .unwrap_or_else(|| QueueStats {
            queue: queue.to_string(),
            ..QueueStats::default()
        }))
}

fn stats_where(conn: &Connection, queue: Option<&str>) -> Result<Vec<QueueStats>> {
    let mut stmt = conn.prepare_cached(sql::STATS)?;
    let rows = stmt.query_map([queue], |r| {
        Ok(QueueStats {
            queue: r.get(0)?,
            pending_due: r.get(1)?,
            scheduled: r.get(2)?,
            processing: r.get(3)?,
            dead: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
