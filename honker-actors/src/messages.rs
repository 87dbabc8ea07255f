//! The messages the pool's actors send each other: the supervisor's, the
//! workers' and the heartbeat's, with what they carry. In a file of their
//! own, so each actor depends on the messages, not on the others.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use honker_core::{ClaimGone, ClaimedJob};
use ractor::{ActorId, RpcReplyPort};

use crate::job::{ErasedJob, RunResult};
use crate::store::{CycleOutput, CycleRequest, Fence, NextTimes};
use crate::{JobContext, Result};

// ------------------------------------------------------------ supervisor

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

/// What a shutdown reports: `Err(n)` when `n` outcomes could not be
/// written.
pub(crate) type ShutdownReply = RpcReplyPort<std::result::Result<(), usize>>;

pub(crate) enum SupervisorMsg {
    /// Something may be claimable.
    Wake(WakeKind),
    /// The cheap read after a commit wake came back.
    Checked(Result<(bool, NextTimes)>),
    /// A cycle came back from the writer, with what it carried.
    CycleDone {
        output: Result<CycleOutput>,
        request: Box<CycleRequest>,
        /// `wake_seq` when it started.
        seq: u64,
    },
    /// Queue depths were read (for the gauge).
    Depths(Result<Vec<(&'static str, i64)>>),
    /// A back-off after a failed cycle or check is over.
    RetryNow,
    /// A worker reports on the jobs it was handed: how each went, those
    /// it hands back unstarted, and the run whose handler panicked, if one
    /// did (the worker then fails); `last` when it is done with the message
    /// (an early hand-back is not).
    Finished {
        worker: ActorId,
        reports: Vec<Report>,
        returned: Vec<(RunId, ClaimedJob)>,
        panicked: Option<(RunId, String)>,
        last: bool,
    },
    /// The heartbeat found these claims lost, and why.
    ClaimsLost(Vec<(Fence, ClaimGone)>),
    /// The heartbeat found these queues paused (after a commit).
    Paused(Vec<String>),
    /// Stop claiming, let running jobs finish, flush, then reply.
    Shutdown(ShutdownReply),
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
    /// Jobs running now, or handed to a worker in a batch and waiting
    /// there behind another job.
    pub in_flight: usize,
    /// Jobs claimed and waiting for a free worker.
    pub prefetched: usize,
    /// Outcomes waiting to be written.
    pub pending_outcomes: usize,
    /// Workers replaced after a failure since start.
    pub restarts: u64,
    /// Finishes dropped because their claim was no longer held by the
    /// pool (a run the pool had already given up).
    pub stale_finishes: u64,
    /// Whether a shutdown has begun.
    pub shutting_down: bool,
}

// --------------------------------------------------------------- workers

/// A job handed to a worker.
pub(crate) struct Assignment {
    pub(crate) job: ClaimedJob,
    /// The claim's run, named in the report.
    pub(crate) run: RunId,
    pub(crate) handler: Arc<dyn ErasedJob>,
    pub(crate) ctx: JobContext,
    /// The end of the rate-limit window its claim was counted in (unix
    /// seconds): it must start before.
    pub(crate) start_before: Option<i64>,
}

pub(crate) enum WorkerMsg {
    /// Run these jobs now, in order, and report how they went; keep the
    /// run going now in `running` (0 between jobs), so a worker that stops
    /// without a report is understood.
    Run {
        jobs: Vec<Assignment>,
        running: Arc<AtomicU64>,
    },
}

/// How one job handed to a worker went.
#[derive(Debug)]
pub(crate) struct Report {
    pub(crate) run: RunId,
    pub(crate) result: RunResult,
    /// Zero for a job that was not started.
    pub(crate) elapsed: Duration,
}

/// The worker failed on purpose after a handler panicked, having reported
/// every job of its message first: the supervisor leaves those jobs to the
/// report, whichever of the two it reads first.
#[derive(Debug)]
pub(crate) struct PanicReported(pub(crate) String);

impl std::fmt::Display for PanicReported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "panicked: {}", self.0)
    }
}

impl std::error::Error for PanicReported {}

// ------------------------------------------------------------- heartbeat

/// What the heartbeat is asked to do.
pub(crate) enum HeartbeatMsg {
    /// Extend every running job's claim now.
    Beat,
    /// Something committed: look (a read) whether a held claim is gone,
    /// so a cancelled job hears of it within milliseconds.
    Check,
}

// ------------------------------------------------------------------ runs

/// One claim's run, unique within its pool for the pool's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RunId(pub(crate) u64);

impl RunId {
    /// The run's number: never 0.
    pub(crate) fn get(self) -> u64 {
        self.0
    }
}
