//! The store boundary: every operation the runtime needs from the database
//! its jobs live in, as traits a store implements.
//!
//! The runtime (pools, workers, heartbeats, [`Honker`](crate::Honker),
//! [`Queue`](crate::Queue), `#[job]`'s expansion, the dashboard and the
//! CLI) reaches the database only through [`Store`]; SQLite
//! ([`SqliteStore`](crate::sqlite::SqliteStore)) is one implementation, the
//! honker format's own. The design follows River's driver interface and
//! Oban's engines: the operations are grouped by who calls them, each
//! group a trait of its own, and [`Store`] is all of them.
//!
//! - [`PoolStore`]: a pool's cycle (outcomes, claims and sweeps in one
//!   transaction), the look whether anything is claimable and when the
//!   next thing falls due, queue depths, heartbeats and lost claims;
//! - [`JobStore`]: enqueue, a queue's own claims and outcomes (the untyped
//!   [`Queue`](crate::Queue) API), results, and the operator's reads and
//!   writes (list, get, requeue, purge, cancel, stats);
//! - [`InspectStore`]: what operators look at: any job by id, the store's
//!   clock, row totals, health and the schema;
//! - [`ControlStore`]: pause, running and rate limits;
//! - [`ScheduleStore`]: periodic schedules and their firing;
//! - [`LockStore`]: named locks with a time to live;
//! - [`CommitSource`]: wake-ups on commits by other connections and
//!   processes (SQLite: the file watcher; a server: its notifications).
//!
//! A caller's own transaction is the store's own type: SQLite's door is
//! [`EnqueueTx`], implemented in [`sqlite`](crate::sqlite) for the
//! application's own connection, transactions and savepoints, which
//! `enqueue_tx` takes.
//!
//! Every method answers in the runtime's [`Error`](crate::Error): a
//! refusal of input in the runtime's own variants, a failure of the store
//! as [`Error::Store`](crate::Error::Store), a [`StoreError`] whose
//! [`kind`](StoreError::kind) is store-neutral and whose cause is the
//! store's own error.

pub(crate) mod cycle;
mod error;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use honker_core::{
    ClaimGone, ClaimedJob, DeadFilter, DeadJob, EnqueueOptions, Enqueued, Fired, Health, JobFate,
    JobRow, Lease, LiveState, QueueControls, QueueStats, RateLimit, RetryOutcome, RowTotals,
    ScheduleRow, ScheduleSpec, SchemaObject,
};

pub use cycle::{
    Applied, ClaimPlan, CycleDone, CycleOutput, CycleRequest, Fence, NextTimes, Outcome,
};
pub use error::{StoreError, StoreErrorKind};

use crate::Result;

