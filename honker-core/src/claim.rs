//! Claiming jobs, and knowing when the next one can be claimed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use crate::durations::clamped_secs;
use crate::job::{describe, exact_int};
use crate::{atomically, sql, ClaimedJob, Result};

/// The most result slots [`claim_batch`] reserves up front, whatever `n`.
const MAX_RESERVED: usize = 1024;

/// Claim visibility when none is given: 300 s, as in every honker binding.
pub const DEFAULT_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(300);

/// Claim up to `n` jobs of `queue` for `worker_id`, for `visibility`.
///
/// One `UPDATE .. RETURNING` takes due pending rows and processing rows
/// whose claim lapsed, in the order `priority DESC, run_at, id`, and
/// increments `attempts`. It goes through the partial claim index, or,
/// when every row of the queue has one priority (two index seeks tell),
/// through the pending and processing indexes merged by `run_at, id`,
/// which never walks past the rows other claims hold. Expired rows are
/// never claimed. A row whose attempts were already exhausted is moved to
/// `_honker_dead` (`'max attempts exceeded'`) instead of being returned, in
/// the same transaction, and its slot is filled from the next rows. So is a
/// row whose payload is not text (a BLOB, bytes that are not UTF-8, written
/// by a foreign program), with a message that says so, and so is a row
/// whose integer column holds something else (`expires_at` stored as REAL
/// `1e30`, `priority` as TEXT `'soon'`; an integral REAL within `i64` is
/// read as that integer), with a `last_error` naming the column and what it
/// held: one such row never blocks its queue.
///
/// The queue's controls hold in the same transaction: a paused queue
/// gives nothing, a running limit gives only the room left across every
/// worker, and a rate limit only what its window has left (the claims are
/// counted in it); see [`pause_queue`](crate::pause_queue).
///
/// `visibility` is clamped to [`MAX_DURATION`](crate::MAX_DURATION) (and
/// is at least 1 s); any `n` is accepted (`usize::MAX` claims everything
/// claimable).
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
    Ok(claim_counted(conn, queue, worker_id, n, visibility)?.jobs)
}

/// What [`claim_counted`] claimed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    /// The claimed jobs, in claim order.
    pub jobs: Vec<ClaimedJob>,
    /// When the queue has a rate limit: the end (unix seconds, the first
    /// second after it) of the window these claims were counted in as
    /// starts. A job not started before then must not start: it would be
    /// a start in a window that did not count it.
    pub start_before: Option<i64>,
}

