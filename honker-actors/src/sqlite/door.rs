//! What only the SQLite store has: a transaction closure on the writer
//! thread ([`Honker::transaction`]) and enqueueing on the application's own
//! `rusqlite` connection ([`EnqueueTx`] for `rusqlite::Connection`).

use honker_core::rusqlite::Connection;
use honker_core::Enqueued;

use super::SqliteStore;
use crate::store::{BatchJob, EnqueueTx};
use crate::{Error, Honker, Result};

/// The application's own connection: the job commits with it (or with the
/// transaction open on it).
///
/// ```
/// use honker_actors::store::{BatchJob, EnqueueTx};
/// let conn = honker_core::open_in_memory().unwrap();
/// let job = BatchJob { queue: "emails".into(), payload: "{}".into(), opts: Default::default() };
/// let done = (&conn).enqueue_then(Ok(job), |d| d).unwrap();
/// assert!(done.id > 0 && !done.duplicate);
/// ```
impl EnqueueTx for &Connection {
    type Answer<T: Send + 'static> = Result<T>;

    fn enqueue_then<T: Send + 'static>(
        self,
        job: Result<BatchJob>,
        then: impl FnOnce(Enqueued) -> T + Send + 'static,
    ) -> Result<T> {
        let job = job?;
        let done = honker_core::enqueue_outcome(self, &job.queue, &job.payload, &job.opts)?;
        Ok(then(done))
    }
}

/// A transaction of the application's own connection: the job commits or
/// rolls back with the application's writes.
///
/// ```
/// use honker_actors::store::{BatchJob, EnqueueTx};
/// let mut conn = honker_core::open_in_memory().unwrap();
/// let tx = conn.transaction().unwrap();
/// let job = BatchJob { queue: "emails".into(), payload: "{}".into(), opts: Default::default() };
/// (&tx).enqueue_then(Ok(job), |d| d.id).unwrap();
/// drop(tx); // rolled back
/// assert_eq!(honker_core::stats(&conn).unwrap().len(), 0);
/// ```
impl EnqueueTx for &honker_core::rusqlite::Transaction<'_> {
    type Answer<T: Send + 'static> = Result<T>;

    fn enqueue_then<T: Send + 'static>(
        self,
        job: Result<BatchJob>,
        then: impl FnOnce(Enqueued) -> T + Send + 'static,
    ) -> Result<T> {
        (&**self).enqueue_then(job, then)
    }
}

/// A savepoint of the application's own connection.
impl EnqueueTx for &honker_core::rusqlite::Savepoint<'_> {
    type Answer<T: Send + 'static> = Result<T>;

    fn enqueue_then<T: Send + 'static>(
        self,
        job: Result<BatchJob>,
        then: impl FnOnce(Enqueued) -> T + Send + 'static,
    ) -> Result<T> {
        (&**self).enqueue_then(job, then)
    }
}

impl Honker {
    /// The SQLite store this handle runs on (`None` on another store).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
    /// assert!(honker.sqlite().unwrap().path().ends_with("a.db"));
    /// ```
    pub fn sqlite(&self) -> Option<&SqliteStore> {
        self.store().as_any().downcast_ref::<SqliteStore>()
    }

    /// Run `f` on the writer thread inside the next group transaction, in a
    /// savepoint of its own: an `Err` (or a panic, reported as
    /// [`Error::Panicked`]) rolls back everything `f` did, `Ok` commits it
    /// with the group. `f` cannot end the group's transaction: statements
    /// that begin, commit or roll back a transaction are refused ("not
    /// authorized"); use savepoints of your own inside it. Pragmas that change
    /// whether or how every later write works (`query_only`, `foreign_keys`,
    /// `journal_mode`, `synchronous`, ...) are refused too: the connection is
    /// shared by all of them. Pools of this
    /// `Honker` wake at once. SQLite only: on another store,
    /// [`Error::Unsupported`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
    /// let id = honker.transaction(|tx| {
    ///     tx.execute("CREATE TABLE IF NOT EXISTS orders(id INTEGER PRIMARY KEY)", [])?;
    ///     tx.execute("INSERT INTO orders DEFAULT VALUES", [])?;
    ///     honker_core::enqueue(tx, "emails", r#"{"order":1}"#, &Default::default())
    /// }).await.unwrap();
    /// assert!(id > 0);
    /// # }
    /// ```
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
        F: FnOnce(&Connection) -> std::result::Result<T, E> + Send + 'static,
    {
        let store = self.sqlite().ok_or(Error::Unsupported(
            "transaction closures run on the SQLite store only",
        ))?;
        let out = store
            .write(move |c| f(c).map_err(|e| Error::Transaction(e.into())))
            .await?;
        self.notify_commit();
        Ok(out)
    }
}
