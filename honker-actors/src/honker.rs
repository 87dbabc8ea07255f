//! [`Honker`]: the handle to one database file, shared by enqueuers and pools.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use honker_core::QueueStats;
use serde::de::DeserializeOwned;

use crate::queue::Queue;
use crate::sqlite::SqliteStore;
use crate::store::{CommitWatch, Store};
use crate::wake::{Wake, WakeGuard, WakeHub};
use crate::{EnqueueBuilder, Error, Job, JobHandle, Result};

struct Inner {
    store: Arc<dyn Store>,
    wakes: Arc<WakeHub>,
    /// Started with the first listener: a process that only enqueues never
    /// watches for commits.
    watcher: Mutex<Option<Box<dyn CommitWatch>>>,
}

/// The handle to one honker database: enqueue jobs, run transactions, and
/// hand it to worker pools. Cheap to clone; every clone shares one writer
/// thread, which commits the writes waiting for it together (group commit).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), honker_actors::Error> {
/// use honker_actors::Honker;
/// use honker_actors::core::EnqueueOptions;
/// let dir = tempfile::tempdir().unwrap();
/// let honker = Honker::open(dir.path().join("app.db"))?;
/// let emails = honker.queue("emails");
/// let id = emails.enqueue(&serde_json::json!({"to": "a@b.c"}), EnqueueOptions::default()).await?;
/// assert_eq!(emails.get_job(id).await?.unwrap().queue, "emails");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Honker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Honker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Honker")
            .field("file", &self.inner.store.file())
            .finish()
    }
}

impl Honker {
    /// Open (creating if needed) the database at `path`: the format's
    /// pragmas and schema, and the writer thread. A typed error names the
    /// path and the cause for a missing directory, a read-only file or
    /// directory, or a file that is not a database.
    ///
    /// ```
    /// let err = honker_actors::Honker::open("/no/such/dir/app.db").unwrap_err();
    /// assert!(err.to_string().contains("/no/such/dir"));
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Honker> {
        Self::open_with_watch_interval(path, crate::sqlite::DEFAULT_WATCH_INTERVAL)
    }

    /// [`Honker::open`] with the interval at which commits by other
    /// processes are looked for (default 1 ms).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let h = honker_actors::Honker::open_with_watch_interval(
    ///     dir.path().join("a.db"), std::time::Duration::from_millis(5)).unwrap();
    /// # drop(h);
    /// ```
    pub fn open_with_watch_interval(
        path: impl AsRef<Path>,
        watch_interval: Duration,
    ) -> Result<Honker> {
        if let Some(url) = path.as_ref().to_str().filter(|p| is_server_url(p)) {
            return Self::open_server(url);
        }
        let store = SqliteStore::open(path, watch_interval)?;
        Ok(Honker::with_store(Arc::new(store)))
    }

    /// The store of a server URL: PostgreSQL, with the feature
    /// `postgres`.
    #[cfg(feature = "postgres")]
    fn open_server(url: &str) -> Result<Honker> {
        let store = crate::postgres::PgStore::open(url)?;
        Ok(Honker::with_store(Arc::new(store)))
    }

    /// The store of a server URL: refused, the feature `postgres` is off.
    #[cfg(not(feature = "postgres"))]
    fn open_server(_url: &str) -> Result<Honker> {
        Err(crate::Error::Unsupported(
            "a postgres:// URL needs honker-actors' cargo feature `postgres`",
        ))
    }

    /// A handle on `store`: any implementation of the store boundary.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::sync::Arc;
    /// use honker_actors::{sqlite::SqliteStore, Honker};
    /// let store = SqliteStore::open(dir.path().join("a.db"), honker_actors::sqlite::DEFAULT_WATCH_INTERVAL).unwrap();
    /// let honker = Honker::with_store(Arc::new(store));
    /// assert!(honker.path().unwrap().ends_with("a.db"));
    /// ```
    pub fn with_store(store: Arc<dyn Store>) -> Honker {
        Honker {
            inner: Arc::new(Inner {
                store,
                wakes: Arc::new(WakeHub::default()),
                watcher: Mutex::new(None),
            }),
        }
    }

