//! The claim stream: `queue.claim("worker-1")` as an async stream of jobs.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use honker_core::{ClaimedJob, RetryOutcome};

use crate::doubling::DoublingDelay;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::wake::Wake;
use crate::{Error, Queue, Result};

/// Longest pause after an error before the stream tries again.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(5);

impl Queue {
    /// An endless stream of jobs claimed one at a time for `worker_id`. It
    /// waits without polling the database: an enqueue by this process, a
    /// commit by another (after one cheap read), or the next due `run_at` /
    /// claim expiry wakes it. An error is yielded once, then it backs off.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> Result<(), honker_actors::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use futures::StreamExt;
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db"))?;
    /// let q = honker.queue("emails");
    /// q.enqueue(&"hello", Default::default()).await?;
    /// let mut jobs = q.claim("worker-1");
    /// let job = jobs.next().await.unwrap()?;
    /// assert_eq!(job.payload::<String>()?, "hello");
    /// assert!(job.ack().await?);
    /// # Ok(()) }
    /// ```
    pub fn claim(&self, worker_id: &str) -> ClaimStream {
        let notify = Arc::new(Notify::new());
        let enqueued = Arc::new(AtomicBool::new(true));
        let (n, e, name) = (notify.clone(), enqueued.clone(), self.name.clone());
        let guard = self.honker.listen(move |w| match w {
            Wake::Enqueued(q) if *q == &*name => {
                e.store(true, Ordering::Release);
                n.notify_one();
            }
            Wake::Enqueued(_) => {}
            Wake::Commit => n.notify_one(),
        });
        let state = StreamState {
            queue: self.clone(),
            worker: Arc::from(worker_id),
            notify,
            enqueued,
            _guard: guard,
            backoff: DoublingDelay::new(Duration::from_millis(50), MAX_ERROR_BACKOFF),
            pause: None,
        };
        ClaimStream {
            inner: futures::stream::unfold(state, next_job).boxed(),
        }
    }
}

struct StreamState {
    queue: Queue,
    worker: Arc<str>,
    notify: Arc<Notify>,
    /// Set by an enqueue to this queue: claim without the cheap read.
    enqueued: Arc<AtomicBool>,
    _guard: crate::wake::WakeGuard,
    backoff: DoublingDelay,
    /// After an error: wait this long before the next attempt.
    pause: Option<Duration>,
}

async fn next_job(mut st: StreamState) -> Option<(Result<StreamJob>, StreamState)> {
    if let Some(pause) = st.pause.take() {
        tokio::time::sleep(pause).await;
    }
    loop {
        let direct = st.enqueued.swap(false, Ordering::AcqRel);
        let attempt = async {
            if !direct {
                let (claimable, next) = st
                    .queue
                    .honker
                    .store()
                    .claim_outlook(&st.queue.name)
                    .await?;
                if !claimable {
                    return Ok((None, next));
                }
            }
            let mut jobs = st.queue.claim_batch(&st.worker, 1).await?;
            Ok::<_, Error>((jobs.pop(), None))
        };
        match attempt.await {
            Ok((Some(job), _)) => {
                st.backoff.reset();
                // There may be more: look again next time without waiting.
                st.enqueued.store(true, Ordering::Release);
                let item = StreamJob {
                    job,
                    queue: st.queue.clone(),
                };
                return Some((Ok(item), st));
            }
            Ok((None, next)) => {
                let next = match next {
                    Some(t) => Some(t),
                    None if direct => {
                        // The claim came back empty: learn the next due time.
                        st.queue
                            .honker
                            .store()
                            .claim_outlook(&st.queue.name)
                            .await
                            .ok()
                            .and_then(|(_, next)| next)
                    }
                    None => None,
                };
                wait(&st.notify, next).await;
            }
            Err(e) => {
                let pause = st.backoff.take();
                tracing::warn!(error = %e, queue = %st.queue.name, ?pause, "claim stream error");
                st.pause = Some(pause);
                st.enqueued.store(true, Ordering::Release);
                return Some((Err(e), st));
            }
        }
    }
}

/// Sleep until a wake or until unix second `at` (plus a few ms).
async fn wait(notify: &Notify, at: Option<i64>) {
    match at {
        Some(at) => {
            let delay = crate::clock::until_due(at);
            tokio::select! {
                () = notify.notified() => {}
                () = tokio::time::sleep(delay) => {}
            }
        }
        None => notify.notified().await,
    }
}

/// The stream returned by [`Queue::claim`].
pub struct ClaimStream {
    inner: BoxStream<'static, Result<StreamJob>>,
}

impl Stream for ClaimStream {
    type Item = Result<StreamJob>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// A job claimed by a [`ClaimStream`], with its completion methods. Derefs
/// to the [`ClaimedJob`] row.
#[derive(Debug)]
pub struct StreamJob {
    job: ClaimedJob,
    queue: Queue,
}

impl std::ops::Deref for StreamJob {
    type Target = ClaimedJob;
    fn deref(&self) -> &ClaimedJob {
        &self.job
    }
}

impl StreamJob {
    /// Decode the payload.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.job.payload).map_err(Error::Payload)
    }
    /// Delete the finished job; `false` when the claim was lost.
    pub async fn ack(&self) -> Result<bool> {
        self.queue.ack(&self.job.worker_id, self.job.lease()).await
    }
    /// Retry after `delay` (dead when attempts are exhausted).
    pub async fn retry(&self, delay: Duration, error: &str) -> Result<RetryOutcome> {
        self.queue
            .retry(&self.job.worker_id, self.job.lease(), delay, error)
            .await
    }
    /// Move to `_honker_dead`; `false` when the claim was lost.
    pub async fn fail(&self, error: &str) -> Result<bool> {
        self.queue
            .fail(&self.job.worker_id, self.job.lease(), error)
            .await
    }
    /// Extend the claim; `None` when it was lost.
    pub async fn heartbeat(&self, extend: Duration) -> Result<Option<i64>> {
        self.queue
            .heartbeat(&self.job.worker_id, self.job.lease(), extend)
            .await
    }
}
