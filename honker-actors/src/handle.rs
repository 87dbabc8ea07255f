//! [`JobHandle`]: a typed enqueue's answer, whose result is typed by the job.

use std::any::TypeId;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::{Honker, Job, Result};

/// A job enqueued by a typed enqueue: its id, and a way to wait for its
/// result with the type the job returns, checked at compile time.
///
/// A handle from `enqueue_tx` names a job once that transaction commits.
/// After a rollback it names nothing, and SQLite may give its id to a later
/// job: drop it with the transaction.
///
/// ```
/// # use honker_actors::{Job, JobContext, JobError, Honker, WorkerPool};
/// # struct Square;
/// # impl Job for Square {
/// #     const NAME: &'static str = "square";
/// #     type Args = u64; type Output = u64;
/// #     async fn run(&self, _: JobContext, n: u64) -> Result<u64, JobError> { Ok(n * n) }
/// # }
/// # #[tokio::main] async fn main() -> honker_actors::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// let honker = Honker::open(dir.path().join("a.db"))?;
/// let pool = WorkerPool::builder(&honker).register(Square).start().await?;
/// let handle = honker.enqueue::<Square>(12).await?;
/// let n: u64 = handle.result(&honker, Duration::from_secs(10)).await?;
/// assert_eq!(n, 144);
/// pool.shutdown().await?;
/// # Ok(()) }
/// ```
pub struct JobHandle<J: Job> {
    id: i64,
    duplicate: bool,
    _job: PhantomData<fn() -> J>,
}

impl<J: Job> JobHandle<J> {
    pub(crate) fn from_outcome(done: honker_core::Enqueued) -> Self {
        JobHandle {
            id: done.id,
            duplicate: done.duplicate,
            _job: PhantomData,
        }
    }

    /// Whether a unique enqueue found an equal job waiting (or running)
    /// and inserted nothing: the handle is that job's.
    pub fn is_duplicate(&self) -> bool {
        self.duplicate
    }

    /// The job's id (its row's `id`).
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Wait up to `timeout` for the job's result, as
    /// [`Honker::result`] does: a job that died or was cancelled answers
    /// at once with [`Error::JobDead`](crate::Error::JobDead) (naming its
    /// `last_error`) or [`Error::JobCancelled`](crate::Error::JobCancelled).
    /// A job whose `Output` is `()` saves no result: its `result` is
    /// `Ok(())` once it has succeeded.
    pub async fn result(&self, honker: &Honker, timeout: Duration) -> Result<J::Output>
    where
        J::Output: DeserializeOwned,
    {
        let unit = TypeId::of::<J::Output>() == TypeId::of::<()>();
        honker.wait_result(self.id, timeout, unit).await
    }
}

impl<J: Job> Clone for JobHandle<J> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<J: Job> Copy for JobHandle<J> {}

impl<J: Job> PartialEq for JobHandle<J> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<J: Job> Eq for JobHandle<J> {}

impl<J: Job> std::hash::Hash for JobHandle<J> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl<J: Job> std::fmt::Debug for JobHandle<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("job", &J::NAME)
            .field("id", &self.id)
            .field("duplicate", &self.duplicate)
            .finish()
    }
}

/// The job id, as logs print it.
impl<J: Job> std::fmt::Display for JobHandle<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.id)
    }
}

impl<J: Job> From<JobHandle<J>> for i64 {
    fn from(h: JobHandle<J>) -> i64 {
        h.id
    }
}
