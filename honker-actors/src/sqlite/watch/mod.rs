//! Noticing commits by other connections and processes.
//!
//! A watcher thread reads `PRAGMA data_version` on a connection of its own
//! every `interval` (1 ms by default). SQLite advances that number, as seen
//! by this connection, whenever any other connection or process commits to
//! the file; a rollback does not advance it. Each change signals every
//! subscriber once. Subscribers are coalescing: many commits between two
//! looks are one signal.
//!
//! Where the kernel tells of file writes (inotify on Linux), the watcher
//! sleeps until the database or its `-wal` is written, then confirms with
//! `data_version` (looking again shortly after a write that showed no
//! commit yet: the commit is published in shared memory just after its
//! WAL write); a look every [`SAFETY_NET`] catches anything a notification
//! missed. Elsewhere it polls every `interval`; an idle poller backs off:
//! a second after the last change it polls at twice the interval, and the
//! first change brings it back to the full rate.
//!
//! A read-only watcher ([`Watcher::read_only`]) holds no connection: it
//! follows the sizes and modification times of the file and its `-wal`
//! (the same wake-ups, a `stat` for each look), so it creates nothing
//! beside a file at rest and never keeps a writer's last close from
//! removing the `-wal` and `-shm`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use honker_core::rusqlite::{self as rusqlite, Connection, OpenFlags};

use honker_core::{Error, Result};

use self::file_stamp::{Stamp, Stamped};
use self::kernel_wake::{KernelWake, Stopper, Woke};
use super::file_identity::FileIdentity;
use crate::doubling::DoublingDelay;
use crate::listeners::{Listeners, Listening};

mod file_stamp;
mod kernel_wake;

/// How often a store's commit watch looks at the file for other
/// processes' commits, by default (where the kernel tells of writes, it
/// sleeps until one, and looks every 50 ms regardless).
///
/// ```
/// use honker_actors::sqlite::{SqliteStore, DEFAULT_WATCH_INTERVAL};
/// # let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("a.db"), DEFAULT_WATCH_INTERVAL).unwrap();
/// assert_eq!(DEFAULT_WATCH_INTERVAL, std::time::Duration::from_millis(1));
/// # drop(store);
/// ```
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_millis(1);

/// With kernel notifications, how often the watcher looks anyway.
pub(crate) const SAFETY_NET: Duration = Duration::from_millis(50);

/// After a write that showed no commit yet, look again after these pauses.
const CONFIRM_AFTER: [Duration; 4] = [
    Duration::from_micros(20),
    Duration::from_micros(100),
    Duration::from_micros(500),
    Duration::from_millis(2),
];

/// Under a stream of commits, a kernel-notified watcher looks at most
/// every half interval, and every half of this at least.
const BUSY_GAP_CAP: Duration = Duration::from_millis(2);

/// After this long without a change, poll at twice the interval.
const IDLE_AFTER: Duration = Duration::from_secs(1);

/// How often the watcher checks that the path still names the same file.
const IDENTITY_CHECK_EVERY: Duration = Duration::from_millis(100);
/// Longest wait between attempts to reopen a connection that failed.
const MAX_REOPEN_BACKOFF: Duration = Duration::from_secs(1);
struct Shared {
    subscribers: Listeners<dyn Fn() + Send + Sync>,
    stop: AtomicBool,
    changes: AtomicU64,
    error: Mutex<Option<String>>,
}

impl Shared {
    fn notify(&self) {
        self.changes.fetch_add(1, Ordering::Relaxed);
        for f in self.subscribers.snapshot() {
            f();
        }
    }

    fn set_error(&self, msg: String) {
        let mut e = lock(&self.error);
        if e.as_deref() != Some(msg.as_str()) {
            tracing::error!(error = %msg, "honker watcher");
        }
        *e = Some(msg);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Watches a database file for commits by other connections and processes.
pub(crate) struct Watcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Ends a kernel wait at once; `None` when polling.
    stopper: Option<Stopper>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("changes", &self.changes())
            .field("error", &self.error())
            .finish()
    }
}

impl Watcher {
    /// Watch `path`, looking every `interval`. Where the kernel tells of
    /// file writes and `interval` is at most [`SAFETY_NET`], the watcher
    /// sleeps until a write (and looks every `SAFETY_NET` regardless); a
    /// longer interval asks for a slow watcher, which only polls. The
    /// environment variable `HONKER_NO_KERNEL_WAKE` (any value) makes every
    /// watcher poll, should a file system's notifications misbehave.
    pub fn with_interval(path: impl AsRef<Path>, interval: Duration) -> Result<Watcher> {
        Self::spawn(path.as_ref(), interval, false)
    }