    /// The database file, for a store that keeps one (SQLite).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let h = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
    /// assert!(h.path().unwrap().ends_with("a.db"));
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.inner.store.file()
    }

    /// The store this handle runs on.
    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// The untyped API of one queue.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let h = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
    /// assert_eq!(h.queue("emails").name(), "emails");
    /// ```
    pub fn queue(&self, name: &str) -> Queue {
        Queue {
            honker: self.clone(),
            name: Arc::from(name),
            visibility: honker_core::DEFAULT_VISIBILITY_TIMEOUT,
        }
    }

    /// Enqueue a typed job with its default options; the [`JobHandle`]
    /// holds the job id and waits for the job's typed result.
    ///
    /// ```
    /// # use honker_actors::{Job, JobContext, JobError, Honker};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const NAME: &'static str = "ping"; const QUEUE: &'static str = "ping";
    /// #     type Args = u32; type Output = ();
    /// #     async fn run(&self, _: JobContext, _: u32) -> Result<(), JobError> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let honker = Honker::open(dir.path().join("a.db")).unwrap();
    /// let handle = honker.enqueue::<Ping>(7).await.unwrap();
    /// assert!(handle.id() > 0);
    /// # }
    /// ```
    pub async fn enqueue<J: Job>(&self, args: J::Args) -> Result<JobHandle<J>> {
        EnqueueBuilder::<J>::new(args).enqueue(self).await
    }

    /// Wait up to `timeout` for the saved result of job `id` and decode it.
    ///
    /// A job that can no longer produce a result is answered at once, not
    /// after the timeout: [`Error::JobDead`] (with its last error) for a job
    /// in `_honker_dead`, [`Error::JobCancelled`] for a cancelled one, and
    /// [`Error::NoResult`] for one that finished without saving a result
    /// (or never existed).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
    /// let q = honker.queue("reports");
    /// // Queued, no worker: waits, then gives up.
    /// let id = q.enqueue(&1, Default::default()).await.unwrap();
    /// let waited = honker.result::<u32>(id, Duration::from_millis(10)).await;
    /// assert!(matches!(waited, Err(honker_actors::Error::ResultTimeout { .. })));
    /// // Cancelled: answered at once.
    /// q.cancel(id).await.unwrap();
    /// let cancelled = honker.result::<u32>(id, Duration::from_secs(60)).await;
    /// assert!(matches!(cancelled, Err(honker_actors::Error::JobCancelled { .. })));
    /// # }
    /// ```
    pub async fn result<T: DeserializeOwned>(&self, id: i64, timeout: Duration) -> Result<T> {
        self.wait_result(id, timeout, false).await
    }

    /// [`Self::result`]; with `done_is_null` (a job whose output is `()`),
    /// a job that succeeded answers `null`, saved result or not.
    pub(crate) async fn wait_result<T: DeserializeOwned>(
        &self,
        id: i64,
        timeout: Duration,
        done_is_null: bool,
    ) -> Result<T> {
        let started = Instant::now();
        // No deadline at all for a wait too long to represent.
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        let notify = Arc::new(tokio::sync::Notify::new());
        let n = notify.clone();
        // Listen before the first look, so a save in between is not missed;
        // and say so to the store before it too, so that the job's ack
        // tells this process (on PostgreSQL, finished jobs notify only
        // when awaited).
        let _guard = self.listen(move |_| n.notify_one());
        let _wait = self.store().wait_for_result(id).await?;
        loop {
            let (raw, fate) = self.store().result_or_fate(id).await?;
            if let Some(raw) = raw {
                // A `()` job run by a handler that saved a value anyway
                // (a Python task returning something) still succeeded.
                let raw = if done_is_null { "null" } else { raw.as_str() };
                return serde_json::from_str(raw)
                    .map_err(|source| Error::ResultDecode { job_id: id, source });
            }
            match fate {
                Some(honker_core::JobFate::Dead { last_error })
                    if last_error.as_deref() == Some(honker_core::CANCELLED) =>
                {
                    return Err(Error::JobCancelled { job_id: id })
                }
                Some(honker_core::JobFate::Dead { last_error }) => {
                    return Err(Error::JobDead {
                        job_id: id,
                        last_error,
                    })
                }
                Some(honker_core::JobFate::Gone) if done_is_null => {
                    return serde_json::from_str("null")
                        .map_err(|source| Error::ResultDecode { job_id: id, source })
                }
                Some(honker_core::JobFate::Gone) => return Err(Error::NoResult { job_id: id }),
                _ => {}
            }
            let woken = match deadline {
                Some(d) => tokio::time::timeout_at(d, notify.notified()).await.is_ok(),
                None => {
                    notify.notified().await;
                    true
                }
            };
            if !woken {
                return Err(Error::ResultTimeout {
                    job_id: id,
                    waited: started.elapsed(),
                });
            }
        }
    }

    /// Per-queue counts for every queue.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
    /// assert!(honker.stats().await.unwrap().is_empty());
    /// # }
    /// ```
    pub async fn stats(&self) -> Result<Vec<QueueStats>> {
        self.store().stats().await
    }

    /// Call `f` after each commit to the file: by this process (through
    /// any clone of this handle) or by another connection or process (seen
    /// by the commit watcher, which this starts). Several commits close
    /// together may make one call. Dropping the returned guard stops the
    /// calls. For dashboards and caches that refresh on change. On
    /// PostgreSQL, another process's plain finished jobs are heard only
    /// when awaited or when they free a running limit's slot (see the
    /// README's "When you outgrow one machine").
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::{atomic::{AtomicUsize, Ordering}, Arc};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
    /// let seen = Arc::new(AtomicUsize::new(0));
    /// let counter = seen.clone();
    /// let _guard = honker.on_commit(move || { counter.fetch_add(1, Ordering::Relaxed); });
    /// honker.queue("q").enqueue(&1, Default::default()).await.unwrap();
    /// assert!(seen.load(Ordering::Relaxed) >= 1);
    /// # }
    /// ```
    pub fn on_commit(&self, f: impl Fn() + Send + Sync + 'static) -> crate::Listening {
        self.listen(move |_| f())
    }

    /// Inject faults into this handle's SQLite writer, for
    /// fault-injection tests: `hook(k)` decides the fate of the k-th write
    /// request. Only with the `test-util` feature; not an API.
    #[cfg(feature = "test-util")]
    #[doc(hidden)]
    pub fn inject_writer_faults(&self, hook: Option<crate::sqlite::FaultHook>) {
        if let Some(s) = self.sqlite() {
            s.inject_faults(hook);
        }
    }

    /// Register a wake listener; starts the file watcher on first use.
    pub(crate) fn listen(&self, f: impl Fn(&Wake<'_>) + Send + Sync + 'static) -> WakeGuard {
        let guard = self.inner.wakes.listen(f);
        self.ensure_watcher();
        guard
    }

    /// Wake this process's pools as a commit by another process would.
    pub(crate) fn notify_commit(&self) {
        self.inner.wakes.fire(&Wake::Commit);
    }

    pub(crate) fn notify_enqueued(&self, queue: &str) {
        self.inner.wakes.fire(&Wake::Enqueued(queue));
    }

    /// The last problem the commit watcher met, if any (the database file
    /// was deleted or replaced while in use, ...).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
    /// assert_eq!(honker.watcher_error(), None);
    /// ```
    pub fn watcher_error(&self) -> Option<String> {
        self.inner
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|w| w.error())
    }

    fn ensure_watcher(&self) {
        let mut slot = self.inner.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return;
        }
        let hub = Arc::downgrade(&self.inner.wakes);
        let on_commit = Box::new(move || {
            if let Some(hub) = hub.upgrade() {
                hub.fire(&Wake::Commit);
            }
        });
        match self.inner.store.watch_commits(on_commit) {
            Ok(w) => *slot = Some(w),
            Err(e) => {
                tracing::error!(error = %e, file = ?self.inner.store.file(),
                    "cannot watch the database for commits by other processes; \
                     relying on in-process wake-ups and timers");
            }
        }
    }
}

/// Whether `target` names a database server rather than a file.
fn is_server_url(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}
