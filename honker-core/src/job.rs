//! The rows honker-core reads and returns.

use rusqlite::types::{FromSql, FromSqlResult, ValueRef};
use rusqlite::Row;

/// A payload column as JSON text, or why it is not: foreign writers can
/// store a BLOB, bytes that are not UTF-8, or a bare number.
pub(crate) fn payload_text(v: ValueRef<'_>) -> Result<String, String> {
    match v {
        ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
            .map_err(|e| format!("payload is not valid UTF-8 text ({e})")),
        ValueRef::Blob(b) => Err(format!(
            "payload is a BLOB of {} bytes, not JSON text",
            b.len()
        )),
        ValueRef::Integer(i) => Ok(i.to_string()),
        ValueRef::Real(f) => Ok(f.to_string()),
        ValueRef::Null => Err("payload is NULL".to_string()),
    }
}

/// What a value holds, for a message about a column that should hold an
/// integer: `REAL 1e30`, `TEXT 'soon'`, `BLOB of 3 bytes`, `NULL`.
pub(crate) fn describe(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".to_string(),
        ValueRef::Integer(i) => format!("INTEGER {i}"),
        ValueRef::Real(f) => format!("REAL {f:?}"),
        ValueRef::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            let mut shown: String = text.chars().take(40).collect();
            if shown.len() < text.len() {
                shown.push_str("...");
            }
            format!("TEXT {shown:?}")
        }
        ValueRef::Blob(b) => format!("BLOB of {} bytes", b.len()),
    }
}

/// A REAL that is a whole number within `i64`, as that integer.
pub(crate) fn integral_real(f: f64) -> Option<i64> {
    // i64 spans [-2^63, 2^63); both bounds are exact in f64.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f) {
        // Exact: integral and in range.
        Some(f as i64)
    } else {
        None
    }
}

/// An integer column read strictly: an INTEGER as is, a REAL that is
/// integral and within `i64` converted; anything else is `None`.
pub(crate) fn exact_int(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(f) => integral_real(f),
        _ => None,
    }
}

/// An integer column read leniently, for reads that must not fail because
/// of one odd row written by a foreign program: a REAL becomes a saturating
/// `i64` (NaN 0), an integer-looking TEXT its value, anything else 0. Every
/// value that was not an exact integer is logged (`tracing::warn`).
pub(crate) fn lenient_int(v: ValueRef<'_>, column: &'static str, id: i64) -> i64 {
    if let Some(i) = exact_int(v) {
        return i;
    }
    let coerced = match v {
        // `as` saturates at the bounds and maps NaN to 0: the documented coercion.
        ValueRef::Real(f) => f as i64,
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0),
        _ => 0,
    };
    tracing::warn!(
        job_id = id,
        column,
        held = %describe(v),
        read_as = coerced,
        "a honker row holds a value that is not an integer; read leniently"
    );
    coerced
}

/// [`lenient_int`] for a nullable column: NULL is `None`.
pub(crate) fn lenient_opt_int(v: ValueRef<'_>, column: &'static str, id: i64) -> Option<i64> {
    match v {
        ValueRef::Null => None,
        v => Some(lenient_int(v, column, id)),
    }
}

/// A text column read leniently: bytes that are not UTF-8 are replaced,
/// a number is rendered, NULL is empty.
pub(crate) fn text_lossy(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Null => String::new(),
    }
}

/// [`text_lossy`] for a nullable column.
pub(crate) fn opt_text_lossy(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        v => Some(text_lossy(v)),
    }
}

/// Reads the integer columns of a claimed row strictly, remembering the
/// first one that does not hold an integer.
struct StrictRow<'a, 'r> {
    row: &'a Row<'r>,
    bad: Option<String>,
}

impl StrictRow<'_, '_> {
    /// A NOT NULL integer column; 0 (and the row marked unusable) when it
    /// holds anything but an integer.
    fn int(&mut self, idx: usize, column: &str) -> rusqlite::Result<i64> {
        let v = self.row.get_ref(idx)?;
        Ok(self.check(v, column).unwrap_or(0))
    }

    /// A nullable integer column: NULL is `None`.
    fn opt_int(&mut self, idx: usize, column: &str) -> rusqlite::Result<Option<i64>> {
        let v = self.row.get_ref(idx)?;
        if matches!(v, ValueRef::Null) {
            return Ok(None);
        }
        Ok(Some(self.check(v, column).unwrap_or(0)))
    }

    fn check(&mut self, v: ValueRef<'_>, column: &str) -> Option<i64> {
        let exact = exact_int(v);
        if exact.is_none() && self.bad.is_none() {
            self.bad = Some(format!(
                "column {column} holds {}, not an integer",
                describe(v)
            ));
        }
        exact
    }
}

