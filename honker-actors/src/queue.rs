//! [`Queue`]: the untyped API of one queue, mirroring the format's operations.

use std::sync::Arc;
use std::time::Duration;

use honker_core::{ClaimedJob, DeadJob, EnqueueOptions, Lease, QueueStats, RetryOutcome};
use serde::Serialize;

use crate::{telemetry, Error, Honker, Result};

/// The untyped API of one queue, mirroring the format's operations.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), honker_actors::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// let honker = honker_actors::Honker::open(dir.path().join("a.db"))?;
/// let q = honker.queue("reports");
/// q.enqueue(&serde_json::json!({"month": 5}), Default::default()).await?;
/// let jobs = q.claim_batch("worker-1", 10).await?;
/// let leases: Vec<_> = jobs.iter().map(|j| j.lease()).collect();
/// assert_eq!(q.ack_batch("worker-1", &leases).await?.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Queue {
    pub(crate) honker: Honker,
    pub(crate) name: Arc<str>,
    pub(crate) visibility: Duration,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("name", &self.name).finish()
    }
}

impl Queue {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Use `d` as the visibility timeout of claims made through this handle
    /// (default 300 s; whole seconds, rounded up, at least 1).
    pub fn with_visibility_timeout(mut self, d: Duration) -> Self {
        self.visibility = d;
        self
    }

    /// Enqueue any serializable payload; returns the job id.
    pub async fn enqueue<T: Serialize + ?Sized>(
        &self,
        payload: &T,
        opts: EnqueueOptions,
    ) -> Result<i64> {
        let json = serde_json::to_string(payload).map_err(Error::Serialize)?;
        self.enqueue_json(json, opts).await
    }

    /// Enqueue a call of the job named `name` (a job another process, in
    /// Rust or Python, runs; the format's envelope calls it a task) with `args` as its argument, in the envelope
    /// typed jobs and Python's `@task` write: an `args` that serializes to
    /// a JSON object is the keyword arguments, anything else the one
    /// positional argument. Returns the job id; wait for the result with
    /// [`Honker::result`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), honker_actors::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db"))?;
    /// let q = honker.queue("py_tasks");
    /// let id = q.enqueue_task("wordcount", &serde_json::json!({"text": "a b"}), Default::default()).await?;
    /// let row = q.get_job(id).await?.unwrap();
    /// assert_eq!(honker_actors::core::task_name(&row.payload).unwrap().as_deref(), Some("wordcount"));
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_task<T: Serialize + ?Sized>(
        &self,
        name: &str,
        args: &T,
        opts: EnqueueOptions,
    ) -> Result<i64> {
        if name.is_empty() {
            return Err(Error::Config(crate::ConfigError::EmptyTaskName));
        }
        let json = honker_core::task_payload(name, args).map_err(Error::Serialize)?;
        self.enqueue_json(json, opts).await
    }

    /// Enqueue JSON text (validated); returns the job id.
    pub async fn enqueue_json(&self, json: String, opts: EnqueueOptions) -> Result<i64> {
        serde_json::from_str::<serde::de::IgnoredAny>(&json).map_err(Error::InvalidPayload)?;
        let done = self.honker.store().enqueue(&self.name, json, opts).await?;
        telemetry::enqueued(&self.name);
        if !done.duplicate {
            self.honker.notify_enqueued(&self.name);
        }
        Ok(done.id)
    }

    /// Claim up to `n` jobs for `worker_id`.
    ///
    /// An ack, retry or fail names its claim by `worker_id` and the
    /// attempt number ([`Lease`]). A job cancelled, requeued with fresh
    /// attempts and claimed again gets the same attempt number, so a
    /// caller whose outcomes may be written late should not claim twice
    /// under one `worker_id` (a pool writes a new one for each claiming
    /// cycle).
    ///
    /// Dropping the returned future while the claim is in flight loses
    /// nothing: claims whose caller stopped waiting are given back at once
    /// (attempt unburned).
    pub async fn claim_batch(&self, worker_id: &str, n: usize) -> Result<Vec<ClaimedJob>> {
        self.honker
            .store()
            .claim(&self.name, worker_id, n, self.visibility)
            .await
    }

    /// Ack many claims in one transaction; returns the ids acked.
    pub async fn ack_batch(&self, worker_id: &str, leases: &[Lease]) -> Result<Vec<i64>> {
        let acked = self
            .honker
            .store()
            .ack_in(&self.name, worker_id, leases.to_vec())
            .await?;
        telemetry::lost_claims(&self.name, leases.len() - acked.len());
        Ok(acked)
    }

    /// Ack one claim; `false` when it was lost.
    pub async fn ack(&self, worker_id: &str, lease: Lease) -> Result<bool> {
        Ok(self.ack_batch(worker_id, &[lease]).await?.len() == 1)
    }

    /// Retry a claim after `delay`, or move it to dead when exhausted.
    pub async fn retry(
        &self,
        worker_id: &str,
        lease: Lease,
        delay: Duration,
        error: &str,
    ) -> Result<RetryOutcome> {
        self.honker
            .store()
            .retry_in(&self.name, worker_id, lease, delay, error.to_string())
            .await
    }

    /// Move a claim to dead; `false` when it was lost.
    pub async fn fail(&self, worker_id: &str, lease: Lease, error: &str) -> Result<bool> {
        self.honker
            .store()
            .fail_in(&self.name, worker_id, lease, error.to_string())
            .await
    }

    /// Extend a claim; `None` when it was lost.
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        lease: Lease,
        extend: Duration,
    ) -> Result<Option<i64>> {
        self.honker
            .store()
            .heartbeat_in(&self.name, worker_id, lease, extend)
            .await
    }

    /// Cancel a pending or processing job of this queue: it moves to
    /// `_honker_dead` as `cancelled`. `false` when this queue has no such
    /// live job (a job of another queue is never touched). A pool running
    /// it, in any process, tells its handler within milliseconds
    /// (`ctx.stopping()` gives `StopReason::Cancelled`), writes no outcome
    /// for it, and drops the run after its `cancel_grace`.
    pub async fn cancel(&self, id: i64) -> Result<bool> {
        let cancelled = self.honker.store().cancel_in(&self.name, id).await?;
        if cancelled {
            self.honker.notify_commit();
        }
        Ok(cancelled)
    }

    /// Read a live job of this queue (`None` for a job of another queue).
    pub async fn get_job(&self, id: i64) -> Result<Option<honker_core::JobRow>> {
        self.honker.store().job_in(&self.name, id).await
    }

    /// Counts for this queue.
    pub async fn stats(&self) -> Result<QueueStats> {
        self.honker.store().queue_stats(&self.name).await
    }

    /// Dead jobs of this queue, the newest death first.
    pub async fn list_dead(&self, limit: usize, offset: usize) -> Result<Vec<DeadJob>> {
        self.honker.store().dead_in(&self.name, limit, offset).await
    }

    /// Move a dead job of this queue back to live with fresh attempts
    /// (`false` when this queue has no dead job `id`).
    pub async fn requeue_dead(&self, id: i64) -> Result<bool> {
        let requeued = self.honker.store().requeue_dead_in(&self.name, id).await?;
        if requeued {
            self.honker.notify_enqueued(&self.name);
        }
        Ok(requeued)
    }

    /// Move this queue's expired jobs to dead.
    pub async fn sweep_expired(&self) -> Result<usize> {
        self.honker.store().sweep_expired(&self.name).await
    }
}
