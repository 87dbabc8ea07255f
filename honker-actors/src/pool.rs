//! [`WorkerPool`]: start, inspect and stop a pool of workers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};

use crate::context::AppData;
use crate::job::{ErasedJob, Registered};
use crate::periodic::{Periodic, PeriodicArgs, PeriodicMsg};
use crate::routing::Routes;
use crate::supervisor::{PoolStatus, Supervisor, SupervisorArgs, SupervisorMsg};
use crate::{ConfigError, Error, Honker, Job, Result};

/// Worker slots when `.concurrency(..)` is not called.
pub const DEFAULT_CONCURRENCY: usize = 10;
/// The most worker slots one pool may have (each is an actor; more is a
/// mistake, not a configuration).
///
/// ```
/// assert!(honker_actors::MAX_CONCURRENCY >= honker_actors::DEFAULT_CONCURRENCY);
/// ```
pub const MAX_CONCURRENCY: usize = 10_000;
/// How long a run whose job was cancelled (or whose claim was lost) may
/// go on before it is dropped, when `.cancel_grace(..)` is not called.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);
/// Grace period of a shutdown when `.shutdown_timeout(..)` is not called.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

static POOL_SEQ: AtomicU64 = AtomicU64::new(1);

/// Configures and starts a [`WorkerPool`].
///
/// ```
/// # use honker_actors::{Job, JobContext, JobError, Honker, WorkerPool};
/// # struct Ping;
/// # impl Job for Ping {
/// #     const NAME: &'static str = "ping"; const QUEUE: &'static str = "ping";
/// #     type Args = u32; type Output = ();
/// #     async fn run(&self, _: JobContext, _: u32) -> Result<(), JobError> { Ok(()) }
/// # }
/// # #[tokio::main] async fn main() -> Result<(), honker_actors::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// let honker = Honker::open(dir.path().join("app.db"))?;
/// let pool = WorkerPool::builder(&honker)
///     .register(Ping)
///     .concurrency(16)
///     .queue_concurrency("ping", 4)
///     .visibility_timeout(Duration::from_secs(60))
///     .shutdown_timeout(Duration::from_secs(10))
///     .data(String::from("shared state"))
///     .start()
///     .await?;
/// pool.shutdown().await?;
/// # Ok(()) }
/// ```
#[must_use = "a builder does nothing until .start().await"]
pub struct WorkerPoolBuilder {
    honker: Honker,
    jobs: Vec<Arc<dyn ErasedJob>>,
    concurrency: usize,
    queue_limits: Vec<(String, usize)>,
    visibility: Duration,
    shutdown_timeout: Duration,
    cancel_grace: Duration,
    scheduler: Option<Duration>,
    /// `.scheduler(false)`: not even for jobs with a schedule.
    scheduler_off: bool,
    data: AppData,
}