/// A payload for display: the text, or a lossy rendering of what is there.
fn payload_lossy(v: ValueRef<'_>) -> String {
    payload_text(v).unwrap_or_else(|why| match v {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        _ => format!("<{why}>"),
    })
}

/// The fencing token of one claim: the job id and the `attempts` value the
/// claim returned. Ack, retry, fail, heartbeat and release match both (and
/// the worker id), so a stale completion from an earlier claim of the same
/// row never touches a later claim.
///
/// ```
/// let lease = honker_core::Lease { id: 7, attempts: 1 };
/// assert_eq!(lease.id, 7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job id.
    pub id: i64,
    /// The `attempts` value the claim set.
    pub attempts: i64,
}

/// A job this worker just claimed.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "q", r#"{"n":1}"#, &Default::default()).unwrap();
/// let jobs = honker_core::claim_batch(&conn, "q", "w1", 10, std::time::Duration::from_secs(30)).unwrap();
/// assert_eq!(jobs[0].payload, r#"{"n":1}"#);
/// assert_eq!(jobs[0].attempts, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedJob {
    /// Row id in `_honker_live`.
    pub id: i64,
    /// Queue name.
    pub queue: String,
    /// JSON text.
    pub payload: String,
    /// Higher is claimed first.
    pub priority: i64,
    /// When the job became due (unix seconds).
    pub run_at: i64,
    /// The worker that holds the claim.
    pub worker_id: String,
    /// When the claim lapses unless extended (unix seconds).
    pub claim_expires_at: i64,
    /// Claims made so far, this one included.
    pub attempts: i64,
    /// Claims allowed before the job goes to `_honker_dead`.
    pub max_attempts: i64,
    /// Enqueue time (unix seconds).
    pub created_at: i64,
    /// When the job stops being claimable, if ever (unix seconds).
    pub expires_at: Option<i64>,
}

impl ClaimedJob {
    /// The fencing token for completing this claim.
    ///
    /// ```
    /// # let conn = honker_core::open_in_memory().unwrap();
    /// # honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
    /// # let job = honker_core::claim_batch(&conn, "q", "w", 1, std::time::Duration::from_secs(9)).unwrap().remove(0);
    /// assert!(honker_core::ack(&conn, "w", job.lease()).unwrap());
    /// ```
    pub fn lease(&self) -> Lease {
        Lease {
            id: self.id,
            attempts: self.attempts,
        }
    }

    /// The claimed row, and why it is unusable if it is: a payload that is
    /// not text, or an integer column holding something else (a REAL that
    /// is not a whole number within `i64`, TEXT, a BLOB). Never fails
    /// because of what a row holds, so one odd row never fails its queue's
    /// claim.
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<(Self, Option<String>)> {
        let (payload, payload_bad) = match payload_text(r.get_ref(2)?) {
            Ok(p) => (p, None),
            Err(why) => (String::new(), Some(why)),
        };
        let mut strict = StrictRow {
            row: r,
            bad: payload_bad,
        };
        let job = ClaimedJob {
            id: strict.int(0, "id")?,
            queue: text_lossy(r.get_ref(1)?),
            payload,
            priority: strict.int(3, "priority")?,
            run_at: strict.int(4, "run_at")?,
            worker_id: text_lossy(r.get_ref(5)?),
            claim_expires_at: strict.int(6, "claim_expires_at")?,
            attempts: strict.int(7, "attempts")?,
            max_attempts: strict.int(8, "max_attempts")?,
            created_at: strict.int(9, "created_at")?,
            expires_at: strict.opt_int(10, "expires_at")?,
        };
        // The claim counted this run: a count out of the range a run number
        // has (a foreign writer's negative or huge value) would give the
        // handler a wrong attempt and its completions a wrong fencing token
        // (the runtime's context carries the attempt as a `u32`).
        let mut bad = strict.bad;
        if bad.is_none() && !(1..=i64::from(u32::MAX)).contains(&job.attempts) {
            bad = Some(format!(
                "column attempts holds {} after the claim, not a run number",
                job.attempts
            ));
        }
        Ok((job, bad))
    }
}

/// The state column of a live row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for its `run_at`, or due.
    Pending,
    /// Claimed by a worker.
    Processing,
    /// A value some other writer put there.
    Other(String),
}

impl JobState {
    /// The state a `state` column value names.
    fn from_text(s: &str) -> Self {
        match s {
            "pending" => JobState::Pending,
            "processing" => JobState::Processing,
            other => JobState::Other(other.to_string()),
        }
    }

    /// Any `state` value, read leniently (bytes that are not UTF-8 are
    /// replaced; a non-text value is rendered).
    pub(crate) fn from_value(v: ValueRef<'_>) -> Self {
        match v {
            ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => JobState::from_text(s),
                Err(_) => JobState::Other(text_lossy(v)),
            },
            other => JobState::Other(text_lossy(other)),
        }
    }
}

