//! Enqueueing jobs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

use crate::{sql, Error, Result};

/// Claims allowed when an enqueue does not say (the format's default).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

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
}

impl EnqueueOptions {
    /// Due `d` after the enqueue.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }
    /// Due at `t`.
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
}

/// Whole milliseconds, rounded up.
pub(crate) fn ceil_millis(d: Duration) -> i64 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 > 0);
    i64::try_from(ms).unwrap_or(i64::MAX / 4)
}

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> i64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(s).unwrap_or(i64::MAX / 4)
}

/// Insert one job; returns its id. `payload` must be JSON text.
///
/// A single `INSERT`, so it commits or rolls back with the caller's
/// transaction when `conn` is inside one.
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
    if queue.is_empty() {
        return Err(Error::InvalidOption("queue name must not be empty".into()));
    }
    let max_attempts = opts.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if max_attempts == 0 {
        return Err(Error::InvalidOption(
            "max_attempts must be at least 1".into(),
        ));
    }
    let run_at = match opts.run_at {
        None => None,
        Some(t) => Some(
            t.duration_since(UNIX_EPOCH)
                .map(ceil_secs)
                .map_err(|_| Error::InvalidOption("run_at is before 1970".into()))?,
        ),
    };
    let mut stmt = conn.prepare_cached(sql::ENQUEUE)?;
    stmt.execute(rusqlite::params![
        queue,
        payload,
        run_at,
        opts.delay.map(ceil_millis),
        opts.priority,
        max_attempts,
        opts.expires.map(ceil_secs),
    ])?;
    Ok(conn.last_insert_rowid())
}
