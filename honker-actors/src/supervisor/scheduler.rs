//! When the supervisor runs a cycle, what it does with the answer, how
//! claimed jobs reach workers, and the wake-up timers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use honker_core::{DoublingDelay, Lease};
use ractor::{ActorId, ActorRef};

use super::book::{outcome_of, NotStarted, Ready, RunId};
use super::cycle::{self, Applied, ClaimPlan, Cycle, CycleOutput, NextTimes, Outcome};
use super::{SupervisorMsg, SupervisorState};
use crate::clock::{unix_now, until_due};
use crate::context::JobSignals;
use crate::job::{JobOptions, RunResult};
use crate::routing::{Route, UNROUTED};
use crate::telemetry::JobMetrics;
use crate::worker::{Assignment, WorkerMsg};
use crate::{JobContext, Result};

/// Housekeeping (expiry sweep, result sweep, queue depth) at least this
/// often while the pool is active.
pub(super) const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);
/// Back-off after a failed cycle or check, doubling up to the maximum.
pub(super) fn retry_backoff() -> DoublingDelay {
    DoublingDelay::new(MIN_RETRY_BACKOFF, MAX_RETRY_BACKOFF)
}
const MIN_RETRY_BACKOFF: Duration = Duration::from_millis(50);
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);
/// Jobs faster than this on average get the large prefetch buffer.
const FAST_JOB: f64 = 0.005;
/// Weight of the newest run in the moving average of run time.
const RUN_TIME_WEIGHT: f64 = 0.05;
/// Cycles in flight at once: one committing, one queued behind it.
const MAX_CYCLES_IN_FLIGHT: usize = 2;

/// What a cycle carried to the writer, handed back with its answer.
#[derive(Clone)]
pub(crate) struct Sent {
    outcomes: Vec<Outcome>,
    plan: ClaimPlan,
    /// `wake_seq` when it started.
    seq: u64,
}

impl SupervisorState {
    /// The prefetch buffer for the jobs' measured run time.
    fn buffer(&self) -> usize {
        let c = self.args.concurrency;
        match self.avg_run {
            None => c,
            Some(t) if t < FAST_JOB => 2 * c,
            Some(_) => (c / 4).max(1),
        }
    }

    /// Start the next cycle or check if one is due.
    pub(super) fn pump(&mut self, myself: &ActorRef<SupervisorMsg>) {
        if self.cycles_running >= MAX_CYCLES_IN_FLIGHT
            || self.check_running
            || self.retry_timer.is_some()
        {
            return;
        }
        if self.shutdown.is_some() {
            if !self.pending.is_empty() {
                if self.cycles_running == 0 {
                    self.start_cycle(myself, ClaimPlan::default());
                }
            } else if self.book.running_len() == 0 && self.cycles_running == 0 {
                self.complete_shutdown(Ok(()));
            }
            return;
        }
        self.maybe_read_depths(myself);
        let room = if self.work_maybe || self.commit_seen {
            self.book.room(self.buffer())
        } else {
            0
        };
        if self.cycles_running > 0 {
            // A second cycle only when it carries a worthwhile batch, for
            // workers the running one will not fill (not the prefetch
            // buffer: two cycles that each see the other's reservation
            // would leave no worker free for a queue limited across
            // processes, and keep starting each other, claiming nothing);
            // otherwise wait for the running one to come back.
            let worthwhile = (self.args.concurrency / 2).max(1);
            let claimable = if self.work_maybe { self.book.free() } else { 0 };
            if self.pending.len() < worthwhile && claimable < worthwhile {
                return;
            }
        }
        let plan = if self.work_maybe || (self.commit_seen && !self.pending.is_empty()) {
            self.plan_claims(room)
        } else {
            ClaimPlan::default()
        };
        let housekeeping = self.sweep_due
            || self
                .last_housekeeping
                .is_none_or(|t| t.elapsed() >= HOUSEKEEPING_EVERY);
        tracing::trace!(
            work_maybe = self.work_maybe,
            commit_seen = self.commit_seen,
            room,
            pending = self.pending.len(),
            ?plan,
            housekeeping,
            cycles = self.cycles_running,
            "pump"
        );
        if !self.pending.is_empty() || !plan.queues.is_empty() || housekeeping {
            if !plan.queues.is_empty() {
                self.commit_seen = false;
            }
            self.start_cycle(myself, plan);
        } else if self.commit_seen && room > 0 && self.cycles_running == 0 {
            self.commit_seen = false;
            self.start_check(myself);
        }
    }

