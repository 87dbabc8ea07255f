//! Helpers for testing code that uses honker, in the spirit of
//! Oban.Testing and River's rivertest: run one job's handler in-process
//! with a test [`JobContext`], see what was enqueued, and wait until a pool
//! has drained a queue.
//!
//! ```
//! use honker_actors::testing;
//! use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};
//!
//! #[job(queue = "greetings")]
//! async fn greet(ctx: JobContext, name: String) -> Result<String, JobError> {
//!     let greeting: &String = ctx.data::<String>()?;
//!     Ok(format!("{greeting}, {name}"))
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), honker_actors::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let honker = Honker::open(dir.path().join("app.db"))?;
//!
//! // A handler, called directly.
//! let ctx = testing::context_for::<greet>(&honker).data(String::from("Hello")).build();
//! let out = testing::perform(&greet, ctx, "Ada".to_string()).await;
//! assert_eq!(out.unwrap(), "Hello, Ada");
//!
//! // What was enqueued.
//! greet::enqueue(&honker, "Grace".into()).await?;
//! testing::assert_enqueued::<greet>(&honker, |name| name == "Grace").await?;
//!
//! // A pool, until the queue is drained.
//! let pool = WorkerPool::builder(&honker).register(greet).data(String::from("Hi")).start().await?;
//! testing::wait_until_drained(&honker, "greetings", std::time::Duration::from_secs(10)).await?;
//! pool.shutdown().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context::{AppData, JobSignals};
use crate::core::QueueStats;
use crate::{Error, Honker, Job, JobContext, JobError, Result};

/// Start a test [`JobContext`] on `honker`: job id 1, attempt 1 of 3,
/// worker id `"test"`, no application data.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let honker = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
/// let ctx = honker_actors::testing::context(&honker).attempt(3).max_attempts(3).build();
/// assert!(ctx.is_last_attempt());
/// ```
pub fn context(honker: &Honker) -> ContextBuilder {
    ContextBuilder {
        honker: honker.clone(),
        id: 1,
        queue: "test".into(),
        attempt: 1,
        max_attempts: honker_core::DEFAULT_MAX_ATTEMPTS,
        data: AppData::default(),
    }
}

/// [`context`] for job `J`: its queue and its `max_attempts`, as the pool
/// would give them.
///
/// ```
/// # use honker_actors::{Job, JobContext, JobError, JobOptions};
/// # struct Mail;
/// # impl Job for Mail {
/// #     const NAME: &'static str = "mail"; const QUEUE: &'static str = "emails";
/// #     type Args = u32; type Output = ();
/// #     fn options() -> JobOptions { JobOptions::default().max_attempts(7) }
/// #     async fn run(&self, _: JobContext, _: u32) -> Result<(), JobError> { Ok(()) }
/// # }
/// # let dir = tempfile::tempdir().unwrap();
/// let honker = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
/// let ctx = honker_actors::testing::context_for::<Mail>(&honker).build();
/// assert_eq!((ctx.queue(), ctx.max_attempts()), ("emails", 7));
/// ```
pub fn context_for<J: Job>(honker: &Honker) -> ContextBuilder {
    context(honker)
        .queue(J::QUEUE)
        .max_attempts(J::options().max_attempts)
}

/// Builds a test [`JobContext`]; see [`context`].
#[must_use = "call .build() for the context"]
pub struct ContextBuilder {
    honker: Honker,
    id: i64,
    queue: Arc<str>,
    attempt: u32,
    max_attempts: u32,
    data: AppData,
}

impl ContextBuilder {
    /// The job id the handler sees.
    pub fn id(mut self, id: i64) -> Self {
        self.id = id;
        self
    }
    /// The queue the handler sees.
    pub fn queue(mut self, queue: &str) -> Self {
        self.queue = Arc::from(queue);
        self
    }
    /// This run's attempt number (from 1).
    pub fn attempt(mut self, n: u32) -> Self {
        self.attempt = n;
        self
    }
    /// Attempts allowed in all.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }
    /// Application data, as `WorkerPoolBuilder::data` would give it.
    pub fn data<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.data.insert(value);
        self
    }
    /// The context.
    pub fn build(self) -> JobContext {
        JobContext {
            id: self.id,
            queue: self.queue,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            worker_id: Arc::from("test"),
            honker: self.honker,
            data: self.data,
            signals: Arc::new(JobSignals::default()),
        }
    }
}

