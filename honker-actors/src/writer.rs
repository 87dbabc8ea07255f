//! The writer thread: owns the write connection and commits every request
//! waiting for it in one transaction (group commit).
//!
//! SQLite calls block, so they never run on the async runtime. Requests are
//! closures sent over a channel. The thread takes the first request, drains
//! all the others already waiting, runs the reads in autocommit, then the
//! writes inside one `BEGIN IMMEDIATE .. COMMIT`, each in a savepoint of its
//! own (a failing request rolls back alone). Replies go out only after the
//! commit, so a caller never sees a write that might still roll back.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use honker_core::rusqlite::{self as rusqlite, Connection};
use tokio::sync::oneshot;

use crate::{Error, Result};

/// The most writes folded into one transaction.
const MAX_GROUP: usize = 1024;

type Finish = Box<dyn FnOnce(Result<(), Error>) + Send>;
/// Runs the write (given a connection) or is told it will not run (`None`);
/// returns whether it succeeded and how to deliver its reply.
type WriteFn = Box<dyn FnOnce(Option<&Connection>) -> (bool, Finish) + Send>;
type ReadFn = Box<dyn FnOnce(&Connection) + Send>;

enum Request {
    Write(WriteFn),
    Read(ReadFn),
}

/// Handle to the writer thread; cheap to clone. The thread ends when the
/// last handle is dropped.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Request>,
}

impl Writer {
    /// Start the thread, owning `conn` on the file at `path`.
    pub(crate) fn start(conn: Connection, path: PathBuf, name: String) -> Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let file = FileCheck::new(path);
        std::thread::Builder::new()
            .name(name)
            .spawn(move || run(conn, file, rx))
            .map_err(|e| Error::Actor(format!("cannot spawn the writer thread: {e}")))?;
        Ok(Writer { tx })
    }

    /// Run `f` inside the next group transaction; resolves after the commit.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
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
        let op: WriteFn = Box::new(move |conn| {
            let out = conn.map(f);
            let ok = matches!(out, Some(Ok(_)));
            let finish: Finish = Box::new(move |commit| {
                done(match (commit, out) {
                    (Err(e), _) => Err(e),
                    (Ok(()), Some(r)) => r,
                    (Ok(()), None) => Err(Error::WriterStopped),
                })
            });
            (ok, finish)
        });
        if let Err(mpsc::SendError(Request::Write(op))) = self.tx.send(Request::Write(op)) {
            // The thread is gone: answer now, so the caller is not left waiting.
            let (_, finish) = op(None);
            finish(Err(Error::WriterStopped));
        }
    }

    /// Run read-only `f` on the writer's connection, outside any transaction.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel::<Result<T>>();
        let op: ReadFn = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.tx
            .send(Request::Read(op))
            .map_err(|_| Error::WriterStopped)?;
        rx.await.map_err(|_| Error::WriterStopped)?
    }
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

/// Notices when the database file is deleted or replaced under us.
struct FileCheck {
    path: PathBuf,
    identity: Option<(u64, u64)>,
    next: Instant,
    gone: Option<&'static str>,
}

/// How often the writer re-checks the file's identity (a `stat`).
const FILE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

impl FileCheck {
    fn new(path: PathBuf) -> Self {
        let identity = file_identity(&path);
        FileCheck {
            path,
            identity,
            next: Instant::now(),
            gone: None,
        }
    }

    /// `Some("deleted" | "replaced")` once the path no longer names our file.
    fn gone(&mut self) -> Option<&'static str> {
        if self.gone.is_none() && self.identity.is_some() && Instant::now() >= self.next {
            self.next = Instant::now() + FILE_CHECK_EVERY;
            match file_identity(&self.path) {
                None => self.gone = Some("deleted"),
                Some(id) if Some(id) != self.identity => self.gone = Some("replaced"),
                Some(_) => {}
            }
            if let Some(what) = self.gone {
                tracing::error!(path = %self.path.display(), what,
                    "database file changed under this process; refusing writes");
            }
        }
        self.gone
    }
}

#[cfg(unix)]
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|_| (0, 0))
}

fn run(conn: Connection, mut file: FileCheck, rx: mpsc::Receiver<Request>) {
    let mut reads: Vec<ReadFn> = Vec::new();
    let mut writes: Vec<WriteFn> = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = next_request(&rx) {
        let mut next = Some(first);
        while let Some(req) = next.take() {
            match req {
                Request::Read(r) => reads.push(r),
                Request::Write(w) => writes.push(w),
            }
            if writes.len() < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        for r in reads.drain(..) {
            r(&conn);
        }
        if writes.is_empty() {
            continue;
        }
        if let Some(what) = file.gone() {
            for w in writes.drain(..) {
                let (_, finish) = w(None);
                finish(Err(Error::FileGone {
                    path: file.path.clone(),
                    what,
                }));
            }
            continue;
        }
        commit_group(&conn, &mut writes);
    }
    tracing::debug!("honker writer thread stopping");
}

/// Run a control statement (`BEGIN`, `SAVEPOINT`, ...) from the statement
/// cache: parsing it anew for every group costs more than the write.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn commit_group(conn: &Connection, writes: &mut Vec<WriteFn>) {
    let started = Instant::now();
    let n = writes.len();
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        let e = Arc::new(honker_core::Error::from(e));
        tracing::warn!(error = %e, writes = n, "could not begin a write transaction");
        for w in writes.drain(..) {
            let (_, finish) = w(None);
            finish(Err(Error::NotCommitted(e.clone())));
        }
        return;
    }
    // A lone write needs no savepoint: if it fails, the group is just it.
    let isolate = n > 1;
    let mut finishers: Vec<Finish> = Vec::with_capacity(n);
    let mut failed_alone = false;
    for w in writes.drain(..) {
        if isolate {
            if let Err(e) = exec(conn, "SAVEPOINT honker_group_op") {
                let (_, finish) = w(None);
                let e = Arc::new(honker_core::Error::from(e));
                finishers.push(Box::new(move |_| finish(Err(Error::NotCommitted(e)))));
                continue;
            }
        }
        let (ok, finish) = w(Some(conn));
        finishers.push(finish);
        if conn.is_autocommit() {
            // The request ended our transaction itself (or SQLite rolled it
            // back on a fatal error); later requests run in autocommit.
            tracing::warn!("a write request ended the group transaction");
            continue;
        }
        if !isolate {
            failed_alone = !ok;
            continue;
        }
        let closed = if ok {
            exec(conn, "RELEASE honker_group_op")
        } else {
            exec(conn, "ROLLBACK TO honker_group_op")
                .and_then(|()| exec(conn, "RELEASE honker_group_op"))
        };
        if let Err(e) = closed {
            tracing::error!(error = %e, "could not close a savepoint");
        }
    }
    let commit = if conn.is_autocommit() {
        Ok(())
    } else if failed_alone {
        // Its error is its answer; nothing of it may be kept.
        exec(conn, "ROLLBACK")
    } else {
        exec(conn, "COMMIT")
    };
    match commit {
        Ok(()) => {
            metrics::histogram!("honker_group_commit_size").record(n as f64);
            tracing::trace!(writes = n, elapsed = ?started.elapsed(), "group committed");
            for f in finishers {
                f(Ok(()));
            }
        }
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = exec(conn, "ROLLBACK");
            }
            let e = Arc::new(honker_core::Error::from(e));
            tracing::error!(error = %e, writes = n, "group commit failed; every write in it rolled back");
            for f in finishers {
                f(Err(Error::NotCommitted(e.clone())));
            }
        }
    }
}
