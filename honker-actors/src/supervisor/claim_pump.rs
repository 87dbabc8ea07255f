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
use crate::store::{Applied, ClaimPlan, CycleOutput, CycleRequest, Fence, NextTimes, Outcome};
use crate::Result;

/// Housekeeping (expiry sweep, result sweep, queue depth) at least this
/// often while the pool is active.
pub(super) const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);
/// Cycles in flight at once: one committing, one queued behind it.
const MAX_CYCLES_IN_FLIGHT: usize = 2;

/// What the claim pump keeps between messages.
pub(super) struct PumpState {
    /// The pool's queues.
    pub(super) queues: Arc<[&'static str]>,
    /// Which queue a plan tries first (it rotates).
    pub(super) rotate: usize,
    /// Outcomes not yet sent to the store.
    pub(super) pending: Vec<Outcome>,
    /// Cycles sent to the store and not yet back.
    pub(super) cycles_running: usize,
    /// Cycles started in the pool's life: each one's number goes into
    /// the worker string its claims write.
    pub(super) cycles_started: u64,
    /// The cheap look after a commit is out.
    pub(super) check_running: bool,
    /// Something may be claimable (an enqueue, a timer, a full claim).
    pub(super) work_maybe: bool,
    /// A commit was seen that no read or claim has looked at yet.
    pub(super) commit_seen: bool,
    /// A commit heard from elsewhere goes straight to a claim, not to the
    /// cheap look first (the store's
    /// [`claim_on_commit`](crate::store::PoolStore::claim_on_commit)).
    pub(super) claim_on_commit: bool,
    /// Bumped by every enqueue or timer wake; a cycle that saw none while
    /// it ran and filled no queue proves the queues drained.
    pub(super) wake_seq: u64,
    /// A due time passed: the next cycle sweeps expired jobs.
    pub(super) sweep_due: bool,
    /// Cycles failed in a row.
    pub(super) cycle_failures: u32,
    pub(super) last_housekeeping: Option<Instant>,
    pub(super) depth_read_running: bool,
    pub(super) last_depths: Option<Instant>,
}

impl PumpState {
    /// A new pool: it may have work (claim what is waiting) and sweeps
    /// first.
    pub(super) fn new(queues: Arc<[&'static str]>, claim_on_commit: bool) -> PumpState {
        PumpState {
            queues,
            rotate: 0,
            pending: Vec::new(),
            cycles_running: 0,
            cycles_started: 0,
            check_running: false,
            work_maybe: true,
            commit_seen: false,
            claim_on_commit,
            wake_seq: 0,
            sweep_due: true,
            cycle_failures: 0,
            last_housekeeping: None,
            depth_read_running: false,
            last_depths: None,
        }
    }
}

impl SupervisorState {
    /// Start the next cycle or check if one is due.
    pub(super) fn pump(&mut self, myself: &ActorRef<SupervisorMsg>) {
        if self.pump.cycles_running >= MAX_CYCLES_IN_FLIGHT
            || self.pump.check_running
            || self.timers.backing_off()
        {
            return;
        }
        if self.shutdown.is_some() {
            if !self.pump.pending.is_empty() {
                if self.pump.cycles_running == 0 {
                    self.start_cycle(myself, ClaimPlan::default());
                }
            } else if self.book.running_len() == 0 && self.pump.cycles_running == 0 {
                self.complete_shutdown(Ok(()));
            }
            return;
        }
        self.maybe_read_depths(myself);
        let room = if self.pump.work_maybe || self.pump.commit_seen {
            self.book.room(self.run_times.buffer())
        } else {
            0
        };
        if self.pump.cycles_running > 0 {
            // A second cycle only when it carries a worthwhile batch, for
            // workers the running one will not fill (not the prefetch
            // buffer: two cycles that each see the other's reservation
            // would leave no worker free for a queue limited across
            // processes, and keep starting each other, claiming nothing);
            // otherwise wait for the running one to come back.
            let worthwhile = self.run_times.worthwhile();
            let claimable = if self.pump.work_maybe {
                self.book.free()
            } else {
                0
            };
            if self.pump.pending.len() < worthwhile && claimable < worthwhile {
                return;
            }
        }
        let plan =
            if self.pump.work_maybe || (self.pump.commit_seen && !self.pump.pending.is_empty()) {
                self.plan_claims(room)
            } else {
                ClaimPlan::default()
            };
        let housekeeping = self.pump.sweep_due
            || self
                .pump
                .last_housekeeping
                .is_none_or(|t| t.elapsed() >= HOUSEKEEPING_EVERY);
        tracing::trace!(
            work_maybe = self.pump.work_maybe,
            commit_seen = self.pump.commit_seen,
            room,
            pending = self.pump.pending.len(),
            ?plan,
            housekeeping,
            cycles = self.pump.cycles_running,
            "pump"
        );
        if !self.pump.pending.is_empty() || !plan.queues.is_empty() || housekeeping {
            if !plan.queues.is_empty() {
                self.pump.commit_seen = false;
            }
            self.start_cycle(myself, plan);
        } else if self.pump.commit_seen && room > 0 && self.pump.cycles_running == 0 {
            self.pump.commit_seen = false;
            self.start_check(myself);
        }
    }