    /// [`Watcher::with_interval`] for a process that must never write the
    /// file, and must leave nothing beside it: no connection at all. It
    /// follows the sizes and modification times of the file and its
    /// `-wal`, so it signals every commit, and now and then a write that
    /// was not one (WAL frames not yet committed); once more shortly after
    /// each change, so a reader woken by the frames' write also sees their
    /// commit. A read-only connection would make a `-wal` and `-shm`
    /// beside a file at rest and could not remove them.
    pub fn read_only(path: impl AsRef<Path>, interval: Duration) -> Result<Watcher> {
        Self::spawn(path.as_ref(), interval, true)
    }

    fn spawn(path: &Path, interval: Duration, read_only: bool) -> Result<Watcher> {
        let path = path.to_path_buf();
        if interval.is_zero() {
            return Err(Error::InvalidOption(
                "watch interval must be positive".into(),
            ));
        }
        // Read the baseline before returning, so every commit after
        // `start` returns is seen.
        let probe = if read_only {
            if !path.is_file() {
                return Err(Error::NoSuchFile { path });
            }
            let files = Stamped::new(&path);
            let stamp = files.stamp();
            Probe::Stamp(files, stamp)
        } else {
            let conn = open_watch_connection(&path)?;
            let baseline = data_version(&conn).map_err(|source| Error::Open {
                path: path.clone(),
                source,
            })?;
            Probe::Version(conn, baseline)
        };
        let shared = Arc::new(Shared {
            subscribers: Listeners::default(),
            stop: AtomicBool::new(false),
            changes: AtomicU64::new(0),
            error: Mutex::new(None),
        });
        let file = FileIdentity::new(&path, IDENTITY_CHECK_EVERY);
        let thread_shared = shared.clone();
        // A caller that asks for a slow watcher gets one: kernel
        // notifications only for intervals up to the safety net's.
        let wake = if interval <= SAFETY_NET && std::env::var_os("HONKER_NO_KERNEL_WAKE").is_none()
        {
            KernelWake::new(&path)
        } else {
            Err(std::io::Error::other("a slow watcher polls"))
        };
        let (kernel, stopper) = match wake {
            Ok((k, s)) => (Some(k), Some(s)),
            Err(e) => {
                tracing::debug!(error = %e, path = %path.display(),
                    "no kernel file notifications; the watcher polls");
                (None, None)
            }
        };
        let thread = std::thread::Builder::new()
            .name("honker-watcher".into())
            .spawn(move || {
                let how = Wait { interval, kernel };
                match probe {
                    Probe::Version(conn, baseline) => {
                        poll_loop(conn, baseline, file, how, &thread_shared);
                    }
                    Probe::Stamp(files, stamp) => {
                        stamp_loop(&files, stamp, file, how, &thread_shared);
                    }
                }
            })
            .map_err(|source| Error::Spawn {
                what: "watcher",
                source,
            })?;
        Ok(Watcher {
            shared,
            thread: Some(thread),
            stopper,
        })
    }

    /// Whether the kernel tells this watcher of writes (it sleeps between
    /// them); `false`: it polls every interval.
    #[cfg(test)]
    pub fn kernel_notified(&self) -> bool {
        self.stopper.is_some()
    }

    /// Call `f` on the watcher thread after each observed change, until the
    /// returned subscription is dropped. `f` must be quick (wake a task,
    /// set a flag).
    pub fn on_change(&self, f: impl Fn() + Send + Sync + 'static) -> Subscription {
        Subscription {
            _listening: self.shared.subscribers.listen(Arc::new(f)),
        }
    }

    /// Subscribers currently registered.
    #[cfg(test)]
    pub fn subscriber_count(&self) -> usize {
        self.shared.subscribers.len()
    }

    /// Changes observed since start.
    pub fn changes(&self) -> u64 {
        self.shared.changes.load(Ordering::Relaxed)
    }

    /// The last problem the watcher met (the file was replaced or deleted,
    /// the connection failed), if any. The watcher keeps trying.
    pub fn error(&self) -> Option<String> {
        lock(&self.shared.error).clone()
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(s) = &self.stopper {
            s.stop();
        }
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            if t.join().is_err() {
                tracing::error!("honker watcher thread panicked");
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A registration with a [`Watcher`]; dropping it unsubscribes.
#[derive(Debug)]
pub(crate) struct Subscription {
    _listening: Listening,
}

/// What a watcher looks at, with its baseline.
enum Probe {
    /// `PRAGMA data_version` on a connection of its own.
    Version(Connection, i64),
    /// The file's and its `-wal`'s sizes and times, no connection.
    Stamp(Stamped, Stamp),
}

fn open_watch_connection(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(Error::Open {
            path: path.to_path_buf(),
            source: rusqlite::Error::InvalidPath(path.to_path_buf()),
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        source,
    })?;
    // Never wait for a lock inside the poll: a busy look is retried next tick.
    conn.busy_timeout(Duration::ZERO).map_err(Error::from)?;
    Ok(conn)
}

fn data_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))
}