/// [`claim_batch`], also saying by when the claimed jobs must start for
/// their queue's rate limit to hold (it counts starts when it claims).
///
/// ```
/// use std::time::Duration;
/// use honker_core::{claim_counted, enqueue, set_rate_limit, EnqueueOptions, RateLimit};
/// let conn = honker_core::open_in_memory().unwrap();
/// enqueue(&conn, "q", "1", &EnqueueOptions::default()).unwrap();
/// let rate = RateLimit { limit: 5, per: Duration::from_secs(60) };
/// set_rate_limit(&conn, "q", Some(rate)).unwrap();
/// let before = honker_core::now(&conn).unwrap();
/// let got = claim_counted(&conn, "q", "w", 10, Duration::from_secs(30)).unwrap();
/// assert_eq!(got.jobs.len(), 1);
/// // The end of the minute the claim was counted in.
/// let end = got.start_before.unwrap();
/// assert!(end % 60 == 0 && end > before && end <= before + 61, "{end}");
/// ```
pub fn claim_counted(
    conn: &Connection,
    queue: &str,
    worker_id: &str,
    n: usize,
    visibility: Duration,
) -> Result<Counted> {
    // One index seek first: the claim itself walks its queue in claim
    // order, past every row not yet due, which on a queue with many
    // scheduled jobs costs far more than finding out there is nothing.
    if n == 0 || !has_claimable(conn, queue)? {
        return Ok(Counted::default());
    }
    let visibility = clamped_secs(visibility).max(1);
    atomically(conn, |c| {
        // The queue's controls, read in the claim's own write transaction.
        let allowed = crate::controls::allowance(c, queue, n)?;
        let n = allowed.n;
        if n == 0 {
            return Ok(Counted::default());
        }
        let mut out: Vec<ClaimedJob> = Vec::with_capacity(n.min(MAX_RESERVED));
        // Two seeks that spare the claim a walk past every row other
        // claims hold, when the queue's rows share one priority.
        let one_priority: bool = c
            .prepare_cached(sql::ONE_PRIORITY)?
            .query_row([queue], |r| r.get(0))?;
        let mut stmt = c.prepare_cached(if one_priority {
            sql::CLAIM_ONE_PRIORITY
        } else {
            sql::CLAIM
        })?;
        loop {
            let want = n - out.len();
            let limit = i64::try_from(want).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(
                    rusqlite::params![queue, worker_id, limit, visibility],
                    ClaimedJob::from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let got = rows.len();
            let mut moved_any = false;
            for (job, unusable) in rows {
                let moved = if let Some(why) = unusable {
                    atomically(c, |c| dead_letter_unusable(c, job.id, &why))
                } else if job.attempts > job.max_attempts {
                    atomically(c, |c| dead_letter_exhausted(c, job.id))
                } else {
                    out.push(job);
                    continue;
                };
                moved_any = true;
                match moved {
                    Ok(()) => {}
                    // The whole transaction is gone: nothing here holds.
                    Err(e) if c.is_autocommit() => return Err(e),
                    // This row alone cannot move (an application's foreign
                    // key to it, a trigger): it stays claimed, unreturned,
                    // until its claim lapses; the queue goes on.
                    Err(e) => tracing::warn!(job_id = job.id, queue, error = %e,
                        "could not move a job to _honker_dead; it is retried when its claim lapses"),
                }
            }
            // Refill the slots of dead-lettered rows while candidates remain.
            if !moved_any || got < want {
                break;
            }
        }
        let start_before = match allowed.rate_per {
            Some(per) => crate::controls::count_starts(c, queue, per, out.len())?,
            None => None,
        };
        out.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.run_at.cmp(&b.run_at))
                .then(a.id.cmp(&b.id))
        });
        Ok(Counted {
            jobs: out,
            start_before,
        })
    })
}

fn dead_letter_unusable(c: &Connection, id: i64, why: &str) -> Result<()> {
    c.prepare_cached(sql::CLAIMED_TO_DEAD)?
        .execute(rusqlite::params![id, why])?;
    c.prepare_cached(sql::DELETE_LIVE)?.execute([id])?;
    tracing::warn!(
        job_id = id,
        reason = why,
        "job row is unusable; moved to _honker_dead"
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

/// Whether `queue` has a job [`claim_batch`] would take right now, were
/// the queue's controls (pause, limits) to allow it. A read: no write
/// lock, no transaction. For deciding whether a wake-up is worth a claim.
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

/// The earliest future unix second at which a claim of `queue` may have
/// work: the next pending `run_at` (of a row that will not have expired by
/// then), or one second after the earliest claim of any processing row
/// lapses. `None` when nothing is scheduled.
///
/// Every processing row counts, so an idle pool wakes when a claim lapses
/// even if there is nothing to re-claim: the claim then moves a row whose
/// attempts are exhausted to `_honker_dead`, and
/// [`sweep_expired`](crate::sweep_expired) moves one that expired
/// meanwhile.
///
/// Never fails because of what a row holds: times that are not integers
/// (TEXT, a REAL such as `1e30`; an integral REAL within `i64` counts as
/// its integer) are ignored, and logged once per process.
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
    Ok(stmt
        .query_row([queue], |r| {
            Ok(lenient_time(r.get_ref(0)?, "next_claim_at"))
        })
        .optional()?
        .flatten())
}

/// Set once an odd deadline has been logged.
static WARNED_ODD_TIME: AtomicBool = AtomicBool::new(false);

/// A MIN(..) of integer times, read leniently: an integer (or integral REAL
/// within `i64`) as is, NULL as `None`, anything else ignored (`None`) with
/// a warning the first time.
fn lenient_time(v: ValueRef<'_>, what: &'static str) -> Option<i64> {
    if matches!(v, ValueRef::Null) {
        return None;
    }
    let t = exact_int(v);
    if t.is_none() && !WARNED_ODD_TIME.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            what,
            held = %describe(v),
            "a honker deadline is not an integer unix time; ignored (logged once)"
        );
    }
    t
}

