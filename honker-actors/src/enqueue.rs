//! Typed enqueues: [`EnqueueBuilder`] and [`enqueue_tx`].

use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use honker_core::{EnqueueOptions, Unique, UniqueWhile};

use crate::store::{BatchJob, EnqueueTx};
use crate::{telemetry, Honker, Job, JobHandle, Result};

/// Options for one typed enqueue, starting from the job's defaults.
///
/// ```
/// # use honker_actors::{EnqueueBuilder, Job, JobContext, JobError, Honker};
/// # struct Ping;
/// # impl Job for Ping {
/// #     const NAME: &'static str = "ping"; const QUEUE: &'static str = "ping";
/// #     type Args = u32; type Output = ();
/// #     async fn run(&self, _: JobContext, _: u32) -> Result<(), JobError> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// let honker = Honker::open(dir.path().join("a.db")).unwrap();
/// let handle = EnqueueBuilder::<Ping>::new(7)
///     .delay(Duration::from_secs(60))
///     .priority(10)
///     .expires(Duration::from_secs(3600))
///     .enqueue(&honker).await.unwrap();
/// assert_eq!(honker.queue("ping").get_job(handle.id()).await.unwrap().unwrap().priority, 10);
/// # }
/// ```
pub struct EnqueueBuilder<J: Job> {
    args: J::Args,
    opts: EnqueueOptions,
    unique: Option<UniqueBy>,
    _job: PhantomData<fn() -> J>,
}

/// How a typed enqueue is unique.
#[derive(Clone, Debug)]
struct UniqueBy {
    /// An explicit key; `None`: by the arguments.
    key: Option<String>,
    while_: UniqueWhile,
    period: Option<Duration>,
}

impl<J: Job> EnqueueBuilder<J> {
    /// Start from `args` and the job's default options.
    pub fn new(args: J::Args) -> Self {
        let options = J::options();
        EnqueueBuilder {
            args,
            opts: options.enqueue_options(),
            unique: options.unique.map(|u| UniqueBy {
                key: None,
                while_: u.while_,
                period: u.period,
            }),
            _job: PhantomData,
        }
    }

    /// Replace every option at once.
    pub fn options(mut self, opts: EnqueueOptions) -> Self {
        self.opts = opts;
        self
    }

    fn with(mut self, f: impl FnOnce(EnqueueOptions) -> EnqueueOptions) -> Self {
        self.opts = f(self.opts);
        self
    }

    /// [`EnqueueOptions::delay`]: due `d` from now (whole seconds, rounded up).
    pub fn delay(self, d: Duration) -> Self {
        self.with(|o| o.delay(d))
    }
    /// [`EnqueueOptions::run_at`]: due at `t` (whole seconds, rounded up).
    pub fn run_at(self, t: SystemTime) -> Self {
        self.with(|o| o.run_at(t))
    }
    /// [`EnqueueOptions::priority`]: higher is claimed first.
    pub fn priority(self, p: i64) -> Self {
        self.with(|o| o.priority(p))
    }
    /// [`EnqueueOptions::expires`]: never run after `d` from now.
    pub fn expires(self, d: Duration) -> Self {
        self.with(|o| o.expires(d))
    }
    /// [`EnqueueOptions::max_attempts`]: claims allowed.
    pub fn max_attempts(self, n: u32) -> Self {
        self.with(|o| o.max_attempts(n))
    }

    fn unique_by(mut self, f: impl FnOnce(&mut UniqueBy)) -> Self {
        let mut u = self.unique.take().unwrap_or(UniqueBy {
            key: None,
            while_: UniqueWhile::Active,
            period: None,
        });
        f(&mut u);
        self.unique = Some(u);
        self
    }

    /// Unique by the job's name and arguments: while an equal job of this
    /// name waits or runs, the enqueue inserts nothing and answers with
    /// that job ([`JobHandle::is_duplicate`]). `#[job(unique)]` makes it
    /// the job's default.
    ///
    /// ```
    /// # use honker_actors::{EnqueueBuilder, Job, JobContext, JobError, Honker};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const NAME: &'static str = "ping"; const QUEUE: &'static str = "ping";
    /// #     type Args = u32; type Output = ();
    /// #     async fn run(&self, _: JobContext, _: u32) -> Result<(), JobError> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let honker = Honker::open(dir.path().join("a.db")).unwrap();
    /// let first = EnqueueBuilder::<Ping>::new(7).unique().enqueue(&honker).await.unwrap();
    /// let again = EnqueueBuilder::<Ping>::new(7).unique().enqueue(&honker).await.unwrap();
    /// assert!(again.is_duplicate() && again.id() == first.id());
    /// # }
    /// ```
    pub fn unique(self) -> Self {
        self.unique_by(|_| {})
    }
    /// Unique by `key` instead of the arguments (one key per queue).
    pub fn unique_key(self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.unique_by(|u| u.key = Some(key))
    }
    /// Unique only while the matching job is pending: once it runs, an
    /// equal one may be enqueued.
    pub fn unique_while_pending(self) -> Self {
        self.unique_by(|u| u.while_ = UniqueWhile::Pending)
    }
    /// Also refuse duplicates for `d` after the first enqueue, whatever
    /// became of it (at most once per period).
    pub fn unique_period(self, d: Duration) -> Self {
        self.unique_by(|u| u.period = Some(d))
    }

    /// The payload and the options, the uniqueness key included.
    fn prepare(self) -> Result<(String, EnqueueOptions)> {
        let payload = crate::job::encode_args::<J>(&self.args)?;
        let mut opts = self.opts;
        if let Some(u) = self.unique {
            let mut rule = match u.key {
                Some(k) => Unique::key(k),
                None => Unique::by_args(J::NAME, &self.args)?,
            };
            rule.while_ = u.while_;
            rule.period = u.period;
            opts.unique = Some(rule);
        }
        Ok((payload, opts))
    }