/// `data_version` now; after a file write that shows no commit yet, looked
/// at again over a few milliseconds (the commit is published in shared
/// memory just after its WAL write, which no notification reports).
fn confirmed_version(conn: &Connection, last: i64, written: bool) -> rusqlite::Result<i64> {
    let v = data_version(conn)?;
    if v != last || !written {
        return Ok(v);
    }
    for pause in CONFIRM_AFTER {
        std::thread::sleep(pause);
        let v = data_version(conn)?;
        if v != last {
            return Ok(v);
        }
    }
    Ok(v)
}

fn is_transient(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ffi::ErrorCode::DatabaseBusy | rusqlite::ffi::ErrorCode::DatabaseLocked)
    )
}

/// How the watcher thread waits between looks.
struct Wait {
    interval: Duration,
    /// Kernel notifications; `None`: poll every `interval`.
    kernel: Option<KernelWake>,
}

impl Wait {
    /// Sleep until the next look; `true` when woken by a file write.
    /// `busy`: the last look saw a commit; under a stream of commits the
    /// watcher then looks at most every half interval, as a poller would.
    fn sleep(&mut self, idle: bool, busy: bool, path: &Path) -> bool {
        if let Some(k) = &self.kernel {
            if busy {
                // Parked, not slept: a stop unparks it.
                std::thread::park_timeout(self.interval.min(BUSY_GAP_CAP) / 2);
            }
            match k.wait(SAFETY_NET) {
                Ok(w) => return w == Woke::Written,
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(),
                        "kernel file notifications failed; the watcher polls from now on");
                    self.kernel = None;
                }
            }
        }
        let pause = if idle {
            self.interval.saturating_mul(2)
        } else {
            self.interval
        };
        std::thread::park_timeout(pause);
        false
    }
}

fn poll_loop(
    conn: Connection,
    mut last: i64,
    mut file: FileIdentity,
    mut how: Wait,
    shared: &Shared,
) {
    let path = file.path().to_path_buf();
    let mut conn = Some(conn);
    let mut last_change = Instant::now();
    let mut reopen = DoublingDelay::new(how.interval, MAX_REOPEN_BACKOFF);
    let mut next_reopen = Instant::now();
    let mut busy = false;
    while !shared.stop.load(Ordering::Acquire) {
        let written = how.sleep(last_change.elapsed() >= IDLE_AFTER, busy, &path);
        busy = false;
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let now = Instant::now();
        match &conn {
            Some(c) => match confirmed_version(c, last, written) {
                Ok(v) if v != last => {
                    last = v;
                    last_change = now;
                    busy = true;
                    shared.notify();
                }
                Ok(_) => {}
                Err(e) if is_transient(&e) => {}
                Err(e) => {
                    shared.set_error(format!("watching {}: {e}", path.display()));
                    conn = None;
                    next_reopen = now + reopen.peek();
                    // Something changed under us: let subscribers re-read.
                    shared.notify();
                }
            },
            None if now >= next_reopen => match open_watch_connection(&path)
                .and_then(|c| data_version(&c).map(|v| (c, v)).map_err(Error::from))
            {
                Ok((c, v)) => {
                    last = v;
                    conn = Some(c);
                    reopen.reset();
                    shared.notify();
                }
                Err(e) => {
                    shared.set_error(format!("reopening {}: {e}", path.display()));
                    reopen.take();
                    next_reopen = now + reopen.peek();
                }
            },
            None => {}
        }
        if let Some(change) = file.check() {
            shared.set_error(format!(
                "database file {} was {} while in use; \
                 connections opened before still see the old file",
                path.display(),
                change.as_str()
            ));
        }
    }
}

/// The read-only watcher's loop: a `stat` of the file and its `-wal` for
/// each look. A change signals at once, and once more at the next look
/// (a reader woken by WAL frames' write may have looked before their
/// commit was published).
fn stamp_loop(
    files: &Stamped,
    mut last: Stamp,
    mut file: FileIdentity,
    mut how: Wait,
    shared: &Shared,
) {
    let path = file.path().to_path_buf();
    let mut last_change = Instant::now();
    let mut again = false;
    while !shared.stop.load(Ordering::Acquire) {
        how.sleep(last_change.elapsed() >= IDLE_AFTER, again, &path);
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let now = files.stamp();
        if now != last {
            last = now;
            last_change = Instant::now();
            again = true;
            shared.notify();
        } else if std::mem::take(&mut again) {
            shared.notify();
        }
        if let Some(change) = file.check() {
            shared.set_error(format!(
                "database file {} was {} while watched",
                path.display(),
                change.as_str()
            ));
        }
    }
}

#[cfg(test)]
mod tests;
