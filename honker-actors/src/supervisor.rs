//! The supervisor actor: one per pool. It owns the pool's job state and the
//! claim scheduler.
//!
//! One *cycle* is one write request to the writer thread: record the
//! outcomes that came in (acks, retries, failures, releases), then claim
//! for every free worker slot, per queue, then read when the next job falls
//! due. At most one cycle runs at a time; outcomes that arrive meanwhile go
//! into the next one, so a busy pool writes many outcomes and its next
//! claim in one transaction.
//!
//! Prefetch: a cycle claims jobs beyond the idle workers into a local
//! buffer (claimed, heartbeated), so a worker that finishes takes the next
//! job at once instead of waiting for a cycle, and cycles run back to back,
//! each writing every outcome that came in during the last. The buffer
//! follows the jobs' run time: up to twice the concurrency while jobs take
//! under 5 ms (there the cycle, not the job, is the cost), a quarter of it
//! for slower jobs (there a buffer buys nothing, while a high-priority job
//! enqueued meanwhile would wait behind it, and a crash would burn the
//! attempts of jobs that never ran), and the concurrency itself until the
//! first runs are measured.
//!
//! Wake-ups: an enqueue by this process (claim at once), a commit by anyone
//! else (one cheap read decides whether a claim is worth a write), a timer
//! at the next due `run_at` / claim expiry / `expires_at`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use honker_core::rusqlite::Connection;
use honker_core::{ClaimedJob, Lease, RetryOutcome};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::context::{AppData, JobSignals};
use crate::heartbeat::{Heartbeat, HeartbeatArgs, HeartbeatMsg, SharedLeases};
use crate::job::{ErasedJob, RunResult};
use crate::telemetry::QueueMetrics;
use crate::wake::{Wake, WakeGuard};
use crate::worker::{Assignment, Worker, WorkerMsg};
use crate::{Honker, JobContext, Result};

/// Housekeeping (expiry sweep, result sweep, queue depth) at most this often
/// while the pool is active.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);
/// Back-off after a failed cycle or check, doubling up to the maximum.
const MIN_RETRY_BACKOFF: Duration = Duration::from_millis(50);
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);
/// After this many failed cycles in a row, outcomes are dropped (their
/// claims lapse and the jobs run again) so one bad write cannot wedge a pool.
const MAX_CYCLE_FAILURES: u32 = 5;
/// After a forced abort at the end of the shutdown grace period, how long a
/// handler that ignores it gets before its claim is released regardless.
const ABORT_GRACE: Duration = Duration::from_secs(1);
/// Jobs faster than this on average get the large prefetch buffer.
const FAST_JOB: f64 = 0.005;
/// Weight of the newest run in the moving average of run time.
const RUN_TIME_WEIGHT: f64 = 0.05;

/// Cycles in flight at once: one committing, one queued behind it.
const MAX_CYCLES_IN_FLIGHT: usize = 2;

/// Why the supervisor is woken.
#[derive(Debug)]
pub(crate) enum WakeKind {
    /// This process enqueued to one of our queues.
    Enqueued,
    /// Something committed somewhere.
    Commit,
    /// A due time passed (or a retry back-off ended).
    Timer,
}

pub(crate) enum SupervisorMsg {
    /// Something may be claimable.
    Wake(WakeKind),
    /// The cheap read after a commit wake came back.
    Checked(Result<(bool, NextTimes)>),
    /// A cycle came back from the writer, with the outcomes it carried.
    CycleDone {
        output: Result<CycleOutput>,
        outcomes: Arc<Vec<Outcome>>,
        /// The claim budget it had reserved, in all and per queue.
        budget: usize,
        per_queue: Vec<(&'static str, usize)>,
        /// `wake_seq` when it started.
        seq: u64,
    },
    /// A back-off after a failed cycle or check is over.
    RetryNow,
    /// A worker finished a job (not a panic: that is a worker failure).
    Finished {
        worker: ActorId,
        job_id: i64,
        result: RunResult,
        elapsed: Duration,
    },
    /// The heartbeat found these claims lost.
    ClaimsLost(Vec<Lease>),
    /// Stop claiming, let running jobs finish, flush, then reply.
    Shutdown(RpcReplyPort<()>),
    /// The shutdown grace period ended: abort what still runs.
    ShutdownDeadline,
    /// The abort grace ended: release what still has not stopped.
    ShutdownForce,
    /// Report the pool's state.
    Status(RpcReplyPort<PoolStatus>),
}

/// A snapshot of a pool, from [`WorkerPool::status`](crate::WorkerPool::status).
///
/// ```
/// let s = honker_actors::PoolStatus::default();
/// assert_eq!(s.workers, 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Live worker actors.
    pub workers: usize,
    /// Jobs running now.
    pub in_flight: usize,
    /// Jobs claimed and waiting for a free worker.
    pub prefetched: usize,
    /// Outcomes waiting to be written.
    pub pending_outcomes: usize,
    /// Workers replaced after a failure since start.
    pub restarts: u64,
    /// Whether a shutdown has begun.
    pub shutting_down: bool,
}