impl FromSql for JobState {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(JobState::from_text(v.as_str()?))
    }
}

/// A row of `_honker_live`, as [`get_job`](crate::get_job) reads it.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "[1,2]", &Default::default()).unwrap();
/// let job = honker_core::get_job(&conn, id).unwrap().unwrap();
/// assert_eq!(job.state, honker_core::JobState::Pending);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRow {
    /// Row id.
    pub id: i64,
    /// Queue name.
    pub queue: String,
    /// JSON text.
    pub payload: String,
    /// Pending or processing.
    pub state: JobState,
    /// Higher is claimed first.
    pub priority: i64,
    /// Due time (unix seconds).
    pub run_at: i64,
    /// Claim holder, while processing.
    pub worker_id: Option<String>,
    /// Claim deadline, while processing.
    pub claim_expires_at: Option<i64>,
    /// Claims made so far.
    pub attempts: i64,
    /// Claims allowed.
    pub max_attempts: i64,
    /// Enqueue time.
    pub created_at: i64,
    /// Expiry time, if any.
    pub expires_at: Option<i64>,
}

impl JobRow {
    /// A live row, read leniently (see [`get_job`](crate::get_job)): never
    /// fails because of what the row holds.
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        let id = lenient_int(r.get_ref(0)?, "id", 0);
        let int = |idx: usize, column: &'static str| -> rusqlite::Result<i64> {
            Ok(lenient_int(r.get_ref(idx)?, column, id))
        };
        let opt_int = |idx: usize, column: &'static str| -> rusqlite::Result<Option<i64>> {
            Ok(lenient_opt_int(r.get_ref(idx)?, column, id))
        };
        Ok(JobRow {
            id,
            queue: text_lossy(r.get_ref(1)?),
            payload: payload_lossy(r.get_ref(2)?),
            state: JobState::from_value(r.get_ref(3)?),
            priority: int(4, "priority")?,
            run_at: int(5, "run_at")?,
            worker_id: opt_text_lossy(r.get_ref(6)?),
            claim_expires_at: opt_int(7, "claim_expires_at")?,
            attempts: int(8, "attempts")?,
            max_attempts: int(9, "max_attempts")?,
            created_at: int(10, "created_at")?,
            expires_at: opt_int(11, "expires_at")?,
        })
    }
}

/// A row of `_honker_dead`.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// assert!(honker_core::list_dead(&conn, "q", 10, 0).unwrap().is_empty());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadJob {
    /// The live row's id, kept.
    pub id: i64,
    /// Queue name.
    pub queue: String,
    /// JSON text, as enqueued (a payload that is not text is shown lossily).
    pub payload: String,
    /// Priority it had.
    pub priority: i64,
    /// Last due time.
    pub run_at: i64,
    /// Claims made.
    pub attempts: i64,
    /// Claims allowed.
    pub max_attempts: i64,
    /// Why it died.
    pub last_error: Option<String>,
    /// Enqueue time.
    pub created_at: i64,
    /// Death time.
    pub died_at: i64,
}

impl DeadJob {
    /// A dead row, read leniently (see [`get_dead`](crate::get_dead)):
    /// never fails because of what the row holds.
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        let id = lenient_int(r.get_ref(0)?, "id", 0);
        let int = |idx: usize, column: &'static str| -> rusqlite::Result<i64> {
            Ok(lenient_int(r.get_ref(idx)?, column, id))
        };
        Ok(DeadJob {
            id,
            queue: text_lossy(r.get_ref(1)?),
            payload: payload_lossy(r.get_ref(2)?),
            priority: int(3, "priority")?,
            run_at: int(4, "run_at")?,
            attempts: int(5, "attempts")?,
            max_attempts: int(6, "max_attempts")?,
            last_error: opt_text_lossy(r.get_ref(7)?),
            created_at: int(8, "created_at")?,
            died_at: int(9, "died_at")?,
        })
    }
}

/// Counts for one queue.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let s = honker_core::queue_stats(&conn, "q").unwrap();
/// assert_eq!((s.pending_due, s.scheduled, s.processing, s.dead), (1, 0, 0, 0));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Pending, due now, not expired.
    pub pending_due: i64,
    /// Pending with a future `run_at`.
    pub scheduled: i64,
    /// Claimed.
    pub processing: i64,
    /// In `_honker_dead`.
    pub dead: i64,
    /// Seconds since the oldest due pending job fell due (how far behind
    /// the queue is); `None` when none is due.
    pub oldest_pending_age: Option<i64>,
    /// Paused for every worker (see [`pause_queue`](crate::pause_queue)).
    pub paused: bool,
    /// When the soonest scheduled (future, not expired) job falls due,
    /// unix seconds; `None` when none is scheduled.
    pub next_due_at: Option<i64>,
}

