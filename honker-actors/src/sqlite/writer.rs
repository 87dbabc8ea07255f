//! The writer thread: owns the write connection and commits every request
//! waiting for it in one transaction (group commit).
//!
//! SQLite calls block, so they never run on the async runtime. Requests are
//! closures sent over a channel. The thread takes the first request, drains
//! all the others already waiting, runs the reads in autocommit, then the
//! writes inside one `BEGIN IMMEDIATE .. COMMIT`, each in a savepoint of its
//! own (a failing request rolls back alone). Replies go out only after the
//! commit, so a caller never sees a write that might still roll back.
//!
//! Fault semantics: a request either commits or its caller gets an error.
//! - A request that returns `Err` or panics (each runs under
//!   `catch_unwind`) is rolled back to its savepoint; the others commit.
//! - A request cannot end the group transaction: statements that begin,
//!   commit or roll back a transaction, or touch the group's savepoint, are
//!   refused by an authorizer while a request runs (so are pragmas that set
//!   what every later request would inherit: `query_only`, `foreign_keys`,
//!   `journal_mode`, ...); a COMMIT it
//!   reaches through the statement cache is turned into a rollback by a
//!   commit hook, and a savepoint it closes abandons the group.
//! - When SQLite itself rolls the whole transaction back (`SQLITE_FULL`, an
//!   I/O error), every request that ran in it is told
//!   [`Error::RolledBack`]; the requests after it run in a new transaction.
//! - Nothing that runs after `COMMIT` (logging, metrics) can change an
//!   answer: the replies go out first, and logging runs under
//!   `catch_unwind`.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::file_identity::FileIdentity;
use honker_core::rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use honker_core::rusqlite::{self as rusqlite, Connection};
use tokio::sync::oneshot;

use crate::{Error, Result};

/// The most writes folded into one transaction.
const MAX_GROUP: usize = 1024;

/// Pragmas a request may not set: each changes, for every later request on
/// the shared connection, whether or how it writes.
const SHARED_PRAGMAS: &[&str] = &[
    "query_only",
    "foreign_keys",
    "journal_mode",
    "locking_mode",
    "synchronous",
    "busy_timeout",
    "recursive_triggers",
    "ignore_check_constraints",
    "writable_schema",
];

/// The savepoint each request of a group runs in.
const GROUP_SAVEPOINT: &str = "honker_group_op";

/// The writer's transaction-control statements. Their text carries a token
/// random to each writer, and the text is the key of the statement cache:
/// a request cannot fetch them from the cache (where they are authorized
/// already) by writing the same text.
struct Control {
    begin: String,
    commit: String,
    rollback: String,
    savepoint: String,
    release: String,
    rollback_to: String,
}

impl Control {
    fn new() -> Self {
        let tag = format!("/* honker writer {:016x} */", rand::random::<u64>());
        Control {
            begin: format!("BEGIN IMMEDIATE {tag}"),
            commit: format!("COMMIT {tag}"),
            rollback: format!("ROLLBACK {tag}"),
            savepoint: format!("SAVEPOINT {GROUP_SAVEPOINT} {tag}"),
            release: format!("RELEASE {GROUP_SAVEPOINT} {tag}"),
            rollback_to: format!("ROLLBACK TO {GROUP_SAVEPOINT} {tag}"),
        }
    }
}

type Finish = Box<dyn FnOnce(Result<(), Error>) + Send>;

/// A fault to inject into the writer, for fault-injection tests (the
/// `test-util` feature installs them; without it none is ever injected).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "test-util"), allow(dead_code))]
pub enum Fault {
    /// The request's statements ran, then SQLite reported `SQLITE_FULL`
    /// and rolled the whole group transaction back.
    DiskFull,
    /// As `DiskFull`, with `SQLITE_IOERR`.
    IoError,
    /// The request failed with `SQLITE_BUSY` (its savepoint rolls back).
    Busy,
    /// The request panicked after its statements ran.
    Panic,
}

/// Decides, by the sequence number of a write request (from 0, in the
/// order the writer runs them), whether to inject a fault into it.
#[doc(hidden)]
pub type FaultHook = Arc<dyn Fn(u64) -> Option<Fault> + Send + Sync>;