/// A result to write down for one claim.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Ack {
        lease: Lease,
        queue: &'static str,
        result: Option<(String, Option<Duration>)>,
    },
    Retry {
        lease: Lease,
        queue: &'static str,
        delay: Duration,
        error: String,
    },
    Fail {
        lease: Lease,
        queue: &'static str,
        error: String,
    },
    Release {
        lease: Lease,
        queue: &'static str,
    },
}

impl Outcome {
    fn queue(&self) -> &'static str {
        match self {
            Outcome::Ack { queue, .. }
            | Outcome::Retry { queue, .. }
            | Outcome::Fail { queue, .. }
            | Outcome::Release { queue, .. } => queue,
        }
    }
}

/// What a cycle should claim.
#[derive(Debug, Default)]
pub(crate) struct ClaimPlan {
    /// Idle workers: the most to claim in all.
    budget: usize,
    /// Queues in the order to try, each with its room.
    queues: Vec<(&'static str, usize)>,
}

/// What writing one outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    Acked,
    Retried,
    Dead,
    Released,
    Lost,
}

pub(crate) struct CycleOutput {
    applied: Vec<Applied>,
    claimed: Vec<ClaimedJob>,
    /// A queue gave all that was asked, or was not asked for lack of
    /// budget: more may be waiting.
    maybe_more: bool,
    /// `None` when not read (more work was waiting).
    next: Option<NextTimes>,
    depths: Option<Vec<(&'static str, i64)>>,
}

pub(crate) struct SupervisorArgs {
    pub(crate) honker: Honker,
    pub(crate) worker_id: Arc<str>,
    pub(crate) jobs: HashMap<&'static str, Arc<dyn ErasedJob>>,
    pub(crate) queue_limits: HashMap<&'static str, usize>,
    pub(crate) concurrency: usize,
    pub(crate) visibility: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) data: AppData,
}

struct Slot {
    worker: ActorRef<WorkerMsg>,
    job: Option<i64>,
}

struct InFlight {
    lease: Lease,
    queue: &'static str,
    signals: Arc<JobSignals>,
}

struct ShutdownState {
    replies: Vec<RpcReplyPort<()>>,
}

