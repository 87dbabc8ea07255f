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
    /// `None`: the runtime's store is not a file; nothing can be read.
    path: Option<PathBuf>,
}

impl Reader {
    pub(crate) fn new(path: Option<PathBuf>) -> Reader {
        Reader { path }
    }

    /// The file read, if the store is one.
    pub(crate) fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// Run `f` on a connection of its own, on a blocking thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> honker_core::Result<T> + Send + 'static,
    {
        let Some(path) = self.path.clone() else {
            return Err(Error::Actors(honker_actors::Error::Unsupported(
                "the dashboard reads SQLite files only",
            )));
        };
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
