//! The file a command works on, reached through the runtime's store
//! boundary: opened to look (never created, never written, nothing left
//! beside it) or to act (never created), with a small runtime to wait on
//! the store's answers.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use honker_actors::sqlite::SqliteStore;
use honker_actors::store::Store;

use crate::CliError;

/// How often a store would look for other processes' commits; a command
/// never waits for one.
const WATCH_EVERY: Duration = Duration::from_millis(5);

/// An open file and the runtime its answers are awaited on.
pub(crate) struct File {
    store: SqliteStore,
    runtime: tokio::runtime::Runtime,
}

impl File {
    /// Open `db` to look only.
    pub(crate) fn look(db: &Path) -> Result<File, CliError> {
        Self::with(SqliteStore::open_read_only(db, WATCH_EVERY)?)
    }

    /// Open `db`, which must already be a honker file, to act on it.
    pub(crate) fn act(db: &Path) -> Result<File, CliError> {
        Self::with(SqliteStore::open_existing(db, WATCH_EVERY)?)
    }

    fn with(store: SqliteStore) -> Result<File, CliError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(File { store, runtime })
    }

    /// The store, to ask.
    pub(crate) fn store(&self) -> &dyn Store {
        &self.store
    }

    /// Wait for one answer of the store.
    pub(crate) fn wait<T>(
        &self,
        answer: impl Future<Output = honker_actors::Result<T>>,
    ) -> Result<T, CliError> {
        Ok(self.runtime.block_on(answer)?)
    }
}