pub(crate) struct SupervisorState {
    args: SupervisorArgs,
    queues: Vec<&'static str>,
    rotate: usize,
    slots: HashMap<ActorId, Slot>,
    /// Workers with no job.
    idle: Vec<ActorId>,
    /// Claimed jobs not yet handed to a worker, in claim order.
    ready: VecDeque<(ClaimedJob, &'static str)>,
    /// Running jobs.
    in_flight: HashMap<i64, InFlight>,
    /// Claimed jobs (ready or running) per queue.
    claimed_per_queue: HashMap<&'static str, usize>,
    leases: SharedLeases,
    pending: Vec<Outcome>,
    /// Cycles sent to the writer and not yet back (at most two: the next
    /// one is prepared while the last one commits).
    cycles_running: usize,
    /// Claim budget reserved by those cycles, in all and per queue (so two
    /// cycles in flight never claim the same room twice).
    reserved: usize,
    reserved_per_queue: HashMap<&'static str, usize>,
    check_running: bool,
    /// Something may be claimable (an enqueue, a timer, a full claim).
    work_maybe: bool,
    /// A commit was seen that no read or claim has looked at yet.
    commit_seen: bool,
    /// Bumped by every enqueue or timer wake; a cycle that saw none while
    /// it ran and filled no queue proves the queues drained.
    wake_seq: u64,
    timer: Option<(i64, tokio::task::JoinHandle<()>)>,
    retry_timer: Option<tokio::task::JoinHandle<()>>,
    backoff: Duration,
    cycle_failures: u32,
    next_expiry: Option<i64>,
    last_housekeeping: Option<Instant>,
    heartbeat: Option<ActorRef<HeartbeatMsg>>,
    wake_guard: Option<WakeGuard>,
    wake_flags: Arc<WakeFlags>,
    shutdown: Option<ShutdownState>,
    metrics: HashMap<&'static str, QueueMetrics>,
    restarts: u64,
    /// Moving average of job run time, seconds; `None` before the first.
    avg_run: Option<f64>,
}

/// Coalesce wakes: at most one of each kind waits in the mailbox.
#[derive(Default)]
pub(crate) struct WakeFlags {
    enqueued: AtomicBool,
    commit: AtomicBool,
}

pub(crate) struct Supervisor;

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut queues: Vec<&'static str> = args.jobs.keys().copied().collect();
        queues.sort_unstable();
        let metrics = queues.iter().map(|q| (*q, QueueMetrics::new(q))).collect();
        let leases: SharedLeases = Arc::new(Mutex::new(HashMap::new()));
        let mut slots = HashMap::new();
        for _ in 0..args.concurrency {
            let (worker, _) =
                Actor::spawn_linked(None, Worker, myself.clone(), myself.get_cell()).await?;
            slots.insert(worker.get_id(), Slot { worker, job: None });
        }
        let heartbeat = spawn_heartbeat(&myself, &args, &leases).await?;
        let wake_flags = Arc::new(WakeFlags::default());
        let wake_guard = listen_for_wakes(&args.honker, &myself, &queues, wake_flags.clone());
        tracing::info!(worker_id = %args.worker_id, queues = ?queues,
            concurrency = args.concurrency, "worker pool started");
        // Claim whatever is already waiting.
        myself.cast(SupervisorMsg::Wake(WakeKind::Timer))?;
        Ok(SupervisorState {
            queues,
            rotate: 0,
            idle: slots.keys().cloned().collect(),
            slots,
            ready: VecDeque::new(),
            in_flight: HashMap::new(),
            claimed_per_queue: HashMap::new(),
            leases,
            pending: Vec::new(),
            cycles_running: 0,
            reserved: 0,
            reserved_per_queue: HashMap::new(),
            check_running: false,
            work_maybe: true,
            commit_seen: false,
            wake_seq: 0,
            timer: None,
            retry_timer: None,
            backoff: MIN_RETRY_BACKOFF,
            cycle_failures: 0,
            next_expiry: None,
            last_housekeeping: None,
            heartbeat: Some(heartbeat),
            wake_guard: Some(wake_guard),
            wake_flags,
            shutdown: None,
            metrics,
            restarts: 0,
            avg_run: None,
            args,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.wake_guard = None;
        if let Some((_, t)) = state.timer.take() {
            t.abort();
        }
        if let Some(t) = state.retry_timer.take() {
            t.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Wake(kind) => match kind {
                WakeKind::Enqueued => {
                    state.wake_flags.enqueued.store(false, Ordering::Release);
                    state.wake_seq += 1;
                    state.work_maybe = true;
                }
                WakeKind::Commit => {
                    state.wake_flags.commit.store(false, Ordering::Release);
                    state.commit_seen = true;
                }
                WakeKind::Timer => {
                    state.wake_seq += 1;
                    state.work_maybe = true;
                }
            },
            SupervisorMsg::RetryNow => {
                state.retry_timer = None;
                state.work_maybe = true;
            }
            SupervisorMsg::Checked(result) => {
                state.check_running = false;
                match result {
                    Ok((claimable, next)) => {
                        state.backoff = MIN_RETRY_BACKOFF;
                        state.work_maybe |= claimable;
                        state.plan_wake(&myself, next);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "checking for claimable jobs failed");
                        state.commit_seen = true;
                        state.retry_later(&myself);
                    }
                }
            }
            SupervisorMsg::CycleDone {
                output,
                outcomes,
                budget,
                per_queue,
                seq,
            } => {
                state.cycles_running -= 1;
                state.reserved -= budget;
                for (q, room) in per_queue {
                    if let Some(r) = state.reserved_per_queue.get_mut(q) {
                        *r = r.saturating_sub(room);
                    }
                }
                state.cycle_done(&myself, output, outcomes, seq);
            }
            SupervisorMsg::Finished {
                worker,
                job_id,
                result,
                elapsed,
            } => {
                if let Some(slot) = state.slots.get_mut(&worker) {
                    if slot.job == Some(job_id) {
                        slot.job = None;
                        state.idle.push(worker);
                    }
                }
                state.finish(job_id, result, elapsed);
                state.dispatch_ready();
            }
            SupervisorMsg::ClaimsLost(leases) => state.claims_lost(&leases),
            SupervisorMsg::Shutdown(reply) => state.begin_shutdown(&myself, reply),
            SupervisorMsg::ShutdownDeadline => {
                tracing::warn!(
                    running = state.in_flight.len(),
                    "shutdown grace period over; stopping the jobs still running"
                );
                for f in state.in_flight.values() {
                    f.signals.abort.raise();
                }
                let me = myself.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(ABORT_GRACE).await;
                    let _ = me.cast(SupervisorMsg::ShutdownForce);
                });
            }
            SupervisorMsg::ShutdownForce => {
                let ids: Vec<i64> = state.in_flight.keys().copied().collect();
                for id in ids {
                    tracing::error!(
                        job_id = id,
                        "handler ignored the abort; releasing its claim anyway"
                    );
                    state.finish(id, RunResult::Aborted, Duration::ZERO);
                }
            }
            SupervisorMsg::Status(reply) => {
                let _ = reply.send(PoolStatus {
                    workers: state.slots.len(),
                    in_flight: state.in_flight.len(),
                    prefetched: state.ready.len(),
                    pending_outcomes: state.pending.len(),
                    restarts: state.restarts,
                    shutting_down: state.shutdown.is_some(),
                });
            }
        }
        state.pump(&myself);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Never the default (stop on any child failure): replace the child.
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, Some(err.to_string())),
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, reason),
            _ => return Ok(()),
        };
        let id = cell.get_id();
        if state.heartbeat.as_ref().is_some_and(|h| h.get_id() == id) {
            state.heartbeat = None;
            if state.shutdown.is_none() {
                tracing::error!(reason = ?why, "heartbeat actor stopped; restarting it");
                state.heartbeat = Some(spawn_heartbeat(&myself, &state.args, &state.leases).await?);
            }
            return Ok(());
        }
        let Some(slot) = state.slots.remove(&id) else {
            return Ok(());
        };
        state.idle.retain(|w| *w != id);
        let why = why.unwrap_or_else(|| "worker stopped".into());
        if let Some(job_id) = slot.job {
            let error = if why.starts_with("panicked: ") {
                why.clone()
            } else {
                format!("worker failed: {why}")
            };
            let queue = state.in_flight.get(&job_id).map(|f| f.queue);
            state.finish(
                job_id,
                RunResult::Retry { after: None, error },
                Duration::ZERO,
            );
            if let Some(m) = queue.and_then(|q| state.metrics.get(q)) {
                m.restarts.increment(1);
            }
        }
        if state.shutdown.is_none() {
            let (worker, _) =
                Actor::spawn_linked(None, Worker, myself.clone(), myself.get_cell()).await?;
            state.idle.push(worker.get_id());
            state
                .slots
                .insert(worker.get_id(), Slot { worker, job: None });
            state.restarts += 1;
            state.dispatch_ready();
            tracing::warn!(reason = %why, "worker replaced");
        }
        state.pump(&myself);
        Ok(())
    }
}

