//! Errors of the runtime.

use std::sync::Arc;
use std::time::Duration;

use crate::store::{StoreError, StoreErrorKind};

/// Everything the runtime's API can return.
///
/// ```
/// let e = honker_actors::Error::ResultTimeout { job_id: 7, waited: std::time::Duration::from_secs(1) };
/// assert!(e.to_string().contains("job 7"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed: a busy or full database, a file that is missing,
    /// read-only or not a honker file, ... [`StoreError::kind`] says which
    /// (the same words for every store) and reads as the store's own
    /// message; [`StoreError::get_ref`] is the store's own error.
    ///
    /// ```
    /// use honker_actors::store::StoreErrorKind;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let err = honker_actors::Honker::open(dir.path().join("no/dir/app.db")).unwrap_err();
    /// assert!(matches!(&err, honker_actors::Error::Store(e) if e.kind() == StoreErrorKind::NotFound));
    /// assert!(err.to_string().contains("does not exist"));
    /// ```
    #[error(transparent)]
    Store(StoreError),
    /// An option out of range (for example `max_attempts = 0`, or a delay
    /// longer than [`MAX_DURATION`](crate::core::MAX_DURATION)). The
    /// message names the option and its limit.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A queue name that is not 1 to 128 bytes of ASCII letters, digits and
    /// `_ - . : /` (queue names are metric labels).
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidQueueName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A raw payload that is not JSON text.
    #[error("payload is not valid JSON: {0}")]
    InvalidPayload(#[source] serde_json::Error),
    /// Putting dead job `job_id` back would give its uniqueness key a
    /// second job: `holder` holds it now. Nothing was changed.
    #[error("job {job_id} cannot be requeued: its unique key {key:?} is held by job {holder}")]
    UniqueConflict {
        /// The dead job.
        job_id: i64,
        /// The job that holds the key.
        holder: i64,
        /// The key.
        key: String,
    },
    /// The group transaction this write was part of could not begin or
    /// commit; the write did not happen.
    #[error("the write was not committed: {0}")]
    NotCommitted(Arc<StoreError>),
    /// The database file was deleted or replaced while this process had it
    /// open; writes are refused, since they would go to a file no one else
    /// sees and be lost when the process exits.
    #[error("database file {path} was {what} while in use; writes are refused (reopen it)")]
    FileGone {
        /// The path.
        path: std::path::PathBuf,
        /// `deleted` or `replaced`.
        what: &'static str,
    },
    /// SQLite rolled back the whole group transaction this write ran in
    /// (another write in it hit a full disk or an I/O error): nothing of
    /// this write is on disk. Trying again is safe.
    #[error("the write was rolled back with its group: {0}")]
    RolledBack(String),
    /// The write request (a closure passed to
    /// [`Honker::transaction`](crate::Honker::transaction), or an
    /// operation given an input it could not handle) panicked; it was
    /// rolled back, and the handle keeps working.
    #[error("the write panicked and was rolled back: {0}")]
    Panicked(String),
    /// A shutdown could not record every finished job's outcome (another
    /// connection held the write lock, the disk was full); those jobs will
    /// run again once their claims lapse.
    #[error("shutdown could not record {unwritten} job outcome(s); those jobs will run again")]
    ShutdownIncomplete {
        /// Outcomes not written.
        unwritten: usize,
    },
    /// A honker call that waits for the writer, made from inside a
    /// [`Honker::transaction`](crate::Honker::transaction) closure (which
    /// runs on the writer): it would wait for itself. Use the closure's
    /// connection (`honker_core::enqueue(tx, ..)`) instead.
    #[error("a honker call from inside a transaction closure would wait for itself; use the closure's connection")]
    NestedWrite,
    /// The writer thread is gone (the `Honker` was shut down or it panicked).
    #[error("the honker writer thread has stopped")]
    WriterStopped,
    /// A job argument or result that does not serialize to JSON.
    #[error("cannot serialize to JSON: {0}")]
    Serialize(#[source] serde_json::Error),
    /// A job payload that does not decode into the requested type.
    #[error("payload does not decode: {0}")]
    Payload(#[source] serde_json::Error),
    /// A saved result that does not decode into the requested type.
    #[error("result of job {job_id} does not decode: {source}")]
    ResultDecode {
        /// The job.
        job_id: i64,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// No result was saved for the job within the wait.
    #[error("no result for job {job_id} after {waited:?}")]
    ResultTimeout {
        /// The job.
        job_id: i64,
        /// How long we waited.
        waited: Duration,
    },
    /// The job is in `_honker_dead`: it will not produce a result.
    #[error("job {job_id} is dead: {}", last_error.as_deref().unwrap_or("no error recorded"))]
    JobDead {
        /// The job.
        job_id: i64,
        /// Why it died.
        last_error: Option<String>,
    },
    /// The job was cancelled: it will not produce a result.
    #[error("job {job_id} was cancelled")]
    JobCancelled {
        /// The job.
        job_id: i64,
    },
    /// The job is neither queued, running nor dead, and saved no result:
    /// it finished without one (its output is `()`), its result expired,
    /// or there never was such a job.
    #[error("job {job_id} has no result: it finished without one, or does not exist")]
    NoResult {
        /// The job.
        job_id: i64,
    },
    /// [`testing::assert_enqueued`](crate::testing::assert_enqueued) found
    /// no matching job.
    #[error("no {job} job matching the assertion was enqueued; waiting: {waiting}")]
    NotEnqueued {
        /// The job's name.
        job: &'static str,
        /// The arguments of the jobs of that type that were waiting.
        waiting: String,
    },
    /// [`testing::enqueued`](crate::testing::enqueued) found a waiting
    /// row of the job whose payload would go to dead, not to the handler.
    #[error("a waiting {job} job's payload does not decode: {reason}")]
    PayloadDecode {
        /// The job's name.
        job: &'static str,
        /// Why, as the dead row would say.
        reason: String,
    },
    /// [`testing::wait_until_drained`](crate::testing::wait_until_drained)
    /// gave up.
    #[error("queue {queue} not drained after {waited:?}: {left:?}")]
    NotDrained {
        /// The queue.
        queue: String,
        /// How long it waited.
        waited: Duration,
        /// What was left.
        left: Box<honker_core::QueueStats>,
    },
    /// The store this handle runs on has no such operation (a door only
    /// SQLite has, on another store).
    #[error("not supported by this store: {0}")]
    Unsupported(&'static str),
    /// A closure passed to [`Honker::transaction`](crate::Honker::transaction) failed; it was rolled back.
    #[error("transaction closure failed: {0}")]
    Transaction(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A bad configuration (no jobs registered, a zero concurrency, ...).
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// An actor of the pool could not be started or reached.
    #[error("worker pool actor: {0}")]
    Actor(String),
    /// A thread could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process's signal handler could not be installed.
    #[error("cannot listen for the shutdown signal: {0}")]
    Signal(#[source] std::io::Error),
}

/// A configuration a pool or a handle refuses, with what was wrong.
///
/// ```
/// use honker_actors::{ConfigError, Error};
/// let e = Error::from(ConfigError::NoJobs);
/// assert!(matches!(e, Error::Config(ConfigError::NoJobs)));
/// assert_eq!(e.to_string(), "invalid configuration: register at least one job");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `start()` with no job registered.
    #[error("register at least one job")]
    NoJobs,
    /// A concurrency outside 1..=[`MAX_CONCURRENCY`](crate::MAX_CONCURRENCY).
    #[error("concurrency must be from 1 to {max}, got {got}")]
    Concurrency {
        /// What was asked.
        got: usize,
        /// The most allowed.
        max: usize,
    },
    /// A visibility timeout under a second (claims are whole seconds).
    #[error("visibility timeout must be at least 1 s (claims are whole seconds), got {0:?}")]
    VisibilityTooShort(Duration),
    /// A visibility timeout over [`honker_core::MAX_DURATION`].
    #[error("visibility timeout must be at most {max:?}, got {got:?}")]
    VisibilityTooLong {
        /// What was asked.
        got: Duration,
        /// The most allowed.
        max: Duration,
    },
    /// Two registered jobs have one name (a pool routes rows by name).
    #[error(
        "two jobs are registered under the name {name:?} (queues {first_queue:?} and \
         {second_queue:?}); give one a different `name`"
    )]
    DuplicateJobName {
        /// The name.
        name: &'static str,
        /// The queue of the job registered first.
        first_queue: &'static str,
        /// The queue of the job registered second.
        second_queue: &'static str,
    },
    /// One job registered twice with a pool.
    #[error("job {name:?} is registered twice; register it once")]
    RegisteredTwice {
        /// The job's name.
        name: &'static str,
    },
    /// Two jobs of one queue are marked raw: a raw payload names neither.
    #[error("jobs {first} and {second} of queue {queue:?} are both marked raw; at most one may take a queue's raw payloads")]
    SeveralRawJobs {
        /// The queue.
        queue: &'static str,
        /// One job marked raw.
        first: &'static str,
        /// Another.
        second: &'static str,
    },
    /// A job with an empty name.
    #[error("a job of queue {queue:?} has an empty name")]
    EmptyJobName {
        /// Its queue.
        queue: &'static str,
    },
    /// A task call with an empty task name.
    #[error("a task name must not be empty")]
    EmptyTaskName,
    /// A job whose results would expire as they are saved.
    #[error("job {0} has a result TTL of zero; use None to keep results until swept")]
    ZeroResultTtl(&'static str),
    /// A per-queue limit for a queue no registered job uses.
    #[error("queue_concurrency for {0:?}, but no registered job uses that queue")]
    UnknownQueue(String),
    /// A per-queue limit of zero.
    #[error("queue_concurrency for {0:?} must be at least 1")]
    ZeroQueueLimit(String),
    /// A job whose options allow no attempt.
    #[error("job {0} has max_attempts 0")]
    ZeroMaxAttempts(&'static str),
    /// A job whose queue name is not allowed (see
    /// [`honker_core::validate_queue_name`]).
    #[error("job {job}: queue name {queue:?} {reason}")]
    InvalidQueueName {
        /// The job.
        job: &'static str,
        /// Its queue.
        queue: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A scheduler lock TTL under 3 s (times are whole seconds) or over
    /// 200 years.
    #[error("the scheduler lock's ttl must be from 3 s to 200 years, got {0:?}")]
    SchedulerLockTtl(Duration),
    /// A zero interval for the commit watcher.
    #[error("watch interval must be positive")]
    ZeroWatchInterval,
}

impl Error {
    /// True for errors that go away by themselves (lock contention).
    ///
    /// ```
    /// assert!(!honker_actors::Error::WriterStopped.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store(e) => e.is_transient(),
            Error::NotCommitted(e) => e.is_transient(),
            Error::RolledBack(_) => true,
            _ => false,
        }
    }
}

/// The format crate's errors in the runtime's words: its refusals of
/// input are the runtime's own variants; its database failures are a
/// [`StoreError`] of the kind they are, with the format's error as cause.
impl From<honker_core::Error> for Error {
    fn from(e: honker_core::Error) -> Self {
        use honker_core::Error as Core;
        match e {
            Core::InvalidOption(why) => Error::InvalidOption(why),
            Core::InvalidQueueName { name, reason } => Error::InvalidQueueName { name, reason },
            Core::InvalidPayload(e) => Error::InvalidPayload(e),
            Core::UniqueConflict {
                job_id,
                holder,
                key,
            } => Error::UniqueConflict {
                job_id,
                holder,
                key,
            },
            Core::Spawn { what, source } => Error::Spawn { what, source },
            e => Error::Store(store_error(e)),
        }
    }
}

/// A failure of the SQLite store's database, as a [`StoreError`] of the
/// kind it is.
pub(crate) fn store_error(e: honker_core::Error) -> StoreError {
    use honker_core::Error as Core;
    let kind = match e {
        Core::MissingDirectory { .. } | Core::NoSuchFile { .. } => StoreErrorKind::NotFound,
        Core::NotADatabase { .. } | Core::NotHonker { .. } => StoreErrorKind::NotAStore,
        Core::ReadOnly { .. } => StoreErrorKind::ReadOnly,
        Core::Open { .. } => StoreErrorKind::Open,
        Core::Busy(_) => StoreErrorKind::Busy,
        Core::DiskFull(_) => StoreErrorKind::DiskFull,
        _ => StoreErrorKind::Other,
    };
    StoreError::new(kind, e)
}

/// `Result` with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use honker_core::rusqlite::{self, ffi};
    use honker_core::Error as Core;
    use std::path::PathBuf;

    fn sqlite(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    fn kind_of(e: Core) -> StoreErrorKind {
        match Error::from(e) {
            Error::Store(s) => {
                assert!(s.get_ref().downcast_ref::<Core>().is_some(), "{s:?}");
                s.kind()
            }
            other => panic!("not a store error: {other:?}"),
        }
    }

    #[test]
    fn the_formats_failures_are_store_errors_of_their_kind() {
        let path = PathBuf::from("/x/app.db");
        let kinds = [
            (
                Core::MissingDirectory {
                    path: path.clone(),
                    dir: "/x".into(),
                },
                StoreErrorKind::NotFound,
            ),
            (
                Core::NoSuchFile { path: path.clone() },
                StoreErrorKind::NotFound,
            ),
            (
                Core::NotADatabase { path: path.clone() },
                StoreErrorKind::NotAStore,
            ),
            (
                Core::NotHonker { path: path.clone() },
                StoreErrorKind::NotAStore,
            ),
            (
                Core::ReadOnly {
                    path: path.clone(),
                    cause: "read-only file system".into(),
                },
                StoreErrorKind::ReadOnly,
            ),
            (
                Core::Open {
                    path: path.clone(),
                    source: sqlite(ffi::SQLITE_CANTOPEN),
                },
                StoreErrorKind::Open,
            ),
            (Core::from(sqlite(ffi::SQLITE_BUSY)), StoreErrorKind::Busy),
            (
                Core::from(sqlite(ffi::SQLITE_FULL)),
                StoreErrorKind::DiskFull,
            ),
            (
                Core::from(sqlite(ffi::SQLITE_CONSTRAINT)),
                StoreErrorKind::Other,
            ),
        ];
        for (core, kind) in kinds {
            let said = core.to_string();
            let e = Error::from(core);
            assert_eq!(e.to_string(), said, "reads as the store's own message");
            assert_eq!(e.is_transient(), kind == StoreErrorKind::Busy, "{e:?}");
            let Error::Store(s) = e else { panic!("{e:?}") };
            assert_eq!(s.kind(), kind, "{said}");
        }
        assert_eq!(
            kind_of(Core::from(sqlite(ffi::SQLITE_LOCKED))),
            StoreErrorKind::Busy
        );
    }

    #[test]
    fn refusals_of_input_are_the_runtimes_own_variants() {
        assert!(matches!(
            Error::from(Core::InvalidOption("max_attempts must be at least 1".into())),
            Error::InvalidOption(w) if w == "max_attempts must be at least 1"
        ));
        assert!(matches!(
            Error::from(Core::InvalidQueueName { name: "a b".into(), reason: "spaces" }),
            Error::InvalidQueueName { name, reason: "spaces" } if name == "a b"
        ));
        let bad = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert!(matches!(
            Error::from(Core::InvalidPayload(bad)),
            Error::InvalidPayload(_)
        ));
        let e = Error::from(Core::UniqueConflict {
            job_id: 4,
            holder: 9,
            key: "k".into(),
        });
        assert!(
            matches!(&e, Error::UniqueConflict { job_id: 4, holder: 9, key } if key == "k"),
            "{e:?}"
        );
        assert!(!e.is_transient());
        let spawn = Error::from(Core::Spawn {
            what: "writer",
            source: std::io::Error::other("no threads"),
        });
        assert!(
            matches!(spawn, Error::Spawn { what: "writer", .. }),
            "{spawn:?}"
        );
    }

    #[test]
    fn a_group_not_committed_is_transient_when_its_cause_is() {
        let busy = Error::NotCommitted(Arc::new(store_error(Core::from(sqlite(ffi::SQLITE_BUSY)))));
        assert!(busy.is_transient());
        let full = Error::NotCommitted(Arc::new(store_error(Core::from(sqlite(ffi::SQLITE_FULL)))));
        assert!(!full.is_transient());
        assert!(Error::RolledBack("disk full".into()).is_transient());
    }
}
