//! The store a command works on, reached through the runtime's store
//! boundary: a SQLite file opened to look (never created, never written,
//! nothing left beside it) or to act (never created), or a PostgreSQL
//! database named by a `postgres://` URL; with a small runtime to wait on
//! the store's answers.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use honker_actors::postgres::{is_postgres_url, redact_url, PgStore};
use honker_actors::sqlite::SqliteStore;
use honker_actors::store::Store;

use crate::CliError;

/// How often a store would look for other processes' commits; a command
/// never waits for one.
const WATCH_EVERY: Duration = Duration::from_millis(5);

/// The PostgreSQL URL `db` names, if it names one.
pub(crate) fn server_url(db: &Path) -> Option<&str> {
    db.to_str().filter(|d| is_postgres_url(d))
}

/// `db` as messages show it: a file's path, or a server's URL with its
/// password masked.
pub(crate) fn shown(db: &Path) -> String {
    match server_url(db) {
        Some(url) => redact_url(url),
        None => db.display().to_string(),
    }
}

/// An open store and the runtime its answers are awaited on.
pub(crate) struct File {
    store: Arc<dyn Store>,
    runtime: tokio::runtime::Runtime,
}

impl File {
    /// Open `db` to look only (a PostgreSQL schema is made if missing).
    pub(crate) fn look(db: &Path) -> Result<File, CliError> {
        match server_url(db) {
            Some(url) => Self::with(Arc::new(PgStore::open(url)?)),
            None => Self::with(Arc::new(SqliteStore::open_read_only(db, WATCH_EVERY)?)),
        }
    }

    /// Open `db`, which must already be a honker file (or a server), to
    /// act on it.
    pub(crate) fn act(db: &Path) -> Result<File, CliError> {
        match server_url(db) {
            Some(url) => Self::with(Arc::new(PgStore::open(url)?)),
            None => Self::with(Arc::new(SqliteStore::open_existing(db, WATCH_EVERY)?)),
        }
    }

    fn with(store: Arc<dyn Store>) -> Result<File, CliError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(File { store, runtime })
    }

    /// The store, to ask.
    pub(crate) fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// Wait for one answer of the store.
    pub(crate) fn wait<T>(
        &self,
        answer: impl Future<Output = honker_actors::Result<T>>,
    ) -> Result<T, CliError> {
        Ok(self.runtime.block_on(answer)?)
    }
}