/// A store: every group of operations, and what the runtime asks of it
/// as a whole. Held as `Arc<dyn Store>` by a [`Honker`](crate::Honker).
///
/// ```
/// use honker_actors::store::Store;
/// # let dir = tempfile::tempdir().unwrap();
/// let honker = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
/// let store: &dyn Store = honker.store();
/// assert!(store.file().unwrap().ends_with("a.db"));
/// ```
pub trait Store:
    PoolStore + JobStore + InspectStore + ControlStore + ScheduleStore + LockStore + CommitSource
{
    /// The database file, for a store that keeps one (SQLite).
    fn file(&self) -> Option<&Path>;

    /// Where the store is, as an operator reads it: a file's path, or a
    /// server's URL (its password masked) and schema.
    fn location(&self) -> String {
        self.file()
            .map_or_else(|| "(no file)".to_string(), |p| p.display().to_string())
    }

    /// The store as `Any`, for the doors only one store has (SQLite's
    /// transaction closures).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// What a worker pool asks of its store.
#[async_trait]
pub trait PoolStore: Send + Sync + 'static {
    /// Run one cycle of a pool: write `request`'s outcomes (each rolled
    /// back alone when it fails), claim as `request.plan` says, sweep
    /// expired jobs when asked, and read when something is next due once
    /// the queues run dry. SQLite runs it in one transaction; a server's
    /// store may commit the outcomes and each queue's claim apart, each
    /// atomic, reporting a claim that failed after the outcomes were
    /// written in `claim_errors`. `done` gets the
    /// request back with the answer, after the commit; it must be quick
    /// (it sends the pool a message). A callback, not a future: the hot
    /// path wakes the pool without a task in between.
    fn run_cycle(&self, request: CycleRequest, done: CycleDone);

    /// While a cycle runs, a second one starts only when it carries at
    /// least the pool's prefetch buffer divided by this (in outcomes to
    /// write or jobs to claim; half the concurrency at least). On SQLite
    /// a commit costs about the same for ten jobs as for a hundred: 8. A
    /// server's store, whose every statement is a round trip and whose
    /// cycles in flight contend for the same rows, asks for fewer and
    /// larger cycles.
    fn second_cycle_divisor(&self) -> usize {
        8
    }

    /// Whether a commit heard from elsewhere sends an idle pool straight
    /// to a claim, rather than first to the look of
    /// [`claimable`](Self::claimable). On SQLite the look is a read beside
    /// the one writer, far cheaper than a write: `false`. On a server, a
    /// claim that finds nothing costs about what the look does, and the
    /// look is one more round trip between a commit and a handler's start.
    fn claim_on_commit(&self) -> bool {
        false
    }

    /// Whether any of `queues` has a job a claim would take now, and when
    /// something is next due: one read, no write lock.
    async fn claimable(&self, queues: &[&'static str]) -> Result<(bool, NextTimes)>;

    /// Each queue's pending jobs due now (for the depth gauge).
    async fn depths(&self, queues: &[&'static str]) -> Result<Vec<(&'static str, i64)>>;

    /// Extend every claim of `fences` by `by` from now, each by its own
    /// fence; answer those that are gone, and why.
    async fn extend_claims(
        &self,
        fences: Vec<Fence>,
        by: Duration,
    ) -> Result<Vec<(Fence, ClaimGone)>>;

    /// Which of `fences` are gone, and why, and which queues are paused:
    /// one read.
    async fn look_at_claims(&self, fences: Vec<Fence>) -> Result<ClaimsSeen>;

    /// Extend one claim by `by` from now: `None` when extended, else why
    /// it is gone.
    async fn extend_claim(&self, fence: Fence, by: Duration) -> Result<Option<ClaimGone>>;
}

/// One job of [`JobStore::enqueue_batch`].
///
/// ```
/// let j = honker_actors::store::BatchJob {
///     queue: "mail".into(), payload: "1".into(), opts: Default::default(),
/// };
/// assert_eq!(j.queue, "mail");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchJob {
    /// The queue.
    pub queue: String,
    /// The payload: JSON text the caller produced or checked.
    pub payload: String,
    /// Its options.
    pub opts: EnqueueOptions,
}

/// What [`PoolStore::look_at_claims`] saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimsSeen {
    /// Claims that are gone, and why.
    pub gone: Vec<(Fence, ClaimGone)>,
    /// The store's paused queues.
    pub paused: Vec<String>,
}

/// A wait for a job's result, kept by the store until dropped
/// ([`JobStore::wait_for_result`]).
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use honker_actors::store::ResultWait;
///
/// let ended = Arc::new(AtomicBool::new(false));
/// let flag = ended.clone();
/// let wait = ResultWait::ending_with(move || flag.store(true, Ordering::SeqCst));
/// assert_eq!(format!("{wait:?}"), "ResultWait { kept: true }");
/// drop(wait);
/// assert!(ended.load(Ordering::SeqCst));
/// // A store with nothing to keep.
/// assert_eq!(format!("{:?}", ResultWait::none()), "ResultWait { kept: false }");
/// ```
#[must_use = "the wait ends when this is dropped"]
pub struct ResultWait {
    end: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl ResultWait {
    /// A wait the store keeps nothing for.
    pub fn none() -> ResultWait {
        ResultWait { end: None }
    }

    /// A wait that `end` ends, when dropped.
    pub fn ending_with(end: impl FnOnce() + Send + Sync + 'static) -> ResultWait {
        ResultWait {
            end: Some(Box::new(end)),
        }
    }
}

impl Drop for ResultWait {
    fn drop(&mut self) {
        if let Some(end) = self.end.take() {
            end();
        }
    }
}

impl std::fmt::Debug for ResultWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultWait")
            .field("kept", &self.end.is_some())
            .finish()
    }
}

