//! The worker actor: runs one job at a time through its handler.
//!
//! It decodes the payload, runs the handler under the job's timeout (the
//! handler future is polled right here and dropped on timeout or abort),
//! catches a panic, and reports the outcome to the supervisor. It never touches SQLite. After a handler panic the worker
//! fails on purpose, carrying the panic message, so the supervisor records
//! the retry and replaces it.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use honker_core::ClaimedJob;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument;

use crate::job::{ErasedJob, RunResult};
use crate::supervisor::{RunId, SupervisorMsg};
use crate::writer::panic_message;
use crate::JobContext;

pub(crate) struct Worker;

/// A job handed to a worker.
pub(crate) struct Assignment {
    pub(crate) job: ClaimedJob,
    /// The claim's run, named in the report.
    pub(crate) run: RunId,
    pub(crate) handler: Arc<dyn ErasedJob>,
    pub(crate) ctx: JobContext,
}

pub(crate) enum WorkerMsg {
    /// Run this job now and report how it went.
    Run(Box<Assignment>),
}

pub(crate) struct WorkerState {
    supervisor: ActorRef<SupervisorMsg>,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = ActorRef<SupervisorMsg>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        supervisor: ActorRef<SupervisorMsg>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(WorkerState { supervisor })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let WorkerMsg::Run(a) = message;
        let Assignment {
            job,
            run,
            handler,
            ctx,
        } = *a;
        let signals = ctx.signals.clone();
        let timeout = handler.options().timeout;
        let span = tracing::info_span!(
            "honker.job",
            job = handler.name(),
            queue = %job.queue,
            job_id = job.id,
            attempt = job.attempts,
        );
        let started = Instant::now();
        // Polled here, so a worker that is killed drops the run with it.
        let handler_run =
            AssertUnwindSafe(handler.run(ctx, job.payload).instrument(span.clone())).catch_unwind();
        let timer = async {
            match timeout {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            finished = handler_run => match finished {
                Ok(r) => r,
                Err(payload) => {
                    let msg = panic_message(&*payload);
                    span.in_scope(|| tracing::error!(panic = %msg, "job handler panicked"));
                    // Fail this worker: the supervisor records the retry and replaces it.
                    return Err(format!("panicked: {msg}").into());
                }
            },
            () = timer => RunResult::TimedOut(timeout.unwrap_or(Duration::ZERO)),
            () = signals.abort.raised() => RunResult::Aborted,
        };
        let elapsed = started.elapsed();
        if state
            .supervisor
            .cast(SupervisorMsg::Finished {
                worker: myself.get_id(),
                run,
                result,
                elapsed,
            })
            .is_err()
        {
            // The pool is gone; the claim lapses and another worker runs the job.
            span.in_scope(|| tracing::warn!("pool stopped before the outcome could be recorded"));
        }
        Ok(())
    }
}
