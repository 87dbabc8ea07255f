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
                None => honker_core::open_read_only(&me.path)?,
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