async fn spawn_heartbeat(
    myself: &ActorRef<SupervisorMsg>,
    args: &SupervisorArgs,
    leases: &SharedLeases,
) -> Result<ActorRef<HeartbeatMsg>, ActorProcessingErr> {
    let hb_args = HeartbeatArgs {
        honker: args.honker.clone(),
        worker_id: args.worker_id.clone(),
        visibility: args.visibility,
        leases: leases.clone(),
        supervisor: myself.clone(),
    };
    let (hb, _) = Actor::spawn_linked(None, Heartbeat, hb_args, myself.get_cell()).await?;
    Ok(hb)
}

fn listen_for_wakes(
    honker: &Honker,
    myself: &ActorRef<SupervisorMsg>,
    queues: &[&'static str],
    flags: Arc<WakeFlags>,
) -> WakeGuard {
    let me = myself.clone();
    let ours: HashSet<&'static str> = queues.iter().copied().collect();
    honker.listen(move |wake| {
        let (flag, kind) = match wake {
            Wake::Enqueued(q) if ours.contains(q) => (&flags.enqueued, WakeKind::Enqueued),
            Wake::Enqueued(_) => return,
            Wake::Commit => (&flags.commit, WakeKind::Commit),
        };
        if !flag.swap(true, Ordering::AcqRel) {
            // A stopped pool cannot be woken; nothing to do.
            let _ = me.cast(SupervisorMsg::Wake(kind));
        }
    })
}

impl SupervisorState {
    /// How many more jobs the pool may hold claimed: the workers plus the
    /// prefetch buffer, minus what it holds.
    fn claim_room(&self) -> usize {
        let c = self.args.concurrency;
        let buffer = match self.avg_run {
            None => c,
            Some(t) if t < FAST_JOB => 2 * c,
            Some(_) => (c / 4).max(1),
        };
        (c + buffer).saturating_sub(self.in_flight.len() + self.ready.len() + self.reserved)
    }

    /// Start the next cycle or check if one is due.
    fn pump(&mut self, myself: &ActorRef<SupervisorMsg>) {
        if self.cycles_running >= MAX_CYCLES_IN_FLIGHT
            || self.check_running
            || self.retry_timer.is_some()
        {
            return;
        }
        if self.cycles_running > 0 {
            // A second cycle only when it carries a worthwhile batch;
            // otherwise wait for the running one to come back.
            let worthwhile = (self.args.concurrency / 2).max(1);
            let room = if self.work_maybe && self.shutdown.is_none() {
                self.claim_room()
            } else {
                0
            };
            if self.pending.len() < worthwhile && room < worthwhile {
                return;
            }
        }
        if self.shutdown.is_some() {
            if !self.pending.is_empty() {
                self.start_cycle(myself, ClaimPlan::default());
            } else if self.in_flight.is_empty() && self.cycles_running == 0 {
                self.complete_shutdown();
            }
            return;
        }
        let claims = if self.work_maybe || (self.commit_seen && !self.pending.is_empty()) {
            self.plan_claims()
        } else {
            ClaimPlan::default()
        };
        if !self.pending.is_empty() || !claims.queues.is_empty() {
            if !claims.queues.is_empty() {
                self.commit_seen = false;
            }
            self.start_cycle(myself, claims);
        } else if self.commit_seen && self.claim_room() > 0 && self.cycles_running == 0 {
            self.commit_seen = false;
            self.start_check(myself);
        }
    }

    /// What to claim: the pool's room as one budget, and each queue's room
    /// under its own limit, in rotating order. The cycle spends the budget
    /// queue by queue on what each actually returns.
    fn plan_claims(&mut self) -> ClaimPlan {
        let budget = self.claim_room();
        let mut queues = Vec::new();
        if budget == 0 || self.queues.is_empty() {
            return ClaimPlan { budget: 0, queues };
        }
        let n = self.queues.len();
        self.rotate = (self.rotate + 1) % n;
        for i in 0..n {
            let q = self.queues[(self.rotate + i) % n];
            let running = self.claimed_per_queue.get(q).copied().unwrap_or(0)
                + self.reserved_per_queue.get(q).copied().unwrap_or(0);
            let limit = self.args.queue_limits.get(q).copied().unwrap_or(usize::MAX);
            let room = budget.min(limit.saturating_sub(running));
            if room > 0 {
                queues.push((q, room));
            }
        }
        ClaimPlan { budget, queues }
    }

    fn start_cycle(&mut self, myself: &ActorRef<SupervisorMsg>, claims: ClaimPlan) {
        self.cycles_running += 1;
        let budget = claims.budget;
        self.reserved += budget;
        let per_queue = claims.queues.clone();
        for (q, room) in &per_queue {
            *self.reserved_per_queue.entry(q).or_default() += room;
        }
        let seq = self.wake_seq;
        // Shared with the writer request so that a cycle that never ran
        // (the transaction could not begin) gives its outcomes back.
        let outcomes = Arc::new(std::mem::take(&mut self.pending));
        let housekeeping = self
            .last_housekeeping
            .is_none_or(|t| t.elapsed() >= HOUSEKEEPING_EVERY)
            || self.next_expiry.is_some_and(|t| t <= unix_now());
        if housekeeping {
            self.last_housekeeping = Some(Instant::now());
        }
        let worker_id = self.args.worker_id.clone();
        let visibility = self.args.visibility;
        let queues = self.queues.clone();
        let honker = self.args.honker.clone();
        let me = myself.clone();
        let for_writer = outcomes.clone();
        honker.writer().write_then(
            move |c| {
                run_cycle(
                    c,
                    &worker_id,
                    &for_writer,
                    &claims,
                    visibility,
                    &queues,
                    housekeeping,
                )
            },
            move |output| {
                // A stopped pool cannot take the answer; nothing to do then.
                let _ = me.cast(SupervisorMsg::CycleDone {
                    output,
                    outcomes,
                    budget,
                    per_queue,
                    seq,
                });
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
                    Ok((claimable, next_times(c, &queues)?))
                })
                .await;
            let _ = me.cast(SupervisorMsg::Checked(result));
        });
    }

    fn cycle_done(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        output: Result<CycleOutput>,
        outcomes: Arc<Vec<Outcome>>,
        seq: u64,
    ) {
        let out = match output {
            Ok(out) => out,
            Err(e) => {
                self.cycle_failures += 1;
                let kept = outcomes.len();
                if self.cycle_failures >= MAX_CYCLE_FAILURES {
                    tracing::error!(error = %e, dropped = kept,
                        "could not record job outcomes after {} tries; their claims will lapse \
                         and the jobs will run again", self.cycle_failures);
                } else {
                    tracing::warn!(error = %e, outcomes = kept, "pool cycle failed; will retry");
                    // Oldest first, ahead of anything that came in since.
                    let outcomes = Arc::try_unwrap(outcomes).unwrap_or_else(|a| (*a).clone());
                    let newer = std::mem::replace(&mut self.pending, outcomes);
                    self.pending.extend(newer);
                }
                self.work_maybe = true;
                self.retry_later(myself);
                return;
            }
        };
        self.cycle_failures = 0;
        self.backoff = MIN_RETRY_BACKOFF;
        for (o, applied) in outcomes.iter().zip(&out.applied) {
            let Some(m) = self.metrics.get(o.queue()) else {
                continue;
            };
            match applied {
                Applied::Acked => m.success.increment(1),
                Applied::Retried => m.retried.increment(1),
                Applied::Dead => m.dead.increment(1),
                Applied::Released => m.released.increment(1),
                Applied::Lost => {
                    m.lost.increment(1);
                    tracing::warn!(queue = o.queue(), outcome = ?o, "claim was lost before the outcome was recorded");
                }
            }
            if *applied == Applied::Dead {
                tracing::warn!(queue = o.queue(), outcome = ?o, "job moved to _honker_dead");
            }
        }
        if let Some(depths) = &out.depths {
            for (q, d) in depths {
                if let Some(m) = self.metrics.get(q) {
                    m.depth.set(*d as f64);
                }
            }
        }
        {
            let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            for job in out.claimed {
                let Some(queue) = self.queues.iter().copied().find(|q| *q == job.queue) else {
                    continue;
                };
                if self.shutdown.is_some() {
                    // Claimed by a cycle sent before the shutdown began:
                    // straight back, attempt unburned, never started.
                    self.pending.push(Outcome::Release {
                        lease: job.lease(),
                        queue,
                    });
                    continue;
                }
                leases.insert(job.id, job.lease());
                *self.claimed_per_queue.entry(queue).or_default() += 1;
                self.ready.push_back((job, queue));
            }
        }
        self.dispatch_ready();
        if !out.maybe_more && self.wake_seq == seq && self.cycles_running == 0 {
            // Every queue gave less than asked: drained until the next wake.
            self.work_maybe = false;
        }
        if let Some(next) = out.next {
            self.plan_wake(myself, next);
        }
    }

    /// Hand ready jobs to idle workers.
    fn dispatch_ready(&mut self) {
        while !self.ready.is_empty() {
            let Some(worker) = self.idle.pop() else {
                return;
            };
            let Some((job, queue)) = self.ready.pop_front() else {
                return;
            };
            self.start_job(worker, job, queue);
        }
    }

    fn start_job(&mut self, worker: ActorId, job: ClaimedJob, queue: &'static str) {
        let lease = job.lease();
        let Some(slot) = self.slots.get_mut(&worker) else {
            self.ready.push_front((job, queue));
            return;
        };
        let signals = Arc::new(JobSignals::default());
        let ctx = JobContext {
            id: job.id,
            queue: Arc::from(queue),
            attempt: u32::try_from(job.attempts).unwrap_or(u32::MAX),
            max_attempts: u32::try_from(job.max_attempts).unwrap_or(u32::MAX),
            worker_id: self.args.worker_id.clone(),
            honker: self.args.honker.clone(),
            data: self.args.data.clone(),
            signals: signals.clone(),
        };
        if let Some(m) = self.metrics.get(queue) {
            m.wait.record((unix_now_f64() - job.run_at as f64).max(0.0));
            m.in_flight.increment(1.0);
        }
        let id = job.id;
        let handler = self.args.jobs[queue].clone();
        let assignment = Box::new(Assignment { job, handler, ctx });
        slot.job = Some(id);
        self.in_flight.insert(
            id,
            InFlight {
                lease,
                queue,
                signals,
            },
        );
        if slot.worker.cast(WorkerMsg::Run(assignment)).is_err() {
            // The worker is stopping; its supervision event will replace it.
            slot.job = None;
            self.finish(id, RunResult::Aborted, Duration::ZERO);
        }
    }

    /// Turn a finished run into an outcome to write.
    fn finish(&mut self, job_id: i64, result: RunResult, elapsed: Duration) {
        let Some(f) = self.in_flight.remove(&job_id) else {
            return;
        };
        if let Some(n) = self.claimed_per_queue.get_mut(f.queue) {
            *n = n.saturating_sub(1);
        }
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&job_id);
        let opts = self.args.jobs[f.queue].options();
        let attempt = u32::try_from(f.lease.attempts).unwrap_or(u32::MAX);
        if let Some(m) = self.metrics.get(f.queue) {
            m.in_flight.decrement(1.0);
            if !elapsed.is_zero() {
                m.duration.record(elapsed.as_secs_f64());
            }
        }
        if !elapsed.is_zero() {
            let t = elapsed.as_secs_f64();
            self.avg_run = Some(match self.avg_run {
                None => t,
                Some(avg) => avg + RUN_TIME_WEIGHT * (t - avg),
            });
        }
        let (lease, queue) = (f.lease, f.queue);
        let outcome = match result {
            RunResult::Done(result) => Outcome::Ack {
                lease,
                queue,
                result: result.map(|r| (r, opts.result_ttl)),
            },
            RunResult::Retry { after, error } => {
                let delay = after.unwrap_or_else(|| opts.backoff.delay(attempt));
                tracing::info!(job_id, queue, attempt, ?delay, error = %error, "job failed; will retry");
                Outcome::Retry {
                    lease,
                    queue,
                    delay,
                    error,
                }
            }
            RunResult::Fail(error) => {
                tracing::warn!(job_id, queue, attempt, error = %error, "job failed permanently");
                Outcome::Fail {
                    lease,
                    queue,
                    error,
                }
            }
            RunResult::TimedOut(d) => {
                let error = format!("timed out after {d:?}");
                tracing::warn!(job_id, queue, attempt, "{error}");
                Outcome::Retry {
                    lease,
                    queue,
                    delay: opts.backoff.delay(attempt),
                    error,
                }
            }
            RunResult::Aborted => Outcome::Release { lease, queue },
        };
        self.pending.push(outcome);
    }

    fn claims_lost(&mut self, lost: &[Lease]) {
        let lost_set: HashSet<Lease> = lost.iter().copied().collect();
        let mut dropped = Vec::new();
        self.ready.retain(|(job, queue)| {
            let keep = !lost_set.contains(&job.lease());
            if !keep {
                dropped.push((job.id, *queue));
            }
            keep
        });
        if !dropped.is_empty() {
            let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            for (id, queue) in dropped {
                leases.remove(&id);
                if let Some(n) = self.claimed_per_queue.get_mut(queue) {
                    *n = n.saturating_sub(1);
                }
                if let Some(m) = self.metrics.get(queue) {
                    m.lost_claims.increment(1);
                }
                tracing::warn!(job_id = id, queue, "claim lost before the job started");
            }
        }
        let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        for l in lost {
            let Some(f) = self.in_flight.get(&l.id) else {
                continue;
            };
            if f.lease != *l {
                continue;
            }
            leases.remove(&l.id);
            f.signals.claim_lost.store(true, Ordering::Release);
            f.signals.stop.raise();
            if let Some(m) = self.metrics.get(f.queue) {
                m.lost_claims.increment(1);
            }
            tracing::warn!(
                job_id = l.id,
                queue = f.queue,
                "claim lost while the job was running"
            );
        }
    }

    fn begin_shutdown(&mut self, myself: &ActorRef<SupervisorMsg>, reply: RpcReplyPort<()>) {
        if let Some(s) = &mut self.shutdown {
            s.replies.push(reply);
            return;
        }
        tracing::info!(running = self.in_flight.len(), "worker pool shutting down");
        self.shutdown = Some(ShutdownState {
            replies: vec![reply],
        });
        self.wake_guard = None;
        if let Some((_, t)) = self.timer.take() {
            t.abort();
        }
        // Jobs claimed but not started go back at once, attempt unburned.
        while let Some((job, queue)) = self.ready.pop_front() {
            self.leases
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&job.id);
            if let Some(n) = self.claimed_per_queue.get_mut(queue) {
                *n = n.saturating_sub(1);
            }
            self.pending.push(Outcome::Release {
                lease: job.lease(),
                queue,
            });
        }
        for f in self.in_flight.values() {
            f.signals.stop.raise();
        }
        if !self.in_flight.is_empty() {
            let me = myself.clone();
            let grace = self.args.shutdown_timeout;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let _ = me.cast(SupervisorMsg::ShutdownDeadline);
            });
        }
    }

    fn complete_shutdown(&mut self) {
        if let Some(s) = self.shutdown.as_mut() {
            if s.replies.is_empty() {
                return;
            }
            if let Some(hb) = self.heartbeat.take() {
                hb.stop(None);
            }
            tracing::info!(worker_id = %self.args.worker_id, "worker pool stopped");
            for r in s.replies.drain(..) {
                let _ = r.send(());
            }
        }
    }

    /// Remember the next expiry and wake at the earlier of the two times.
    fn plan_wake(&mut self, myself: &ActorRef<SupervisorMsg>, next: NextTimes) {
        self.next_expiry = next.expiry;
        let at = match (next.claim, next.expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.schedule_timer(myself, at);
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
        let delay = Duration::from_secs_f64((at as f64 - unix_now_f64()).max(0.0))
            + Duration::from_millis(5);
        let me = myself.clone();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = me.cast(SupervisorMsg::Wake(WakeKind::Timer));
        });
        self.timer = Some((at, handle));
    }

    fn retry_later(&mut self, myself: &ActorRef<SupervisorMsg>) {
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_RETRY_BACKOFF);
        let me = myself.clone();
        self.retry_timer = Some(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = me.cast(SupervisorMsg::RetryNow);
        }));
    }
}

