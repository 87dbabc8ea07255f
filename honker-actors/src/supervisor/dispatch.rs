//! Handing claimed jobs to workers, and turning finished runs into
//! outcomes to write: the part of the supervisor between a cycle's claims
//! and the next cycle's outcomes.

use std::sync::Arc;
use std::time::Duration;

use honker_core::ClaimedJob;
use ractor::ActorId;

use super::book::{NotStarted, Ready};
use super::{pause, SupervisorState};
use crate::clock::unix_now;
use crate::context::JobSignals;
use crate::job::RunResult;
use crate::messages::RunId;
use crate::messages::{Assignment, Report, WorkerMsg};
use crate::store::{Fence, Outcome};
use crate::JobContext;

/// The most measured run time one batch holds (seconds).
const BATCH_TIME: f64 = 0.000_5;
/// The most jobs in one batch.
const MAX_BATCH: usize = 16;

impl SupervisorState {
    /// Hand ready jobs to idle workers; give back those that expired.
    ///
    /// When more jobs wait than workers are free, a worker may get a
    /// short batch: jobs of jobs measured fast (`prefetch::BATCH_JOB_SECS`), in
    /// buffer order (highest priority first), up to an even share of the
    /// waiting jobs, [`MAX_BATCH`] jobs and [`BATCH_TIME`] of measured run
    /// time. So a job never waits behind a batch for longer than that, and
    /// a slow job is never batched.
    pub(super) fn dispatch_ready(&mut self) {
        if self.shutdown.is_some() {
            // Nothing new starts; the buffer was given back.
            return;
        }
        let now = unix_now();
        let mut gone = Vec::new();
        while let Some(&worker) = self.workers.idle.last() {
            let free = self.workers.idle.len();
            let Some(first) = self.book.next_ready(now, &mut gone) else {
                break;
            };
            self.workers.idle.pop();
            // The share of this worker: the waiting jobs spread evenly.
            let share = (self.book.ready_len() + 1).div_ceil(free).min(MAX_BATCH);
            let mut budget = self.run_times.batch_cost(first.job_name);
            let mut batch = vec![first];
            while batch.len() < share && budget.is_some_and(|b| b < BATCH_TIME) {
                let run_times = &self.run_times;
                let next = self.book.next_ready_if(now, &mut gone, |r| {
                    run_times.batch_cost(r.job_name).is_some()
                });
                let Some(r) = next else {
                    break;
                };
                budget = budget
                    .zip(self.run_times.batch_cost(r.job_name))
                    .map(|(a, b)| a + b);
                batch.push(r);
            }
            self.start_jobs(worker, batch);
        }
        for (r, why) in gone {
            match why {
                NotStarted::Expired => {
                    tracing::info!(
                        queue = r.queue,
                        job_id = r.job.id,
                        "job expired while waiting for a worker; not started"
                    );
                    self.pump.sweep_due = true;
                }
                NotStarted::WindowOver => {
                    tracing::info!(
                        queue = r.queue,
                        job_id = r.job.id,
                        "the rate-limit window that counted this job ended before a worker \
                         took it; given back, not started"
                    );
                    self.pump.work_maybe = true;
                }
            }
            self.pump.pending.push(Outcome::Release {
                fence: r.fence,
                queue: r.queue,
                job_name: r.job_name,
            });
        }
    }

    /// Hand `batch` (one job or more, in order) to `worker`.
    fn start_jobs(&mut self, worker: ActorId, batch: Vec<Ready>) {
        if self
            .workers
            .slots
            .get(&worker)
            .is_none_or(|s| !s.jobs.is_empty())
        {
            // Gone, or still busy (never expected: a worker is idle once).
            for r in batch.into_iter().rev() {
                self.book.unready(r);
            }
            return;
        }
        let mut assignments = Vec::with_capacity(batch.len());
        for r in batch {
            if let Some(a) = self.assignment(r) {
                assignments.push(a);
            }
        }
        let runs: Vec<RunId> = assignments.iter().map(|a| a.run).collect();
        let Some(slot) = self.workers.slots.get_mut(&worker) else {
            return;
        };
        if runs.is_empty() {
            self.workers.idle.push(worker);
            return;
        }
        slot.jobs = runs.clone();
        let msg = WorkerMsg::Run {
            jobs: assignments,
            running: slot.running.clone(),
        };
        if slot.worker.cast(msg).is_err() {
            // The worker is stopping; its supervision event will replace it.
            slot.jobs.clear();
            for run in runs {
                self.record(run, RunResult::Aborted, Duration::ZERO);
            }
        }
    }

