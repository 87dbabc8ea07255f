//! [`Queue`]: the untyped API of one queue, mirroring the format's operations.

use std::sync::Arc;
use std::time::Duration;

use honker_core::rusqlite::Connection;
use honker_core::{ClaimedJob, DeadJob, EnqueueOptions, Lease, QueueStats, RetryOutcome};
use serde::Serialize;

use crate::writer::Writer;
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

    /// Enqueue a call of task `name` (a job kind another process, in Rust
    /// or Python, runs) with `args` as its argument, in the envelope
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
        let q = self.name.clone();
        let id = self
            .write(move |c| Ok(honker_core::enqueue(c, &q, &json, &opts)?))
            .await?;
        telemetry::enqueued(&self.name);
        self.honker.notify_enqueued(&self.name);
        Ok(id)
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
        crate::writer::refuse_on_writer_thread()?;
        let (q, w, vis) = (self.name.clone(), worker_id.to_string(), self.visibility);
        let (reply, rx) = tokio::sync::oneshot::channel();
        let writer = self.honker.writer().clone();
        self.honker.writer().write_then(
            move |c| Ok(honker_core::claim_batch(c, &q, &w, n, vis)?),
            move |result: Result<Vec<ClaimedJob>>| {
                if let Err(Ok(jobs)) = reply.send(result) {
                    give_back(&writer, jobs);
                }
            },
        );
        let mut pending = PendingClaim {
            rx: Some(rx),
            writer: self.honker.writer().clone(),
        };
        let rx = pending.rx.as_mut().ok_or(Error::WriterStopped)?;
        let out = rx.await.map_err(|_| Error::WriterStopped)?;
        pending.rx = None;
        out
    }

    /// Ack many claims in one transaction; returns the ids acked.
    pub async fn ack_batch(&self, worker_id: &str, leases: &[Lease]) -> Result<Vec<i64>> {
        let (l, w, q) = (leases.to_vec(), worker_id.to_string(), self.name.clone());
        let acked = self
            .write(move |c| {
                let ours: Vec<Lease> = l
                    .into_iter()
                    .filter(|l| in_queue(c, &q, l.id).unwrap_or(false))
                    .collect();
                Ok(honker_core::ack_batch(c, &w, &ours)?)
            })
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
        let (w, e, q) = (worker_id.to_string(), error.to_string(), self.name.clone());
        self.write(move |c| {
            if !in_queue(c, &q, lease.id)? {
                return Ok(RetryOutcome::Lost);
            }
            Ok(honker_core::retry(c, &w, lease, delay, &e)?)
        })
        .await
    }

    /// Move a claim to dead; `false` when it was lost.
    pub async fn fail(&self, worker_id: &str, lease: Lease, error: &str) -> Result<bool> {
        let (w, e, q) = (worker_id.to_string(), error.to_string(), self.name.clone());
        self.write(move |c| Ok(in_queue(c, &q, lease.id)? && honker_core::fail(c, &w, lease, &e)?))
            .await
    }

    /// Extend a claim; `None` when it was lost.
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        lease: Lease,
        extend: Duration,
    ) -> Result<Option<i64>> {
        let (w, q) = (worker_id.to_string(), self.name.clone());
        self.write(move |c| {
            if !in_queue(c, &q, lease.id)? {
                return Ok(None);
            }
            Ok(honker_core::heartbeat(c, &w, lease, extend)?)
        })
        .await
    }

    /// Cancel a pending or processing job of this queue: it moves to
    /// `_honker_dead` as `cancelled`. `false` when this queue has no such
    /// live job (a job of another queue is never touched). A pool running
    /// it, in any process, tells its handler within milliseconds
    /// (`ctx.stopping()` gives `StopReason::Cancelled`), writes no outcome
    /// for it, and drops the run after its `cancel_grace`.
    pub async fn cancel(&self, id: i64) -> Result<bool> {
        let q = self.name.clone();
        let cancelled = self
            .write(move |c| Ok(honker_core::cancel_in(c, &q, id)?))
            .await?;
        if cancelled {
            self.honker.notify_commit();
        }
        Ok(cancelled)
    }

    /// Read a live job of this queue (`None` for a job of another queue).
    pub async fn get_job(&self, id: i64) -> Result<Option<honker_core::JobRow>> {
        let q = self.name.clone();
        self.honker
            .writer()
            .read(move |c| Ok(honker_core::get_job_in(c, &q, id)?))
            .await
    }

    /// Counts for this queue.
    pub async fn stats(&self) -> Result<QueueStats> {
        let q = self.name.clone();
        self.honker
            .writer()
            .read(move |c| Ok(honker_core::queue_stats(c, &q)?))
            .await
    }

    /// Dead jobs of this queue, oldest first.
    pub async fn list_dead(&self, limit: usize, offset: usize) -> Result<Vec<DeadJob>> {
        let q = self.name.clone();
        self.honker
            .writer()
            .read(move |c| Ok(honker_core::list_dead(c, &q, limit, offset)?))
            .await
    }

    /// Move a dead job of this queue back to live with fresh attempts
    /// (`false` when this queue has no dead job `id`).
    pub async fn requeue_dead(&self, id: i64) -> Result<bool> {
        let q = self.name.clone();
        let requeued = self
            .write(move |c| Ok(honker_core::requeue_dead_in(c, &q, id)?))
            .await?;
        if requeued {
            self.honker.notify_enqueued(&self.name);
        }
        Ok(requeued)
    }

    /// Move this queue's expired jobs to dead.
    pub async fn sweep_expired(&self) -> Result<usize> {
        let q = self.name.clone();
        self.write(move |c| Ok(honker_core::sweep_expired(c, Some(&q))?))
            .await
    }

    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.honker.writer().write(f).await
    }
}

/// Whether live job `id` belongs to `queue`: a queue handle acts only on
/// its own queue's jobs (the fenced operations themselves match id, worker
/// and attempt, not the queue).
fn in_queue(c: &Connection, queue: &str, id: i64) -> Result<bool> {
    Ok(honker_core::get_job_in(c, queue, id)?.is_some())
}

/// A claim's reply not yet taken. Dropped before it is taken (the caller
/// stopped waiting), it gives back whatever the claim returned; a claim
/// that returns after the drop is given back by the writer side.
struct PendingClaim {
    rx: Option<tokio::sync::oneshot::Receiver<Result<Vec<ClaimedJob>>>>,
    writer: Writer,
}

impl Drop for PendingClaim {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if let Ok(Ok(jobs)) = rx.try_recv() {
                give_back(&self.writer, jobs);
            }
        }
    }
}

/// Release claims whose caller stopped waiting for them.
fn give_back(writer: &Writer, jobs: Vec<ClaimedJob>) {
    let Some(first) = jobs.first() else {
        return;
    };
    let worker = first.worker_id.clone();
    let leases: Vec<Lease> = jobs.iter().map(ClaimedJob::lease).collect();
    writer.write_then(
        move |c| Ok(honker_core::release(c, &worker, &leases)?),
        |released: Result<usize>| {
            if let Err(e) = released {
                tracing::warn!(error = %e,
                    "could not give back claims nobody waited for; they run again once they lapse");
            }
        },
    );
}
