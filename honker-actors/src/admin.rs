//! The operator's API on [`Queue`] and [`Honker`]: list jobs by state,
//! requeue or purge dead jobs one by one, by filter or all. (Counts are
//! [`Honker::stats`] and [`Queue::stats`]; controls are in `controls`.)

use honker_core::{DeadFilter, DeadJob, JobRow, LiveState};

use crate::{Honker, Queue, Result};

impl Queue {
    /// This queue's live jobs in `state`, `limit` from `offset` (pending in
    /// claim order, scheduled soonest first, running by claim deadline).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), honker_actors::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use honker_actors::core::LiveState;
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db"))?;
    /// let q = honker.queue("emails");
    /// q.enqueue(&1, Default::default()).await?;
    /// assert_eq!(q.list_jobs(LiveState::Pending, 50, 0).await?.len(), 1);
    /// # Ok(()) }
    /// ```
    pub async fn list_jobs(
        &self,
        state: LiveState,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<JobRow>> {
        self.honker
            .store()
            .list_jobs(&self.name, state, limit, offset)
            .await
    }

    /// [`list_jobs`](Self::list_jobs), only the jobs whose payload
    /// contains `text`: a job's name, or a piece of its arguments as the
    /// JSON is written. (Dead jobs: `DeadFilter::payload_contains`.)
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), honker_actors::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use honker_actors::core::LiveState;
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db"))?;
    /// let q = honker.queue("emails");
    /// q.enqueue(&serde_json::json!({"to": "ann@example.com"}), Default::default()).await?;
    /// q.enqueue(&serde_json::json!({"to": "bob@example.com"}), Default::default()).await?;
    /// assert_eq!(q.find_jobs(LiveState::Pending, "ann@", 50, 0).await?.len(), 1);
    /// # Ok(()) }
    /// ```
    pub async fn find_jobs(
        &self,
        state: LiveState,
        text: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<JobRow>> {
        self.honker
            .store()
            .find_jobs(&self.name, state, text, limit, offset)
            .await
    }

    /// Delete dead job `id` of this queue for good (`false`: this queue has
    /// no such dead job).
    pub async fn purge_dead(&self, id: i64) -> Result<bool> {
        self.honker.store().purge_dead_in(&self.name, id).await
    }

    /// Requeue this queue's dead jobs matching `filter` (its queue is this
    /// one, whatever it says) with fresh attempts; returns how many.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), honker_actors::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use honker_actors::core::DeadFilter;
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db"))?;
    /// let q = honker.queue("emails");
    /// let id = q.enqueue(&1, Default::default()).await?;
    /// q.cancel(id).await?;
    /// assert_eq!(q.requeue_dead_where(DeadFilter::default().error_contains("cancelled")).await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn requeue_dead_where(&self, filter: DeadFilter) -> Result<usize> {
        let n = self
            .honker
            .requeue_dead_where(filter.queue(&self.name))
            .await?;
        Ok(n)
    }

    /// Delete this queue's dead jobs matching `filter` for good; returns
    /// how many.
    pub async fn purge_dead_where(&self, filter: DeadFilter) -> Result<usize> {
        self.honker.purge_dead_where(filter.queue(&self.name)).await
    }
}

impl Honker {
    /// Dead jobs of the file matching `filter`, the newest death first, `limit` from
    /// `offset`.
    pub async fn list_dead_where(
        &self,
        filter: DeadFilter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<DeadJob>> {
        self.store().list_dead_where(filter, limit, offset).await
    }

    /// Requeue every dead job of the file matching `filter` (the default
    /// filter: all) with fresh attempts, due now; returns how many. Pools
    /// of this process wake at once.
    pub async fn requeue_dead_where(&self, filter: DeadFilter) -> Result<usize> {
        let n = self.store().requeue_dead_where(filter).await?;
        if n > 0 {
            self.notify_commit();
        }
        Ok(n)
    }

    /// Delete every dead job of the file matching `filter` (the default
    /// filter: all) for good; returns how many.
    pub async fn purge_dead_where(&self, filter: DeadFilter) -> Result<usize> {
        self.store().purge_dead_where(filter).await
    }
}
