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
mod ops;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub(crate) use writer::panic_message;
pub use writer::{Fault, FaultHook};

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
///     dir.path().join("a.db"), honker_core::DEFAULT_WATCH_INTERVAL).unwrap();
/// assert!(store.path().ends_with("a.db"));
/// ```
pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    watch_interval: Duration,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
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
        if watch_interval.is_zero() {
            return Err(ConfigError::ZeroWatchInterval.into());
        }
        let conn = honker_core::open(&path)?;
        let writer = Writer::start(conn, path.clone(), "honker-writer".into())?;
        Ok(SqliteStore {
            path,
            writer,
            watch_interval,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Inject faults into the writer, for fault-injection tests:
    /// `hook(k)` decides the fate of the k-th write request. Not an API.
    #[doc(hidden)]
    pub fn inject_faults(&self, hook: Option<FaultHook>) {
        self.writer.inject_faults(hook);
    }

    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }
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
    watcher: honker_core::Watcher,
    _subscription: honker_core::Subscription,
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
        let watcher = honker_core::Watcher::with_interval(&self.path, self.watch_interval)?;
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
        crate::Error::Core(e.into())
    }
}