/// Enqueue, a queue's own claims and outcomes, results, and the
/// operator's reads and writes.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Enqueue `payload` to `queue`: JSON text the caller has produced or
    /// validated (the store may trust it), with `opts` (unique keys
    /// included). Whether it was inserted or an equal unique job found.
    async fn enqueue(&self, queue: &str, payload: String, opts: EnqueueOptions)
        -> Result<Enqueued>;

    /// Enqueue every job of `jobs` in one transaction: all of them or,
    /// when one is refused or the store fails, none. One answer per job,
    /// in order (a unique job whose key is held, by another job or an
    /// earlier one of the batch, answers with that job).
    async fn enqueue_batch(&self, jobs: Vec<BatchJob>) -> Result<Vec<Enqueued>>;

    /// Claim up to `n` jobs of `queue` for `worker`. Cancel-safe: claims
    /// whose caller stopped waiting are given back (attempt unburned).
    async fn claim(
        &self,
        queue: &str,
        worker: &str,
        n: usize,
        visibility: Duration,
    ) -> Result<Vec<ClaimedJob>>;

    /// Ack the claims of `leases` that are `queue`'s jobs; the ids acked.
    async fn ack_in(&self, queue: &str, worker: &str, leases: Vec<Lease>) -> Result<Vec<i64>>;

    /// Retry a claim of a job of `queue` after `delay`, or dead-letter it
    /// when its attempts are spent.
    async fn retry_in(
        &self,
        queue: &str,
        worker: &str,
        lease: Lease,
        delay: Duration,
        error: String,
    ) -> Result<RetryOutcome>;

    /// Dead-letter a claim of a job of `queue`; `false` when it was lost.
    async fn fail_in(&self, queue: &str, worker: &str, lease: Lease, error: String)
        -> Result<bool>;

    /// Extend a claim of a job of `queue`; the new deadline, `None` when
    /// it was lost.
    async fn heartbeat_in(
        &self,
        queue: &str,
        worker: &str,
        lease: Lease,
        extend: Duration,
    ) -> Result<Option<i64>>;

    /// Cancel live job `id` of `queue`.
    async fn cancel_in(&self, queue: &str, id: i64) -> Result<bool>;

    /// Live job `id` of `queue`.
    async fn job_in(&self, queue: &str, id: i64) -> Result<Option<JobRow>>;

    /// `queue`'s live jobs in `state`, `limit` from `offset`.
    async fn list_jobs(
        &self,
        queue: &str,
        state: LiveState,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<JobRow>>;

    /// [`list_jobs`](Self::list_jobs), only those whose payload contains
    /// `text` (a job's name, or a piece of its arguments as the JSON is
    /// written).
    async fn find_jobs(
        &self,
        queue: &str,
        state: LiveState,
        text: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<JobRow>>;

    /// Counts for `queue`.
    async fn queue_stats(&self, queue: &str) -> Result<QueueStats>;

    /// Counts for every queue.
    async fn stats(&self) -> Result<Vec<QueueStats>>;

    /// `queue`'s dead jobs, the newest death first.
    async fn dead_in(&self, queue: &str, limit: usize, offset: usize) -> Result<Vec<DeadJob>>;

    /// Dead jobs matching `filter`, the newest death first.
    async fn list_dead_where(
        &self,
        filter: DeadFilter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<DeadJob>>;

    /// Requeue dead job `id` of `queue` with fresh attempts.
    async fn requeue_dead_in(&self, queue: &str, id: i64) -> Result<bool>;

    /// Requeue the dead jobs matching `filter`; how many.
    async fn requeue_dead_where(&self, filter: DeadFilter) -> Result<usize>;

    /// Delete dead job `id` of `queue`.
    async fn purge_dead_in(&self, queue: &str, id: i64) -> Result<bool>;

    /// Delete the dead jobs matching `filter`; how many.
    async fn purge_dead_where(&self, filter: DeadFilter) -> Result<usize>;

    /// Dead-letter `queue`'s expired jobs; how many.
    async fn sweep_expired(&self, queue: &str) -> Result<usize>;

    /// Job `id`'s saved result, and when there is none, its fate. A job
    /// gone from the tables is looked at again: its result commits with
    /// its ack.
    async fn result_or_fate(&self, id: i64) -> Result<(Option<String>, Option<JobFate>)>;

    /// Say that this process waits for job `id`'s result, until the
    /// returned wait is dropped: a store that tells other processes of
    /// finished jobs only when someone waits for them (PostgreSQL) then
    /// tells of this one. SQLite's commit watcher sees every commit, so
    /// by default this keeps nothing.
    async fn wait_for_result(&self, id: i64) -> Result<ResultWait> {
        let _ = id;
        Ok(ResultWait::none())
    }

    /// The payloads of `queue`'s pending jobs, in claim order.
    async fn waiting_payloads(&self, queue: &str) -> Result<Vec<String>>;

    /// Whether `queue` has a job a claim would take now, and when its
    /// next job falls due or claim lapses (a time already past when one
    /// is claimable).
    async fn claim_outlook(&self, queue: &str) -> Result<(bool, Option<i64>)>;

    /// The schedule and boundary that fired job `id`.
    async fn fired_for(&self, id: i64) -> Result<Option<(String, i64)>>;
}

/// What an operator looks at (the CLI, the dashboard): any job by id,
/// the store's clock, row totals and health.
#[async_trait]
pub trait InspectStore: Send + Sync + 'static {
    /// The store's clock, Unix seconds: the time every `run_at`,
    /// `claim_expires_at` and `expires_at` is compared with.
    async fn now(&self) -> Result<i64>;
    /// Live job `id`, of any queue.
    async fn job(&self, id: i64) -> Result<Option<JobRow>>;
    /// Dead job `id`, of any queue.
    async fn dead_job(&self, id: i64) -> Result<Option<DeadJob>>;
    /// Job `id`'s saved result, unless absent or expired.
    async fn result(&self, id: i64) -> Result<Option<String>>;
    /// Rows of each table, and ids handed out so far.
    async fn row_totals(&self) -> Result<RowTotals>;
    /// The ids of up to `limit` running jobs, of every queue.
    async fn running_ids(&self, limit: usize) -> Result<Vec<i64>>;
    /// Overdue claims, exhausted rows and clocks ahead, with up to
    /// `sample` examples of each.
    async fn health(&self, sample: usize) -> Result<Health>;
    /// Each object of the format's schema, and whether the store has it.
    async fn schema_objects(&self) -> Result<Vec<SchemaObject>>;
}

/// Pause, running limits and rate limits of queues.
#[async_trait]
pub trait ControlStore: Send + Sync + 'static {
    /// `queue`'s controls.
    async fn queue_controls(&self, queue: &str) -> Result<QueueControls>;
    /// Pause `queue`; `false` when it was paused already.
    async fn pause_queue(&self, queue: &str) -> Result<bool>;
    /// Resume `queue`; `false` when it was not paused.
    async fn resume_queue(&self, queue: &str) -> Result<bool>;
    /// Limit how many of `queue`'s jobs run at once everywhere.
    async fn set_max_running(&self, queue: &str, n: Option<u32>) -> Result<()>;
    /// Limit how many of `queue`'s jobs start per period everywhere.
    async fn set_rate_limit(&self, queue: &str, rate: Option<RateLimit>) -> Result<()>;
}

