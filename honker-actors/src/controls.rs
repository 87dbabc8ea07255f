//! Queue controls on [`Queue`]: pause and resume, a running limit across
//! every process, and a rate limit, all stored in the file (see
//! [`honker_core::pause_queue`]) and honoured by every honker-rs worker of
//! it at claim time. Other bindings' workers do not honour them.

use honker_core::{QueueControls, RateLimit};

use crate::{Queue, Result};

impl Queue {
    /// Pause this queue for every process on the file: no worker claims
    /// from it until [`resume`](Self::resume), also after a restart (it is
    /// stored). Running jobs finish; jobs a pool claimed but had not
    /// started go back at once. Returns whether it was running.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), honker_actors::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db"))?;
    /// let q = honker.queue("emails");
    /// assert!(q.pause().await?);
    /// assert!(q.controls().await?.paused);
    /// assert!(q.resume().await?);
    /// # Ok(()) }
    /// ```
    pub async fn pause(&self) -> Result<bool> {
        let out = self.honker.store().pause_queue(&self.name).await?;
        self.honker.notify_commit();
        Ok(out)
    }

    /// Let workers claim from this queue again. Returns whether it was
    /// paused.
    pub async fn resume(&self) -> Result<bool> {
        let out = self.honker.store().resume_queue(&self.name).await?;
        self.honker.notify_commit();
        Ok(out)
    }

    /// At most `n` jobs of this queue running at once across every worker
    /// of the file (`None`: no limit; `Some(0)` is refused: pause instead).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), honker_actors::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db"))?;
    /// honker.queue("reports").set_max_running(Some(3)).await?;
    /// assert_eq!(honker.queue("reports").controls().await?.max_running, Some(3));
    /// # Ok(()) }
    /// ```
    pub async fn set_max_running(&self, n: Option<u32>) -> Result<()> {
        self.honker.store().set_max_running(&self.name, n).await?;
        self.honker.notify_commit();
        Ok(())
    }

    /// At most `rate.limit` starts of this queue per `rate.per` (whole
    /// seconds) across every worker, in the fixed windows of the Python
    /// package's `try_rate_limit`, counted under the queue's name: a Python
    /// `db.try_rate_limit("QUEUE", limit, per)` counts in the same window.
    /// `None` removes it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), honker_actors::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use honker_actors::core::RateLimit;
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db"))?;
    /// let rate = RateLimit { limit: 10, per: Duration::from_secs(1) };
    /// honker.queue("api_calls").set_rate_limit(Some(rate)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_rate_limit(&self, rate: Option<RateLimit>) -> Result<()> {
        self.honker.store().set_rate_limit(&self.name, rate).await?;
        self.honker.notify_commit();
        Ok(())
    }

    /// This queue's controls.
    pub async fn controls(&self) -> Result<QueueControls> {
        self.honker.store().queue_controls(&self.name).await
    }
}
