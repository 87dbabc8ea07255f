//! The dashboard's reads: a read-only connection of its own, used on a
//! blocking thread, reopened after an error (the file may have been
//! replaced).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use honker_core::rusqlite::Connection;

use crate::Error;

/// One read-only connection, shared by the dashboard's requests.
#[derive(Clone)]
pub(crate) struct Reader {
    path: PathBuf,
    conn: Arc<Mutex<Option<Connection>>>,
}

impl Reader {
    pub(crate) fn new(path: PathBuf) -> Reader {
        Reader {
            path,
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// A reader of the same file with a connection of its own.
    pub(crate) fn fresh(&self) -> Reader {
        Reader::new(self.path.clone())
    }

    /// The file read.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Run `f` on the connection, on a blocking thread.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> honker_core::Result<T> + Send + 'static,
    {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = me.conn.lock().unwrap_or_else(|p| p.into_inner());
            let conn = match slot.take() {
                Some(c) => c,
                None => open(&me.path)?,
            };
            let out = f(&conn);
            if out.is_ok() {
                *slot = Some(conn);
            }
            Ok(out?)
        })
        .await
        .map_err(|e| Error::Join(e.to_string()))?
    }
}

/// A read-only connection that follows commits; where that cannot be had
/// (a WAL file at rest in a directory this process may not write, so its
/// `-shm` cannot be made), a snapshot of the file as it is.
pub(crate) fn open(path: &std::path::Path) -> honker_core::Result<Connection> {
    match honker_core::open_read_only(path) {
        Ok(c) => Ok(c),
        Err(e) => match honker_core::open_snapshot(path) {
            Ok(c) => {
                tracing::warn!(error = %e, path = %path.display(),
                    "cannot follow the file's commits; showing it as it is now");
                Ok(c)
            }
            Err(_) => Err(e),
        },
    }
}
