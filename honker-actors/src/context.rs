//! What a running job knows about itself: [`JobContext`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::{Honker, JobError, Result};

/// A one-way flag that async code can wait on.
#[derive(Default, Debug)]
pub(crate) struct Signal {
    raised: AtomicBool,
    notify: Notify,
}

impl Signal {
    pub(crate) fn raise(&self) {
        if !self.raised.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }
    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Acquire)
    }
    pub(crate) async fn raised(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_raised() {
                return;
            }
            notified.await;
        }
    }
}

/// Why a run is asked to stop early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The job was cancelled (by any process on the file): its outcome
    /// will not be written, and the run is dropped after the pool's
    /// `cancel_grace`.
    Cancelled,
    /// Another worker may have the job now: the claim lapsed or was
    /// re-claimed. Its ack will not count.
    ClaimLost,
    /// The pool is shutting down; finish quickly or be put back.
    Shutdown,
}

/// The signals the pool sends a running job.
#[derive(Default, Debug)]
pub(crate) struct JobSignals {
    /// Cooperative: claim lost or shutdown. The handler may keep going.
    pub(crate) stop: Signal,
    pub(crate) claim_lost: AtomicBool,
    /// The claim was lost because the job was cancelled.
    pub(crate) cancelled: AtomicBool,
    /// Its queue was paused: a job not yet started (waiting in a batch)
    /// is not started.
    pub(crate) held_back: AtomicBool,
    /// Forced: the run is dropped.
    pub(crate) abort: Signal,
}

/// Typed application state handed to the pool with `.data(..)`.
#[derive(Clone, Default)]
pub(crate) struct AppData(Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl AppData {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        Arc::make_mut(&mut self.0).insert(TypeId::of::<T>(), Arc::new(value));
    }
    fn get<T: 'static>(&self) -> Option<&T> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref())
    }
}

/// What a running job knows: its id, queue and attempt, its claim, the
/// application state, and whether it is asked to stop.
///
/// ```no_run
/// use std::time::Duration;
/// use honker_actors::{JobContext, JobError};
///
/// struct Mailer;
///
/// async fn handler(ctx: JobContext) -> Result<(), JobError> {
///     let _mailer: &Mailer = ctx.data::<Mailer>()?;        // from WorkerPool::builder(..).data(Mailer)
///     for chunk in 0..100 {
///         if ctx.is_stopping() { return Err(JobError::retry("stopping; will resume")); }
///         ctx.heartbeat(Duration::from_secs(300)).await?;  // long job: keep the claim
///         let _ = chunk;
///     }
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct JobContext {
    pub(crate) id: i64,
    pub(crate) queue: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) worker_id: Arc<str>,
    pub(crate) honker: Honker,
    pub(crate) data: AppData,
    pub(crate) signals: Arc<JobSignals>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id)
            .field("queue", &self.queue)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl JobContext {
    /// The job's id (its row id).
    pub fn id(&self) -> i64 {
        self.id
    }
    /// The queue it was claimed from.
    pub fn queue(&self) -> &str {
        &self.queue
    }
    /// The schedule and boundary (unix seconds) this job was fired for,
    /// when a schedule fired it (a pool's scheduler, or
    /// `honker_core::fire_due`); `None` otherwise.
    pub async fn scheduled_at(&self) -> Result<Option<(String, i64)>> {
        self.honker.store().fired_for(self.id).await
    }

    /// This run's attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
    /// Attempts allowed in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    /// Whether this is the last attempt (a retryable error now means dead).
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
    /// The handle to the database, to enqueue follow-up jobs.
    pub fn honker(&self) -> &Honker {
        &self.honker
    }

    /// Application state of type `T` given to the pool with `.data(..)`.
    /// When none was, a permanent error (the job goes to `_honker_dead` at
    /// once; retrying cannot help a configuration error) with a message
    /// naming the type and `WorkerPoolBuilder::data`.
    pub fn data<T: Send + Sync + 'static>(&self) -> Result<&T, JobError> {
        self.data.get::<T>().ok_or_else(|| {
            JobError::fail(format!(
                "no application data of type {} was given to the worker pool (WorkerPoolBuilder::data)",
                std::any::type_name::<T>()
            ))
        })
    }

    /// Extend this job's claim to at least `extend` from now. `Ok(false)`
    /// when the claim was lost (another worker may run the job). The pool
    /// already heartbeats every running job; call this only to extend
    /// further than the pool's visibility timeout.
    pub async fn heartbeat(&self, extend: Duration) -> Result<bool> {
        let lease = honker_core::Lease {
            id: self.id,
            attempts: i64::from(self.attempt),
        };
        let fence = crate::store::Fence {
            worker: self.worker_id.clone(),
            lease,
        };
        let gone = self.honker.store().extend_claim(fence, extend).await?;
        let Some(why) = gone else {
            return Ok(true);
        };
        if why == honker_core::ClaimGone::Cancelled {
            self.signals.cancelled.store(true, Ordering::Release);
        }
        self.signals.claim_lost.store(true, Ordering::Release);
        self.signals.stop.raise();
        Ok(false)
    }

    /// Resolves when the job is asked to stop: it was cancelled (noticed
    /// within milliseconds of the cancel's commit, from any process), its
    /// claim was lost, or the pool is shutting down. Use it in
    /// `tokio::select!` to stop early.
    pub async fn stopping(&self) -> StopReason {
        self.signals.stop.raised().await;
        self.stop_reason().unwrap_or(StopReason::Shutdown)
    }

    /// Whether the job has been asked to stop.
    pub fn is_stopping(&self) -> bool {
        self.signals.stop.is_raised()
    }

    /// Why the job was asked to stop, if it was.
    pub fn stop_reason(&self) -> Option<StopReason> {
        if !self.signals.stop.is_raised() {
            None
        } else if self.signals.cancelled.load(Ordering::Acquire) {
            Some(StopReason::Cancelled)
        } else if self.signals.claim_lost.load(Ordering::Acquire) {
            Some(StopReason::ClaimLost)
        } else {
            Some(StopReason::Shutdown)
        }
    }
}
