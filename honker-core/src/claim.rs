//! Claiming jobs, and knowing when the next one can be claimed.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use crate::enqueue::ceil_secs;
use crate::{atomically, sql, ClaimedJob, Result};

/// Claim visibility when none is given: 300 s, as in every honker binding.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(300);

/// Claim up to `n` jobs of `queue` for `worker_id`, for `visibility`.
///
/// One `UPDATE .. RETURNING` through the partial claim index takes due
/// pending rows and processing rows whose claim lapsed, in the order
/// `priority DESC, run_at, id`, and increments `attempts`. Expired rows are
/// never claimed. A row whose attempts were already exhausted is moved to
/// `_honker_dead` (`'max attempts exceeded'`) instead of being returned, in
/// the same transaction, and its slot is filled from the next rows. So is a
/// row whose payload is not text (a BLOB, bytes that are not UTF-8, written
/// by a foreign program), with a message that says so: one such row never
/// blocks its queue.
///
/// ```
/// use std::time::Duration;
/// use honker_core::{claim_batch, enqueue, EnqueueOptions};
/// let conn = honker_core::open_in_memory().unwrap();
/// enqueue(&conn, "q", r#""low""#, &EnqueueOptions::default()).unwrap();
/// enqueue(&conn, "q", r#""high""#, &EnqueueOptions::default().priority(9)).unwrap();
/// let jobs = claim_batch(&conn, "q", "w1", 10, Duration::from_secs(60)).unwrap();
/// let order: Vec<_> = jobs.iter().map(|j| j.payload.as_str()).collect();
/// assert_eq!(order, [r#""high""#, r#""low""#]);
/// ```
pub fn claim_batch(
    conn: &Connection,
    queue: &str,
    worker_id: &str,
    n: usize,
    visibility: Duration,
) -> Result<Vec<ClaimedJob>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let visibility = ceil_secs(visibility).max(1);
    atomically(conn, |c| {
        let mut out: Vec<ClaimedJob> = Vec::with_capacity(n);
        let mut stmt = c.prepare_cached(sql::CLAIM)?;
        loop {
            let want = n - out.len();
            let rows = stmt
                .query_map(
                    rusqlite::params![queue, worker_id, want as i64, visibility],
                    ClaimedJob::from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let got = rows.len();
            let mut exhausted = 0;
            for (job, bad_payload) in rows {
                if job.attempts > job.max_attempts {
                    dead_letter_exhausted(c, job.id)?;
                    exhausted += 1;
                } else if let Some(why) = bad_payload {
                    dead_letter_unusable(c, job.id, &why)?;
                    exhausted += 1;
                } else {
                    out.push(job);
                }
            }
            // Refill the slots of dead-lettered rows while candidates remain.
            if exhausted == 0 || got < want {
                break;
            }
        }
        out.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.run_at.cmp(&b.run_at))
                .then(a.id.cmp(&b.id))
        });
        Ok(out)
    })
}

fn dead_letter_unusable(c: &Connection, id: i64, why: &str) -> Result<()> {
    c.prepare_cached(sql::CLAIMED_TO_DEAD)?
        .execute(rusqlite::params![id, why])?;
    c.prepare_cached(sql::DELETE_LIVE)?.execute([id])?;
    tracing::warn!(
        job_id = id,
        reason = why,
        "job payload is unusable; moved to _honker_dead"
    );
    Ok(())
}

fn dead_letter_exhausted(c: &Connection, id: i64) -> Result<()> {
    c.prepare_cached(sql::CLAIM_EXHAUSTED_TO_DEAD)?
        .execute([id])?;
    c.prepare_cached(sql::DELETE_LIVE)?.execute([id])?;
    tracing::warn!(
        job_id = id,
        "job exhausted its attempts; moved to _honker_dead"
    );
    Ok(())
}

/// Whether `queue` has a job [`claim_batch`] would take right now. A read:
/// no write lock, no transaction. For deciding whether a wake-up is worth
/// a claim.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// assert!(!honker_core::has_claimable(&conn, "q").unwrap());
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// assert!(honker_core::has_claimable(&conn, "q").unwrap());
/// ```
pub fn has_claimable(conn: &Connection, queue: &str) -> Result<bool> {
    let mut stmt = conn.prepare_cached(sql::HAS_CLAIMABLE)?;
    Ok(stmt.query_row([queue], |r| r.get(0))?)
}

/// The earliest future unix second at which `queue` may have a job to
/// claim: the next pending `run_at`, or one second after the earliest
/// claim expiry. `None` when nothing is scheduled. Expired rows and
/// processing rows with exhausted attempts are ignored.
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// assert_eq!(honker_core::next_claim_at(&conn, "q").unwrap(), None);
/// let opts = honker_core::EnqueueOptions::default().delay(Duration::from_secs(60));
/// honker_core::enqueue(&conn, "q", "1", &opts).unwrap();
/// assert!(honker_core::next_claim_at(&conn, "q").unwrap().is_some());
/// ```
pub fn next_claim_at(conn: &Connection, queue: &str) -> Result<Option<i64>> {
    let mut stmt = conn.prepare_cached(sql::NEXT_CLAIM_AT)?;
    Ok(stmt.query_row([queue], |r| r.get(0))?)
}

/// The earliest future `expires_at` among the live rows of `queue`: when a
/// [`sweep_expired`](crate::sweep_expired) next has work.
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// let opts = honker_core::EnqueueOptions::default().expires(Duration::from_secs(60));
/// honker_core::enqueue(&conn, "q", "1", &opts).unwrap();
/// assert!(honker_core::next_expiry_at(&conn, "q").unwrap().is_some());
/// ```
pub fn next_expiry_at(conn: &Connection, queue: &str) -> Result<Option<i64>> {
    let mut stmt = conn.prepare_cached(sql::NEXT_EXPIRY_AT)?;
    Ok(stmt.query_row([queue], |r| r.get(0)).optional()?.flatten())
}
