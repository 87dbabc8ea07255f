//! Finishing a claim: ack, retry, fail, heartbeat, release. All fenced.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use crate::durations::{clamped_millis, clamped_secs};
use crate::{atomically, sql, Lease, Result};

/// What [`retry`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Back to pending, due after the delay.
    Retried,
    /// Attempts exhausted: moved to `_honker_dead` with the error.
    Dead,
    /// The claim was no longer ours (lapsed, re-claimed, cancelled): nothing done.
    Lost,
}

/// Delete a finished job while our claim is valid. `false` when the claim
/// was lost (lapsed, re-claimed or cancelled): nothing was deleted.
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let job = honker_core::claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap().remove(0);
/// assert!(honker_core::ack(&conn, "w", job.lease()).unwrap());
/// assert!(!honker_core::ack(&conn, "w", job.lease()).unwrap());
/// ```
pub fn ack(conn: &Connection, worker_id: &str, lease: Lease) -> Result<bool> {
    let mut stmt = conn.prepare_cached(sql::ACK)?;
    Ok(stmt.execute(rusqlite::params![lease.id, worker_id, lease.attempts])? == 1)
}

/// Ack many claims in one transaction; returns the ids that were acked
/// (the others had lost their claim).
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// for i in 0..3 { honker_core::enqueue(&conn, "q", &i.to_string(), &Default::default()).unwrap(); }
/// let jobs = honker_core::claim_batch(&conn, "q", "w", 3, Duration::from_secs(60)).unwrap();
/// let leases: Vec<_> = jobs.iter().map(|j| j.lease()).collect();
/// assert_eq!(honker_core::ack_batch(&conn, "w", &leases).unwrap().len(), 3);
/// ```
pub fn ack_batch(conn: &Connection, worker_id: &str, leases: &[Lease]) -> Result<Vec<i64>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    atomically(conn, |c| {
        let mut stmt = c.prepare_cached(sql::ACK)?;
        let mut acked = Vec::with_capacity(leases.len());
        for l in leases {
            if stmt.execute(rusqlite::params![l.id, worker_id, l.attempts])? == 1 {
                acked.push(l.id);
            }
        }
        Ok(acked)
    })
}

/// Put a claimed job back to pending, due after `delay`; when its attempts
/// are exhausted, move it to `_honker_dead` with `error` instead. `delay`
/// is clamped to [`MAX_DURATION`](crate::MAX_DURATION), so the outcome is
/// always recorded.
///
/// ```
/// use std::time::Duration;
/// use honker_core::{EnqueueOptions, RetryOutcome};
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "q", "1", &EnqueueOptions::default().max_attempts(1)).unwrap();
/// let job = honker_core::claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap().remove(0);
/// let out = honker_core::retry(&conn, "w", job.lease(), Duration::from_secs(5), "boom").unwrap();
/// assert_eq!(out, RetryOutcome::Dead);
/// ```
pub fn retry(
    conn: &Connection,
    worker_id: &str,
    lease: Lease,
    delay: Duration,
    error: &str,
) -> Result<RetryOutcome> {
    atomically(conn, |c| {
        let retried = c
            .prepare_cached(sql::RETRY_TO_PENDING)?
            .execute(rusqlite::params![
                lease.id,
                worker_id,
                lease.attempts,
                clamped_millis(delay)
            ])?;
        if retried == 1 {
            return Ok(RetryOutcome::Retried);
        }
        Ok(if move_to_dead(c, worker_id, lease, error)? {
            RetryOutcome::Dead
        } else {
            RetryOutcome::Lost
        })
    })
}

/// Move a claimed job to `_honker_dead` with `error`, whatever its attempts.
/// `false` when the claim was lost.
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let job = honker_core::claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap().remove(0);
/// assert!(honker_core::fail(&conn, "w", job.lease(), "bad input").unwrap());
/// let dead = honker_core::list_dead(&conn, "q", 10, 0).unwrap();
/// assert_eq!(dead[0].last_error.as_deref(), Some("bad input"));
/// ```
pub fn fail(conn: &Connection, worker_id: &str, lease: Lease, error: &str) -> Result<bool> {
    atomically(conn, |c| move_to_dead(c, worker_id, lease, error))
}

/// Copy the fenced row to dead, then delete it from live. Caller holds a
/// transaction.
fn move_to_dead(c: &Connection, worker_id: &str, lease: Lease, error: &str) -> Result<bool> {
    let copied = c
        .prepare_cached(sql::FENCED_TO_DEAD)?
        .execute(rusqlite::params![
            lease.id,
            worker_id,
            lease.attempts,
            error
        ])?;
    if copied == 0 {
        return Ok(false);
    }
    c.prepare_cached(sql::DELETE_LIVE)?.execute([lease.id])?;
    Ok(true)
}

/// Extend a claim that is still ours and still valid to at least
/// `now + extend`; never shortens it. Returns the new deadline, or `None`
/// when the claim was lost (a late heartbeat never takes a job back).
/// `extend` is clamped to [`MAX_DURATION`](crate::MAX_DURATION).
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let job = honker_core::claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap().remove(0);
/// let until = honker_core::heartbeat(&conn, "w", job.lease(), Duration::from_secs(600)).unwrap();
/// assert!(until.unwrap() >= job.claim_expires_at + 500);
/// ```
pub fn heartbeat(
    conn: &Connection,
    worker_id: &str,
    lease: Lease,
    extend: Duration,
) -> Result<Option<i64>> {
    let mut stmt = conn.prepare_cached(sql::HEARTBEAT)?;
    Ok(stmt
        .query_row(
            rusqlite::params![lease.id, worker_id, lease.attempts, clamped_secs(extend)],
            |r| r.get(0),
        )
        .optional()?)
}