/// One cycle on the writer thread: outcomes, claims, next wake.
fn run_cycle(
    c: &Connection,
    worker_id: &str,
    outcomes: &[Outcome],
    claims: &ClaimPlan,
    visibility: Duration,
    queues: &[&'static str],
    housekeeping: bool,
) -> Result<CycleOutput> {
    let mut applied = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        applied.push(apply(c, worker_id, o)?);
    }
    let mut claimed = Vec::new();
    let mut maybe_more = false;
    let mut budget = claims.budget;
    for (q, room) in &claims.queues {
        let n = budget.min(*room);
        if n == 0 {
            maybe_more = true;
            continue;
        }
        let jobs = honker_core::claim_batch(c, q, worker_id, n, visibility)?;
        maybe_more |= jobs.len() == n;
        budget -= jobs.len();
        claimed.extend(jobs);
    }
    let mut depths = None;
    if housekeeping {
        for q in queues {
            honker_core::sweep_expired(c, Some(q))?;
        }
        honker_core::sweep_results(c)?;
        let mut d = Vec::with_capacity(queues.len());
        for q in queues {
            d.push((*q, honker_core::queue_stats(c, q)?.pending_due));
        }
        depths = Some(d);
    }
    // The next due times matter only once the queues run dry; while a
    // claim comes back full, the next cycle follows at once anyway.
    let next = if maybe_more {
        None
    } else {
        Some(next_times(c, queues)?)
    };
    Ok(CycleOutput {
        applied,
        claimed,
        maybe_more,
        next,
        depths,
    })
}

