//! The SQLite store: the honker format in the application's own `.db`
//! file, the format the `honker` Python package and its other bindings
//! share.
//!
//! - `writer`: the writer thread, which owns the write connection and
//!   commits every request waiting for it in one transaction (group
//!   commit);
//! - `cycle`: one cycle of a pool on that thread (outcomes, claims,
//!   sweeps, next due times);
//! - `ops`: every other operation of the store traits, each a call of
//!   `honker-core`'s functions on the writer's connection;
//! - `door`: what only SQLite has: a transaction closure on the writer
//!   thread, and enqueueing on the application's own `rusqlite`
//!   connection.
//!
//! Commits by other connections and processes are seen by
//! `honker-core`'s file watcher (`PRAGMA data_version`, with kernel
//! wake-ups where the platform has them).
//!
//! This module is the only part of the runtime that names `rusqlite`.

mod cycle;
mod door;
mod file_identity;
mod ops;
#[cfg(test)]
mod tests;
mod watch;
mod writer;

pub use watch::DEFAULT_WATCH_INTERVAL;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) use writer::panic_message;
#[cfg(feature = "test-util")]
pub use writer::{Fault, FaultHook};

use honker_core::rusqlite::Connection;

use crate::store::{CommitSource, CommitWatch, Store};
use crate::{ConfigError, Result};
use writer::Writer;

/// The SQLite store of one database file: its writer thread and the path
/// its commit watcher looks at. [`Honker::open`](crate::Honker::open)
/// makes one; reach it with [`Honker::sqlite`](crate::Honker::sqlite).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let store = honker_actors::sqlite::SqliteStore::open(
///     dir.path().join("a.db"), honker_actors::sqlite::DEFAULT_WATCH_INTERVAL).unwrap();
/// assert!(store.path().ends_with("a.db"));
/// ```
pub struct SqliteStore {
    path: PathBuf,
    access: Access,
    watch_interval: Duration,
}

