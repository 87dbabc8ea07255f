//! The claim book: every claim a pool holds, keyed by its lease (job id and
//! attempt), from the claim to the outcome.
//!
//! Pure bookkeeping, no actors and no SQL, so every rule is unit-tested:
//! - a claim is *ready* (prefetched) or *running*; both count against the
//!   pool's room and their queue's limit, and both are heartbeated;
//! - cycles in flight *reserve* the room they may claim, so two cycles
//!   never claim the same room twice;
//! - a finish names its lease: the finish of an earlier attempt never
//!   touches a later attempt of the same job, and a finish for a lease
//!   the book does not hold is dropped and counted;
//! - a ready job whose `expires_at` passed is given back, never started;
//! - a run whose claim was lost writes nothing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use honker_core::{ClaimedJob, Lease};

use super::cycle::{ClaimPlan, Outcome};
use crate::context::JobSignals;
use crate::job::{JobOptions, RunResult};

/// The leases the heartbeat extends: every claim held and not lost.
pub(crate) type SharedLeases = Arc<Mutex<HashSet<Lease>>>;

/// A lease and the queue of its job.
pub(crate) type LeaseIn = (Lease, &'static str);

/// A claimed job waiting for a worker.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) job: ClaimedJob,
    pub(crate) queue: &'static str,
}

/// A job a worker runs.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) queue: &'static str,
    pub(crate) signals: Arc<JobSignals>,
    /// The heartbeat found the claim lost: the outcome is not written.
    pub(crate) lost: bool,
}

/// What the book holds for one pool.
pub(crate) struct ClaimBook {
    concurrency: usize,
    limits: HashMap<&'static str, usize>,
    ready: VecDeque<Ready>,
    running: HashMap<Lease, Running>,
    /// Ready plus running, per queue.
    per_queue: HashMap<&'static str, usize>,
    reserved: usize,
    reserved_per_queue: HashMap<&'static str, usize>,
    held: SharedLeases,
    /// Finishes for leases the book did not hold, dropped.
    stale: u64,
}

/// Why a ready job was not started.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NotStarted {
    /// Its `expires_at` passed while it waited.
    Expired,
}

impl ClaimBook {
    pub(crate) fn new(
        concurrency: usize,
        limits: HashMap<&'static str, usize>,
        held: SharedLeases,
    ) -> Self {
        ClaimBook {
            concurrency,
            limits,
            ready: VecDeque::new(),
            running: HashMap::new(),
            per_queue: HashMap::new(),
            reserved: 0,
            reserved_per_queue: HashMap::new(),
            held,
            stale: 0,
        }
    }

    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    pub(crate) fn running_len(&self) -> usize {
        self.running.len()
    }

    /// Finishes dropped because the book did not hold their lease.
    pub(crate) fn stale(&self) -> u64 {
        self.stale
    }

    /// Claims held, ready or running, of `queue`.
    pub(crate) fn held_in(&self, queue: &str) -> usize {
        self.per_queue.get(queue).copied().unwrap_or(0)
    }

    /// How many more jobs the pool may claim: the workers plus a prefetch
    /// buffer of `buffer`, minus what it holds and what cycles reserved.
    pub(crate) fn room(&self, buffer: usize) -> usize {
        self.concurrency
            .saturating_add(buffer)
            .saturating_sub(self.ready.len() + self.running.len() + self.reserved)
    }

