//! Unique jobs: an enqueue with a uniqueness key inserts no second job
//! while a matching one is waiting (or running), or within a period after
//! the first enqueue; it answers with the existing job instead.
//!
//! Keys live in `_honker_unique` (a table of this crate's; other bindings
//! ignore it and never consult it). The check and the insert run in one
//! write transaction, and the key is the table's primary key: under any
//! number of processes there is never a second row.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{sql, Error, Result};

/// While a job blocks a duplicate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UniqueWhile {
    /// While it is pending (due or scheduled): once it starts running, an
    /// equal job may be enqueued (River's users' "pending only").
    Pending,
    /// While it is pending or running. The default.
    #[default]
    Active,
}

/// A uniqueness rule for one enqueue.
///
/// ```
/// use std::time::Duration;
/// use honker_core::{enqueue_outcome, EnqueueOptions, Unique};
/// let conn = honker_core::open_in_memory().unwrap();
/// let opts = EnqueueOptions::default().unique(Unique::key("order-42"));
/// let first = enqueue_outcome(&conn, "emails", "1", &opts).unwrap();
/// let again = enqueue_outcome(&conn, "emails", "2", &opts).unwrap();
/// assert!(!first.duplicate && again.duplicate);
/// assert_eq!(first.id, again.id);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unique {
    /// The key: equal keys on one queue are the same job.
    pub key: String,
    /// While a matching job blocks a duplicate.
    pub while_: UniqueWhile,
    /// Also block duplicates this long after the first enqueue, whatever
    /// became of it.
    pub period: Option<Duration>,
}

impl Unique {
    /// Unique by an explicit key.
    pub fn key(key: impl Into<String>) -> Unique {
        Unique {
            key: key.into(),
            while_: UniqueWhile::Active,
            period: None,
        }
    }

    /// Unique by task `name` and its arguments: the key hashes their
    /// canonical JSON (object keys sorted), so equal arguments written in
    /// any key order are one job.
    ///
    /// ```
    /// use honker_core::Unique;
    /// let a = Unique::by_args("t", &serde_json::json!({"a": 1, "b": 2})).unwrap();
    /// let b = Unique::by_args("t", &serde_json::json!({"b": 2, "a": 1})).unwrap();
    /// assert_eq!(a.key, b.key);
    /// assert_ne!(a.key, Unique::by_args("other", &serde_json::json!({"a": 1, "b": 2})).unwrap().key);
    /// ```
    pub fn by_args<A: Serialize + ?Sized>(name: &str, args: &A) -> Result<Unique> {
        // serde_json's map is sorted (no `preserve_order`): canonical.
        let value = serde_json::to_value(args).map_err(Error::InvalidPayload)?;
        let canonical = serde_json::to_string(&serde_json::json!([name, value]))
            .map_err(Error::InvalidPayload)?;
        let digest = Sha256::digest(canonical.as_bytes());
        let mut key = String::with_capacity(7 + 64);
        key.push_str("sha256:");
        for b in digest {
            key.push_str(&format!("{b:02x}"));
        }
        Ok(Unique::key(key))
    }

    /// Block duplicates only while the job is pending.
    pub fn while_pending(mut self) -> Unique {
        self.while_ = UniqueWhile::Pending;
        self
    }

    /// Also block duplicates for `d` after the first enqueue.
    pub fn period(mut self, d: Duration) -> Unique {
        self.period = Some(d);
        self
    }
}

/// What an enqueue did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enqueued {
    /// The new job's id, or the existing job's for a duplicate.
    pub id: i64,
    /// A matching job existed: nothing was inserted.
    pub duplicate: bool,
}

/// The job that blocks `key` on `queue` now, other than `except`, if any.
pub(crate) fn blocking_job(
    conn: &Connection,
    queue: &str,
    key: &str,
    except: Option<i64>,
) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(sql::UNIQUE_BLOCKING)?
        .query_row(rusqlite::params![queue, key, except], |r| r.get(0))
        .optional()?)
}

/// Fail with [`Error::UniqueConflict`] when job `id` holds a key another
/// job blocks now: putting it back (a requeue) would make two.
pub(crate) fn check_requeue(conn: &Connection, id: i64) -> Result<()> {
    if !conn.prepare_cached(sql::IS_DEAD)?.exists([id])? {
        return Ok(());
    }
    let held: Option<(String, String)> = conn
        .prepare_cached(sql::UNIQUE_OF_JOB)?
        .query_row([id], |r| {
            Ok((
                crate::job::text_lossy(r.get_ref(0)?),
                crate::job::text_lossy(r.get_ref(1)?),
            ))
        })
        .optional()?;
    let Some((queue, key)) = held else {
        return Ok(());
    };
    match blocking_job(conn, &queue, &key, Some(id))? {
        Some(holder) => Err(Error::UniqueConflict {
            job_id: id,
            holder,
            key,
        }),
        None => Ok(()),
    }
}