    /// The pool's room as one budget, each queue's room under its own
    /// limit, in rotating order; reserved in the book until the cycle
    /// comes back.
    fn plan_claims(&mut self, budget: usize) -> ClaimPlan {
        if budget == 0 || self.queues.is_empty() {
            return ClaimPlan::default();
        }
        let n = self.queues.len();
        self.rotate = (self.rotate + 1) % n;
        let order: Vec<&'static str> = (0..n).map(|i| self.queues[(self.rotate + i) % n]).collect();
        self.book.plan(budget, &order)
    }

    fn start_cycle(&mut self, myself: &ActorRef<SupervisorMsg>, plan: ClaimPlan) {
        self.cycles_running += 1;
        let sweep = self.sweep_due
            || self
                .last_housekeeping
                .is_none_or(|t| t.elapsed() >= HOUSEKEEPING_EVERY);
        if sweep {
            self.sweep_due = false;
            self.last_housekeeping = Some(Instant::now());
        }
        let sent = Arc::new(Sent {
            outcomes: std::mem::take(&mut self.pending),
            plan,
            seq: self.wake_seq,
        });
        let worker_id = self.args.worker_id.clone();
        let visibility = self.args.visibility;
        let queues = self.queues.clone();
        let me = myself.clone();
        let for_writer = sent.clone();
        self.args.honker.writer().write_then(
            move |c| {
                cycle::run_cycle(
                    c,
                    &Cycle {
                        worker_id: &worker_id,
                        outcomes: &for_writer.outcomes,
                        plan: &for_writer.plan,
                        visibility,
                        queues: &queues,
                        sweep,
                    },
                )
            },
            move |output| {
                let sent = Box::new(Arc::try_unwrap(sent).unwrap_or_else(|a| (*a).clone()));
                // A stopped pool cannot take the answer; nothing to do then.
                let _ = me.cast(SupervisorMsg::CycleDone { output, sent });
            },
        );
    }