impl WorkerPoolBuilder {
    /// Run `job` in this pool: any number of jobs, any number per queue
    /// (names unique; a queue's rows are routed by the task name they carry).
    pub fn register<J: Job>(mut self, job: J) -> Self {
        self.jobs.push(Registered::erased(job));
        self
    }
    /// Jobs run at once, across all queues (default 10).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    /// At most `n` jobs of `queue` at once (within the pool's concurrency).
    pub fn queue_concurrency(mut self, queue: &str, n: usize) -> Self {
        self.queue_limits.push((queue.to_string(), n));
        self
    }
    /// How long a claim lasts between heartbeats (default 300 s, at least
    /// 1 s; whole seconds, rounded up: claim deadlines are whole seconds in
    /// the format). A job whose process dies is run again this long after.
    pub fn visibility_timeout(mut self, d: Duration) -> Self {
        self.visibility = d;
        self
    }
    /// How long a shutdown waits for running jobs before putting them back
    /// (default 30 s).
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }
    /// How long a run whose job was cancelled, from any process (or whose
    /// claim was lost), may go on after it is told (`ctx.stopping()`
    /// resolves within milliseconds of the cancel) before it is dropped
    /// (default 5 s). Its outcome is never written.
    pub fn cancel_grace(mut self, d: Duration) -> Self {
        self.cancel_grace = d;
        self
    }
    /// Also fire the file's schedules (`honker_core::register_schedule`,
    /// or Python's `Scheduler.add`) while this pool leads: among every
    /// scheduler on the file, Rust or Python, the one holding the lock
    /// [`SCHEDULER_LOCK`](crate::SCHEDULER_LOCK) (TTL 15 s; Python's 60 s)
    /// fires each boundary, once. Off by default, on when a registered job
    /// has a schedule (`#[job(cron = ..)]`); `false` keeps it off even then
    /// (the schedules are still registered, for other pools to fire).
    pub fn scheduler(mut self, on: bool) -> Self {
        self.scheduler = on.then_some(self.scheduler.unwrap_or(crate::DEFAULT_SCHEDULER_LOCK_TTL));
        self.scheduler_off = !on;
        self
    }
    /// The scheduler lock's TTL (default 15 s; at least 3 s): a leader
    /// that dies is replaced within it. Above 30 s (the misfire window),
    /// boundaries missed while a dead leader's lock runs out follow their
    /// misfire policy (by default, only the latest fires). Turns the
    /// scheduler on.
    pub fn scheduler_lock_ttl(mut self, ttl: Duration) -> Self {
        self.scheduler = Some(ttl);
        self.scheduler_off = false;
        self
    }
    /// Application state for handlers, reachable as `ctx.data::<T>()`.
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.data.insert(value);
        self
    }

    /// Check the configuration and start the actors.
    pub async fn start(self) -> Result<WorkerPool> {
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return Err(ConfigError::Concurrency {
                got: self.concurrency,
                max: MAX_CONCURRENCY,
            }
            .into());
        }
        if self.visibility < Duration::from_secs(1) {
            return Err(ConfigError::VisibilityTooShort(self.visibility).into());
        }
        if self.visibility > honker_core::MAX_DURATION {
            return Err(ConfigError::VisibilityTooLong {
                got: self.visibility,
                max: honker_core::MAX_DURATION,
            }
            .into());
        }
        let routes = Routes::new(self.jobs)?;
        let queues = routes.queues();
        let mut queue_limits = HashMap::new();
        for (q, n) in self.queue_limits {
            let Some(&name) = queues.iter().find(|name| **name == q) else {
                return Err(ConfigError::UnknownQueue(q).into());
            };
            if n == 0 {
                return Err(ConfigError::ZeroQueueLimit(q).into());
            }
            queue_limits.insert(name, n);
        }
        // Jobs with a schedule: registered (an unchanged one keeps its next
        // boundary), and this pool fires schedules.
        let scheduled = routes.scheduled();
        let mut scheduler = self.scheduler;
        if !scheduled.is_empty() {
            if !self.scheduler_off {
                scheduler.get_or_insert(crate::DEFAULT_SCHEDULER_LOCK_TTL);
            }
            let specs: Vec<honker_core::ScheduleSpec> = scheduled
                .iter()
                .map(|j| {
                    let o = j.options();
                    let mut s = honker_core::ScheduleSpec::new(
                        j.name(),
                        j.queue(),
                        j.cron().unwrap_or_default(),
                        &honker_core::task_payload(j.name(), &()).map_err(Error::Serialize)?,
                    );
                    s.priority = o.priority;
                    s.expires = o.expires;
                    s.max_attempts = o.max_attempts;
                    Ok(s)
                })
                .collect::<Result<_>>()?;
            self.honker.store().register_schedules(specs).await?;
        }
        // The start time too: a restarted process may get the same pid
        // (pid 1 in every container), and a pool's id, with each claiming
        // cycle's number after it, is what makes every claim's fence new.
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let worker_id: Arc<str> = Arc::from(format!(
            "{}:{}:{}:{started:x}",
            hostname(),
            std::process::id(),
            POOL_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let args = SupervisorArgs {
            honker: self.honker,
            worker_id: worker_id.clone(),
            routes: Arc::new(routes),
            queue_limits,
            concurrency: self.concurrency,
            visibility: self.visibility,
            shutdown_timeout: self.shutdown_timeout,
            cancel_grace: self.cancel_grace,
            data: self.data,
        };
        if let Some(ttl) = scheduler
            && (ttl < Duration::from_secs(3) || ttl > honker_core::MAX_DURATION)
        {
            return Err(ConfigError::SchedulerLockTtl(ttl).into());
        }
        let honker = args.honker.clone();
        let (supervisor, join) = Actor::spawn(None, Supervisor, args)
            .await
            .map_err(|e| Error::Actor(format!("cannot start the pool supervisor: {e}")))?;
        let scheduler = match scheduler {
            None => None,
            Some(lock_ttl) => {
                let args = PeriodicArgs {
                    honker,
                    owner: worker_id.clone(),
                    lock_ttl,
                };
                match Actor::spawn(None, Periodic, args).await {
                    Ok(spawned) => Some(spawned),
                    Err(e) => {
                        supervisor.kill();
                        return Err(Error::Actor(format!(
                            "cannot start the pool's scheduler: {e}"
                        )));
                    }
                }
            }
        };
        Ok(WorkerPool {
            supervisor,
            join: Some(join),
            scheduler,
            worker_id,
            shutdown_timeout: self.shutdown_timeout,
        })
    }
}

/// A running pool: a supervisor actor with its workers and heartbeat.
///
/// Stop it with [`shutdown`](Self::shutdown): running jobs get the grace
/// period to finish, the rest are put back to pending without burning an
/// attempt. Dropping it without a shutdown kills it: its claims lapse after
/// the visibility timeout and other workers run those jobs again.
pub struct WorkerPool {
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
    join: Option<tokio::task::JoinHandle<()>>,
    scheduler: Option<(ActorRef<PeriodicMsg>, tokio::task::JoinHandle<()>)>,
    worker_id: Arc<str>,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("worker_id", &self.worker_id)
            .finish()
    }
}