/// Run `job`'s handler once, in this task, as a worker would: the argument
/// goes through the payload an enqueue writes first, so a type that does
/// not survive storage fails here as it would in the pool (as a permanent
/// error).
///
/// ```
/// # use honker_actors::{Job, JobContext, JobError};
/// struct Double;
/// impl Job for Double {
///     const NAME: &'static str = "double"; const QUEUE: &'static str = "double";
///     type Args = u32; type Output = u32;
///     async fn run(&self, _: JobContext, n: u32) -> Result<u32, JobError> { Ok(2 * n) }
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let dir = tempfile::tempdir().unwrap();
/// let honker = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
/// let ctx = honker_actors::testing::context(&honker).build();
/// assert_eq!(honker_actors::testing::perform(&Double, ctx, 21).await.unwrap(), 42);
/// # }
/// ```
pub async fn perform<J: Job>(
    job: &J,
    ctx: JobContext,
    args: J::Args,
) -> std::result::Result<J::Output, JobError> {
    let stored = crate::job::encode_args::<J>(&args)
        .map_err(|e| JobError::fail(format!("argument does not serialize: {e}")))?;
    let args: J::Args = crate::job::decode_args(&stored).map_err(JobError::fail)?;
    job.run(ctx, args).await
}

/// The arguments of every job of type `J` waiting in its queue (due or
/// scheduled, not running), oldest first: the payloads whose task name is
/// `J::NAME`, and, for a [`RAW`](Job::RAW) job, payloads without an
/// envelope (a queue's only job takes those too, but which job is a
/// queue's only one depends on the pool). Other jobs sharing the queue are
/// left out; a row of `J` whose arguments do not decode is
/// [`Error::PayloadDecode`], as it would go to dead rather than run.
///
/// ```
/// # use honker_actors::{Job, JobContext, JobError};
/// # struct Ping;
/// # impl Job for Ping {
/// #     const NAME: &'static str = "ping"; const QUEUE: &'static str = "ping";
/// #     type Args = u32; type Output = ();
/// #     async fn run(&self, _: JobContext, _: u32) -> Result<(), JobError> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let dir = tempfile::tempdir().unwrap();
/// let honker = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
/// honker.enqueue::<Ping>(7).await.unwrap();
/// assert_eq!(honker_actors::testing::enqueued::<Ping>(&honker).await.unwrap(), [7]);
/// # }
/// ```
pub async fn enqueued<J: Job>(honker: &Honker) -> Result<Vec<J::Args>> {
    let payloads = honker.store().waiting_payloads(J::QUEUE).await?;
    payloads
        .iter()
        .filter(|p| match honker_core::task_name(p) {
            Ok(Some(name)) => name == J::NAME,
            Ok(None) => J::RAW,
            Err(_) => false,
        })
        .map(|p| {
            crate::job::decode_args(p).map_err(|reason| Error::PayloadDecode {
                job: J::NAME,
                reason,
            })
        })
        .collect()
}

/// Fail with [`Error::NotEnqueued`] (which lists what was) unless a job of
/// type `J` whose arguments satisfy `matches` waits in its queue.
pub async fn assert_enqueued<J: Job>(
    honker: &Honker,
    matches: impl Fn(&J::Args) -> bool,
) -> Result<()>
where
    J::Args: std::fmt::Debug,
{
    let all = enqueued::<J>(honker).await?;
    if all.iter().any(matches) {
        return Ok(());
    }
    Err(Error::NotEnqueued {
        job: J::NAME,
        waiting: format!("{all:?}"),
    })
}

/// Wait until `queue` has nothing due, scheduled or running (a pool
/// working on it has drained it), at most `limit`; returns its counts
/// then, or [`Error::NotDrained`] with what was left.
pub async fn wait_until_drained(
    honker: &Honker,
    queue: &str,
    limit: Duration,
) -> Result<QueueStats> {
    let started = Instant::now();
    loop {
        let stats = honker.queue(queue).stats().await?;
        if stats.pending_due + stats.scheduled + stats.processing == 0 {
            return Ok(stats);
        }
        if started.elapsed() >= limit {
            return Err(Error::NotDrained {
                queue: queue.to_string(),
                waited: started.elapsed(),
                left: Box::new(stats),
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