/// How running one write request went.
struct Ran {
    /// `Err(why)` when the request failed (an error or a panic).
    result: std::result::Result<(), String>,
    finish: Reply,
}

/// Runs the write (given a connection; `panic` injects a panic after it)
/// or is told it will not run (`None`).
type WriteFn = Box<dyn FnOnce(Option<&Connection>, bool) -> Ran + Send>;
type ReadFn = Box<dyn FnOnce(&Connection) + Send>;

enum Request {
    Write(WriteFn),
    Read(ReadFn),
}

/// A request's reply. Sent exactly once; if it is dropped unsent (the
/// writer unwound past it), the caller is told its write did not commit.
struct Reply(Option<Finish>);

impl Reply {
    fn send(mut self, r: Result<()>) {
        if let Some(f) = self.0.take() {
            quietly(|| f(r));
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            quietly(|| {
                f(Err(Error::RolledBack(
                    "the writer failed before this write committed".into(),
                )))
            });
        }
    }
}

/// Run `f`, ignoring a panic (from a logging subscriber, a metrics
/// recorder, a reply callback): nothing it does may change an answer.
fn quietly(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

/// Run `f`, turning a panic into [`Error::Panicked`].
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(Error::Panicked(panic_message(&*p))))
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Handle to the writer thread; cheap to clone. The thread ends when the
/// last handle is dropped.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Request>,
    /// Set only with the `test-util` feature.
    #[cfg_attr(not(feature = "test-util"), allow(dead_code))]
    faults: Arc<Mutex<Option<FaultHook>>>,
}

impl Writer {
    /// Start the thread, owning `conn` on the file at `path`.
    pub(crate) fn start(mut conn: Connection, path: PathBuf, name: String) -> Result<Writer> {
        let in_request = Arc::new(AtomicBool::new(false));
        let flag = in_request.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            if !flag.load(Ordering::Relaxed) {
                return Authorization::Allow;
            }
            match ctx.action {
                AuthAction::Transaction { .. } => Authorization::Deny,
                AuthAction::Savepoint { savepoint_name, .. }
                    if savepoint_name.eq_ignore_ascii_case(GROUP_SAVEPOINT) =>
                {
                    Authorization::Deny
                }
                // A pragma that changes whether or how every later request
                // writes (the connection is shared by all of them).
                AuthAction::Pragma {
                    pragma_name,
                    pragma_value: Some(_),
                } if SHARED_PRAGMAS
                    .iter()
                    .any(|p| pragma_name.eq_ignore_ascii_case(p)) =>
                {
                    Authorization::Deny
                }
                _ => Authorization::Allow,
            }
        }))?;
        // Statements prepared before the flag went up (the writer's own,
        // from the statement cache) are not authorized again: a COMMIT
        // while a request runs is turned into a rollback here, which the
        // group sees and answers as a group SQLite rolled back.
        let flag = in_request.clone();
        conn.commit_hook(Some(move || flag.load(Ordering::Relaxed)))?;
        let (tx, rx) = mpsc::channel();
        let faults: Arc<Mutex<Option<FaultHook>>> = Arc::default();
        let state = Thread {
            conn,
            ctl: Control::new(),
            file: FileIdentity::new(path, FILE_CHECK_EVERY),
            file_logged: false,
            in_request,
            faults: faults.clone(),
            seq: AtomicU64::new(0),
        };
        std::thread::Builder::new()
            .name(name)
            .spawn(move || state.run(rx))
            .map_err(|source| Error::Spawn {
                what: "writer",
                source,
            })?;
        Ok(Writer { tx, faults })
    }

    /// Install (or remove) a fault-injection hook.
    #[cfg(feature = "test-util")]
    pub(crate) fn inject_faults(&self, hook: Option<FaultHook>) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Run `f` inside the next group transaction; resolves after the commit.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        refuse_on_writer_thread()?;
        let (reply, rx) = oneshot::channel::<Result<T>>();
        self.write_then(f, move |result| {
            // The caller may have stopped waiting; nothing to do then.
            let _ = reply.send(result);
        });
        reply_of(rx).await
    }

    /// Run `f` inside the next group transaction and hand its result (or
    /// the commit's failure) to `done`, on the writer thread, after the
    /// commit. For an actor that wants the answer as a message: no task
    /// waits in between. `done` must be quick (send a message).
    pub(crate) fn write_then<T, F, D>(&self, f: F, done: D)
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        D: FnOnce(Result<T>) + Send + 'static,
    {
        let op: WriteFn = Box::new(move |conn, panic| {
            let out = conn.map(|c| {
                guarded(|| {
                    let r = f(c);
                    if panic {
                        panic!("injected fault: a panic in a write request");
                    }
                    r
                })
            });
            let result = match &out {
                Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(e.to_string()),
                None => Err("not run".to_string()),
            };
            let finish: Finish = Box::new(move |commit| {
                done(match (commit, out) {
                    (Err(e), _) => Err(e),
                    (Ok(()), Some(r)) => r,
                    (Ok(()), None) => Err(Error::WriterStopped),
                })
            });
            Ran {
                result,
                finish: Reply(Some(finish)),
            }
        });
        if let Err(mpsc::SendError(Request::Write(op))) = self.tx.send(Request::Write(op)) {
            // The thread is gone: answer now, so the caller is not left waiting.
            op(None, false).finish.send(Err(Error::WriterStopped));
        }
    }

    /// Run read-only `f` on the writer's connection, outside any transaction.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        refuse_on_writer_thread()?;
        let (reply, rx) = oneshot::channel::<Result<T>>();
        let op: ReadFn = Box::new(move |conn| {
            let _ = reply.send(guarded(|| f(conn)));
        });
        self.tx
            .send(Request::Read(op))
            .map_err(|_| Error::WriterStopped)?;
        rx.await.map_err(|_| Error::WriterStopped)?
    }
}