    /// Start `r` in the book and build what its worker needs; `None` when
    /// it cannot run (then its outcome is recorded).
    fn assignment(&mut self, r: Ready) -> Option<Assignment> {
        let run = r.run;
        let signals = Arc::new(JobSignals::default());
        let Some(handler) = self.args.routes.job(r.job_name).cloned() else {
            // Routed to a registered job when claimed, so never here; if
            // it were, the job fails rather than waiting forever.
            self.book.start(&r, signals);
            let why = format!("no registered job named {:?}", r.job_name);
            self.record(run, RunResult::Fail(why), Duration::ZERO);
            return None;
        };
        let ctx = JobContext {
            id: r.job.id,
            queue: Arc::from(r.queue),
            attempt: u32::try_from(r.job.attempts).unwrap_or(u32::MAX),
            max_attempts: u32::try_from(r.job.max_attempts).unwrap_or(u32::MAX),
            worker_id: r.fence.worker.clone(),
            honker: self.args.honker.clone(),
            data: self.args.data.clone(),
            signals: signals.clone(),
        };
        let m = self.job_metrics(r.queue, r.job_name);
        // Whole seconds: the format keeps no finer time.
        m.wait
            .record(unix_now().saturating_sub(r.job.run_at).max(0) as f64);
        m.in_flight.increment(1.0);
        self.book.start(&r, signals);
        Some(Assignment {
            job: r.job,
            run,
            handler,
            ctx,
            start_before: r.start_before,
        })
    }

    /// A worker reported on jobs it was handed: how they went, those it
    /// hands back unstarted (they wait in the buffer again, claim kept),
    /// and the one whose handler panicked (the worker then fails).
    pub(super) fn finished(
        &mut self,
        worker: ActorId,
        reports: Vec<Report>,
        returned: Vec<(RunId, ClaimedJob)>,
        panicked: Option<(RunId, String)>,
        last: bool,
    ) {
        if let Some(slot) = self.workers.slots.get_mut(&worker) {
            slot.jobs.retain(|run| {
                !reports.iter().any(|r| r.run == *run)
                    && !returned.iter().any(|(r, _)| r == run)
                    && panicked.as_ref().is_none_or(|(p, _)| p != run)
            });
            // Free only when done with its message (an early hand-back
            // leaves it running one job), and only once.
            if last && panicked.is_none() && !self.workers.idle.contains(&worker) {
                if !slot.jobs.is_empty() {
                    tracing::error!(
                        runs = slot.jobs.len(),
                        "a worker finished its message without reporting every job"
                    );
                }
                self.workers.idle.push(worker);
            }
        }
        for r in reports {
            self.record(r.run, r.result, r.elapsed);
        }
        if !returned.is_empty() {
            for (run, job) in returned {
                if let Some((queue, job_name)) = self.book.unstart(run, job) {
                    self.job_metrics(queue, job_name).in_flight.decrement(1.0);
                }
            }
            // Back in the buffer: a stop or a pause seen since holds for
            // them as for any job not started.
            if self.shutdown.is_some() {
                self.release_ready();
            }
            let back = pause::hold_back(&mut self.book, &self.pump.queues, self.paused.list());
            self.pump.pending.extend(back);
        }
        if let Some((run, msg)) = panicked {
            self.worker_failed(run, &format!("panicked: {msg}"));
        }
        self.dispatch_ready();
    }

    pub(super) fn claims_lost(&mut self, lost: &[(Fence, honker_core::ClaimGone)]) {
        let cancelled: Vec<&Fence> = lost
            .iter()
            .filter(|(_, why)| *why == honker_core::ClaimGone::Cancelled)
            .map(|(f, _)| f)
            .collect();
        // Say why before the run is told to stop.
        for (_, run) in self.book.running() {
            if !run.lost && cancelled.contains(&&run.fence) {
                run.signals
                    .cancelled
                    .store(true, std::sync::atomic::Ordering::Release);
            }
        }
        let fences: Vec<Fence> = lost.iter().map(|(f, _)| f.clone()).collect();
        let (dropped, stopped) = self.book.lost(&fences);
        // A run told to stop gets the grace period, then it is dropped.
        let to_abort: Vec<_> = self
            .book
            .running()
            .filter(|(_, r)| r.lost && stopped.iter().any(|(f, _)| *f == r.fence))
            .map(|(_, r)| r.signals.clone())
            .collect();
        if !to_abort.is_empty() {
            let grace = self.args.cancel_grace;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                for s in to_abort {
                    s.abort.raise();
                }
            });
        }
        let not_started = dropped.into_iter().map(|l| (l, "before the job started"));
        let running = stopped
            .into_iter()
            .map(|l| (l, "while the job was running"));
        for ((fence, queue), when) in not_started.chain(running) {
            if let Some(m) = self.counters.queues.get(queue) {
                m.lost_claims.increment(1);
            }
            let job_id = fence.lease.id;
            if cancelled.contains(&&fence) {
                tracing::info!(job_id, queue, "job cancelled {when}");
            } else {
                tracing::warn!(job_id, queue, "claim lost {when}");
            }
        }
    }
}
