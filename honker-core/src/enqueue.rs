//! Enqueueing jobs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

use crate::durations::{ceil_millis, ceil_secs, MAX_DURATION};
use crate::unique::{blocking_job, hold, Enqueued, Unique};
use crate::{atomically, sql, Error, Result};

/// Claims allowed when an enqueue does not say (the format's default).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// The latest `run_at` an enqueue accepts: 9999-12-31T23:59:59Z.
const MAX_RUN_AT: i64 = 253_402_300_799;

/// The longest queue name, in bytes.
const MAX_QUEUE_NAME: usize = 128;

/// Check a queue name: 1 to 128 bytes, only ASCII letters, digits and
/// `_ - . : /`.
///
/// Queue names are metric labels and log fields: names that differ only by
/// characters a label sanitiser drops (a backslash, a space) would merge
/// into one series. [`enqueue`] and [`enqueue_json`] reject other names
/// with [`Error::InvalidQueueName`].
///
/// ```
/// use honker_core::{validate_queue_name, Error};
/// assert!(validate_queue_name("emails").is_ok());
/// assert!(validate_queue_name("billing.v2:invoices/eu-west_1").is_ok());
/// for bad in ["", "a b", "a\\b", "é", &"x".repeat(129)] {
///     assert!(matches!(validate_queue_name(bad), Err(Error::InvalidQueueName { .. })));
/// }
/// ```
pub fn validate_queue_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.len() > MAX_QUEUE_NAME {
        "must be at most 128 bytes"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b))
    {
        "may hold only ASCII letters, digits and _ - . : /"
    } else {
        return Ok(());
    };
    Err(Error::InvalidQueueName {
        name: name.to_string(),
        reason,
    })
}

/// How to enqueue one job. All fields are optional.
///
/// Times on disk are whole seconds; a delayed job is due at the first whole
/// second at or after now + delay, so it never becomes due early. When both `delay` and `run_at` are set, `delay` wins
/// (as in every honker binding).
///
/// ```
/// use std::time::Duration;
/// let opts = honker_core::EnqueueOptions::default()
///     .delay(Duration::from_secs(60))
///     .priority(10)
///     .expires(Duration::from_secs(3600))
///     .max_attempts(5);
/// assert_eq!(opts.priority, 10);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnqueueOptions {
    /// Due this long after the enqueue.
    pub delay: Option<Duration>,
    /// Due at this time.
    pub run_at: Option<SystemTime>,
    /// Higher is claimed first. Default 0.
    pub priority: i64,
    /// Never claimed after this long; swept to `_honker_dead` as `expired`.
    pub expires: Option<Duration>,
    /// Claims allowed before the job goes to `_honker_dead`. Default 3.
    pub max_attempts: Option<u32>,
    /// Insert nothing while a job with this key waits (see [`Unique`]).
    pub unique: Option<Unique>,
}

impl EnqueueOptions {
    /// Due `d` after the enqueue. Whole seconds: due at the first whole
    /// second at or after now + `d` (never early; a 300 ms delay is due
    /// within a second).
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
    /// Due at `t`, rounded up to the whole second (the format keeps no
    /// finer time).
    pub fn run_at(mut self, t: SystemTime) -> Self {
        self.run_at = Some(t);
        self
    }
    /// Higher is claimed first.
    pub fn priority(mut self, p: i64) -> Self {
        self.priority = p;
        self
    }
    /// Expires `d` after the enqueue.
    pub fn expires(mut self, d: Duration) -> Self {
        self.expires = Some(d);
        self
    }
    /// Claims allowed (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Unique: no second job while one with this key waits.
    pub fn unique(mut self, u: Unique) -> Self {
        self.unique = Some(u);
        self
    }
}

/// Reject a duration option longer than [`MAX_DURATION`].
fn check_duration(option: &str, d: Option<Duration>) -> Result<()> {
    match d {
        Some(d) if d > MAX_DURATION => Err(Error::InvalidOption(format!(
            "{option} must be at most MAX_DURATION (200 years, {} s); got {d:?}",
            MAX_DURATION.as_secs()
        ))),
        _ => Ok(()),
    }
}

/// Insert one job; returns its id. `payload` must be JSON text.
///
/// A single `INSERT`, so it commits or rolls back with the caller's
/// transaction when `conn` is inside one.
///
/// Rejected, writing nothing: a queue name that [`validate_queue_name`]
/// refuses ([`Error::InvalidQueueName`]); `max_attempts = 0`, a `delay` or
/// `expires` longer than [`MAX_DURATION`], a `run_at` before 1970 or after
/// 9999-12-31T23:59:59Z ([`Error::InvalidOption`]).
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let opts = honker_core::EnqueueOptions::default().priority(5);
/// let id = honker_core::enqueue(&conn, "emails", r#"{"to":"a@b.c"}"#, &opts).unwrap();
/// assert_eq!(honker_core::get_job(&conn, id).unwrap().unwrap().priority, 5);
///
/// let bad = honker_core::enqueue(&conn, "emails", "{not json", &opts);
/// assert!(matches!(bad, Err(honker_core::Error::InvalidPayload(_))));
/// ```
pub fn enqueue(
    conn: &Connection,
    queue: &str,
    payload: &str,
    opts: &EnqueueOptions,
) -> Result<i64> {
    serde_json::from_str::<serde::de::IgnoredAny>(payload).map_err(Error::InvalidPayload)?;
    enqueue_json(conn, queue, payload, opts)
}