thread_local! {
    /// Set on writer threads: a call that waits for the writer, made from
    /// inside one of its requests, would wait for itself.
    static ON_WRITER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `Err(NestedWrite)` on a writer thread.
pub(crate) fn refuse_on_writer_thread() -> Result<()> {
    if ON_WRITER_THREAD.with(|w| w.get()) {
        return Err(Error::NestedWrite);
    }
    Ok(())
}

/// How long a caller looks for its reply, yielding to other tasks, before
/// it parks: a lone write's reply comes back sooner than a parked runtime
/// thread wakes.
const CALLER_SPIN: std::time::Duration = std::time::Duration::from_micros(40);

async fn reply_of<T>(mut rx: oneshot::Receiver<Result<T>>) -> Result<T> {
    let until = Instant::now() + CALLER_SPIN;
    while Instant::now() < until {
        match rx.try_recv() {
            Ok(r) => return r,
            Err(oneshot::error::TryRecvError::Closed) => return Err(Error::WriterStopped),
            Err(oneshot::error::TryRecvError::Empty) => tokio::task::yield_now().await,
        }
    }
    rx.await.map_err(|_| Error::WriterStopped)?
}

/// After a group, look for the next request this long before sleeping: a
/// caller that enqueues in a loop sends again within microseconds, and
/// waking a sleeping thread costs more than the write.
const SPIN_BEFORE_SLEEP: std::time::Duration = std::time::Duration::from_micros(50);

/// The next request: briefly polled for, then waited for.
fn next_request(rx: &mpsc::Receiver<Request>) -> Option<Request> {
    let until = Instant::now() + SPIN_BEFORE_SLEEP;
    loop {
        match rx.try_recv() {
            Ok(r) => return Some(r),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if Instant::now() < until => std::thread::yield_now(),
            Err(mpsc::TryRecvError::Empty) => return rx.recv().ok(),
        }
    }
}

/// How often the writer re-checks the file's identity (a `stat`).
const FILE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// Whether the database file is still the one this process opened (a
/// look at most every [`FILE_CHECK_EVERY`], or `now`); logs the change
/// once.
fn file_gone(file: &mut FileIdentity, logged: &mut bool, now: bool) -> Option<&'static str> {
    let change = if now { file.check_now() } else { file.check() }?;
    if !std::mem::replace(logged, true) {
        let path = file.path();
        quietly(|| {
            tracing::error!(path = %path.display(), what = change.as_str(),
                "database file changed under this process; refusing writes")
        });
    }
    Some(change.as_str())
}

