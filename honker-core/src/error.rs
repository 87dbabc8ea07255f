//! The errors honker-core returns.

use std::path::PathBuf;

/// Everything that can go wrong in honker-core.
///
/// Errors about a database file name the path and the cause, so a user
/// reading a log line knows what to fix.
///
/// ```
/// let err = honker_core::open("/definitely/not/here/app.db").unwrap_err();
/// assert!(matches!(err, honker_core::Error::MissingDirectory { .. }));
/// assert!(err.to_string().contains("/definitely/not/here"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The directory that should hold the database file does not exist.
    #[error("cannot open database {path}: directory {dir} does not exist")]
    MissingDirectory {
        /// The database path asked for.
        path: PathBuf,
        /// The missing directory.
        dir: PathBuf,
    },
    /// The file exists but is not a SQLite database.
    #[error("cannot open database {path}: the file is not a SQLite database")]
    NotADatabase {
        /// The offending path.
        path: PathBuf,
    },
    /// The file or its directory cannot be written (honker needs to write
    /// the database, its `-wal` and its `-shm` file).
    #[error("cannot open database {path} for writing: {cause}")]
    ReadOnly {
        /// The offending path.
        path: PathBuf,
        /// What SQLite or the file system said.
        cause: String,
    },
    /// No file at the path: the operator tools never create one.
    #[error("no database at {path}: the file does not exist")]
    NoSuchFile {
        /// The path asked for.
        path: PathBuf,
    },
    /// A SQLite database without the honker format's tables.
    #[error(
        "{path} is a SQLite database without the honker tables (no _honker_live): \
         not a honker file, or never opened by a honker binding"
    )]
    NotHonker {
        /// The offending path.
        path: PathBuf,
    },
    /// Any other failure opening or preparing the database file.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The offending path.
        path: PathBuf,
        /// The underlying SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// Another connection held the write lock longer than the busy timeout.
    #[error(
        "database is busy: another connection held the write lock past the busy timeout ({0})"
    )]
    Busy(#[source] rusqlite::Error),
    /// The database or its file system is full.
    #[error("database or disk is full ({0})")]
    DiskFull(#[source] rusqlite::Error),
    /// A payload that is not JSON text.
    #[error("payload is not valid JSON: {0}")]
    InvalidPayload(#[source] serde_json::Error),
    /// An option out of range (for example `max_attempts = 0`, or a
    /// `delay` longer than [`MAX_DURATION`](crate::MAX_DURATION)). The
    /// message names the option and its limit.
    #[error("invalid option: {0}")]
    InvalidOption(String),
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
    /// A queue name that [`validate_queue_name`](crate::validate_queue_name)
    /// rejects: queue names are metric labels and must be 1 to 128 bytes of
    /// ASCII letters, digits and `_ - . : /`.
    ///
    /// ```
    /// let e = honker_core::validate_queue_name("a b").unwrap_err();
    /// assert!(matches!(e, honker_core::Error::InvalidQueueName { .. }));
    /// assert!(e.to_string().contains("queue name"));
    /// ```
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidQueueName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A thread could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Any other SQLite error.
    #[error("sqlite error: {0}")]
    Sqlite(#[source] rusqlite::Error),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy(e),
            Some(ErrorCode::DiskFull) => Error::DiskFull(e),
            _ => Error::Sqlite(e),
        }
    }
}

impl Error {
    /// True for errors that go away by themselves (lock contention), so a
    /// caller may try again later.
    ///
    /// ```
    /// let e = honker_core::Error::InvalidOption("max_attempts must be at least 1".into());
    /// assert!(!e.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Busy(_))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn sqlite(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_errors_are_sorted_by_what_a_caller_can_do() {
        for code in [ffi::SQLITE_BUSY, ffi::SQLITE_LOCKED] {
            let e = Error::from(sqlite(code));
            assert!(matches!(e, Error::Busy(_)), "{e:?}");
            assert!(e.is_transient());
        }
        let full = Error::from(sqlite(ffi::SQLITE_FULL));
        assert!(matches!(full, Error::DiskFull(_)), "{full:?}");
        assert!(!full.is_transient());
        let other = Error::from(sqlite(ffi::SQLITE_CONSTRAINT));
        assert!(matches!(other, Error::Sqlite(_)), "{other:?}");
        assert!(!other.is_transient());
    }
}
