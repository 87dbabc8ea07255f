//! The worker actor: runs the jobs handed to it, one at a time, through
//! their handlers.
//!
//! It decodes each payload, runs the handler under the job's timeout (the
//! handler future is polled right here and dropped on timeout or abort),
//! catches a panic, and reports the outcomes to the supervisor. It never
//! touches SQLite.
//!
//! A message carries one job, or a short batch of jobs measured fast (the
//! supervisor decides; see `supervisor::dispatch`). The outcomes of a batch
//! go back in one message (two when the rest of it is handed back early;
//! only the last frees the worker). A job whose claim was lost, whose
//! queue was paused, whose pool is stopping, whose `expires_at` passed, or
//! whose rate-limit window (the one its claim was counted in) ended
//! while it waited (in the mailbox, or behind others of its batch) is not
//! started; it is reported
//! aborted, so its claim is given back with the attempt unburned. When a
//! job of a batch runs longer than [`HAND_BACK_AFTER`] (seen by a timer
//! while it awaits, or when it returns if it never yields), the jobs
//! behind it go back to the pool's buffer at once, for other workers.
//!
//! After a handler panic the worker reports what it ran and hands back
//! what it did not start, then fails on purpose with [`PanicReported`], so
//! the supervisor records the retry and replaces it.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::FutureExt;
use honker_core::ClaimedJob;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument;

use crate::clock::unix_now;
use crate::context::JobSignals;
use crate::job::RunResult;
use crate::messages::{Assignment, PanicReported, Report, RunId, SupervisorMsg, WorkerMsg};
use crate::sqlite::panic_message;

pub(crate) struct Worker;

/// A job of a batch running longer than this hands the jobs behind it back
/// to the pool, for other workers.
const HAND_BACK_AFTER: Duration = Duration::from_millis(1);

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
        let WorkerMsg::Run { jobs, running } = message;
        let mut waiting: VecDeque<Assignment> = jobs.into();
        let mut reports = Vec::with_capacity(waiting.len());
        let mut panicked = None;
        while let Some(a) = waiting.pop_front() {
            // The message may have waited in the mailbox, and the jobs
            // behind the first in the batch: each starts only while wanted.
            if !still_wanted(&a) {
                reports.push(Report {
                    run: a.run,
                    result: RunResult::Aborted,
                    elapsed: Duration::ZERO,
                });
                continue;
            }
            running.store(a.run.get(), Ordering::Release);
            // A panic while the handler future is dropped (a timeout, an
            // abort) is caught too: it is the job's, not the worker's.
            let id = a.run;
            let run = AssertUnwindSafe(run_one(a))
                .catch_unwind()
                .map(move |r| r.unwrap_or_else(|p| Err((id, panic_message(&*p)))));
            tokio::pin!(run);
            let outcome = if waiting.is_empty() {
                run.await
            } else {
                tokio::select! {
                    biased;
                    outcome = &mut run => outcome,
                    () = tokio::time::sleep(HAND_BACK_AFTER) => {
                        // Slower than its job was measured: the jobs behind it go back
                        // to the pool now, with what already ran.
                        let back = unstarted(&mut waiting);
                        let done = std::mem::take(&mut reports);
                        report(&myself, state, done, back, None, false);
                        run.await
                    }
                }
            };
            running.store(0, Ordering::Release);
            match outcome {
                Ok(r) => {
                    // A handler that never yields is not stopped by the
                    // timer above: once it is back, the jobs behind it go.
                    let slow = r.elapsed > HAND_BACK_AFTER;
                    reports.push(r);
                    if slow && !waiting.is_empty() {
                        let back = unstarted(&mut waiting);
                        let done = std::mem::take(&mut reports);
                        report(&myself, state, done, back, None, false);
                    }
                }
                Err(p) => {
                    panicked = Some(p);
                    break;
                }
            }
        }
        let back = unstarted(&mut waiting);
        report(&myself, state, reports, back, panicked.clone(), true);
        match panicked {
            // Fail this worker: the supervisor replaces it.
            Some((_, msg)) => Err(Box::new(PanicReported(msg))),
            None => Ok(()),
        }
    }
}

/// Tell the supervisor how the jobs went, and hand back those not started;
/// `last`: the message is done with (the worker is free, unless it
/// panicked).
fn report(
    myself: &ActorRef<WorkerMsg>,
    state: &WorkerState,
    reports: Vec<Report>,
    returned: Vec<(RunId, ClaimedJob)>,
    panicked: Option<(RunId, String)>,
    last: bool,
) {
    let sent = state.supervisor.cast(SupervisorMsg::Finished {
        worker: myself.get_id(),
        reports,
        returned,
        panicked,
        last,
    });
    if sent.is_err() {
        // The pool is gone; the claims lapse and other workers run the
        // jobs.
        tracing::warn!("pool stopped before the outcomes could be recorded");
    }
}

/// The jobs of a batch not started, handed back with their claims.
fn unstarted(waiting: &mut VecDeque<Assignment>) -> Vec<(RunId, ClaimedJob)> {
    waiting.drain(..).map(|a| (a.run, a.job)).collect()
}

/// Whether a job that waited (in the mailbox, or behind others of its
/// batch) should start.
fn still_wanted(a: &Assignment) -> bool {
    wanted_at(&a.ctx.signals, a.job.expires_at, a.start_before, unix_now())
}

/// Whether a job with `signals` may start at unix second `now`: not told
/// to stop, abort or hold back, its claim not lost, not expired, and
/// within the rate-limit window that counted it.
fn wanted_at(s: &JobSignals, expires_at: Option<i64>, start_before: Option<i64>, now: i64) -> bool {
    !s.stop.is_raised()
        && !s.abort.is_raised()
        && !s.claim_lost.load(Ordering::Acquire)
        && !s.held_back.load(Ordering::Acquire)
        && expires_at.is_none_or(|e| e > now)
        && start_before.is_none_or(|e| e > now)
}

/// Run one job; `Err` with its run and the message when its handler
/// panicked.
async fn run_one(a: Assignment) -> Result<Report, (RunId, String)> {
    let Assignment {
        job,
        run,
        handler,
        ctx,
        ..
    } = a;
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
                return Err((run, msg));
            }
        },
        () = timer => RunResult::TimedOut(timeout.unwrap_or(Duration::ZERO)),
        () = signals.abort.raised() => RunResult::Aborted,
    };
    Ok(Report {
        run,
        result,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_job_starts_only_while_wanted() {
        let fresh = JobSignals::default;
        assert!(wanted_at(&fresh(), None, None, 100));
        // Expiry and the rate window: wanted up to the second before.
        assert!(wanted_at(&fresh(), Some(101), Some(101), 100));
        assert!(!wanted_at(&fresh(), Some(100), None, 100), "expired");
        assert!(!wanted_at(&fresh(), None, Some(100), 100), "window over");
        assert!(wanted_at(&fresh(), Some(101), None, 100));
        assert!(wanted_at(&fresh(), None, Some(101), 100));
        // Each signal alone holds it back.
        let s = fresh();
        s.stop.raise();
        assert!(!wanted_at(&s, None, None, 100), "stopping");
        let s = fresh();
        s.abort.raise();
        assert!(!wanted_at(&s, None, None, 100), "aborted");
        let s = fresh();
        s.claim_lost.store(true, Ordering::Release);
        assert!(!wanted_at(&s, None, None, 100), "claim lost");
        let s = fresh();
        s.held_back.store(true, Ordering::Release);
        assert!(!wanted_at(&s, None, None, 100), "paused");
    }
}
