//! A store's failure, in words every store shares: what kind of failure
//! it is (the runtime and callers decide by that), with the store's own
//! error kept whole as its cause.

use std::fmt;

/// What kind of failure a store reported, the same words for every store
/// (modelled on [`std::io::ErrorKind`]).
///
/// ```
/// use honker_actors::store::StoreErrorKind;
/// assert!(StoreErrorKind::Busy.is_transient());
/// assert!(!StoreErrorKind::DiskFull.is_transient());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Another connection held what this one needed (a write lock) past
    /// the wait allowed; trying again later may succeed.
    Busy,
    /// The store's disk or quota is full.
    DiskFull,
    /// The store cannot be written: a read-only file, directory or
    /// handle.
    ReadOnly,
    /// No store where one was asked for: a missing file or directory
    /// (operator tools never create one).
    NotFound,
    /// Something is there, but not a store of the honker format (not a
    /// database, or a database without its tables).
    NotAStore,
    /// The store could not be opened for another reason.
    Open,
    /// Any other failure of the store.
    Other,
}

impl StoreErrorKind {
    /// True for failures that go away by themselves (contention).
    pub fn is_transient(self) -> bool {
        matches!(self, StoreErrorKind::Busy)
    }
}

/// A store's failure: its [`kind`](StoreError::kind), and the store's own
/// error (for SQLite, a [`honker_core::Error`]) as
/// [`get_ref`](StoreError::get_ref). It reads as the store's own message,
/// which names the file or server and the cause.
///
/// ```
/// use honker_actors::store::{StoreError, StoreErrorKind};
/// let cause = std::io::Error::other("the server went away");
/// let e = StoreError::new(StoreErrorKind::Other, cause);
/// assert_eq!(e.kind(), StoreErrorKind::Other);
/// assert_eq!(e.to_string(), "the server went away");
/// assert!(e.get_ref().downcast_ref::<std::io::Error>().is_some());
/// ```
pub struct StoreError {
    kind: StoreErrorKind,
    cause: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// A failure of `kind`, caused by the store's own `cause`.
    pub fn new(
        kind: StoreErrorKind,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> StoreError {
        StoreError {
            kind,
            cause: cause.into(),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The store's own error, to downcast for a store's details.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let missing = dir.path().join("no/such/dir/app.db");
    /// let err = honker_actors::Honker::open(&missing).unwrap_err();
    /// let honker_actors::Error::Store(e) = &err else { panic!("{err:?}") };
    /// assert!(matches!(
    ///     e.get_ref().downcast_ref::<honker_actors::core::Error>(),
    ///     Some(honker_actors::core::Error::MissingDirectory { .. })
    /// ));
    /// ```
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.cause
    }

    /// The store's own error, taken out.
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync> {
        self.cause
    }

    /// True for failures that go away by themselves (contention).
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("kind", &self.kind)
            .field("cause", &self.cause)
            .finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.cause, f)
    }
}

/// Like [`std::io::Error`]: it reads as its cause, and its source is the
/// cause's source, so a report prints each message once.
impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn it_reads_as_its_cause_and_reports_each_message_once() {
        let e = StoreError::new(
            StoreErrorKind::DiskFull,
            Outer(std::io::Error::other("inner")),
        );
        assert_eq!(e.to_string(), "outer");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("inner"));
        assert_eq!(e.kind(), StoreErrorKind::DiskFull);
        assert!(!e.is_transient());
        assert!(format!("{e:?}").contains("DiskFull"));
        assert!(e.into_inner().downcast::<Outer>().is_ok());
    }

    #[test]
    fn only_contention_is_transient() {
        use StoreErrorKind::*;
        for kind in [DiskFull, ReadOnly, NotFound, NotAStore, Open, Other] {
            assert!(!kind.is_transient(), "{kind:?}");
            assert!(!StoreError::new(kind, "x").is_transient());
        }
        assert!(StoreError::new(Busy, "x").is_transient());
    }
}