    /// Enqueue through the writer (group commit); wakes this process's
    /// pools at once.
    pub async fn enqueue(self, honker: &Honker) -> Result<JobHandle<J>> {
        let (payload, opts) = self.prepare()?;
        let done = honker.store().enqueue(J::QUEUE, payload, opts).await?;
        counted::<J>(done);
        if !done.duplicate {
            honker.notify_enqueued(J::QUEUE);
        }
        Ok(JobHandle::from_outcome(done))
    }

    /// Add this enqueue to `batch`, to commit with its other jobs.
    pub fn add_to(self, batch: &mut Batch) -> Result<()> {
        let (payload, opts) = self.prepare()?;
        batch.jobs.push(BatchJob {
            queue: J::QUEUE.to_string(),
            payload,
            opts,
        });
        batch.names.push((J::QUEUE, J::NAME));
        Ok(())
    }

    /// Enqueue in the application's own transaction (any [`EnqueueTx`]:
    /// on SQLite, a reference to its own connection, transaction or
    /// savepoint, answering at once; on PostgreSQL, its own sqlx
    /// connection or transaction, answering a future); commits or rolls
    /// back with it. Pools see the commit through their watch.
    pub fn enqueue_tx<T: EnqueueTx>(self, tx: T) -> T::Answer<JobHandle<J>> {
        let job = self.prepare().map(|(payload, opts)| BatchJob {
            queue: J::QUEUE.to_string(),
            payload,
            opts,
        });
        tx.enqueue_then(job, |done| {
            counted::<J>(done);
            JobHandle::from_outcome(done)
        })
    }
}

fn counted<J: Job>(done: honker_core::Enqueued) {
    count(J::QUEUE, J::NAME, done);
}

fn count(queue: &'static str, name: &'static str, done: honker_core::Enqueued) {
    if done.duplicate {
        telemetry::duplicate_job(queue, name);
    } else {
        telemetry::enqueued_job(queue, name);
    }
}

/// Typed jobs, of any kinds, to enqueue in one transaction: all of them
/// or none (Sidekiq's `push_bulk`, Oban's `insert_all`, River's
/// `InsertMany`). On any store; one commit for the lot.
///
/// ```
/// # use honker_actors::{Batch, EnqueueBuilder, Job, JobContext, JobError, Honker};
/// # struct Ping;
/// # impl Job for Ping {
/// #     const NAME: &'static str = "ping"; const QUEUE: &'static str = "ping";
/// #     type Args = u32; type Output = ();
/// #     async fn run(&self, _: JobContext, _: u32) -> Result<(), JobError> { Ok(()) }
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let dir = tempfile::tempdir().unwrap();
/// let honker = Honker::open(dir.path().join("a.db")).unwrap();
/// let mut batch = Batch::new();
/// for n in 0..3 {
///     batch.push(EnqueueBuilder::<Ping>::new(n)).unwrap();
/// }
/// let done = honker.enqueue_batch(batch).await.unwrap();
/// assert_eq!(done.len(), 3);
/// assert_eq!(honker.queue("ping").stats().await.unwrap().pending_due, 3);
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Batch {
    jobs: Vec<BatchJob>,
    names: Vec<(&'static str, &'static str)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Add a typed enqueue (`name::builder(args)`, with its options);
    /// refused at once when its arguments cannot be encoded.
    pub fn push<J: Job>(&mut self, job: EnqueueBuilder<J>) -> Result<&mut Batch> {
        job.add_to(self)?;
        Ok(self)
    }

    /// How many jobs it holds.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

impl Honker {
    /// Enqueue every job of `batch` in one transaction: all of them, or
    /// none when one is refused (a bad option, a queue name) or the store
    /// fails. One answer per job, in the order pushed.
    pub async fn enqueue_batch(&self, batch: Batch) -> Result<Vec<honker_core::Enqueued>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let done = self.store().enqueue_batch(batch.jobs).await?;
        for (&(queue, name), &d) in batch.names.iter().zip(&done) {
            count(queue, name, d);
        }
        let mut woken: Vec<&str> = Vec::new();
        for (&(queue, _), d) in batch.names.iter().zip(&done) {
            if !d.duplicate && !woken.contains(&queue) {
                woken.push(queue);
                self.notify_enqueued(queue);
            }
        }
        Ok(done)
    }
}

/// Enqueue a typed job in the application's own transaction (any
/// [`EnqueueTx`]: on SQLite, a reference to its own connection,
/// transaction or savepoint, answering at once; on PostgreSQL, its own
/// sqlx transaction, answering a future). It commits or rolls back with
/// that transaction.
///
/// ```
/// # use honker_actors::{Job, JobContext, JobError};
/// # struct Ping;
/// # impl Job for Ping {
/// #     const NAME: &'static str = "ping"; const QUEUE: &'static str = "ping";
/// #     type Args = u32; type Output = ();
/// #     async fn run(&self, _: JobContext, _: u32) -> Result<(), JobError> { Ok(()) }
/// # }
/// let mut conn = honker_core::open_in_memory().unwrap();
/// let tx = conn.transaction().unwrap();
/// honker_actors::enqueue_tx::<Ping, _>(&tx, 1).unwrap();
/// tx.rollback().unwrap();                                  // the job is gone with it
/// assert_eq!(honker_core::queue_stats(&conn, "ping").unwrap().pending_due, 0);
/// ```
pub fn enqueue_tx<J: Job, T: EnqueueTx>(tx: T, args: J::Args) -> T::Answer<JobHandle<J>> {
    EnqueueBuilder::<J>::new(args).enqueue_tx(tx)
}