/// When something next happens on the pool's queues (unix seconds).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NextTimes {
    /// A `run_at` falls due or a claim lapses.
    claim: Option<i64>,
    /// A job expires and wants sweeping.
    expiry: Option<i64>,
}

fn next_times(c: &Connection, queues: &[&'static str]) -> Result<NextTimes> {
    let min = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    let mut next = NextTimes::default();
    for q in queues {
        next.claim = min(next.claim, honker_core::next_claim_at(c, q)?);
        next.expiry = min(next.expiry, honker_core::next_expiry_at(c, q)?);
    }
    Ok(next)
}

fn apply(c: &Connection, worker_id: &str, o: &Outcome) -> Result<Applied> {
    Ok(match o {
        Outcome::Ack { lease, result, .. } => {
            if honker_core::ack(c, worker_id, *lease)? {
                if let Some((value, ttl)) = result {
                    honker_core::save_result(c, lease.id, value, *ttl)?;
                }
                Applied::Acked
            } else {
                Applied::Lost
            }
        }
        Outcome::Retry {
            lease,
            delay,
            error,
            ..
        } => match honker_core::retry(c, worker_id, *lease, *delay, error)? {
            RetryOutcome::Retried => Applied::Retried,
            RetryOutcome::Dead => Applied::Dead,
            RetryOutcome::Lost => Applied::Lost,
        },
        Outcome::Fail { lease, error, .. } => {
            if honker_core::fail(c, worker_id, *lease, error)? {
                Applied::Dead
            } else {
                Applied::Lost
            }
        }
        Outcome::Release { lease, .. } => {
            if honker_core::release(c, worker_id, &[*lease])? == 1 {
                Applied::Released
            } else {
                Applied::Lost
            }
        }
    })
}

fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn unix_now() -> i64 {
    unix_now_f64() as i64
}