/// Record that job `id` holds `unique` on `queue`.
pub(crate) fn hold(conn: &Connection, queue: &str, unique: &Unique, id: i64) -> Result<()> {
    let while_ = match unique.while_ {
        UniqueWhile::Pending => "pending",
        UniqueWhile::Active => "active",
    };
    conn.prepare_cached(sql::UNIQUE_HOLD)?
        .execute(rusqlite::params![
            id,
            queue,
            unique.key,
            while_,
            unique.period.map(crate::durations::ceil_secs)
        ])?;
    Ok(())
}

/// Check a rule before anything is written.
///
/// ```
/// assert!(honker_core::check_unique(&honker_core::Unique::key("k")).is_ok());
/// assert!(honker_core::check_unique(&honker_core::Unique::key("")).is_err());
/// ```
pub fn check_unique(unique: &Unique) -> Result<()> {
    if unique.key.is_empty() {
        return Err(Error::InvalidOption(
            "a unique key must not be empty".into(),
        ));
    }
    if unique.key.len() > 1024 {
        return Err(Error::InvalidOption(
            "a unique key must be at most 1024 bytes (Unique::by_args hashes long ones)".into(),
        ));
    }
    if let Some(p) = unique.period
        && p > crate::MAX_DURATION
    {
        return Err(Error::InvalidOption(format!(
            "unique period must be at most 200 years; got {p:?}"
        )));
    }
    Ok(())
}