    /// The pool's room as one budget, each queue's room under its own
    /// limit, in rotating order; reserved in the book until the cycle
    /// comes back.
    fn plan_claims(&mut self, budget: usize) -> ClaimPlan {
        if budget == 0 || self.pump.queues.is_empty() {
            return ClaimPlan::default();
        }
        let n = self.pump.queues.len();
        self.pump.rotate = (self.pump.rotate + 1) % n;
        let order: Vec<&'static str> = (0..n)
            .map(|i| self.pump.queues[(self.pump.rotate + i) % n])
            .collect();
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
        self.pump.cycles_running += 1;
        let sweep = self.pump.sweep_due
            || self
                .pump
                .last_housekeeping
                .is_none_or(|t| t.elapsed() >= HOUSEKEEPING_EVERY);
        if sweep {
            self.pump.sweep_due = false;
            self.pump.last_housekeeping = Some(Instant::now());
        }
        // Each cycle's claims write a worker string of their own, so no
        // two claims of a row share a fence (see `book::Fence`).
        self.pump.cycles_started += 1;
        let worker: Arc<str> =
            format!("{}#{}", self.args.worker_id, self.pump.cycles_started).into();
        let request = CycleRequest {
            worker,
            outcomes: std::mem::take(&mut self.pump.pending),
            plan,
            visibility: self.args.visibility,
            queues: self.pump.queues.clone(),
            sweep,
        };
        let seq = self.pump.wake_seq;
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
        self.pump.check_running = true;
        let queues = self.pump.queues.clone();
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
        self.pump.check_running = false;
        match result {
            Ok((claimable, next)) => {
                self.timers.succeeded();
                self.pump.work_maybe |= claimable;
                self.plan_wake(myself, next);
            }
            Err(e) => {
                tracing::warn!(error = %e, "checking for claimable jobs failed");
                self.pump.commit_seen = true;
                self.retry_later(myself);
            }
        }
    }

    /// Read each queue's depth for the gauge, outside any write
    /// transaction, at most every few seconds.
    fn maybe_read_depths(&mut self, myself: &ActorRef<SupervisorMsg>) {
        if self.pump.depth_read_running
            || self
                .pump
                .last_depths
                .is_some_and(|t| t.elapsed() < HOUSEKEEPING_EVERY)
        {
            return;
        }
        self.pump.depth_read_running = true;
        self.pump.last_depths = Some(Instant::now());
        let queues = self.pump.queues.clone();
        let honker = self.args.honker.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let result = honker.store().depths(&queues).await;
            let _ = me.cast(SupervisorMsg::Depths(result));
        });
    }

    pub(super) fn depths_read(&mut self, result: Result<Vec<(&'static str, i64)>>) {
        self.pump.depth_read_running = false;
        match result {
            Ok(depths) => {
                for (q, d) in depths {
                    if let Some(m) = self.counters.queues.get(q) {
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
        self.pump.cycles_running -= 1;
        self.book.unreserve(&sent.plan);
        let out = match output {
            Ok(out) => out,
            Err(e) => {
                self.pump.cycle_failures += 1;
                tracing::warn!(error = %e, outcomes = sent.outcomes.len(),
                    failures = self.pump.cycle_failures, "pool cycle failed; will retry");
                // Never dropped: oldest first, ahead of anything newer.
                let newer = std::mem::replace(&mut self.pump.pending, sent.outcomes);
                self.pump.pending.extend(newer);
                self.pump.work_maybe = true;
                if self.shutdown_gives_up() {
                    return;
                }
                self.retry_later(myself);
                return;
            }
        };
        self.pump.cycle_failures = 0;
        let mut trouble = !out.claim_errors.is_empty();
        for (o, applied) in sent.outcomes.into_iter().zip(out.applied) {
            match applied {
                Ok(applied) => {
                    // Our own commit, seen as another's would be: a
                    // finished job frees room a queue held back (its
                    // limit in this pool), which no other wake announces
                    // (a store need not tell this pool of its own writes).
                    if applied != Applied::Lost {
                        self.pump.commit_seen = true;
                    }
                    self.count_applied(&o, applied)
                }
                Err(why) => {
                    tracing::warn!(queue = o.queue(), job_id = o.lease().id, error = %why,
                        "could not record a job outcome; will retry");
                    self.pump.pending.push(o);
                    trouble = true;
                }
            }
        }
        for (q, why) in &out.claim_errors {
            tracing::warn!(queue = q, error = %why, "claiming failed for this queue; will retry");
        }
        for job in out.claimed {
            let Some(queue) = self.pump.queues.iter().copied().find(|q| *q == job.queue) else {
                continue;
            };
            let route = self.args.routes.route(queue, &job.payload);
            if self.shutdown.is_some() {
                // Claimed by a cycle sent before the shutdown began:
                // straight back, attempt unburned, never started.
                let job_name = match &route {
                    Route::Run(handler) => handler.name(),
                    Route::Dead(_) => UNROUTED,
                };
                let fence = Fence::new(&sent.worker, &job);
                self.pump.pending.push(Outcome::Release {
                    fence,
                    queue,
                    job_name,
                });
                continue;
            }
            let job_name = match route {
                Route::Run(handler) => handler.name(),
                Route::Dead(error) => {
                    // Never run by a handler it was not written for.
                    self.pump.pending.push(Outcome::Fail {
                        fence: Fence::new(&sent.worker, &job),
                        queue,
                        job_name: UNROUTED,
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
                .claimed_until(job, fence, queue, job_name, start_before);
        }
        self.paused_seen(out.paused, true);
        self.dispatch_ready();
        tracing::trace!(
            planned = ?sent.plan, maybe_more = out.maybe_more,
            seq, wake_seq = self.pump.wake_seq, cycles = self.pump.cycles_running,
            commit_seen = self.pump.commit_seen, "cycle done"
        );
        if !out.maybe_more && self.pump.wake_seq == seq && self.pump.cycles_running == 0 {
            // Every queue gave less than asked: drained until the next wake.
            self.pump.work_maybe = false;
        }
        if let Some(next) = out.next {
            self.plan_wake(myself, next);
        }
        if trouble {
            self.pump.work_maybe = true;
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
        let back = pause::hold_back(&mut self.book, &self.pump.queues, &queues);
        self.pump.pending.extend(back);
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
