//! The supervisor actor: one per pool. It owns the pool's claims and
//! pumps them: claims from the store, jobs to workers, outcomes back.
//!
//! Split by concern, as ractor's factory is, each part in a file of its
//! own (its messages are in `crate::messages`):
//! - this file: the actor, its state (a few owned parts), and the
//!   dispatch of each message to one method;
//! - `claim_pump`: when to run a cycle, what to ask of it, and what to do
//!   with its answer;
//! - `book`: the claim book, every claim the pool holds keyed by its
//!   fence (pure, unit-tested);
//! - `dispatch`: handing claimed jobs to idle workers, alone or in short
//!   batches, and a worker's report back;
//! - `outcomes`: what a run reports, the outcome it becomes, how that is
//!   recorded and counted;
//! - `prefetch`: measured run times, and the buffer and batch sizes they
//!   allow;
//! - `pause`: the paused queues, and what a pause stops from starting;
//! - `timers`: the due-time wake-up and the retry back-off;
//! - `shutdown`: the graceful stop.
//!
//! One *cycle* is one write request to the writer thread. Outcomes that
//! arrive while a cycle runs go into the next one, so a busy pool writes
//! many outcomes and its next claim in one transaction.
//!
//! Prefetch: a cycle claims jobs beyond the idle workers into a local
//! buffer (claimed, heartbeated), so a worker that finishes takes the next
//! job at once instead of waiting for a cycle. The buffer follows the jobs'
//! run time: about 4 ms of work (sixteen times the concurrency for jobs of
//! a quarter of a millisecond or less, a quarter of it for slow jobs), and
//! the concurrency itself until the first runs are measured. Fast jobs so
//! make big cycles: one commit carries many outcomes and claims. The
//! buffer is kept in priority order, so a job of higher priority claimed
//! behind it starts next.
//!
//! Wake-ups: an enqueue by this process (claim at once), a commit by anyone
//! else (one cheap read decides whether a claim is worth a write), a timer
//! at the next due `run_at` / claim expiry / `expires_at`.

mod book;
mod claim_pump;
mod dispatch;
mod outcomes;
mod pause;
mod prefetch;
mod shutdown;
mod timers;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::heartbeat::SharedLeases;
use crate::messages::{HeartbeatMsg, PanicReported, RunId, WorkerMsg};
pub(crate) use crate::messages::{PoolStatus, ShutdownReply, SupervisorMsg, WakeKind};
use book::ClaimBook;

use crate::context::AppData;
use crate::heartbeat::{Heartbeat, HeartbeatArgs};
use crate::job::RunResult;
use crate::routing::Routes;
use crate::telemetry::{JobMetrics, QueueMetrics};
use crate::wake::{Wake, WakeGuard};
use crate::worker::Worker;
use crate::{Honker, Result};

/// How long a shutdown may take beyond the jobs' grace period.
pub(crate) const SHUTDOWN_OVERHEAD: Duration =
    shutdown::ABORT_GRACE.saturating_add(shutdown::WRITE_GRACE);

pub(crate) struct SupervisorArgs {
    pub(crate) honker: Honker,
    pub(crate) worker_id: Arc<str>,
    pub(crate) routes: Arc<Routes>,
    pub(crate) queue_limits: HashMap<&'static str, usize>,
    pub(crate) concurrency: usize,
    pub(crate) visibility: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) cancel_grace: Duration,
    pub(crate) data: AppData,
}

/// One worker actor and the runs handed to it and not yet reported.
struct Slot {
    worker: ActorRef<WorkerMsg>,
    jobs: Vec<RunId>,
    /// The run the worker is in now (`RunId::get`), 0 between runs.
    running: Arc<AtomicU64>,
}

