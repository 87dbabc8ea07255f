//! What one cycle of a pool carries to its store and brings back.

use std::sync::Arc;
use std::time::Duration;

use honker_core::{ClaimedJob, Lease};

use crate::Result;

/// What a pool's writes name one claim by: its lease (job id and the
/// attempt number the claim set) and the worker string the claim wrote,
/// which is the pool's id and the claiming cycle's number. A job requeued
/// with fresh attempts and claimed again by the same pool has the same
/// lease; its fence differs, so a fence never repeats and an earlier
/// claim's outcome or heartbeat, however late, matches no later claim.
///
/// ```
/// use honker_actors::store::Fence;
/// use honker_actors::core::Lease;
/// let f = Fence { worker: "host:1:2:3#4".into(), lease: Lease { id: 7, attempts: 1 } };
/// assert_eq!(f.lease.id, 7);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fence {
    /// `worker_id` as the claim wrote it.
    pub worker: Arc<str>,
    /// The job and the attempt its claim set.
    pub lease: Lease,
}

impl Fence {
    /// The fence of `job`, claimed by a cycle that wrote `worker` (one
    /// string shared by every claim of the cycle).
    pub(crate) fn new(worker: &Arc<str>, job: &ClaimedJob) -> Fence {
        debug_assert_eq!(&**worker, job.worker_id, "the claim's own worker string");
        Fence {
            worker: worker.clone(),
            lease: job.lease(),
        }
    }

    /// The fence of a claimed row, as its claim returned it.
    #[cfg(test)]
    pub(crate) fn of(job: &ClaimedJob) -> Fence {
        Fence::new(&Arc::from(job.worker_id.as_str()), job)
    }
}

/// A result to write down for one claim.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The run succeeded: delete the row, and save its result if any
    /// (the JSON value and how long to keep it).
    Ack {
        /// The claim.
        fence: Fence,
        /// The job's queue.
        queue: &'static str,
        /// The registered job that ran it, or `"(unrouted)"`.
        job_name: &'static str,
        /// The result to save, and its time to live.
        result: Option<(String, Option<Duration>)>,
    },
    /// The run failed and may be tried again after `delay`.
    Retry {
        /// The claim.
        fence: Fence,
        /// The job's queue.
        queue: &'static str,
        /// The registered job that ran it, or `"(unrouted)"`.
        job_name: &'static str,
        /// The back-off before the next attempt.
        delay: Duration,
        /// What went wrong.
        error: String,
    },
    /// The run failed for good: dead-letter the job.
    Fail {
        /// The claim.
        fence: Fence,
        /// The job's queue.
        queue: &'static str,
        /// The registered job that ran it, or `"(unrouted)"`.
        job_name: &'static str,
        /// What went wrong.
        error: String,
    },
    /// The job was not run (or not to the end): give it back, attempt
    /// unburned.
    Release {
        /// The claim.
        fence: Fence,
        /// The job's queue.
        queue: &'static str,
        /// The registered job that ran it, or `"(unrouted)"`.
        job_name: &'static str,
    },
}

impl Outcome {
    /// The job's queue.
    pub fn queue(&self) -> &'static str {
        match self {
            Outcome::Ack { queue, .. }
            | Outcome::Retry { queue, .. }
            | Outcome::Fail { queue, .. }
            | Outcome::Release { queue, .. } => queue,
        }
    }

    /// The registered job that ran it.
    pub fn job_name(&self) -> &'static str {
        match self {
            Outcome::Ack { job_name, .. }
            | Outcome::Retry { job_name, .. }
            | Outcome::Fail { job_name, .. }
            | Outcome::Release { job_name, .. } => job_name,
        }
    }

    /// The claim it is written with.
    pub fn fence(&self) -> &Fence {
        match self {
            Outcome::Ack { fence, .. }
            | Outcome::Retry { fence, .. }
            | Outcome::Fail { fence, .. }
            | Outcome::Release { fence, .. } => fence,
        }
    }

    /// The claim's lease.
    pub fn lease(&self) -> Lease {
        self.fence().lease
    }
}

/// What a cycle should claim.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ClaimPlan {
    /// The most to claim in all.
    pub budget: usize,
    /// Queues in the order to try, each with its room.
    pub queues: Vec<(&'static str, usize)>,
    /// Workers free now: a queue limited across processes (a running or
    /// rate limit) is claimed only for these, before the other queues, so
    /// no claim of it waits unstarted holding a slot every process shares.
    pub free: usize,
}

/// What writing one outcome did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Deleted (and its result saved).
    Acked,
    /// Due again after its back-off.
    Retried,
    /// Dead-lettered.
    Dead,
    /// Given back, attempt unburned.
    Released,
    /// The claim was no longer ours: nothing changed.
    Lost,
}

/// One cycle of a pool: what it writes, what it claims.
#[derive(Debug, Clone)]
pub struct CycleRequest {
    /// The worker string this cycle's claims write: the pool's id and the
    /// cycle's number, never used by another claim.
    pub worker: Arc<str>,
    /// The outcomes to write, in order.
    pub outcomes: Vec<Outcome>,
    /// What to claim.
    pub plan: ClaimPlan,
    /// The claims' visibility timeout.
    pub visibility: Duration,
    /// Every queue of the pool (for the next due times).
    pub queues: Arc<[&'static str]>,
    /// Sweep expired jobs (and results) this time.
    pub sweep: bool,
}

/// What a cycle did.
#[derive(Debug, Default)]
pub struct CycleOutput {
    /// One entry per outcome, in order: what it did, or why it failed
    /// (then it was rolled back alone and should be tried again).
    pub applied: Vec<std::result::Result<Applied, String>>,
    /// The jobs claimed.
    pub claimed: Vec<ClaimedJob>,
    /// Rate-limited queues whose claims were counted as starts, each with
    /// the end of the window they were counted in (its jobs must start
    /// before it).
    pub start_before: Vec<(&'static str, i64)>,
    /// Queues whose claim failed, with the error (rolled back alone).
    pub claim_errors: Vec<(&'static str, String)>,
    /// A queue gave all that was asked, or was not asked for lack of
    /// budget: more may be waiting.
    pub maybe_more: bool,
    /// `None` when not read (more work was waiting).
    pub next: Option<NextTimes>,
    /// Rows the expiry sweep moved to dead.
    pub swept: usize,
    /// The store's paused queues (jobs of theirs claimed but not started
    /// go back).
    pub paused: Vec<String>,
}

/// Called with a cycle's request and its answer, after the commit.
pub type CycleDone = Box<dyn FnOnce(CycleRequest, Result<CycleOutput>) + Send>;

/// When something next happens on the pool's queues (unix seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextTimes {
    /// A `run_at` falls due or a claim lapses.
    pub claim: Option<i64>,
    /// A job expires and wants sweeping.
    pub expiry: Option<i64>,
}

impl NextTimes {
    /// The earlier of the two.
    ///
    /// ```
    /// let t = honker_actors::store::NextTimes { claim: Some(9), expiry: Some(4) };
    /// assert_eq!(t.first(), Some(4));
    /// ```
    pub fn first(&self) -> Option<i64> {
        earliest(self.claim, self.expiry)
    }
}

/// The earlier of two optional times.
pub(crate) fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}
