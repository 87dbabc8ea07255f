//! What a database file and its `-wal` look like from outside: their
//! sizes and modification times, read with `stat` and no connection. A
//! commit writes one of them (WAL frames, or the file itself in rollback
//! mode, or a checkpoint), so a commit changes the stamp; a stamp can
//! also change without a commit (frames written, not yet committed).

use std::path::{Path, PathBuf};

/// Size and modification time (seconds, nanoseconds) of one file.
type Look = (u64, i64, i64);

/// The stamp of a database file and its `-wal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    db: Option<Look>,
    wal: Option<Look>,
}

/// The paths a stamp is taken of.
#[derive(Debug)]
pub(crate) struct Stamped {
    db: PathBuf,
    wal: PathBuf,
}

impl Stamped {
    pub(crate) fn new(db: &Path) -> Stamped {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        Stamped {
            db: db.to_path_buf(),
            wal: wal.into(),
        }
    }

    /// The stamp now.
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp {
            db: look(&self.db),
            wal: look(&self.wal),
        }
    }
}

#[cfg(unix)]
fn look(path: &Path) -> Option<Look> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.size(), m.mtime(), m.mtime_nsec()))
}

#[cfg(not(unix))]
fn look(path: &Path) -> Option<Look> {
    let m = std::fs::metadata(path).ok()?;
    let t = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default();
    Some((
        m.len(),
        i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        i64::from(t.subsec_nanos()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_changes_the_stamp_and_a_read_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let conn = honker_core::open(&path).unwrap();
        let files = Stamped::new(&path);
        let before = files.stamp();
        assert!(before.db.is_some() && before.wal.is_some(), "{before:?}");
        honker_core::stats(&conn).unwrap();
        assert_eq!(files.stamp(), before, "a read writes nothing");
        honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
        assert_ne!(files.stamp(), before, "a commit writes the -wal");
        let after = files.stamp();
        drop(conn); // the last connection: checkpointed, -wal removed
        let closed = files.stamp();
        assert_ne!(closed, after);
        assert_eq!(closed.wal, None);
    }
}