/// Where a job is now, for a caller waiting on its outcome (see
/// [`job_fate`](crate::job_fate)).
///
/// ```
/// use honker_core::{job_fate, JobFate, JobState};
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// assert_eq!(job_fate(&conn, id).unwrap(), JobFate::Live(JobState::Pending));
/// honker_core::cancel(&conn, id).unwrap();
/// assert_eq!(
///     job_fate(&conn, id).unwrap(),
///     JobFate::Dead { last_error: Some(honker_core::CANCELLED.to_string()) }
/// );
/// assert_eq!(job_fate(&conn, id + 1).unwrap(), JobFate::Gone);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobFate {
    /// Still in `_honker_live`, in this state: not finished yet.
    Live(JobState),
    /// In `_honker_dead`: failed, exhausted, expired or cancelled
    /// ([`CANCELLED`](crate::CANCELLED)); `last_error` says which.
    Dead {
        /// Why it died.
        last_error: Option<String>,
    },
    /// In neither table: it was acked (completed), or never existed. The
    /// format keeps no record of acked jobs; a saved result
    /// ([`get_result`](crate::get_result)) tells the two apart.
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_int_takes_integers_and_integral_reals_within_i64_only() {
        assert_eq!(exact_int(ValueRef::Integer(-3)), Some(-3));
        assert_eq!(exact_int(ValueRef::Real(5.0)), Some(5));
        assert_eq!(exact_int(ValueRef::Real(-0.0)), Some(0));
        assert_eq!(
            exact_int(ValueRef::Real(-9_223_372_036_854_775_808.0)),
            Some(i64::MIN)
        );
        for odd in [
            ValueRef::Real(9_223_372_036_854_775_808.0), // 2^63: one past i64::MAX
            ValueRef::Real(1e30),
            ValueRef::Real(2.5),
            ValueRef::Real(f64::INFINITY),
            ValueRef::Real(f64::NAN),
            ValueRef::Text(b"12"),
            ValueRef::Blob(b"\x01"),
            ValueRef::Null,
        ] {
            assert_eq!(exact_int(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn lenient_int_coerces_and_never_fails() {
        assert_eq!(lenient_int(ValueRef::Real(1e30), "c", 1), i64::MAX);
        assert_eq!(lenient_int(ValueRef::Real(-1e30), "c", 1), i64::MIN);
        assert_eq!(lenient_int(ValueRef::Real(2.7), "c", 1), 2);
        assert_eq!(lenient_int(ValueRef::Real(f64::NAN), "c", 1), 0);
        assert_eq!(lenient_int(ValueRef::Text(b" 42 "), "c", 1), 42);
        assert_eq!(lenient_int(ValueRef::Text(b"soon"), "c", 1), 0);
        assert_eq!(lenient_int(ValueRef::Text(b"\xff"), "c", 1), 0);
        assert_eq!(lenient_int(ValueRef::Blob(b"1"), "c", 1), 0);
        assert_eq!(lenient_int(ValueRef::Null, "c", 1), 0);
        assert_eq!(lenient_opt_int(ValueRef::Null, "c", 1), None);
    }

    #[test]
    fn describe_names_the_type_and_a_short_value() {
        assert_eq!(describe(ValueRef::Real(1e30)), "REAL 1e30");
        assert_eq!(describe(ValueRef::Text(b"soon")), "TEXT \"soon\"");
        assert_eq!(describe(ValueRef::Blob(b"ab")), "BLOB of 2 bytes");
        let long = "x".repeat(100);
        let shown = describe(ValueRef::Text(long.as_bytes()));
        assert!(shown.len() < 60 && shown.ends_with("...\""), "{shown}");
    }

    #[test]
    fn a_payload_that_is_not_utf8_text_is_shown_lossily_not_as_a_type() {
        let c = crate::open_in_memory().unwrap();
        let id = crate::enqueue(&c, "q", "1", &Default::default()).unwrap();
        c.execute(
            "UPDATE _honker_live SET payload = x'6162ff' WHERE id = ?1",
            [id],
        )
        .unwrap();
        assert_eq!(
            crate::get_job(&c, id).unwrap().unwrap().payload,
            "ab\u{fffd}"
        );
        c.execute(
            "UPDATE _honker_live SET payload = CAST(x'6364ff' AS TEXT) WHERE id = ?1",
            [id],
        )
        .unwrap();
        assert_eq!(
            crate::get_job(&c, id).unwrap().unwrap().payload,
            "cd\u{fffd}"
        );
    }
}