/// The earliest future `expires_at` among the live rows of `queue`: when a
/// [`sweep_expired`](crate::sweep_expired) next has work. Like
/// [`next_claim_at`], never fails because of what a row holds (values that
/// are not integers are ignored).
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
    Ok(stmt
        .query_row([queue], |r| {
            Ok(lenient_time(r.get_ref(0)?, "next_expiry_at"))
        })
        .optional()?
        .flatten())
}

/// The earliest future `expires_at` among all live rows, of every queue:
/// when a [`sweep_expired`](crate::sweep_expired) of every queue next has
/// work. One seek on the expiry index, however many queues and rows there
/// are (the per-queue [`next_expiry_at`] walks that index past other
/// queues' rows).
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// assert_eq!(honker_core::next_expiry_any(&conn).unwrap(), None);
/// let opts = honker_core::EnqueueOptions::default().expires(Duration::from_secs(60));
/// honker_core::enqueue(&conn, "q", "1", &opts).unwrap();
/// assert!(honker_core::next_expiry_any(&conn).unwrap().is_some());
/// ```
pub fn next_expiry_any(conn: &Connection) -> Result<Option<i64>> {
    let mut stmt = conn.prepare_cached(sql::NEXT_EXPIRY_ANY)?;
    Ok(stmt
        .query_row([], |r| Ok(lenient_time(r.get_ref(0)?, "next_expiry_any")))
        .optional()?
        .flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One row as a foreign writer may leave it: (state is pending,
    /// priority, run_at, claim_expires_at, expires_at), times relative to
    /// now, `None` for NULL, a string for a time stored as TEXT.
    type Row = (bool, Priority, Time, Option<Time>, Option<i64>);

    #[derive(Debug, Clone)]
    enum Time {
        At(i64),
        Text,
    }

    #[derive(Debug, Clone)]
    enum Priority {
        Int(i64),
        Real(f64),
        Text,
    }

    fn time() -> impl Strategy<Value = Time> {
        prop_oneof![8 => (-50i64..50).prop_map(Time::At), 1 => Just(Time::Text)]
    }

    fn priority() -> impl Strategy<Value = Priority> {
        prop_oneof![
            8 => (0i64..3).prop_map(Priority::Int),
            1 => (0i64..3).prop_map(|p| Priority::Real(p as f64)),
            1 => Just(Priority::Text),
        ]
    }

    fn row() -> impl Strategy<Value = Row> {
        (
            any::<bool>(),
            priority(),
            time(),
            proptest::option::of(time()),
            proptest::option::of(-20i64..20),
        )
    }

    fn sql_time(t: &Time, now: i64) -> rusqlite::types::Value {
        match t {
            Time::At(d) => (now + d).into(),
            Time::Text => "soon".to_string().into(),
        }
    }

    fn insert(c: &Connection, queue: &str, r: &Row, now: i64) {
        let (pending, p, run_at, claim, expires) = r;
        let p: rusqlite::types::Value = match p {
            Priority::Int(p) => (*p).into(),
            Priority::Real(p) => (*p).into(),
            Priority::Text => "high".to_string().into(),
        };
        c.execute(
            "INSERT INTO _honker_live
               (queue, payload, state, priority, run_at, claim_expires_at, expires_at)
             VALUES (?1, '{}', ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![
                queue,
                if *pending { "pending" } else { "processing" },
                p,
                sql_time(run_at, now),
                claim.as_ref().map(|t| sql_time(t, now)),
                expires.map(|e| now + e),
            ],
        )
        .unwrap();
    }

    /// The ids `sql` claims from queue "q", rolled back afterwards.
    fn claimed_by(c: &Connection, sql: &str, n: i64) -> Vec<i64> {
        c.execute_batch("BEGIN").unwrap();
        let mut ids: Vec<i64> = c
            .prepare(sql)
            .unwrap()
            .query_map(rusqlite::params!["q", "w", n, 60], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        c.execute_batch("ROLLBACK").unwrap();
        ids.sort_unstable();
        ids
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whenever the check says the queue's rows share one priority,
        /// the claim through the pending and processing indexes takes
        /// exactly the rows the claim through the claim index takes, for
        /// every limit; and the check says so only when it is true.
        #[test]
        fn the_one_priority_claim_takes_what_the_claim_takes(
            rows in proptest::collection::vec(row(), 0..40),
            others in proptest::collection::vec(row(), 0..10),
            uniform in any::<bool>(),
        ) {
            let c = crate::open_in_memory().unwrap();
            let now = crate::now(&c).unwrap();
            for r in &rows {
                let mut r = r.clone();
                if uniform {
                    r.1 = Priority::Int(1);
                }
                insert(&c, "q", &r, now);
            }
            for r in &others {
                insert(&c, "other", r, now);
            }
            let one: bool = c
                .query_row(sql::ONE_PRIORITY, ["q"], |r| r.get(0))
                .unwrap();
            let distinct: i64 = c
                .query_row(
                    "SELECT COUNT(DISTINCT priority) FROM _honker_live
                     WHERE queue = 'q' AND state IN ('pending', 'processing')",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            prop_assert_eq!(one, distinct <= 1);
            if uniform {
                prop_assert!(one);
            }
            if one {
                for n in [1, 2, 5, 100] {
                    // Both claims within one second: a row due (or
                    // expiring) at the next second would otherwise be
                    // taken by the second claim only.
                    let (one, all) = loop {
                        let at = crate::now(&c).unwrap();
                        let one = claimed_by(&c, sql::CLAIM_ONE_PRIORITY, n);
                        let all = claimed_by(&c, sql::CLAIM, n);
                        if crate::now(&c).unwrap() == at {
                            break (one, all);
                        }
                    };
                    prop_assert_eq!(one, all, "limit {}", n);
                }
            }
        }
    }

    #[test]
    fn a_row_that_cannot_move_to_dead_stays_claimed_and_the_queue_goes_on() {
        let c = crate::open_in_memory().unwrap();
        let one = crate::EnqueueOptions::default().max_attempts(1);
        let stuck = crate::enqueue(&c, "q", "1", &one).unwrap();
        let fine = crate::enqueue(&c, "q", "2", &crate::EnqueueOptions::default()).unwrap();
        let vis = Duration::from_secs(60);
        // Claimed once, its claim lapsed: exhausted, the claim moves it.
        claim_batch(&c, "q", "w", 1, vis).unwrap();
        c.execute(
            "UPDATE _honker_live SET claim_expires_at = unixepoch() - 1 WHERE id = ?1",
            [stuck],
        )
        .unwrap();
        c.execute_batch(
            "CREATE TEMP TRIGGER keep BEFORE INSERT ON _honker_dead
             BEGIN SELECT RAISE(ABORT, 'kept'); END",
        )
        .unwrap();
        let got = claim_batch(&c, "q", "w", 2, vis).unwrap();
        let ids: Vec<i64> = got.iter().map(|j| j.id).collect();
        assert_eq!(ids, [fine], "the other row is claimed");
        assert!(crate::get_job(&c, stuck).unwrap().is_some(), "still live");
        // Inside a caller's transaction that SQLite rolls back: an error.
        c.execute(
            "UPDATE _honker_live SET claim_expires_at = unixepoch() - 1 WHERE id = ?1",
            [stuck],
        )
        .unwrap();
        c.execute_batch(
            "DROP TRIGGER keep;
             CREATE TEMP TRIGGER gone BEFORE INSERT ON _honker_dead
             BEGIN SELECT RAISE(ROLLBACK, 'gone'); END;
             BEGIN IMMEDIATE",
        )
        .unwrap();
        assert!(claim_batch(&c, "q", "w", 2, vis).is_err());
        assert!(c.is_autocommit(), "the caller's transaction is gone");
    }
}