/// What the writer thread owns.
struct Thread {
    conn: Connection,
    ctl: Control,
    file: FileIdentity,
    /// The file's change has been logged.
    file_logged: bool,
    /// Set while a request runs: the authorizer then refuses transaction
    /// control.
    in_request: Arc<AtomicBool>,
    faults: Arc<Mutex<Option<FaultHook>>>,
    /// Write requests run so far.
    seq: AtomicU64,
}

/// Run a control statement (`BEGIN`, `SAVEPOINT`, ...) from the statement
/// cache: parsing it anew for every group costs more than the write.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// An error as SQLite would report it, for injected faults.
fn sqlite_error(code: std::ffi::c_int, what: &str) -> honker_core::Error {
    honker_core::Error::from(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(code),
        Some(format!("injected fault: {what}")),
    ))
}

impl Thread {
    fn run(self, rx: mpsc::Receiver<Request>) {
        ON_WRITER_THREAD.with(|w| w.set(true));
        let mut me = self;
        let mut reads: Vec<ReadFn> = Vec::new();
        let mut writes: VecDeque<WriteFn> = VecDeque::with_capacity(MAX_GROUP);
        while let Some(first) = next_request(&rx) {
            let mut next = Some(first);
            while let Some(req) = next.take() {
                match req {
                    Request::Read(r) => reads.push(r),
                    Request::Write(w) => writes.push_back(w),
                }
                if writes.len() < MAX_GROUP {
                    next = rx.try_recv().ok();
                }
            }
            for r in reads.drain(..) {
                quietly(|| r(&me.conn));
            }
            while !writes.is_empty() {
                if let Some(what) = file_gone(&mut me.file, &mut me.file_logged, false) {
                    for w in writes.drain(..) {
                        op_refused(w, me.file.path(), what);
                    }
                    break;
                }
                // Last line of defence: a panic escaping the group (none is
                // expected) rolls it back; its unsent replies say so.
                let unwound = catch_unwind(AssertUnwindSafe(|| me.commit_group(&mut writes)));
                if unwound.is_err() {
                    me.in_request.store(false, Ordering::Relaxed);
                    if !me.conn.is_autocommit() {
                        let _ = exec(&me.conn, &me.ctl.rollback);
                    }
                    quietly(|| tracing::error!("the writer recovered from a panic in a group"));
                }
            }
        }
        quietly(|| tracing::debug!("honker writer thread stopping"));
    }