impl Slot {
    fn new(worker: ActorRef<WorkerMsg>) -> Slot {
        Slot {
            worker,
            jobs: Vec::new(),
            running: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// The supervisor's state: a few owned parts, each with its own concern.
pub(crate) struct SupervisorState {
    args: SupervisorArgs,
    /// The worker actors, and which are idle.
    workers: Workers,
    /// Every claim the pool holds.
    book: ClaimBook,
    /// The claim pump's state: cycles in flight, outcomes waiting, why
    /// to claim next.
    pump: claim_pump::PumpState,
    /// The due-time wake-up and the retry back-off.
    timers: timers::Timers,
    /// Measured run times: the prefetch buffer and batches.
    run_times: prefetch::RunTimes,
    /// The store's paused queues, as the last cycle or heartbeat saw them.
    paused: pause::PausedQueues,
    /// The heartbeat actor and what it shares with the pool.
    heartbeat: HeartbeatLink,
    /// Wake-ups from enqueues and commits.
    wakes: WakeLink,
    /// Metric handles, by queue and by queue and job name.
    counters: Counters,
    /// Set once a shutdown begins.
    shutdown: Option<shutdown::ShutdownState>,
    /// The grace was cut short (a second ctrl-c) before the shutdown
    /// began: it begins without one.
    hurried: bool,
}

/// A pool's worker actors.
struct Workers {
    slots: HashMap<ActorId, Slot>,
    /// Workers with no job.
    idle: Vec<ActorId>,
    /// Workers replaced after a failure since start.
    restarts: u64,
}

/// The heartbeat actor, and what the pool shares with it.
struct HeartbeatLink {
    /// `None` while it is being replaced, or once the pool stops.
    actor: Option<ActorRef<HeartbeatMsg>>,
    /// A claims check waits in the heartbeat's mailbox.
    check_wanted: Arc<AtomicBool>,
    /// The claims it extends (the book keeps them).
    leases: SharedLeases,
}

/// The pool's registration for wake-ups.
struct WakeLink {
    /// Dropped at shutdown: no more wake-ups.
    guard: Option<WakeGuard>,
    flags: Arc<WakeFlags>,
}

/// Metric handles, registered once.
struct Counters {
    queues: HashMap<&'static str, QueueMetrics>,
    /// By queue and job name, registered on first use.
    jobs: HashMap<(&'static str, &'static str), JobMetrics>,
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
        let queues: Arc<[&'static str]> = args.routes.queues().into();
        let metrics = queues.iter().map(|q| (*q, QueueMetrics::new(q))).collect();
        let leases = SharedLeases::default();
        let mut slots = HashMap::new();
        for _ in 0..args.concurrency {
            let (worker, _) =
                Actor::spawn_linked(None, Worker, myself.clone(), myself.get_cell()).await?;
            slots.insert(worker.get_id(), Slot::new(worker));
        }
        let check_wanted = Arc::new(AtomicBool::new(false));
        let heartbeat = spawn_heartbeat(&myself, &args, &leases, &check_wanted).await?;
        let wake_flags = Arc::new(WakeFlags::default());
        let wake_guard = listen_for_wakes(&args.honker, &myself, &queues, wake_flags.clone());
        tracing::info!(worker_id = %args.worker_id, queues = ?queues,
            concurrency = args.concurrency, "worker pool started");
        // Claim whatever is already waiting.
        myself.cast(SupervisorMsg::Wake(WakeKind::Timer))?;
        Ok(SupervisorState {
            run_times: prefetch::RunTimes::new(
                args.concurrency,
                queues.clone(),
                args.honker.store().second_cycle_divisor(),
            ),
            book: ClaimBook::new(args.concurrency, args.queue_limits.clone(), leases.clone()),
            pump: claim_pump::PumpState::new(queues, args.honker.store().claim_on_commit()),
            workers: Workers {
                idle: slots.keys().cloned().collect(),
                slots,
                restarts: 0,
            },
            timers: timers::Timers::new(),
            paused: pause::PausedQueues::default(),
            heartbeat: HeartbeatLink {
                actor: Some(heartbeat),
                check_wanted,
                leases,
            },
            wakes: WakeLink {
                guard: Some(wake_guard),
                flags: wake_flags,
            },
            counters: Counters {
                queues: metrics,
                jobs: HashMap::new(),
            },
            shutdown: None,
            hurried: false,
            args,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.wakes.guard = None;
        state.timers.stop();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Wake(kind) => state.woken(kind),
            SupervisorMsg::RetryNow => {
                state.timers.back_off_over();
                state.pump.work_maybe = true;
            }
            SupervisorMsg::Checked(result) => state.checked(&myself, result),
            SupervisorMsg::CycleDone {
                output,
                request,
                seq,
            } => state.cycle_done(&myself, output, *request, seq),
            SupervisorMsg::Depths(result) => state.depths_read(result),
            SupervisorMsg::Finished {
                worker,
                reports,
                returned,
                panicked,
                last,
            } => state.finished(worker, reports, returned, panicked, last),
            SupervisorMsg::ClaimsLost(leases) => state.claims_lost(&leases),
            SupervisorMsg::Paused(queues) => state.paused_seen(queues, false),
            SupervisorMsg::Shutdown(reply) => state.begin_shutdown(&myself, reply),
            SupervisorMsg::ShutdownDeadline => state.shutdown_deadline(&myself),
            SupervisorMsg::ShutdownForce => state.shutdown_force(),
            SupervisorMsg::Status(reply) => {
                let _ = reply.send(state.status());
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
        // A worker that failed after a panic reported its jobs first: that
        // report, read before or after this event, settles them.
        let (cell, why, reported) = match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                let reported = err.downcast_ref::<PanicReported>().is_some();
                (cell, Some(err.to_string()), reported)
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => (cell, reason, false),
            _ => return Ok(()),
        };
        let id = cell.get_id();
        if state
            .heartbeat
            .actor
            .as_ref()
            .is_some_and(|h| h.get_id() == id)
        {
            state.heartbeat.actor = None;
            if state.shutdown.is_none() {
                tracing::error!(reason = ?why, "heartbeat actor stopped; restarting it");
                // A check it had not started is gone with it.
                state.heartbeat.check_wanted.store(false, Ordering::Release);
                state.heartbeat.actor = Some(
                    spawn_heartbeat(
                        &myself,
                        &state.args,
                        &state.heartbeat.leases,
                        &state.heartbeat.check_wanted,
                    )
                    .await?,
                );
            }
            return Ok(());
        }
        let Some(slot) = state.workers.slots.remove(&id) else {
            return Ok(());
        };
        state.workers.idle.retain(|w| *w != id);
        let why = why.unwrap_or_else(|| "worker stopped".into());
        if !reported {
            // Stopped without a report: the run it was in failed; the
            // others of its batch go back with their attempt unburned
            // (those that ran before it run again: their outcome was not
            // reported).
            let now = slot.running.load(Ordering::Acquire);
            for run in slot.jobs {
                if run.get() == now {
                    state.worker_failed(run, &why);
                } else {
                    state.record(run, RunResult::Aborted, Duration::ZERO);
                }
            }
        }
        if state.shutdown.is_none() {
            let (worker, _) =
                Actor::spawn_linked(None, Worker, myself.clone(), myself.get_cell()).await?;
            state.workers.idle.push(worker.get_id());
            state
                .workers
                .slots
                .insert(worker.get_id(), Slot::new(worker));
            state.workers.restarts += 1;
            tracing::warn!(reason = %why, "worker replaced");
        }
        state.dispatch_ready();
        state.pump(&myself);
        Ok(())
    }
}

impl SupervisorState {
    fn woken(&mut self, kind: WakeKind) {
        match kind {
            WakeKind::Enqueued => {
                self.wakes.flags.enqueued.store(false, Ordering::Release);
                self.pump.wake_seq += 1;
                self.pump.work_maybe = true;
            }
            WakeKind::Commit => {
                self.wakes.flags.commit.store(false, Ordering::Release);
                self.pump.commit_seen = true;
                if self.pump.claim_on_commit {
                    // Straight to a claim, as after an enqueue here.
                    self.pump.wake_seq += 1;
                    self.pump.work_maybe = true;
                }
                // A commit may have cancelled a job this pool holds.
                if self.heartbeat.leases.lock().is_ok_and(|l| !l.is_empty())
                    && !self.heartbeat.check_wanted.swap(true, Ordering::AcqRel)
                    && let Some(hb) = &self.heartbeat.actor
                {
                    let _ = hb.cast(HeartbeatMsg::Check);
                }
            }
            WakeKind::Timer => {
                self.pump.wake_seq += 1;
                self.pump.work_maybe = true;
                self.pump.sweep_due = true;
            }
        }
    }

    fn status(&self) -> PoolStatus {
        PoolStatus {
            workers: self.workers.slots.len(),
            in_flight: self.book.running_len(),
            prefetched: self.book.ready_len(),
            pending_outcomes: self.pump.pending.len(),
            restarts: self.workers.restarts,
            stale_finishes: self.book.stale(),
            shutting_down: self.shutdown.is_some(),
        }
    }
}

async fn spawn_heartbeat(
    myself: &ActorRef<SupervisorMsg>,
    args: &SupervisorArgs,
    leases: &SharedLeases,
    check_wanted: &Arc<AtomicBool>,
) -> Result<ActorRef<HeartbeatMsg>, ActorProcessingErr> {
    let hb_args = HeartbeatArgs {
        honker: args.honker.clone(),
        visibility: args.visibility,
        leases: leases.clone(),
        supervisor: myself.clone(),
        check_wanted: check_wanted.clone(),
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