/// Periodic schedules.
#[async_trait]
pub trait ScheduleStore: Send + Sync + 'static {
    /// Register (or update) every schedule of `specs`, in one transaction.
    async fn register_schedules(&self, specs: Vec<ScheduleSpec>) -> Result<()>;
    /// Remove schedule `name`.
    async fn remove_schedule(&self, name: &str) -> Result<bool>;
    /// Enable or disable schedule `name`.
    async fn set_schedule_enabled(&self, name: &str, enabled: bool) -> Result<bool>;
    /// Enqueue schedule `name`'s job now; its id.
    async fn run_schedule_now(&self, name: &str) -> Result<Option<i64>>;
    /// Schedule `name`.
    async fn get_schedule(&self, name: &str) -> Result<Option<ScheduleRow>>;
    /// Every schedule.
    async fn list_schedules(&self) -> Result<Vec<ScheduleRow>>;
    /// Whether a boundary of an enabled schedule is due now: a read.
    async fn schedule_due(&self) -> Result<bool>;
    /// Fire every due boundary, by the store's clock.
    async fn fire_due(&self) -> Result<Vec<Fired>>;
}

/// Named locks with a time to live.
#[async_trait]
pub trait LockStore: Send + Sync + 'static {
    /// Take lock `name` for `owner` for `ttl`, if free or lapsed.
    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool>;
    /// Extend `owner`'s lock `name` to `ttl` from now; `false` when lost.
    async fn renew_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool>;
    /// Release `owner`'s lock `name`; `false` when it was not held.
    async fn unlock(&self, name: &str, owner: &str) -> Result<bool>;
}

