//! The claim pump: when the supervisor runs a cycle (outcomes, claims and
//! sweeps in one transaction of the store), what it asks of it, and what
//! it does with the answer; the cheap look after another process's
//! commit; the queue depths for the gauge.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::ActorRef;

use super::{pause, SupervisorMsg, SupervisorState};
use crate::routing::{Route, UNROUTED};
use crate::store::{ClaimPlan, CycleOutput, CycleRequest, Fence, NextTimes, Outcome};
use crate::Result;

/// Housekeeping (expiry sweep, result sweep, queue depth) at least this
/// often while the pool is active.
pub(super) const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);
/// Cycles in flight at once: one committing, one queued behind it.
const MAX_CYCLES_IN_FLIGHT: usize = 2;

impl SupervisorState {
    /// Start the next cycle or check if one is due.
    pub(super) fn pump(&mut self, myself: &ActorRef<SupervisorMsg>) {
        if self.cycles_running >= MAX_CYCLES_IN_FLIGHT
            || self.check_running
            || self.timers.backing_off()
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
            self.book.room(self.run_times.buffer())
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
            let worthwhile = self.run_times.worthwhile();
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
        // What each queue may hold: the workers plus its own buffer.
        let caps: HashMap<&'static str, usize> = order
            .iter()
            .map(|q| {
                (
                    *q,
                    self.args
                        .concurrency
                        .saturating_add(self.run_times.queue_buffer(q)),
                )
            })
            .collect();
        self.book.plan(budget, &order, |q| {
            caps.get(q).copied().unwrap_or(usize::MAX)
        })
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
        // Each cycle's claims write a worker string of their own, so no
        // two claims of a row share a fence (see `book::Fence`).
        self.cycles_started += 1;
        let worker: Arc<str> = format!("{}#{}", self.args.worker_id, self.cycles_started).into();
        let request = CycleRequest {
            worker,
            outcomes: std::mem::take(&mut self.pending),
            plan,
            visibility: self.args.visibility,
            queues: self.queues.clone(),
            sweep,
        };
        let seq = self.wake_seq;
        let me = myself.clone();
        self.args.honker.store().run_cycle(
            request,
            Box::new(move |request, output| {
                // A stopped pool cannot take the answer; nothing to do then.
                let _ = me.cast(SupervisorMsg::CycleDone {
                    output,
                    request: Box::new(request),
                    seq,
                });
            }),
        );
    }

    fn start_check(&mut self, myself: &ActorRef<SupervisorMsg>) {
        self.check_running = true;
        let queues = self.queues.clone();
        let honker = self.args.honker.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let result = honker.store().claimable(&queues).await;
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
                self.timers.succeeded();
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
            let result = honker.store().depths(&queues).await;
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
        sent: CycleRequest,
        seq: u64,
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
            let route = self.args.routes.route(queue, &job.payload);
            if self.shutdown.is_some() {
                // Claimed by a cycle sent before the shutdown began:
                // straight back, attempt unburned, never started.
                let kind = match &route {
                    Route::Run(handler) => handler.name(),
                    Route::Dead(_) => UNROUTED,
                };
                let fence = Fence::new(&sent.worker, &job);
                self.pending.push(Outcome::Release { fence, queue, kind });
                continue;
            }
            let kind = match route {
                Route::Run(handler) => handler.name(),
                Route::Dead(error) => {
                    // Never run by a handler it was not written for.
                    self.pending.push(Outcome::Fail {
                        fence: Fence::new(&sent.worker, &job),
                        queue,
                        kind: UNROUTED,
                        error,
                    });
                    continue;
                }
            };
            let start_before = out
                .start_before
                .iter()
                .find(|(q, _)| *q == queue)
                .map(|(_, end)| *end);
            let fence = Fence::new(&sent.worker, &job);
            self.book
                .claimed_until(job, fence, queue, kind, start_before);
        }
        self.paused_seen(out.paused, true);
        self.dispatch_ready();
        tracing::trace!(
            planned = ?sent.plan, maybe_more = out.maybe_more,
            seq, wake_seq = self.wake_seq, cycles = self.cycles_running,
            commit_seen = self.commit_seen, "cycle done"
        );
        if !out.maybe_more && self.wake_seq == seq && self.cycles_running == 0 {
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
            self.timers.succeeded();
        }
    }

    /// The paused queues a cycle (`all`: every one of the file's) or the
    /// heartbeat (those it found paused) saw: what they stop from
    /// starting is given back.
    pub(super) fn paused_seen(&mut self, queues: Vec<String>, all: bool) {
        let back = pause::hold_back(&mut self.book, &self.queues, &queues);
        self.pending.extend(back);
        self.paused.seen(queues, all);
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
        if let Some(at) = at {
            let me = myself.clone();
            self.timers.wake_at(at, move || {
                let _ = me.cast(SupervisorMsg::Wake(super::WakeKind::Timer));
            });
        }
    }

    pub(super) fn retry_later(&mut self, myself: &ActorRef<SupervisorMsg>) {
        let me = myself.clone();
        self.timers.retry_later(move || {
            let _ = me.cast(SupervisorMsg::RetryNow);
        });
    }
}
