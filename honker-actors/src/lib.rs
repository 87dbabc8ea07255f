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
//! let id = honker.enqueue::<SendEmail>(&Email { to: "a@b.c".into() }).await?;
//! let pool = WorkerPool::builder(&honker).register(SendEmail).concurrency(4).start().await?;
//! # while honker.queue("emails").get_job(id).await?.is_some() {
//! #     tokio::time::sleep(std::time::Duration::from_millis(5)).await;
//! # }
//! pool.shutdown().await?;
//! # Ok(()) }
//! ```

mod context;
mod error;
mod heartbeat;
mod honker;
mod job;
mod pool;
mod stream;
mod supervisor;
mod telemetry;
mod wake;
mod worker;
mod writer;

pub use context::{JobContext, StopReason};
pub use error::{Error, Result};
pub use honker::{enqueue_tx, EnqueueBuilder, Honker, Queue};
pub use honker_core as core;
pub use honker_core::{ClaimedJob, DeadJob, EnqueueOptions, Lease, QueueStats, RetryOutcome};
pub use job::{Backoff, Job, JobError, JobOptions};
pub use pool::{WorkerPool, WorkerPoolBuilder, DEFAULT_CONCURRENCY, DEFAULT_SHUTDOWN_TIMEOUT};
pub use stream::{ClaimStream, StreamJob};
pub use supervisor::PoolStatus;
