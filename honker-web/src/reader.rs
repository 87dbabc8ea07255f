//! The dashboard's reads: a read-only connection of the dashboard's own,
//! opened for each look on a blocking thread and closed after it. A
//! connection held between looks would make a `-wal` and `-shm` beside a
//! file at rest, which a read-only connection cannot remove, and would
//! keep a writer's last close from removing them.

use std::path::PathBuf;

use honker_core::rusqlite::Connection;

use crate::Error;

/// The dashboard's reads of one file.
#[derive(Clone)]
pub(crate) struct Reader {
    path: PathBuf,
}

impl Reader {
    pub(crate) fn new(path: PathBuf) -> Reader {
        Reader { path }
    }

    /// The file read.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Run `f` on a connection of its own, on a blocking thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> honker_core::Result<T> + Send + 'static,
    {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || Ok(f(&open(&path)?)?))
            .await
            .map_err(|e| Error::Join(e.to_string()))?
    }
}

/// A look at the file as it is now, creating nothing beside it: a WAL
/// file at rest (no `-wal`, `-shm` or `-journal`) is read in place as
/// immutable; a file in use through the sidecars its writer made.
pub(crate) fn open(path: &std::path::Path) -> honker_core::Result<Connection> {
    honker_core::open_snapshot(path)
}
