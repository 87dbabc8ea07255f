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

    /// The claimed row, and why its payload is unusable if it is.
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<(Self, Option<String>)> {
        let (payload, bad) = match payload_text(r.get_ref(2)?) {
            Ok(p) => (p, None),
            Err(why) => (String::new(), Some(why)),
        };
        let job = ClaimedJob {
            id: r.get(0)?,
            queue: r.get(1)?,
            payload,
            priority: r.get(3)?,
            run_at: r.get(4)?,
            worker_id: r.get(5)?,
            claim_expires_at: r.get(6)?,
            attempts: r.get(7)?,
            max_attempts: r.get(8)?,
            created_at: r.get(9)?,
            expires_at: r.get(10)?,
        };
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

impl FromSql for JobState {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(match v.as_str()? {
            "pending" => JobState::Pending,
            "processing" => JobState::Processing,
            other => JobState::Other(other.to_string()),
        })
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
pub struct Job {
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

impl Job {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Job {
            id: r.get(0)?,
            queue: r.get(1)?,
            payload: payload_lossy(r.get_ref(2)?),
            state: r.get(3)?,
            priority: r.get(4)?,
            run_at: r.get(5)?,
            worker_id: r.get(6)?,
            claim_expires_at: r.get(7)?,
            attempts: r.get(8)?,
            max_attempts: r.get(9)?,
            created_at: r.get(10)?,
            expires_at: r.get(11)?,
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
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(DeadJob {
            id: r.get(0)?,
            queue: r.get(1)?,
            payload: payload_lossy(r.get_ref(2)?),
            priority: r.get(3)?,
            run_at: r.get(4)?,
            attempts: r.get(5)?,
            max_attempts: r.get(6)?,
            last_error: r.get(7)?,
            created_at: r.get(8)?,
            died_at: r.get(9)?,
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
}