    fn start_check(&mut self, myself: &ActorRef<SupervisorMsg>) {
        self.check_running = true;
        let queues = self.queues.clone();
        let honker = self.args.honker.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let result = honker
                .writer()
                .read(move |c| {
                    let mut claimable = false;
                    for q in &queues {
                        claimable |= honker_core::has_claimable(c, q)?;
                    }
                    Ok((claimable, cycle::next_times(c, &queues)?))
                })
                .await;
            let _ = me.cast(SupervisorMsg::Checked(result));
        });
    }

    pub(super) fn checked(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        result: Result<(bool, NextTimes)>,
    ) {
        self.check_running = false;
        match result {
            Ok((claimable, next)) => {
                self.backoff.reset();
                self.work_maybe |= claimable;
                self.plan_wake(myself, next);
            }
            Err(e) => {
                tracing::warn!(error = %e, "checking for claimable jobs failed");
                self.commit_seen = true;
                self.retry_later(myself);
            }
        }
    }

    /// Read each queue's depth for the gauge, outside any write
    /// transaction, at most every few seconds.
    fn maybe_read_depths(&mut self, myself: &ActorRef<SupervisorMsg>) {
        if self.depth_read_running
            || self
                .last_depths
                .is_some_and(|t| t.elapsed() < HOUSEKEEPING_EVERY)
        {
            return;
        }
        self.depth_read_running = true;
        self.last_depths = Some(Instant::now());
        let queues = self.queues.clone();
        let honker = self.args.honker.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let result = honker
                .writer()
                .read(move |c| {
                    let mut d = Vec::with_capacity(queues.len());
                    for q in queues {
                        d.push((q, honker_core::pending_due_count(c, q)?));
                    }
                    Ok(d)
                })
                .await;
            let _ = me.cast(SupervisorMsg::Depths(result));
        });
    }

    pub(super) fn depths_read(&mut self, result: Result<Vec<(&'static str, i64)>>) {
        self.depth_read_running = false;
        match result {
            Ok(depths) => {
                for (q, d) in depths {
                    if let Some(m) = self.metrics.get(q) {
                        m.depth.set(d as f64);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading queue depths failed"),
        }
    }

    pub(super) fn cycle_done(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        output: Result<CycleOutput>,
        sent: Sent,
    ) {
        self.cycles_running -= 1;
        self.book.unreserve(&sent.plan);
        let out = match output {
            Ok(out) => out,
            Err(e) => {
                self.cycle_failures += 1;
                tracing::warn!(error = %e, outcomes = sent.outcomes.len(),
                    failures = self.cycle_failures, "pool cycle failed; will retry");
                // Never dropped: oldest first, ahead of anything newer.
                let newer = std::mem::replace(&mut self.pending, sent.outcomes);
                self.pending.extend(newer);
                self.work_maybe = true;
                if self.shutdown_gives_up() {
                    return;
                }
                self.retry_later(myself);
                return;
            }
        };
        self.cycle_failures = 0;
        let mut trouble = !out.claim_errors.is_empty();
        for (o, applied) in sent.outcomes.into_iter().zip(out.applied) {
            match applied {
                Ok(applied) => self.count_applied(&o, applied),
                Err(why) => {
                    tracing::warn!(queue = o.queue(), job_id = o.lease().id, error = %why,
                        "could not record a job outcome; will retry");
                    self.pending.push(o);
                    trouble = true;
                }
            }
        }
        for (q, why) in &out.claim_errors {
            tracing::warn!(queue = q, error = %why, "claiming failed for this queue; will retry");
        }
        for job in out.claimed {
            let Some(queue) = self.queues.iter().copied().find(|q| *q == job.queue) else {
                continue;
            };
            let (id, attempt, lease) = (job.id, job.attempts, job.lease());
            let route = self.args.routes.route(queue, &job.payload);
            if self.shutdown.is_some() {
                // Claimed by a cycle sent before the shutdown began:
                // straight back, attempt unburned, never started.
                let kind = match &route {
                    Route::Run(handler) => handler.name(),
                    Route::Dead(_) => UNROUTED,
                };
                self.pending.push(Outcome::Release { lease, queue, kind });
                continue;
            }
            // An outcome not yet written for the same lease belongs to an
            // earlier claim of a job requeued since: writing it would
            // complete this new claim.
            self.pending.retain(|o| o.lease() != lease);
            let kind = match route {
                Route::Run(handler) => handler.name(),
                Route::Dead(error) => {
                    // Never run by a handler it was not written for. An
                    // earlier run of the same lease (requeued since) is
                    // superseded, as for a routed claim.
                    self.claims_lost(&[(lease, honker_core::ClaimGone::Lost)]);
                    self.pending.push(Outcome::Fail {
                        lease,
                        queue,
                        kind: UNROUTED,
                        error,
                    });
                    continue;
                }
            };
            if self.book.claimed(job, queue, kind) > 0 {
                tracing::warn!(
                    job_id = id,
                    attempt,
                    queue,
                    job = kind,
                    "job claimed anew with the same attempt number (requeued from dead) while an \
                     earlier run of it was going; that run's claim is lost"
                );
            }
        }
        self.give_back_paused(&out.paused);
        self.dispatch_ready();
        tracing::trace!(
            planned = ?sent.plan, maybe_more = out.maybe_more,
            seq = sent.seq, wake_seq = self.wake_seq, cycles = self.cycles_running,
            commit_seen = self.commit_seen, "cycle done"
        );
        if !out.maybe_more && self.wake_seq == sent.seq && self.cycles_running == 0 {
            // Every queue gave less than asked: drained until the next wake.
            self.work_maybe = false;
        }
        if let Some(next) = out.next {
            self.plan_wake(myself, next);
        }
        if trouble {
            self.work_maybe = true;
            // A shutdown does not wait forever for outcomes that keep
            // failing either.
            if self.shutdown_gives_up() {
                return;
            }
            self.retry_later(myself);
        } else {
            self.backoff.reset();
        }
    }

    /// Count what writing `o` did, and log it: one line per retry, death
    /// or lost claim, with the job's error as written.
    fn count_applied(&mut self, o: &Outcome, applied: Applied) {
        let (lease, queue, job) = (o.lease(), o.queue(), o.kind());
        let m = self.job_metrics(queue, job);
        let error = match o {
            Outcome::Retry { error, .. } | Outcome::Fail { error, .. } => error.as_str(),
            _ => "",
        };
        let message = match applied {
            Applied::Acked => return m.success.increment(1),
            Applied::Released => return m.released.increment(1),
            Applied::Retried => {
                m.retried.increment(1);
                let delay = match o {
                    Outcome::Retry { delay, .. } => delay.as_secs(),
                    _ => 0,
                };
                format!("job failed; retrying in {delay} s: {error}")
            }
            Applied::Dead => {
                m.dead.increment(1);
                format!("job moved to _honker_dead: {error}")
            }
            Applied::Lost => {
                m.lost.increment(1);
                "claim was lost before the outcome was recorded; nothing written".to_string()
            }
        };
        let (job_id, attempt) = (lease.id, lease.attempts);
        if applied == Applied::Retried {
            tracing::info!(queue, job, job_id, attempt, "{message}");
        } else {
            tracing::warn!(queue, job, job_id, attempt, "{message}");
        }
    }

    /// Jobs of paused queues claimed but not started go back, attempt
    /// unburned: a pause stops starts, not only claims.
    pub(super) fn give_back_paused(&mut self, paused: &[String]) {
        for q in paused {
            let Some(queue) = self.queues.iter().copied().find(|name| name == q) else {
                continue;
            };
            let back = self.book.drain_ready_of(queue);
            if !back.is_empty() {
                tracing::info!(
                    queue,
                    jobs = back.len(),
                    "queue paused; giving back jobs not started"
                );
            }
            for r in back {
                self.pending.push(Outcome::Release {
                    lease: r.job.lease(),
                    queue: r.queue,
                    kind: r.kind,
                });
            }
        }
    }

    /// The metric handles of `kind` on `queue`.
    fn job_metrics(&mut self, queue: &'static str, kind: &'static str) -> &JobMetrics {
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

    /// Wake at the next due time.
    pub(super) fn plan_wake(&mut self, myself: &ActorRef<SupervisorMsg>, next: NextTimes) {
        self.schedule_timer(myself, next.first());
    }

    /// Wake at `at` (unix seconds), replacing a later timer.
    fn schedule_timer(&mut self, myself: &ActorRef<SupervisorMsg>, at: Option<i64>) {
        if self.shutdown.is_some() {
            return;
        }
        let Some(at) = at else {
            return;
        };
        if let Some((current, handle)) = &self.timer {
            if *current <= at && !handle.is_finished() {
                return;
            }
            handle.abort();
        }
        // unixepoch() must read `at` when the claim runs: a few ms past it.
        let delay = until_due(at);
        let me = myself.clone();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = me.cast(SupervisorMsg::Wake(super::WakeKind::Timer));
        });
        self.timer = Some((at, handle));
    }

    pub(super) fn retry_later(&mut self, myself: &ActorRef<SupervisorMsg>) {
        if self.retry_timer.is_some() {
            return;
        }
        let delay = self.backoff.take();
        let me = myself.clone();
        self.retry_timer = Some(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = me.cast(SupervisorMsg::RetryNow);
        }));
    }
}