/// Commits by other connections and processes.
pub trait CommitSource: Send + Sync + 'static {
    /// Call `on_commit` after commits by anyone (several close together
    /// may make one call) until the returned watch is dropped.
    fn watch_commits(&self, on_commit: Box<dyn Fn() + Send + Sync>)
        -> Result<Box<dyn CommitWatch>>;
}

/// A running watch for commits; dropping it stops the calls.
pub trait CommitWatch: Send + Sync {
    /// The last problem the watch met (the file was replaced, ...).
    fn error(&self) -> Option<String>;
}

/// A caller's own transaction of some store, in which jobs can be
/// enqueued so they commit or roll back with the caller's writes.
/// SQLite's are references to the application's own connection,
/// transactions and savepoints (see [`sqlite`](crate::sqlite)), and an
/// enqueue answers at once; PostgreSQL's are the application's own sqlx
/// connection or transaction, and an enqueue answers a future (see
/// `postgres`). `name::enqueue_tx(tx, args)` takes any of them.
///
/// ```
/// use honker_actors::store::{BatchJob, EnqueueTx};
/// let mut conn = honker_core::open_in_memory().unwrap();
/// let tx = conn.transaction().unwrap();
/// let job = BatchJob { queue: "emails".into(), payload: "{}".into(), opts: Default::default() };
/// let id = (&tx).enqueue_then(Ok(job), |done| done.id).unwrap();
/// tx.commit().unwrap();
/// assert!(id > 0);
/// ```
pub trait EnqueueTx: Sized {
    /// What an enqueue answers in this transaction: `Result<T>` where it
    /// runs at once (SQLite), a future of it on a server (PostgreSQL).
    type Answer<T: Send + 'static>;

    /// Enqueue `job` inside this transaction (or answer its refusal, when
    /// it is an `Err`), then make the answer of what was enqueued with
    /// `then`.
    fn enqueue_then<T: Send + 'static>(
        self,
        job: Result<BatchJob>,
        then: impl FnOnce(Enqueued) -> T + Send + 'static,
    ) -> Self::Answer<T>;
}