/// [`enqueue`] for a payload the caller has just produced with
/// `serde_json` and so knows to be JSON: skips the validation parse.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let payload = serde_json::to_string(&vec![1, 2, 3]).unwrap();
/// let id = honker_core::enqueue_json(&conn, "q", &payload, &Default::default()).unwrap();
/// assert!(id > 0);
/// ```
pub fn enqueue_json(
    conn: &Connection,
    queue: &str,
    payload: &str,
    opts: &EnqueueOptions,
) -> Result<i64> {
    Ok(enqueue_outcome(conn, queue, payload, opts)?.id)
}

/// [`enqueue_json`], telling whether the job was inserted or an equal
/// [`unique`](EnqueueOptions::unique) job was found (whose id it gives).
/// The check and the insert are one atomic step: under any number of
/// processes a key never gets a second row.
pub fn enqueue_outcome(
    conn: &Connection,
    queue: &str,
    payload: &str,
    opts: &EnqueueOptions,
) -> Result<Enqueued> {
    let p = prepare_enqueue(queue, opts)?;
    let insert = |c: &Connection| -> Result<i64> {
        let mut stmt = c.prepare_cached(sql::ENQUEUE)?;
        stmt.execute(rusqlite::params![
            queue,
            payload,
            p.run_at,
            p.delay_ms,
            p.priority,
            p.max_attempts,
            p.expires_s,
        ])?;
        Ok(c.last_insert_rowid())
    };
    let Some(unique) = &opts.unique else {
        return Ok(Enqueued {
            id: insert(conn)?,
            duplicate: false,
        });
    };
    atomically(conn, |c| {
        if let Some(id) = blocking_job(c, queue, &unique.key, None)? {
            return Ok(Enqueued {
                id,
                duplicate: true,
            });
        }
        let id = insert(c)?;
        hold(c, queue, unique, id)?;
        Ok(Enqueued {
            id,
            duplicate: false,
        })
    })
}

/// An enqueue's options, checked, in the units every store writes: what
/// [`prepare_enqueue`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreparedEnqueue {
    /// `run_at` as unix seconds, rounded up (`None`: now).
    pub run_at: Option<i64>,
    /// The delay in whole milliseconds, rounded up; wins over `run_at`.
    pub delay_ms: Option<i64>,
    /// The priority.
    pub priority: i64,
    /// Attempts allowed, at least 1.
    pub max_attempts: u32,
    /// Seconds from now until the job expires, rounded up.
    pub expires_s: Option<i64>,
}

/// Check `queue` and `opts` as every store does before it writes a job
/// (the queue's name, attempts, durations, the time to run, the unique
/// key), and put them in the units the store writes. For a store of
/// another database than SQLite: the checks are the format's, wherever
/// the rows live.
///
/// ```
/// use std::time::Duration;
/// use honker_core::{prepare_enqueue, EnqueueOptions, Error};
/// let p = prepare_enqueue("q", &EnqueueOptions::default().delay(Duration::from_micros(1500))).unwrap();
/// assert_eq!((p.delay_ms, p.max_attempts), (Some(2), 3));
/// let bad = EnqueueOptions::default().max_attempts(0);
/// assert!(matches!(prepare_enqueue("q", &bad), Err(Error::InvalidOption(_))));
/// ```
pub fn prepare_enqueue(queue: &str, opts: &EnqueueOptions) -> Result<PreparedEnqueue> {
    validate_queue_name(queue)?;
    let max_attempts = opts.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if max_attempts == 0 {
        return Err(Error::InvalidOption(
            "max_attempts must be at least 1".into(),
        ));
    }
    check_duration("delay", opts.delay)?;
    check_duration("expires", opts.expires)?;
    let run_at = match opts.run_at {
        None => None,
        Some(t) => {
            let secs = t
                .duration_since(UNIX_EPOCH)
                .map(ceil_secs)
                .map_err(|_| Error::InvalidOption("run_at is before 1970".into()))?;
            if secs > MAX_RUN_AT {
                return Err(Error::InvalidOption(format!(
                    "run_at must be at most {MAX_RUN_AT} (9999-12-31T23:59:59Z); got {secs}"
                )));
            }
            Some(secs)
        }
    };
    if let Some(u) = &opts.unique {
        crate::unique::check_unique(u)?;
    }
    Ok(PreparedEnqueue {
        run_at,
        delay_ms: opts.delay.map(ceil_millis),
        priority: opts.priority,
        max_attempts,
        expires_s: opts.expires.map(ceil_secs),
    })
}
