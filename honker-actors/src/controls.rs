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
        let q = self.name.clone();
        self.control(move |c| honker_core::pause_queue(c, &q)).await
    }

    /// Let workers claim from this queue again. Returns whether it was
    /// paused.
    pub async fn resume(&self) -> Result<bool> {
        let q = self.name.clone();
        self.control(move |c| honker_core::resume_queue(c, &q))
            .await
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
        let q = self.name.clone();
        self.control(move |c| honker_core::set_max_running(c, &q, n))
            .await
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
        let q = self.name.clone();
        self.control(move |c| honker_core::set_rate_limit(c, &q, rate))
            .await
    }

    /// This queue's controls.
    pub async fn controls(&self) -> Result<QueueControls> {
        let q = self.name.clone();
        self.honker
            .writer()
            .read(move |c| Ok(honker_core::queue_controls(c, &q)?))
            .await
    }

    /// Write a control, then wake this process's pools so they apply it at
    /// once (other processes see the commit).
    async fn control<T: Send + 'static>(
        &self,
        f: impl FnOnce(&honker_core::rusqlite::Connection) -> honker_core::Result<T> + Send + 'static,
    ) -> Result<T> {
        let out = self.honker.writer().write(move |c| Ok(f(c)?)).await?;
        self.honker.notify_commit();
        Ok(out)
    }
}