/// How a store reaches its file.
enum Access {
    /// Through its writer thread, which reads too; an operator's looks
    /// through a reader connection of their own, so a long look never
    /// holds up the writer.
    Writer(Writer, Arc<Mutex<Option<Connection>>>),
    /// Looking only: a snapshot connection of its own for each read
    /// (nothing held between reads, nothing created beside the file).
    Snapshot,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("read_only", &self.is_read_only())
            .finish()
    }
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path`: the format's
    /// pragmas and schema, and the writer thread. Commits by other
    /// processes are looked for every `watch_interval` (once a pool or
    /// listener wants them).
    pub fn open(path: impl AsRef<Path>, watch_interval: Duration) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        check_interval(watch_interval)?;
        let conn = honker_core::open(&path)?;
        Self::with_writer(path, conn, watch_interval)
    }

    /// Open an existing honker file to read and write it, creating
    /// nothing: a missing file, one that is not a database or not a
    /// honker file is refused and left exactly as it was (no `-wal` or
    /// `-shm` beside it). For tools that act on a service's file.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use honker_actors::sqlite::SqliteStore;
    /// let path = dir.path().join("a.db");
    /// assert!(SqliteStore::open_existing(&path, honker_actors::sqlite::DEFAULT_WATCH_INTERVAL).is_err());
    /// assert!(!path.exists());
    /// ```
    pub fn open_existing(path: impl AsRef<Path>, watch_interval: Duration) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        check_interval(watch_interval)?;
        let conn = honker_core::open_existing(&path)?;
        Self::with_writer(path, conn, watch_interval)
    }

    /// Look at an existing honker file without ever writing it: every
    /// read opens a snapshot of its own (a file at rest is read in place,
    /// immutable; one in use through its writer's `-wal`), and every write
    /// is refused as a [`StoreErrorKind::ReadOnly`](crate::store::StoreErrorKind::ReadOnly)
    /// naming the file. Its commit watch
    /// holds no connection either. Fails when `path` is not an existing
    /// honker file.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use honker_actors::store::{JobStore, Store};
    /// use honker_actors::sqlite::SqliteStore;
    /// # let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("a.db");
    /// drop(honker_core::open(&path).unwrap());
    /// let store = SqliteStore::open_read_only(&path, honker_actors::sqlite::DEFAULT_WATCH_INTERVAL).unwrap();
    /// assert!(store.stats().await.unwrap().is_empty());
    /// assert!(store.enqueue("q", "1".into(), Default::default()).await.is_err());
    /// # }
    /// ```
    pub fn open_read_only(path: impl AsRef<Path>, watch_interval: Duration) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        check_interval(watch_interval)?;
        drop(honker_core::open_snapshot(&path)?);
        Ok(SqliteStore {
            path,
            access: Access::Snapshot,
            watch_interval,
        })
    }

    fn with_writer(
        path: PathBuf,
        conn: honker_core::rusqlite::Connection,
        watch_interval: Duration,
    ) -> Result<SqliteStore> {
        let writer = Writer::start(conn, path.clone(), "honker-writer".into())?;
        Ok(SqliteStore {
            path,
            access: Access::Writer(writer, Arc::default()),
            watch_interval,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this store only looks ([`SqliteStore::open_read_only`]).
    pub fn is_read_only(&self) -> bool {
        matches!(self.access, Access::Snapshot)
    }

    /// Inject faults into the writer, for fault-injection tests:
    /// `hook(k)` decides the fate of the k-th write request. Only with
    /// the `test-util` feature; not an API.
    #[cfg(feature = "test-util")]
    #[doc(hidden)]
    pub fn inject_faults(&self, hook: Option<FaultHook>) {
        if let Access::Writer(w, _) = &self.access {
            w.inject_faults(hook);
        }
    }

    /// The writer thread; refused on a store that only looks.
    pub(crate) fn writer(&self) -> Result<&Writer> {
        match &self.access {
            Access::Writer(w, _) => Ok(w),
            Access::Snapshot => Err(honker_core::Error::ReadOnly {
                path: self.path.clone(),
                cause: "opened to look only".into(),
            }
            .into()),
        }
    }

    /// Run `f` inside the writer's next group transaction.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer()?.write(f).await
    }

    /// Run read-only `f`: on the writer's connection outside any
    /// transaction, or on a snapshot of its own.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        match &self.access {
            Access::Writer(w, _) => w.read(f).await,
            Access::Snapshot => {
                let path = self.path.clone();
                tokio::task::spawn_blocking(move || f(&honker_core::open_snapshot(&path)?))
                    .await
                    .map_err(|e| crate::Error::Panicked(e.to_string()))?
            }
        }
    }

    /// Run read-only `f` for an operator (a list, a count, a job by id):
    /// off the writer thread, on a reader connection of its own (or a
    /// snapshot). It sees every write already answered.
    pub(crate) async fn look<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let Access::Writer(_, reader) = &self.access else {
            return self.read(f).await;
        };
        let (path, reader) = (self.path.clone(), reader.clone());
        tokio::task::spawn_blocking(move || {
            let mut held = reader.lock().unwrap_or_else(|p| p.into_inner());
            let conn = match held.take() {
                Some(c) => c,
                None => honker_core::open_connection(&path)?,
            };
            let out = f(&conn);
            // A connection left inside a transaction is not reused.
            if conn.is_autocommit() {
                *held = Some(conn);
            }
            out
        })
        .await
        .map_err(|e| crate::Error::Panicked(e.to_string()))?
    }
}

fn check_interval(watch_interval: Duration) -> Result<()> {
    if watch_interval.is_zero() {
        return Err(ConfigError::ZeroWatchInterval.into());
    }
    Ok(())
}

impl Store for SqliteStore {
    fn file(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The file watcher and its subscription; dropping it stops both.
struct FileWatch {
    watcher: watch::Watcher,
    _subscription: watch::Subscription,
}

impl CommitWatch for FileWatch {
    fn error(&self) -> Option<String> {
        self.watcher.error()
    }
}

impl CommitSource for SqliteStore {
    fn watch_commits(
        &self,
        on_commit: Box<dyn Fn() + Send + Sync>,
    ) -> Result<Box<dyn CommitWatch>> {
        let watcher = match self.access {
            Access::Writer(..) => watch::Watcher::with_interval(&self.path, self.watch_interval)?,
            Access::Snapshot => watch::Watcher::read_only(&self.path, self.watch_interval)?,
        };
        let on_commit: Arc<dyn Fn() + Send + Sync> = Arc::from(on_commit);
        let subscription = watcher.on_change(move || on_commit());
        Ok(Box::new(FileWatch {
            watcher,
            _subscription: subscription,
        }))
    }
}

impl From<honker_core::rusqlite::Error> for crate::Error {
    fn from(e: honker_core::rusqlite::Error) -> Self {
        crate::Error::from(honker_core::Error::from(e))
    }
}
