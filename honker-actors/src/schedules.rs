//! [`Schedules`]: the file's periodic jobs, from a [`Honker`].

use honker_core::{ScheduleRow, ScheduleSpec};

use crate::{Honker, Result};

/// The file's schedules (`_honker_scheduler_tasks`, shared with the Python
/// package's `Scheduler`): add, update, pause, resume, remove, list. A pool
/// with its scheduler on fires them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), honker_actors::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// use honker_actors::core::ScheduleSpec;
/// let honker = honker_actors::Honker::open(dir.path().join("a.db"))?;
/// let s = honker.schedules();
/// s.add(ScheduleSpec::new("nightly", "reports", "0 3 * * *", r#"{"kind":"daily"}"#)).await?;
/// assert_eq!(s.list().await?.len(), 1);
/// assert!(s.pause("nightly").await?);
/// assert!(s.remove("nightly").await?);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Schedules {
    honker: Honker,
}

impl Honker {
    /// The file's schedules.
    pub fn schedules(&self) -> Schedules {
        Schedules {
            honker: self.clone(),
        }
    }
}

impl Schedules {
    /// Add a schedule, or update one of the same name. An unchanged one
    /// keeps its next boundary; a new or changed one fires next at its
    /// first boundary after now. Wakes the schedulers of this process.
    pub async fn add(&self, spec: ScheduleSpec) -> Result<()> {
        self.honker.store().register_schedules(vec![spec]).await?;
        self.honker.notify_commit();
        Ok(())
    }

    /// Remove a schedule; `false` when there was none.
    pub async fn remove(&self, name: &str) -> Result<bool> {
        self.honker.store().remove_schedule(name).await
    }

    /// Pause a schedule: nothing fires until [`resume`](Self::resume).
    pub async fn pause(&self, name: &str) -> Result<bool> {
        self.set_enabled(name, false).await
    }

    /// Resume a paused schedule; its misfire policy decides what fell
    /// while it was paused.
    pub async fn resume(&self, name: &str) -> Result<bool> {
        self.set_enabled(name, true).await
    }

    async fn set_enabled(&self, name: &str, on: bool) -> Result<bool> {
        self.honker.store().set_schedule_enabled(name, on).await
    }

    /// Enqueue schedule `name`'s job now, outside its timetable, paused or
    /// not; its next fire time is unchanged. The job's id, or `None` when
    /// there is no such schedule.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use honker_actors::{core::ScheduleSpec, Honker};
    /// let honker = Honker::open(dir.path().join("a.db")).unwrap();
    /// let nightly = ScheduleSpec::new("nightly", "reports", "0 3 * * *", "{}");
    /// honker.schedules().add(nightly).await.unwrap();
    /// let id = honker.schedules().run_now("nightly").await.unwrap().unwrap();
    /// assert!(honker.queue("reports").get_job(id).await.unwrap().is_some());
    /// # }
    /// ```
    pub async fn run_now(&self, name: &str) -> Result<Option<i64>> {
        let id = self.honker.store().run_schedule_now(name).await?;
        if id.is_some() {
            self.honker.notify_commit();
        }
        Ok(id)
    }

    /// One schedule.
    pub async fn get(&self, name: &str) -> Result<Option<ScheduleRow>> {
        self.honker.store().get_schedule(name).await
    }

    /// Every schedule, by name.
    pub async fn list(&self) -> Result<Vec<ScheduleRow>> {
        self.honker.store().list_schedules().await
    }
}
