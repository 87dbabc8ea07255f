//! Handing claimed jobs to workers, and turning finished runs into
//! outcomes to write: the part of the supervisor between a cycle's claims
//! and the next cycle's outcomes.

use std::sync::Arc;
use std::time::Duration;

use honker_core::Lease;
use ractor::ActorId;

use super::book::{outcome_of, NotStarted, Ready, RunId};
use super::cycle::Outcome;
use super::SupervisorState;
use crate::clock::unix_now;
use crate::context::JobSignals;
use crate::job::{JobOptions, RunResult};
use crate::telemetry::JobMetrics;
use crate::worker::{Assignment, WorkerMsg};
use crate::JobContext;

/// Weight of the newest run in the moving average of run time.
const RUN_TIME_WEIGHT: f64 = 0.05;

impl SupervisorState {
    /// The metric handles of `kind` on `queue`.
    pub(super) fn job_metrics(&mut self, queue: &'static str, kind: &'static str) -> &JobMetrics {
        self.job_metrics
            .entry((queue, kind))
            .or_insert_with(|| JobMetrics::new(queue, kind))
    }

    /// Hand ready jobs to idle workers; give back those that expired.
    pub(super) fn dispatch_ready(&mut self) {
        let now = unix_now();
        let mut gone = Vec::new();
        while let Some(&worker) = self.idle.last() {
            let Some(r) = self.book.next_ready(now, &mut gone) else {
                break;
            };
            self.idle.pop();
            self.start_job(worker, r);
        }
        for (r, why) in gone {
            let NotStarted::Expired = why;
            tracing::info!(
                queue = r.queue,
                job_id = r.job.id,
                "job expired while waiting for a worker; not started"
            );
            self.sweep_due = true;
            self.pending.push(Outcome::Release {
                lease: r.job.lease(),
                queue: r.queue,
                kind: r.kind,
            });
        }
    }

    fn start_job(&mut self, worker: ActorId, r: Ready) {
        let run = r.run;
        let signals = Arc::new(JobSignals::default());
        let Some(handler) = self.args.routes.job(r.kind).cloned() else {
            // Routed to a registered job when claimed, so never here; if
            // it were, the job fails rather than waiting forever.
            self.book.start(&r, signals);
            self.idle.push(worker);
            let why = format!("no registered job named {:?}", r.kind);
            self.record(run, RunResult::Fail(why), Duration::ZERO);
            return;
        };
        if !self.slots.contains_key(&worker) {
            self.book.unready(r);
            return;
        }
        let ctx = JobContext {
            id: r.job.id,
            queue: Arc::from(r.queue),
            attempt: u32::try_from(r.job.attempts).unwrap_or(u32::MAX),
            max_attempts: u32::try_from(r.job.max_attempts).unwrap_or(u32::MAX),
            worker_id: self.args.worker_id.clone(),
            honker: self.args.honker.clone(),
            data: self.args.data.clone(),
            signals: signals.clone(),
        };
        let m = self.job_metrics(r.queue, r.kind);
        // Whole seconds: the format keeps no finer time.
        m.wait
            .record(unix_now().saturating_sub(r.job.run_at).max(0) as f64);
        m.in_flight.increment(1.0);
        self.book.start(&r, signals);
        let assignment = Box::new(Assignment {
            job: r.job,
            run,
            handler,
            ctx,
        });
        let Some(slot) = self.slots.get_mut(&worker) else {
            return;
        };
        slot.job = Some(run);
        if slot.worker.cast(WorkerMsg::Run(assignment)).is_err() {
            // The worker is stopping; its supervision event will replace it.
            slot.job = None;
            self.record(run, RunResult::Aborted, Duration::ZERO);
        }
    }

    pub(super) fn finished(
        &mut self,
        worker: ActorId,
        run: RunId,
        result: RunResult,
        elapsed: Duration,
    ) {
        if let Some(slot) = self.slots.get_mut(&worker) {
            if slot.job == Some(run) {
                slot.job = None;
                self.idle.push(worker);
            }
        }
        self.record(run, result, elapsed);
        self.dispatch_ready();
    }

    /// A worker died (a handler panicked) while running `run`.
    pub(super) fn worker_failed(&mut self, run: RunId, why: &str) {
        let error = if why.starts_with("panicked: ") {
            why.to_string()
        } else {
            format!("worker failed: {why}")
        };
        let site = self
            .book
            .running()
            .find(|(r, _)| **r == run)
            .map(|(_, r)| (r.queue, r.kind));
        if let Some((queue, kind)) = site {
            self.job_metrics(queue, kind).restarts.increment(1);
        }
        self.record(run, RunResult::Retry { after: None, error }, Duration::ZERO);
    }

    /// Turn a finished run into an outcome to write.
    pub(super) fn record(&mut self, id: RunId, result: RunResult, elapsed: Duration) {
        let Some(run) = self.book.finish(id) else {
            tracing::warn!(
                run = ?id,
                "a run finished whose claim the pool no longer holds; outcome dropped"
            );
            return;
        };
        let lease = run.lease;
        let m = self.job_metrics(run.queue, run.kind);
        m.in_flight.decrement(1.0);
        if !elapsed.is_zero() {
            m.duration.record(elapsed.as_secs_f64());
        }
        if !elapsed.is_zero() {
            let t = elapsed.as_secs_f64();
            self.avg_run = Some(match self.avg_run {
                None => t,
                Some(avg) => avg + RUN_TIME_WEIGHT * (t - avg),
            });
        }
        let shutting_down = self.shutdown.is_some();
        let default_opts;
        let opts = match self.args.routes.job(run.kind) {
            Some(j) => j.options(),
            None => {
                default_opts = JobOptions::default();
                &default_opts
            }
        };
        match outcome_of(&run, result, opts, shutting_down) {
            // Logged once written (`count_applied`): what happened, not
            // what was meant to.
            Some(o) => self.pending.push(o),
            None => tracing::warn!(
                job_id = lease.id,
                queue = run.queue,
                job = run.kind,
                attempt = lease.attempts,
                "run ended after its claim was lost; nothing written"
            ),
        }
    }

    pub(super) fn claims_lost(&mut self, lost: &[(Lease, honker_core::ClaimGone)]) {
        let cancelled: Vec<Lease> = lost
            .iter()
            .filter(|(_, why)| *why == honker_core::ClaimGone::Cancelled)
            .map(|(l, _)| *l)
            .collect();
        // Say why before the run is told to stop.
        for (_, run) in self.book.running() {
            if !run.lost && cancelled.contains(&run.lease) {
                run.signals
                    .cancelled
                    .store(true, std::sync::atomic::Ordering::Release);
            }
        }
        let leases: Vec<Lease> = lost.iter().map(|(l, _)| *l).collect();
        let (dropped, stopped) = self.book.lost(&leases);
        // A run told to stop gets the grace period, then it is dropped.
        let to_abort: Vec<_> = self
            .book
            .running()
            .filter(|(_, r)| r.lost && stopped.iter().any(|(l, _)| *l == r.lease))
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
        for ((lease, queue), when) in not_started.chain(running) {
            if let Some(m) = self.metrics.get(queue) {
                m.lost_claims.increment(1);
            }
            if cancelled.contains(&lease) {
                tracing::info!(job_id = lease.id, queue, "job cancelled {when}");
            } else {
                tracing::warn!(job_id = lease.id, queue, "claim lost {when}");
            }
        }
    }
}