    /// Plan a claim of up to `budget` jobs over `queues` (in that order),
    /// each within its limit, and reserve it until [`Self::unreserve`].
    pub(crate) fn plan(&mut self, budget: usize, queues: &[&'static str]) -> ClaimPlan {
        let mut plan = ClaimPlan {
            budget,
            queues: Vec::new(),
        };
        if budget == 0 {
            return plan;
        }
        for q in queues {
            let used = self.held_in(q) + self.reserved_per_queue.get(q).copied().unwrap_or(0);
            let limit = self.limits.get(q).copied().unwrap_or(usize::MAX);
            let room = budget.min(limit.saturating_sub(used));
            if room > 0 {
                plan.queues.push((q, room));
            }
        }
        if plan.queues.is_empty() {
            plan.budget = 0;
        }
        self.reserved += plan.budget;
        for (q, room) in &plan.queues {
            *self.reserved_per_queue.entry(q).or_default() += room;
        }
        plan
    }

    /// The cycle that carried `plan` came back: free its reservation.
    pub(crate) fn unreserve(&mut self, plan: &ClaimPlan) {
        self.reserved = self.reserved.saturating_sub(plan.budget);
        for (q, room) in &plan.queues {
            if let Some(r) = self.reserved_per_queue.get_mut(q) {
                *r = r.saturating_sub(*room);
            }
        }
    }

    /// A cycle claimed `job` from `queue`: it waits for a worker.
    pub(crate) fn claimed(&mut self, job: ClaimedJob, queue: &'static str) {
        self.lock_held().insert(job.lease());
        *self.per_queue.entry(queue).or_default() += 1;
        self.ready.push_back(Ready { job, queue });
    }

    /// The next ready job to start, at unix second `now`. Jobs that
    /// expired while they waited are taken out and returned in `gone`
    /// (their claims must be given back).
    pub(crate) fn next_ready(
        &mut self,
        now: i64,
        gone: &mut Vec<(Ready, NotStarted)>,
    ) -> Option<Ready> {
        while let Some(r) = self.ready.pop_front() {
            if r.job.expires_at.is_some_and(|e| e <= now) {
                self.forget(r.job.lease(), r.queue);
                gone.push((r, NotStarted::Expired));
                continue;
            }
            return Some(r);
        }
        None
    }

    /// Put a job taken by [`Self::next_ready`] back at the front (no
    /// worker could take it).
    pub(crate) fn unready(&mut self, r: Ready) {
        self.ready.push_front(r);
    }

    /// A worker starts the job; it runs under `signals`.
    pub(crate) fn start(&mut self, r: &Ready, signals: Arc<JobSignals>) {
        self.running.insert(
            r.job.lease(),
            Running {
                queue: r.queue,
                signals,
                lost: false,
            },
        );
    }

    /// The run of `lease` ended: take it out of the book. `None` (counted
    /// as stale) when the book does not hold that lease.
    pub(crate) fn finish(&mut self, lease: Lease) -> Option<Running> {
        let Some(run) = self.running.remove(&lease) else {
            self.stale += 1;
            return None;
        };
        self.forget(lease, run.queue);
        Some(run)
    }

    /// The heartbeat found these claims lost. Ready jobs are dropped
    /// (returned with their queue); running jobs are told to stop, and
    /// their outcome will not be written (returned in the second list).
    pub(crate) fn lost(&mut self, leases: &[Lease]) -> (Vec<LeaseIn>, Vec<LeaseIn>) {
        let set: HashSet<Lease> = leases.iter().copied().collect();
        let mut dropped = Vec::new();
        let mut kept = VecDeque::with_capacity(self.ready.len());
        for r in self.ready.drain(..) {
            if set.contains(&r.job.lease()) {
                dropped.push((r.job.lease(), r.queue));
            } else {
                kept.push_back(r);
            }
        }
        self.ready = kept;
        for (lease, queue) in &dropped {
            self.forget(*lease, queue);
        }
        let mut stopped = Vec::new();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for l in leases {
            if let Some(run) = self.running.get_mut(l) {
                if !run.lost {
                    run.lost = true;
                    run.signals
                        .claim_lost
                        .store(true, std::sync::atomic::Ordering::Release);
                    run.signals.stop.raise();
                    held.remove(l);
                    stopped.push((*l, run.queue));
                }
            }
        }
        drop(held);
        (dropped, stopped)
    }

    /// Take every ready job out (a shutdown gives them back).
    pub(crate) fn drain_ready(&mut self) -> Vec<Ready> {
        let all: Vec<Ready> = self.ready.drain(..).collect();
        for r in &all {
            self.forget(r.job.lease(), r.queue);
        }
        all
    }

    /// The running jobs, by lease.
    pub(crate) fn running(&self) -> impl Iterator<Item = (&Lease, &Running)> {
        self.running.iter()
    }

    fn forget(&mut self, lease: Lease, queue: &'static str) {
        self.lock_held().remove(&lease);
        if let Some(n) = self.per_queue.get_mut(queue) {
            *n = n.saturating_sub(1);
        }
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashSet<Lease>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The outcome to write for a run of `lease` that ended with `result`.
/// `None` when nothing may be written: the claim was lost.
///
/// A retryable error (or a timeout) returned while the pool shuts down,
/// by a handler that was asked to stop, gives the claim back without
/// burning the attempt: that is the cooperative stop the docs describe.
pub(crate) fn outcome_of(
    lease: Lease,
    run: &Running,
    result: RunResult,
    opts: &JobOptions,
    shutting_down: bool,
) -> Option<Outcome> {
    if run.lost {
        return None;
    }
    let queue = run.queue;
    let attempt = u32::try_from(lease.attempts).unwrap_or(u32::MAX);
    let asked_to_stop = shutting_down && run.signals.stop.is_raised();
    Some(match result {
        RunResult::Done(result) => Outcome::Ack {
            lease,
            queue,
            result: result.map(|r| (r, opts.result_ttl)),
        },
        RunResult::Retry { .. } | RunResult::TimedOut(_) if asked_to_stop => {
            Outcome::Release { lease, queue }
        }
        RunResult::Retry { after, error } => Outcome::Retry {
            lease,
            queue,
            delay: after.unwrap_or_else(|| opts.backoff.delay(attempt)),
            error,
        },
        RunResult::TimedOut(d) => Outcome::Retry {
            lease,
            queue,
            delay: opts.backoff.delay(attempt),
            error: format!("timed out after {}", humantime(d)),
        },
        RunResult::Fail(error) => Outcome::Fail {
            lease,
            queue,
            error,
        },
        RunResult::Aborted => Outcome::Release { lease, queue },
    })
}

/// `1.5s`, `250ms`: a duration for a message a person reads.
fn humantime(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Backoff;

    fn job(id: i64, attempts: i64, queue: &str, expires_at: Option<i64>) -> ClaimedJob {
        ClaimedJob {
            id,
            queue: queue.to_string(),
            payload: "{}".into(),
            priority: 0,
            run_at: 0,
            worker_id: "w".into(),
            claim_expires_at: 100,
            attempts,
            max_attempts: 3,
            created_at: 0,
            expires_at,
        }
    }

    fn book(concurrency: usize, limits: &[(&'static str, usize)]) -> ClaimBook {
        ClaimBook::new(
            concurrency,
            limits.iter().copied().collect(),
            SharedLeases::default(),
        )
    }

    fn start_next(b: &mut ClaimBook) -> (Lease, Arc<JobSignals>) {
        let r = b.next_ready(0, &mut Vec::new()).expect("a ready job");
        let signals = Arc::new(JobSignals::default());
        b.start(&r, signals.clone());
        (r.job.lease(), signals)
    }

    fn opts() -> JobOptions {
        JobOptions::default().backoff(Backoff::fixed(Duration::from_secs(7)))
    }

    #[test]
    fn a_finish_of_an_earlier_attempt_never_touches_the_later_one() {
        let mut b = book(2, &[("q", 1)]);
        b.claimed(job(1, 1, "q", None), "q");
        let (first, _) = start_next(&mut b);
        // The claim lapsed unnoticed; the pool claimed the job again.
        b.claimed(job(1, 2, "q", None), "q");
        let (second, _) = start_next(&mut b);
        assert_eq!(b.running_len(), 2);
        let run = b.finish(first).expect("attempt 1 is in the book");
        let out = outcome_of(first, &run, RunResult::Done(None), &opts(), false);
        assert!(matches!(out, Some(Outcome::Ack { lease, .. }) if lease == first));
        // Attempt 2 still runs, still heartbeated, still counted.
        assert_eq!(b.running_len(), 1);
        assert!(b.held.lock().unwrap().contains(&second));
        assert_eq!(b.held_in("q"), 1);
        assert!(b.finish(second).is_some());
        assert_eq!(b.held_in("q"), 0);
        assert!(b.held.lock().unwrap().is_empty());
    }

    #[test]
    fn a_finish_for_a_lease_not_held_is_dropped_and_counted() {
        let mut b = book(2, &[]);
        b.claimed(job(1, 1, "q", None), "q");
        let (lease, _) = start_next(&mut b);
        assert!(b.finish(Lease { id: 1, attempts: 2 }).is_none());
        assert_eq!(b.stale(), 1);
        assert!(b.finish(lease).is_some());
        assert!(b.finish(lease).is_none());
        assert_eq!(b.stale(), 2);
    }

    #[test]
    fn room_counts_ready_running_and_reserved() {
        let mut b = book(4, &[]);
        assert_eq!(b.room(4), 8);
        let plan = b.plan(3, &["q"]);
        assert_eq!(b.room(4), 5);
        b.claimed(job(1, 1, "q", None), "q");
        b.unreserve(&plan);
        assert_eq!(b.room(4), 7);
        start_next(&mut b);
        assert_eq!(b.room(0), 3);
        assert_eq!(b.room(usize::MAX), usize::MAX - 1);
    }

    #[test]
    fn plans_respect_queue_limits_across_cycles_in_flight() {
        let mut b = book(10, &[("slow", 2)]);
        let first = b.plan(10, &["slow", "fast"]);
        assert_eq!(first.queues, vec![("slow", 2), ("fast", 10)]);
        // A second cycle while the first is in flight: no room left in "slow".
        let second = b.plan(5, &["slow", "fast"]);
        assert_eq!(second.queues, vec![("fast", 5)]);
        b.unreserve(&first);
        b.claimed(job(1, 1, "slow", None), "slow");
        b.unreserve(&second);
        let third = b.plan(5, &["slow"]);
        assert_eq!(third.queues, vec![("slow", 1)]);
        let none = b.plan(0, &["slow"]);
        assert!(none.queues.is_empty());
    }

    #[test]
    fn a_plan_with_no_queue_reserves_nothing() {
        let mut b = book(4, &[("q", 0)]);
        let plan = b.plan(4, &["q"]);
        assert_eq!(plan.budget, 0);
        assert_eq!(b.room(0), 4);
    }

    #[test]
    fn a_ready_job_past_its_expiry_is_never_started() {
        let mut b = book(4, &[]);
        b.claimed(job(1, 1, "q", Some(50)), "q");
        b.claimed(job(2, 1, "q", Some(51)), "q");
        b.claimed(job(3, 1, "q", None), "q");
        let mut gone = Vec::new();
        let next = b.next_ready(51, &mut gone).expect("job 3 is still good");
        assert_eq!(next.job.id, 3);
        let ids: Vec<i64> = gone.iter().map(|(r, _)| r.job.id).collect();
        assert_eq!(ids, [1, 2]);
        assert!(gone.iter().all(|(_, why)| *why == NotStarted::Expired));
        // Expired jobs no longer count; the one taken still does until started.
        assert_eq!(b.held_in("q"), 1);
    }

    #[test]
    fn lost_claims_drop_ready_jobs_and_stop_running_ones_without_an_outcome() {
        let mut b = book(4, &[]);
        b.claimed(job(1, 1, "q", None), "q");
        let (running, signals) = start_next(&mut b);
        b.claimed(job(2, 1, "q", None), "q");
        let (dropped, stopped) = b.lost(&[running, Lease { id: 2, attempts: 1 }]);
        assert_eq!(dropped, vec![(Lease { id: 2, attempts: 1 }, "q")]);
        assert_eq!(stopped, vec![(running, "q")]);
        assert!(signals.stop.is_raised());
        assert!(b.held.lock().unwrap().is_empty());
        // Still occupies its worker and its queue until it returns.
        assert_eq!(b.held_in("q"), 1);
        let run = b.finish(running).expect("still in the book");
        assert!(outcome_of(running, &run, RunResult::Done(None), &opts(), false).is_none());
        assert_eq!(b.held_in("q"), 0);
        // A second report of the same loss changes nothing.
        assert_eq!(b.lost(&[running]), (vec![], vec![]));
    }

    #[test]
    fn a_cooperative_stop_on_shutdown_gives_the_claim_back() {
        let mut b = book(1, &[]);
        b.claimed(job(1, 1, "q", None), "q");
        let (lease, signals) = start_next(&mut b);
        signals.stop.raise();
        let run = b.finish(lease).unwrap();
        let retry = RunResult::Retry {
            after: None,
            error: "stopping".into(),
        };
        let out = outcome_of(lease, &run, retry, &opts(), true);
        assert!(matches!(out, Some(Outcome::Release { .. })), "{out:?}");
        // Without a shutdown the same error is a retry with the backoff.
        let retry = RunResult::Retry {
            after: None,
            error: "stopping".into(),
        };
        let out = outcome_of(lease, &run, retry, &opts(), false);
        assert!(
            matches!(out, Some(Outcome::Retry { delay, .. }) if delay == Duration::from_secs(7)),
            "{out:?}"
        );
        // A permanent failure stays a failure.
        let out = outcome_of(lease, &run, RunResult::Fail("bad".into()), &opts(), true);
        assert!(matches!(out, Some(Outcome::Fail { .. })));
    }

    #[test]
    fn a_timeout_is_a_retry_with_the_backoff_and_says_so() {
        let mut b = book(1, &[]);
        b.claimed(job(1, 1, "q", None), "q");
        let (lease, _) = start_next(&mut b);
        let run = b.finish(lease).unwrap();
        let out = outcome_of(
            lease,
            &run,
            RunResult::TimedOut(Duration::from_millis(250)),
            &opts(),
            false,
        );
        match out {
            Some(Outcome::Retry { delay, error, .. }) => {
                assert_eq!(delay, Duration::from_secs(7));
                assert_eq!(error, "timed out after 250ms");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn draining_ready_jobs_frees_their_room() {
        let mut b = book(2, &[("q", 5)]);
        b.claimed(job(1, 1, "q", None), "q");
        b.claimed(job(2, 1, "q", None), "q");
        let drained = b.drain_ready();
        assert_eq!(drained.len(), 2);
        assert_eq!(b.held_in("q"), 0);
        assert_eq!(b.room(0), 2);
        assert!(b.held.lock().unwrap().is_empty());
    }

    // ---------------------------------------------------------- model test

    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Plan a cycle with this budget (at most two in flight).
        Plan(usize),
        /// The oldest cycle in flight comes back having claimed this share
        /// of each queue's planned room (0..=100 %), jobs expiring or not.
        Back(u8, bool),
        /// A worker takes the next ready job.
        Start,
        /// The run at this index (modulo) finishes; or a lease never held.
        Finish(usize),
        Stale,
        /// The heartbeat finds these (modulo) held leases lost.
        Lost(usize),
        /// A shutdown gives every ready job back.
        Drain,
        /// Time passes (expiring ready jobs).
        Tick,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..12).prop_map(Op::Plan),
            (0u8..=100, any::<bool>()).prop_map(|(p, e)| Op::Back(p, e)),
            Just(Op::Start),
            (0usize..64).prop_map(Op::Finish),
            Just(Op::Stale),
            (0usize..64).prop_map(Op::Lost),
            Just(Op::Drain),
            Just(Op::Tick),
        ]
    }

    const QUEUES: [&str; 2] = ["a", "b"];
    const CONCURRENCY: usize = 4;
    const BUFFER: usize = 4;
    const LIMIT_A: usize = 2;

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("HONKER_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
            ..ProptestConfig::default()
        })]

        /// Whatever happens, in any order: a queue never holds more than
        /// its limit, the pool never more than its room, the heartbeat
        /// extends exactly the claims held and not lost, and every finish
        /// of a lease not held is dropped and counted.
        #[test]
        fn the_book_keeps_its_invariants(ops in proptest::collection::vec(op(), 1..80)) {
            let mut b = book(CONCURRENCY, &[("a", LIMIT_A)]);
            let mut in_flight: std::collections::VecDeque<ClaimPlan> = Default::default();
            let mut running: Vec<Lease> = Vec::new();
            let mut lost: HashSet<Lease> = HashSet::new();
            let mut next_id = 1;
            let mut now = 0;
            let mut stale = 0;
            for op in ops {
                match op {
                    Op::Plan(budget) if in_flight.len() < 2 => {
                        let budget = budget.min(b.room(BUFFER));
                        in_flight.push_back(b.plan(budget, &QUEUES));
                    }
                    Op::Plan(_) => {}
                    Op::Back(share, expiring) => {
                        let Some(plan) = in_flight.pop_front() else { continue };
                        let mut left = plan.budget;
                        for (q, room) in &plan.queues {
                            let n = (room * usize::from(share) / 100).min(left);
                            left -= n;
                            for _ in 0..n {
                                let expires = expiring.then_some(now + 1);
                                b.claimed(job(next_id, 1, q, expires), q);
                                next_id += 1;
                            }
                        }
                        b.unreserve(&plan);
                    }
                    Op::Start if running.len() < CONCURRENCY => {
                        let mut gone = Vec::new();
                        if let Some(r) = b.next_ready(now, &mut gone) {
                            prop_assert!(r.job.expires_at.is_none_or(|e| e > now));
                            b.start(&r, Arc::new(JobSignals::default()));
                            running.push(r.job.lease());
                        }
                        for (r, _) in gone {
                            prop_assert!(r.job.expires_at.is_some_and(|e| e <= now));
                        }
                    }
                    Op::Start => {}
                    Op::Finish(i) if !running.is_empty() => {
                        let lease = running.remove(i % running.len());
                        let run = b.finish(lease);
                        prop_assert!(run.is_some());
                        prop_assert_eq!(run.map(|r| r.lost), Some(lost.contains(&lease)));
                    }
                    Op::Finish(_) => {}
                    Op::Stale => {
                        let never = Lease { id: -1, attempts: 1 };
                        prop_assert!(b.finish(never).is_none());
                        stale += 1;
                    }
                    Op::Lost(i) => {
                        let held: Vec<Lease> = b.held.lock().unwrap().iter().copied().collect();
                        if held.is_empty() { continue }
                        let mut l = held;
                        l.sort_by_key(|l| l.id);
                        let pick = l[i % l.len()];
                        b.lost(&[pick]);
                        if running.contains(&pick) {
                            lost.insert(pick);
                        }
                    }
                    Op::Drain => {
                        b.drain_ready();
                    }
                    Op::Tick => now += 1,
                }
                // Invariants.
                let reserved_a = b.reserved_per_queue.get("a").copied().unwrap_or(0);
                prop_assert!(b.held_in("a") + reserved_a <= LIMIT_A,
                    "queue a: {} held + {} reserved > {}", b.held_in("a"), reserved_a, LIMIT_A);
                prop_assert_eq!(b.held_in("a") + b.held_in("b"), b.ready_len() + b.running_len());
                prop_assert!(b.ready_len() + b.running_len() + b.reserved <= CONCURRENCY + BUFFER);
                prop_assert_eq!(b.running_len(), running.len());
                let heartbeated: HashSet<Lease> = b.held.lock().unwrap().clone();
                let expected: HashSet<Lease> = b
                    .ready
                    .iter()
                    .map(|r| r.job.lease())
                    .chain(running.iter().copied().filter(|l| !lost.contains(l)))
                    .collect();
                prop_assert_eq!(heartbeated, expected);
                prop_assert_eq!(b.stale(), stale);
            }
        }
    }
}