impl WorkerPool {
    /// Start configuring a pool on `honker`.
    pub fn builder(honker: &Honker) -> WorkerPoolBuilder {
        WorkerPoolBuilder {
            honker: honker.clone(),
            jobs: Vec::new(),
            concurrency: DEFAULT_CONCURRENCY,
            queue_limits: Vec::new(),
            visibility: honker_core::DEFAULT_VISIBILITY_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            cancel_grace: DEFAULT_CANCEL_GRACE,
            scheduler: None,
            scheduler_off: false,
            data: AppData::default(),
        }
    }

    /// The id this pool claims jobs under (`host:pid:n:start`), unique per
    /// pool. Each claim writes it to `worker_id` with the claiming cycle's
    /// number after a `#` (`host:pid:n:start#c`), so no two claims of a
    /// row ever share a fence, even a job requeued with fresh attempts and
    /// claimed again by the same pool.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Workers, running jobs and restarts, now.
    pub async fn status(&self) -> Result<PoolStatus> {
        ractor::call!(self.supervisor, SupervisorMsg::Status)
            .map_err(|e| Error::Actor(format!("pool status: {e}")))
    }

    /// Stop claiming, let running jobs finish within the shutdown timeout,
    /// record their outcomes, put the rest back to pending, stop the actors.
    pub async fn shutdown(mut self) -> Result<()> {
        self.stop().await
    }

    /// Wait for ctrl-c (SIGINT), then [`shutdown`](Self::shutdown); a
    /// second ctrl-c during the shutdown cuts the jobs' grace short: the
    /// running jobs are aborted at once and their claims given back
    /// (attempt unburned), as when the shutdown timeout ends.
    pub async fn shutdown_on_ctrl_c(self) -> Result<()> {
        tokio::signal::ctrl_c().await.map_err(Error::Signal)?;
        tracing::info!(
            grace = ?self.shutdown_timeout,
            "ctrl-c: shutting the worker pool down; ctrl-c again stops the running jobs now"
        );
        let supervisor = self.supervisor.clone();
        let stopping = self.shutdown();
        tokio::pin!(stopping);
        tokio::select! {
            done = &mut stopping => return done,
            again = tokio::signal::ctrl_c() => {
                if again.is_ok() {
                    tracing::warn!("ctrl-c again: stopping the running jobs now");
                    let _ = supervisor.cast(SupervisorMsg::ShutdownDeadline);
                }
            }
        }
        stopping.await
    }

    /// Wait for `signal`, then [`shutdown`](Self::shutdown): for a service
    /// with its own signal handling, e.g. the future it hands to axum's
    /// `with_graceful_shutdown`, shared through a channel.
    ///
    /// ```
    /// # use honker_actors::{Job, JobContext, JobError, Honker, WorkerPool};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const NAME: &'static str = "ping"; const QUEUE: &'static str = "ping";
    /// #     type Args = u32; type Output = ();
    /// #     async fn run(&self, _: JobContext, _: u32) -> Result<(), JobError> { Ok(()) }
    /// # }
    /// # #[tokio::main] async fn main() -> Result<(), honker_actors::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let honker = Honker::open(dir.path().join("app.db"))?;
    /// let pool = WorkerPool::builder(&honker).register(Ping).start().await?;
    /// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    /// let pool_task = tokio::spawn(pool.shutdown_on(async { let _ = stopped.await; }));
    /// stop.send(()).unwrap();                 // e.g. from the web server's shutdown
    /// pool_task.await.unwrap()?;
    /// # Ok(()) }
    /// ```
    pub async fn shutdown_on(self, signal: impl Future<Output = ()>) -> Result<()> {
        signal.await;
        tracing::info!("shutdown signal: shutting the worker pool down");
        self.shutdown().await
    }

    async fn stop(&mut self) -> Result<()> {
        // First the scheduler: it gives its lock back as it stops.
        if let Some((scheduler, join)) = self.scheduler.take() {
            scheduler.stop(None);
            let _ = join.await;
        }
        let Some(join) = self.join.take() else {
            return Ok(());
        };
        // The supervisor itself bounds the wait (grace, abort grace, write
        // grace); this is a safety net above it.
        let budget = self
            .shutdown_timeout
            .saturating_add(crate::supervisor::SHUTDOWN_OVERHEAD)
            .saturating_add(Duration::from_secs(10));
        let asked = ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Shutdown,
            u64::try_from(budget.as_millis()).unwrap_or(u64::MAX)
        );
        let cell = self.supervisor.get_cell();
        cell.stop_children_and_wait(None, Some(Duration::from_secs(5)))
            .await;
        self.supervisor.stop(None);
        let _ = join.await;
        match asked {
            Ok(Ok(())) => Ok(()),
            Ok(Err(unwritten)) => Err(Error::ShutdownIncomplete { unwritten }),
            Err(e) => Err(Error::Actor(format!("pool shutdown: {e}"))),
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        if self.join.is_some() {
            tracing::warn!(worker_id = %self.worker_id,
                "worker pool dropped without shutdown; its claims will lapse and be run again");
            self.supervisor.kill();
            if let Some((scheduler, _)) = self.scheduler.take() {
                scheduler.kill();
            }
        }
    }
}

pub(crate) fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
