//! Noticing that a database path no longer names the file it named: the
//! file was deleted, or replaced by another (a restore, a `mv`), while a
//! process had it open. That process's connections still see the old file,
//! so whatever they write is lost to everyone else.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How a path changed under a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileChange {
    /// Nothing is at the path any more.
    Deleted,
    /// Another file is at the path.
    Replaced,
}

impl FileChange {
    /// `"deleted"` or `"replaced"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileChange::Deleted => "deleted",
            FileChange::Replaced => "replaced",
        }
    }
}

/// The identity (device and inode) of the file at a path when the check
/// began, looked at again at most every `every`. Once a change is seen it
/// is reported from then on; a deletion becomes a replacement if another
/// file appears at the path later (a file deleted and made anew).
#[derive(Debug)]
pub(crate) struct FileIdentity {
    path: PathBuf,
    identity: Option<(u64, u64)>,
    every: Duration,
    next: Instant,
    changed: Option<FileChange>,
}

impl FileIdentity {
    /// Remember what `path` names now. A path with no file yet is never
    /// reported.
    pub fn new(path: impl AsRef<Path>, every: Duration) -> Self {
        let path = path.as_ref().to_path_buf();
        FileIdentity {
            identity: identity_of(&path),
            path,
            every,
            next: Instant::now(),
            changed: None,
        }
    }

    /// The path watched.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the path still names the same file (at most one `stat`
    /// every `every`).
    pub fn check(&mut self) -> Option<FileChange> {
        self.look(false)
    }

    /// Whether the path still names the same file, looking now whenever
    /// it is not already known to have changed: for the moment that
    /// decides an answer (a write told it committed).
    pub fn check_now(&mut self) -> Option<FileChange> {
        self.look(true)
    }

    fn look(&mut self, now_anyway: bool) -> Option<FileChange> {
        let settled = self.changed == Some(FileChange::Replaced);
        if !settled && self.identity.is_some() {
            let now = Instant::now();
            if now_anyway || now >= self.next {
                self.next = now.checked_add(self.every).unwrap_or(now);
                let now_there = identity_of(&self.path);
                self.changed = match now_there {
                    None => Some(FileChange::Deleted),
                    Some(id) if Some(id) != self.identity => Some(FileChange::Replaced),
                    Some(_) => None,
                };
            }
        }
        self.changed
    }
}

#[cfg(unix)]
fn identity_of(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity_of(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|_| (0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_is_reported_and_stays_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"one").unwrap();
        let mut file = FileIdentity::new(&path, Duration::ZERO);
        let other = dir.path().join("b.db");
        std::fs::write(&other, b"two").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(file.check(), Some(FileChange::Replaced));
        assert_eq!(file.check(), Some(FileChange::Replaced));
    }

    #[test]
    fn a_look_now_sees_what_the_rate_limited_look_does_not_yet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"one").unwrap();
        let mut file = FileIdentity::new(&path, Duration::from_secs(3600));
        assert_eq!(file.check(), None);
        assert_eq!(file.check_now(), None, "the same file");
        let other = dir.path().join("b.db");
        std::fs::write(&other, b"two").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(file.check(), None, "not looked at again for an hour");
        assert_eq!(file.check_now(), Some(FileChange::Replaced));
        assert_eq!(file.check(), Some(FileChange::Replaced), "and from then on");
    }

    #[test]
    fn a_file_deleted_then_made_anew_is_reported_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"").unwrap();
        let mut file = FileIdentity::new(&path, Duration::ZERO);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(file.check(), Some(FileChange::Deleted));
        // Hold the old one's inode so the new file cannot reuse it.
        let _keep = std::fs::File::create(dir.path().join("other")).unwrap();
        std::fs::write(&path, b"new").unwrap();
        assert_eq!(file.check(), Some(FileChange::Replaced));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(file.check(), Some(FileChange::Replaced), "settled");
    }

    #[test]
    fn checks_are_spaced_and_a_missing_file_is_never_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"").unwrap();
        let mut file = FileIdentity::new(&path, Duration::from_secs(3600));
        assert_eq!(file.check(), None, "the first check looks");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(file.check(), None, "the next one waits an hour");
        let mut never = FileIdentity::new(dir.path().join("none.db"), Duration::ZERO);
        assert_eq!(never.check(), None);
    }
}