/// Forget keys that block nothing any more and never will again (their
/// period passed, and their job is done or purged: a dead job keeps its
/// key, which a requeue takes back); returns how many.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// assert_eq!(honker_core::sweep_unique(&conn).unwrap(), 0);
/// ```
pub fn sweep_unique(conn: &Connection) -> Result<usize> {
    Ok(conn.prepare_cached(sql::UNIQUE_SWEEP)?.execute([])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ack, claim_batch, enqueue_outcome, open_in_memory, EnqueueOptions};

    const VIS: Duration = Duration::from_secs(60);

    fn put(conn: &Connection, u: &Unique) -> Enqueued {
        let opts = EnqueueOptions::default().unique(u.clone());
        enqueue_outcome(conn, "q", "1", &opts).unwrap()
    }

    #[test]
    fn active_blocks_while_pending_or_running_then_frees() {
        let conn = open_in_memory().unwrap();
        let u = Unique::key("k");
        let first = put(&conn, &u);
        assert!(put(&conn, &u).duplicate);
        let jobs = claim_batch(&conn, "q", "w", 1, VIS).unwrap();
        assert!(put(&conn, &u).duplicate, "running still blocks");
        ack(&conn, "w", jobs[0].lease()).unwrap();
        let next = put(&conn, &u);
        assert!(!next.duplicate && next.id != first.id, "done: a new job");
        // Other queues are other jobs.
        let opts = EnqueueOptions::default().unique(u);
        assert!(
            !enqueue_outcome(&conn, "other", "1", &opts)
                .unwrap()
                .duplicate
        );
    }

    #[test]
    fn pending_only_frees_once_the_job_starts() {
        let conn = open_in_memory().unwrap();
        let u = Unique::key("k").while_pending();
        put(&conn, &u);
        assert!(put(&conn, &u).duplicate);
        claim_batch(&conn, "q", "w", 1, VIS).unwrap();
        assert!(!put(&conn, &u).duplicate, "running: a new one may wait");
        assert!(put(&conn, &u).duplicate);
    }

    #[test]
    fn a_period_blocks_even_after_the_job_is_gone() {
        let conn = open_in_memory().unwrap();
        let u = Unique::key("k").period(Duration::from_secs(3600));
        let first = put(&conn, &u);
        let jobs = claim_batch(&conn, "q", "w", 1, VIS).unwrap();
        ack(&conn, "w", jobs[0].lease()).unwrap();
        let again = put(&conn, &u);
        assert!(again.duplicate);
        assert_eq!(again.id, first.id);
        assert_eq!(sweep_unique(&conn).unwrap(), 0, "its period still runs");
        conn.execute("UPDATE _honker_unique SET until = unixepoch() - 1", [])
            .unwrap();
        assert_eq!(sweep_unique(&conn).unwrap(), 1);
        assert!(!put(&conn, &u).duplicate);
    }

    #[test]
    fn a_requeue_takes_its_key_back_and_never_makes_a_second_holder() {
        let conn = open_in_memory().unwrap();
        let u = Unique::key("order-42");
        let a = put(&conn, &u);
        crate::cancel(&conn, a.id).unwrap();
        let b = put(&conn, &u);
        assert!(!b.duplicate, "A is dead: B may wait");
        // A back while B waits would be two: refused, A stays dead.
        let e = crate::requeue_dead(&conn, a.id).unwrap_err();
        assert!(
            matches!(e, Error::UniqueConflict { holder, .. } if holder == b.id),
            "{e}"
        );
        assert!(crate::get_dead(&conn, a.id).unwrap().is_some());
        // The sweep keeps a dead job's key; with B done, A comes back and
        // holds its key again.
        let jobs = claim_batch(&conn, "q", "w", 1, VIS).unwrap();
        ack(&conn, "w", jobs[0].lease()).unwrap();
        sweep_unique(&conn).unwrap();
        assert!(crate::requeue_dead(&conn, a.id).unwrap());
        let again = put(&conn, &u);
        assert_eq!((again.id, again.duplicate), (a.id, true));
    }

    /// Move job `id`'s expiry to `by` seconds from now (negative: past).
    fn expire_in(conn: &Connection, id: i64, by: i64) {
        conn.execute(
            "UPDATE _honker_live SET expires_at = unixepoch() + ?2 WHERE id = ?1",
            [id, by],
        )
        .unwrap();
    }

    #[test]
    fn a_job_that_expired_holds_no_key() {
        let conn = open_in_memory().unwrap();
        let u = Unique::key("k");
        let first = put(&conn, &u);
        // Expiring one second from now: it can still run, so it blocks.
        expire_in(&conn, first.id, 1);
        let again = put(&conn, &u);
        assert_eq!((again.id, again.duplicate), (first.id, true));
        // Expired this very second (the sweep takes `expires_at <= now`,
        // the claim never takes it): it can never run, so a new job is
        // inserted, and the sweep later moves only the expired one.
        expire_in(&conn, first.id, 0);
        let second = put(&conn, &u);
        assert!(!second.duplicate && second.id != first.id);
        assert_eq!(crate::sweep_expired(&conn, None).unwrap(), 1);
        assert!(crate::get_dead(&conn, first.id).unwrap().is_some());
        assert!(crate::get_job(&conn, second.id).unwrap().is_some());
        assert_eq!(put(&conn, &u).id, second.id, "the new job holds the key");

        // Running past its expiry, its claim valid: it may still finish,
        // so it blocks; once the claim lapsed it is the sweep's.
        let jobs = claim_batch(&conn, "q", "w", 1, VIS).unwrap();
        assert_eq!(jobs[0].id, second.id);
        expire_in(&conn, second.id, -5);
        assert_eq!(put(&conn, &u).id, second.id, "a valid claim still runs");
        conn.execute(
            "UPDATE _honker_live SET claim_expires_at = unixepoch() - 1 WHERE id = ?1",
            [second.id],
        )
        .unwrap();
        let third = put(&conn, &u);
        assert!(
            !third.duplicate && third.id != second.id,
            "lapsed and expired"
        );
        // The same for a key held only while pending: an expired pending
        // job blocks nothing.
        let p = Unique::key("p").while_pending();
        let a = put(&conn, &p);
        expire_in(&conn, a.id, 0);
        assert!(!put(&conn, &p).duplicate);
    }

    #[test]
    fn cancelled_or_dead_jobs_block_nothing() {
        let conn = open_in_memory().unwrap();
        let u = Unique::key("k");
        let first = put(&conn, &u);
        crate::cancel(&conn, first.id).unwrap();
        assert!(!put(&conn, &u).duplicate);
    }

    #[test]
    fn bad_rules_are_refused_writing_nothing() {
        let conn = open_in_memory().unwrap();
        for u in [
            Unique::key(""),
            Unique::key("x".repeat(1025)),
            Unique::key("k").period(Duration::MAX),
        ] {
            let opts = EnqueueOptions::default().unique(u);
            assert!(matches!(
                enqueue_outcome(&conn, "q", "1", &opts),
                Err(Error::InvalidOption(_))
            ));
        }
        assert_eq!(crate::queue_stats(&conn, "q").unwrap().pending_due, 0);
    }

    #[test]
    fn the_longest_key_and_period_allowed_are_accepted() {
        let conn = open_in_memory().unwrap();
        assert!(!put(&conn, &Unique::key("k".repeat(1024))).duplicate);
        let longest = Unique::key("p").period(crate::MAX_DURATION);
        assert!(!put(&conn, &longest).duplicate);
        let too_long = Unique::key("p2").period(crate::MAX_DURATION + Duration::from_secs(1));
        let opts = EnqueueOptions::default().unique(too_long);
        assert!(matches!(
            enqueue_outcome(&conn, "q", "1", &opts),
            Err(Error::InvalidOption(_))
        ));
    }
}