    /// Commit the writes at the front of `writes` as one group. Returns
    /// when the group is done; when SQLite rolled the group back part-way,
    /// the requests not yet run stay in `writes` for the next group.
    fn commit_group(&mut self, writes: &mut VecDeque<WriteFn>) {
        let conn = &self.conn;
        let ctl = &self.ctl;
        let started = Instant::now();
        if let Err(e) = exec(conn, &ctl.begin) {
            let e = Arc::new(crate::error::store_error(honker_core::Error::from(e)));
            let n = writes.len();
            quietly(
                || tracing::warn!(error = %e, writes = n, "could not begin a write transaction"),
            );
            for w in writes.drain(..) {
                w(None, false)
                    .finish
                    .send(Err(Error::NotCommitted(e.clone())));
            }
            return;
        }
        let hook = self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // A lone write needs no savepoint: if it fails, the group is just it.
        let isolate = writes.len() > 1;
        let mut finishers: Vec<Reply> = Vec::with_capacity(writes.len());
        let mut failed_alone = false;
        while let Some(w) = writes.pop_front() {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let fault = hook.as_ref().and_then(|h| h(seq));
            if isolate && let Err(e) = exec(conn, &ctl.savepoint) {
                let e = Arc::new(crate::error::store_error(honker_core::Error::from(e)));
                w(None, false).finish.send(Err(Error::NotCommitted(e)));
                continue;
            }
            self.in_request.store(true, Ordering::Relaxed);
            let Ran { mut result, finish } = w(Some(conn), fault == Some(Fault::Panic));
            self.in_request.store(false, Ordering::Relaxed);
            let mut finish = finish;
            if let Some(code) = match fault {
                Some(Fault::DiskFull) => Some((rusqlite::ffi::SQLITE_FULL, "disk full")),
                Some(Fault::IoError) => Some((rusqlite::ffi::SQLITE_IOERR, "I/O error")),
                Some(Fault::Busy) => Some((rusqlite::ffi::SQLITE_BUSY, "busy")),
                _ => None,
            } {
                // The request's statements ran, then "SQLite" failed: the
                // request is told that error, whatever it returned.
                let e = Arc::new(crate::error::store_error(sqlite_error(code.0, code.1)));
                if let Some(f) = finish.0.take() {
                    finish = Reply(Some(Box::new(move |_| f(Err(Error::NotCommitted(e))))));
                }
                result = Err(format!("injected fault: {}", code.1));
                if fault != Some(Fault::Busy) && !conn.is_autocommit() {
                    // What SQLite does on these errors: the whole
                    // transaction is rolled back.
                    let _ = exec(conn, &ctl.rollback);
                }
            }
            if conn.is_autocommit() {
                // SQLite rolled the whole group back (disk full, I/O error):
                // nothing that ran in it is on disk. Tell each of them; the
                // requests not yet run go into a new transaction.
                let why = match &result {
                    Err(e) => format!("the group transaction was rolled back by SQLite: {e}"),
                    Ok(()) => "the group transaction was rolled back by SQLite".to_string(),
                };
                match result {
                    // Its own error says best what happened to it.
                    Err(_) => finish.send(Ok(())),
                    Ok(()) => finish.send(Err(Error::RolledBack(why.clone()))),
                }
                for f in finishers {
                    f.send(Err(Error::RolledBack(why.clone())));
                }
                quietly(|| tracing::error!(reason = %why, "group rolled back"));
                return;
            }
            let ok = result.is_ok();
            finishers.push(finish);
            if !isolate {
                failed_alone = !ok;
                continue;
            }
            let closed = if ok {
                exec(conn, &ctl.release)
            } else {
                exec(conn, &ctl.rollback_to).and_then(|()| exec(conn, &ctl.release))
            };
            if let Err(e) = closed {
                // The request's savepoint is gone (it reached the group's
                // own RELEASE or ROLLBACK TO through the statement cache):
                // what it wrote can no longer be told apart from the rest.
                // Nothing of this group may be kept.
                if !conn.is_autocommit() {
                    let _ = exec(conn, &ctl.rollback);
                }
                let why = format!("a request closed the group's savepoint itself ({e})");
                for f in finishers {
                    f.send(Err(Error::RolledBack(why.clone())));
                }
                quietly(|| tracing::error!(reason = %why, "group rolled back"));
                return;
            }
        }
        let n = finishers.len();
        let commit = if failed_alone {
            // Its error is its answer; nothing of it may be kept.
            exec(conn, &ctl.rollback)
        } else {
            exec(conn, &ctl.commit)
        };
        // The path may have been given another file (a restore, a `mv`)
        // since the last look: then this commit went to the old, unlinked
        // file, which no one else sees. Looked at after the commit, so no
        // write is told Ok that committed after a replacement.
        let gone = match commit {
            Ok(()) if !failed_alone => file_gone(&mut self.file, &mut self.file_logged, true),
            _ => None,
        };
        match (commit, gone) {
            (Ok(()), Some(what)) => {
                for f in finishers {
                    f.send(Err(Error::FileGone {
                        path: self.file.path().to_path_buf(),
                        what,
                    }));
                }
            }
            (Ok(()), None) => {
                for f in finishers {
                    f.send(Ok(()));
                }
                quietly(|| {
                    metrics::histogram!("honker_group_commit_size").record(n as f64);
                    tracing::trace!(writes = n, elapsed = ?started.elapsed(), "group committed");
                });
            }
            (Err(e), _) => {
                if !conn.is_autocommit() {
                    let _ = exec(conn, &ctl.rollback);
                }
                let e = Arc::new(crate::error::store_error(honker_core::Error::from(e)));
                for f in finishers {
                    f.send(Err(Error::NotCommitted(e.clone())));
                }
                quietly(|| {
                    tracing::error!(error = %e, writes = n,
                        "group commit failed; every write in it rolled back")
                });
            }
        }
    }
}

fn op_refused(w: WriteFn, path: &std::path::Path, what: &'static str) {
    w(None, false).finish.send(Err(Error::FileGone {
        path: path.to_path_buf(),
        what,
    }));
}