/// [`heartbeat`] for many claims in one transaction. Returns the ids whose
/// claim is still held; the others were lost.
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let jobs = honker_core::claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap();
/// let held = honker_core::heartbeat_batch(&conn, "w", &[jobs[0].lease()], Duration::from_secs(60)).unwrap();
/// assert_eq!(held, vec![jobs[0].id]);
/// ```
pub fn heartbeat_batch(
    conn: &Connection,
    worker_id: &str,
    leases: &[Lease],
    extend: Duration,
) -> Result<Vec<i64>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    atomically(conn, |c| {
        let mut held = Vec::with_capacity(leases.len());
        for l in leases {
            if heartbeat(c, worker_id, *l, extend)?.is_some() {
                held.push(l.id);
            }
        }
        Ok(held)
    })
}

/// Why a claim is no longer held, as [`lost_claims`] tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimGone {
    /// The job was cancelled (`_honker_dead` holds it as `cancelled`), or
    /// its row was deleted (another binding's cancel deletes it).
    Cancelled,
    /// Anything else: the claim lapsed or another worker took the job.
    Lost,
}

/// Which of `worker_id`'s `leases` are no longer held, and why. A read:
/// for noticing at once that a running job was cancelled by any process.
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let jobs = honker_core::claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap();
/// assert!(honker_core::lost_claims(&conn, "w", &[jobs[0].lease()]).unwrap().is_empty());
/// honker_core::cancel(&conn, id).unwrap();
/// let gone = honker_core::lost_claims(&conn, "w", &[jobs[0].lease()]).unwrap();
/// assert_eq!(gone, [(jobs[0].lease(), honker_core::ClaimGone::Cancelled)]);
/// ```
pub fn lost_claims(
    conn: &Connection,
    worker_id: &str,
    leases: &[Lease],
) -> Result<Vec<(Lease, ClaimGone)>> {
    let mut held = conn.prepare_cached(sql::CLAIM_HELD)?;
    let mut out = Vec::new();
    for l in leases {
        if held.exists(rusqlite::params![l.id, worker_id, l.attempts])? {
            continue;
        }
        let why: Option<i64> = conn
            .prepare_cached(sql::CLAIM_GONE_WHY)?
            .query_row(rusqlite::params![l.id, crate::CANCELLED], |r| r.get(0))
            .optional()?;
        let why = match why {
            Some(1) => ClaimGone::Lost,
            _ => ClaimGone::Cancelled,
        };
        out.push((*l, why));
    }
    Ok(out)
}

/// Give claims back without burning their attempt: pending again, due at
/// their old `run_at`, claimable at once. For graceful shutdown. Returns how
/// many were released.
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let job = honker_core::claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap().remove(0);
/// assert_eq!(honker_core::release(&conn, "w", &[job.lease()]).unwrap(), 1);
/// assert_eq!(honker_core::get_job(&conn, id).unwrap().unwrap().attempts, 0);
/// ```
pub fn release(conn: &Connection, worker_id: &str, leases: &[Lease]) -> Result<usize> {
    if leases.is_empty() {
        return Ok(0);
    }
    atomically(conn, |c| {
        let mut stmt = c.prepare_cached(sql::RELEASE)?;
        let mut n = 0;
        for l in leases {
            n += stmt.execute(rusqlite::params![l.id, worker_id, l.attempts])?;
        }
        Ok(n)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::ClaimGone;

    #[test]
    fn a_claim_is_lost_while_its_row_lives_on_and_cancelled_once_the_row_is_cancelled() {
        let c = crate::open_in_memory().unwrap();
        for p in ["1", "2", "3"] {
            crate::enqueue(&c, "q", p, &Default::default()).unwrap();
        }
        let jobs = crate::claim_batch(&c, "q", "w", 3, Duration::from_secs(60)).unwrap();
        let [a, b, kept] = [jobs[0].lease(), jobs[1].lease(), jobs[2].lease()];
        assert!(crate::lost_claims(&c, "w", &[a, b, kept])
            .unwrap()
            .is_empty());
        // `a` given back (the row is pending again), `b` cancelled.
        assert_eq!(crate::release(&c, "w", &[a]).unwrap(), 1);
        assert!(crate::cancel(&c, b.id).unwrap());
        assert_eq!(
            crate::lost_claims(&c, "w", &[a, b, kept]).unwrap(),
            [(a, ClaimGone::Lost), (b, ClaimGone::Cancelled)]
        );
        // Another worker's claim of the same row is not this one's.
        assert_eq!(
            crate::lost_claims(&c, "other", &[kept]).unwrap(),
            [(kept, ClaimGone::Lost)]
        );
    }

    #[test]
    fn a_claim_whose_row_died_of_a_failure_is_lost_not_cancelled() {
        let c = crate::open_in_memory().unwrap();
        let opts = crate::EnqueueOptions::default().max_attempts(1);
        crate::enqueue(&c, "q", "1", &opts).unwrap();
        let job = crate::claim_batch(&c, "q", "w", 1, Duration::from_secs(60)).unwrap();
        let l = job[0].lease();
        assert!(crate::fail(&c, "w", l, "boom").unwrap());
        assert_eq!(
            crate::lost_claims(&c, "w", &[l]).unwrap(),
            [(l, ClaimGone::Lost)]
        );
    }
}
