//! Background jobs in your SQLite file, run by actors inside your service.
//!
//! Jobs are rows in the application's own database (the honker format,
//! shared with the `honker` Python package and other bindings), so an
//! enqueue commits or rolls back with the application's writes and there is
//! no broker. A [`WorkerPool`] is a supervisor actor that owns the claim
//! scheduler, worker actors that run [`Job`] handlers, and a heartbeat
//! actor that keeps running jobs' claims alive. All SQLite work happens on
//! one writer thread per [`Honker`], which commits every write waiting for
//! it in one transaction.
//!
//! ```
//! use honker_actors::{Honker, Job, JobContext, JobError, WorkerPool};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Email { to: String }
//!
//! struct SendEmail;
//! impl Job for SendEmail {
//!     const NAME: &'static str = "send_email";
//!     const QUEUE: &'static str = "emails";
//!     type Args = Email;
//!     type Output = ();
//!     async fn run(&self, _ctx: JobContext, email: Email) -> Result<(), JobError> {
//!         println!("sending to {}", email.to);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), honker_actors::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let honker = Honker::open(dir.path().join("app.db"))?;
//! let job = honker.enqueue::<SendEmail>(Email { to: "a@b.c".into() }).await?;
//! let pool = WorkerPool::builder(&honker).register(SendEmail).concurrency(4).start().await?;
//! job.result(&honker, std::time::Duration::from_secs(10)).await?; // () once it has run
//! pool.shutdown().await?;
//! # Ok(()) }
//! ```

mod admin;
mod clock;
mod context;
mod controls;
mod doubling;
mod enqueue;
mod error;
mod handle;
mod heartbeat;
mod honker;
mod job;
mod listeners;
mod lock;
mod messages;
mod periodic;
mod pool;
#[cfg(feature = "postgres")]
pub mod postgres;
mod queue;
mod routing;
mod schedules;
pub mod sqlite;
pub mod store;
mod stream;
mod supervisor;
mod telemetry;
pub mod testing;
mod wake;
mod worker;

pub use context::{JobContext, StopReason};
pub use enqueue::{enqueue_tx, Batch, EnqueueBuilder};
pub use error::{ConfigError, Error, Result};
pub use handle::JobHandle;
pub use honker::Honker;
pub use honker_core as core;
pub use honker_macros::job;
pub use job::{Backoff, Job, JobError, JobOptions, UniqueArgs};
pub use listeners::Listening;
pub use lock::LockGuard;
pub use messages::PoolStatus;
pub use periodic::{DEFAULT_SCHEDULER_LOCK_TTL, SCHEDULER_LOCK};
pub use pool::{
    WorkerPool, WorkerPoolBuilder, DEFAULT_CANCEL_GRACE, DEFAULT_CONCURRENCY,
    DEFAULT_SHUTDOWN_TIMEOUT, MAX_CONCURRENCY,
};
pub use queue::Queue;
pub use schedules::Schedules;
#[cfg(feature = "test-util")]
#[doc(hidden)]
pub use sqlite::{Fault, FaultHook};
pub use stream::{ClaimStream, StreamJob};

/// Support for the code `#[job]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    use std::cell::Cell;

    use crate::JobError;

    /// The `Result` a `#[job]` function returns, whatever alias names it.
    #[diagnostic::on_unimplemented(
        message = "a #[job] function must return `Result<O, E>`, not `{Self}`",
        label = "this must be a `Result` (for example `Result<(), JobError>`)"
    )]
    pub trait JobResult {
        type Ok;
        type Err;
        fn into_result(self) -> Result<Self::Ok, Self::Err>;
    }
    impl<O, E> JobResult for Result<O, E> {
        type Ok = O;
        type Err = E;
        fn into_result(self) -> Result<O, E> {
            self
        }
    }

    /// A handler's error, taken through a shared reference by the most
    /// specific of the conversions below (autoref specialization).
    pub struct Wrap<E>(Cell<Option<E>>);

    impl<E> Wrap<E> {
        pub fn new(e: E) -> Self {
            Wrap(Cell::new(Some(e)))
        }
        fn take(&self) -> E {
            self.0.take().expect("a #[job] error is converted once")
        }
    }

    /// `JobError` as it is.
    pub trait ViaJobError {
        fn into_job_error(self) -> JobError;
    }
    impl ViaJobError for &&&Wrap<JobError> {
        fn into_job_error(self) -> JobError {
            self.take()
        }
    }

    /// A `std::error::Error`: retryable, with its source chain.
    pub trait ViaStdError {
        fn into_job_error(self) -> JobError;
    }
    impl<E: std::error::Error + Send + Sync + 'static> ViaStdError for &&Wrap<E> {
        fn into_job_error(self) -> JobError {
            JobError::from(self.take())
        }
    }

    /// Anything else that displays (`anyhow::Error`): retryable, with its
    /// alternate form (anyhow's cause chain).
    pub trait ViaDisplay {
        fn into_job_error(self) -> JobError;
    }
    impl<E: std::fmt::Display> ViaDisplay for &Wrap<E> {
        fn into_job_error(self) -> JobError {
            JobError::retry(format!("{:#}", self.take()))
        }
    }
}
