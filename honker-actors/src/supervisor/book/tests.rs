//! Unit tests of the claim book, and its model-based property test.

use super::*;
use std::time::Duration;

use crate::job::Backoff;
use crate::job::{JobOptions, RunResult};
use crate::store::Outcome;
use crate::supervisor::outcomes::outcome_of;
use honker_core::Lease;

fn job(id: i64, attempts: i64, queue: &str, expires_at: Option<i64>) -> ClaimedJob {
    job_of_cycle(id, attempts, queue, expires_at, 1)
}

/// A job claimed by the pool's cycle number `cycle`.
fn job_of_cycle(
    id: i64,
    attempts: i64,
    queue: &str,
    expires_at: Option<i64>,
    cycle: u64,
) -> ClaimedJob {
    ClaimedJob {
        id,
        queue: queue.to_string(),
        payload: "{}".into(),
        priority: 0,
        run_at: 0,
        worker_id: format!("w#{cycle}"),
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

fn start_next(b: &mut ClaimBook) -> (RunId, Arc<JobSignals>) {
    let r = b.next_ready(0, &mut Vec::new()).expect("a ready job");
    let signals = Arc::new(JobSignals::default());
    b.start(&r, signals.clone());
    (r.run, signals)
}

fn heartbeated(b: &ClaimBook) -> HashSet<Fence> {
    b.held.lock().unwrap().clone()
}

fn heartbeated_leases(b: &ClaimBook) -> HashSet<Lease> {
    heartbeated(b).into_iter().map(|f| f.lease).collect()
}

/// The fence of job `id`, attempt `attempts`, claimed by cycle `cycle`.
fn fence(id: i64, attempts: i64, cycle: u64) -> Fence {
    Fence {
        worker: format!("w#{cycle}").into(),
        lease: Lease { id, attempts },
    }
}

fn opts() -> JobOptions {
    JobOptions::default().backoff(Backoff::fixed(Duration::from_secs(7)))
}

const L1: Lease = Lease { id: 1, attempts: 1 };

#[test]
fn a_finish_of_an_earlier_attempt_never_touches_the_later_one() {
    let mut b = book(2, &[("q", 1)]);
    b.claimed(job(1, 1, "q", None), "q", "k");
    let (first, _) = start_next(&mut b);
    // The claim lapsed unnoticed; the pool claimed the job again.
    b.claimed(job(1, 2, "q", None), "q", "k");
    let (second, _) = start_next(&mut b);
    assert_eq!(b.running_len(), 2);
    let run = b.finish(first).expect("attempt 1 is in the book");
    let out = outcome_of(&run, RunResult::Done(None), &opts(), false);
    assert!(matches!(out, Some(Outcome::Ack { fence, .. }) if fence.lease == L1));
    // Attempt 2 still runs, still heartbeated, still counted.
    assert_eq!(b.running_len(), 1);
    assert!(heartbeated_leases(&b).contains(&Lease { id: 1, attempts: 2 }));
    assert_eq!(b.held_in("q"), 1);
    assert!(b.finish(second).is_some());
    assert_eq!(b.held_in("q"), 0);
    assert!(heartbeated(&b).is_empty());
}

#[test]
fn a_new_claim_with_the_lease_of_a_running_one_is_another_claim() {
    // Cancelled, requeued with fresh attempts, claimed again by a later
    // cycle: the same id and attempt number, another fence.
    let mut b = book(2, &[]);
    b.claimed(job(1, 1, "q", None), "q", "k");
    let (old, old_signals) = start_next(&mut b);
    b.claimed(job_of_cycle(1, 1, "q", None, 2), "q", "k");
    let (new, _) = start_next(&mut b);
    assert_ne!(old, new);
    assert_eq!(
        heartbeated(&b),
        HashSet::from([fence(1, 1, 1), fence(1, 1, 2)]),
        "both claims are heartbeated, each by its own fence"
    );
    // The heartbeat finds the old claim lost: only the old run is told.
    let (_, stopped) = b.lost(&[fence(1, 1, 1)]);
    assert_eq!(stopped, vec![(fence(1, 1, 1), "q")]);
    assert!(old_signals.stop.is_raised(), "the old run is told");
    assert_eq!(heartbeated(&b), HashSet::from([fence(1, 1, 2)]));
    // The old run's finish writes nothing and leaves the new claim be;
    // the new run's outcome names the new claim's fence.
    let run = b.finish(old).expect("still in the book");
    assert!(outcome_of(&run, RunResult::Done(None), &opts(), false).is_none());
    assert_eq!(b.held_in("q"), 1);
    let run = b.finish(new).expect("the new run");
    let out = outcome_of(&run, RunResult::Done(None), &opts(), false).expect("written");
    assert_eq!(out.fence(), &fence(1, 1, 2));
    assert!(heartbeated(&b).is_empty());
    assert_eq!(b.held_in("q"), 0);
}

#[test]
fn a_finish_for_a_run_not_held_is_dropped_and_counted() {
    let mut b = book(2, &[]);
    b.claimed(job(1, 1, "q", None), "q", "k");
    let (run, _) = start_next(&mut b);
    assert!(b.finish(RunId(999)).is_none());
    assert_eq!(b.stale(), 1);
    assert!(b.finish(run).is_some());
    assert!(b.finish(run).is_none());
    assert_eq!(b.stale(), 2);
}

#[test]
fn room_counts_ready_running_and_reserved() {
    let mut b = book(4, &[]);
    assert_eq!(b.room(4), 8);
    let plan = b.plan(3, &["q"], |_| usize::MAX);
    assert_eq!(b.room(4), 5);
    b.claimed(job(1, 1, "q", None), "q", "k");
    b.unreserve(&plan);
    assert_eq!(b.room(4), 7);
    start_next(&mut b);
    assert_eq!(b.room(0), 3);
    assert_eq!(b.room(usize::MAX), usize::MAX - 1);
}

#[test]
fn plans_respect_queue_limits_across_cycles_in_flight() {
    let mut b = book(10, &[("slow", 2)]);
    let first = b.plan(10, &["slow", "fast"], |_| usize::MAX);
    assert_eq!(first.queues, vec![("slow", 2), ("fast", 10)]);
    // A second cycle while the first is in flight: no room left in "slow".
    let second = b.plan(5, &["slow", "fast"], |_| usize::MAX);
    assert_eq!(second.queues, vec![("fast", 5)]);
    b.unreserve(&first);
    b.claimed(job(1, 1, "slow", None), "slow", "k");
    b.unreserve(&second);
    let third = b.plan(5, &["slow"], |_| usize::MAX);
    assert_eq!(third.queues, vec![("slow", 1)]);
    let none = b.plan(0, &["slow"], |_| usize::MAX);
    assert!(none.queues.is_empty());
}

#[test]
fn a_plan_keeps_each_queue_within_its_own_cap() {
    let mut b = book(4, &[]);
    b.claimed(job(1, 1, "slow", None), "slow", "k");
    // "slow" may hold 3 in all (one held), "fast" 20.
    let cap = |q: &str| if q == "slow" { 3 } else { 20 };
    let plan = b.plan(30, &["slow", "fast"], cap);
    assert_eq!(plan.queues, vec![("slow", 2), ("fast", 20)]);
    // Reserved counts against the cap until the cycle is back.
    let again = b.plan(30, &["slow", "fast"], cap);
    assert!(again.queues.is_empty(), "{again:?}");
}

#[test]
fn a_plan_with_no_queue_reserves_nothing() {
    let mut b = book(4, &[("q", 0)]);
    let plan = b.plan(4, &["q"], |_| usize::MAX);
    assert_eq!(plan.budget, 0);
    assert_eq!(b.room(0), 4);
}

#[test]
fn a_ready_job_past_its_expiry_is_never_started() {
    let mut b = book(4, &[]);
    b.claimed(job(1, 1, "q", Some(50)), "q", "k");
    b.claimed(job(2, 1, "q", Some(51)), "q", "k");
    b.claimed(job(3, 1, "q", None), "q", "k");
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
    b.claimed(job(1, 1, "q", None), "q", "k");
    let (running, signals) = start_next(&mut b);
    b.claimed(job(2, 1, "q", None), "q", "k");
    // Another cycle's claim of the same leases is not these claims.
    assert_eq!(b.lost(&[fence(1, 1, 2), fence(2, 1, 2)]), (vec![], vec![]));
    assert!(!signals.stop.is_raised());
    let (dropped, stopped) = b.lost(&[fence(1, 1, 1), fence(2, 1, 1)]);
    assert_eq!(dropped, vec![(fence(2, 1, 1), "q")]);
    assert_eq!(stopped, vec![(fence(1, 1, 1), "q")]);
    assert!(signals.stop.is_raised());
    assert!(heartbeated(&b).is_empty());
    // Still occupies its worker and its queue until it returns.
    assert_eq!(b.held_in("q"), 1);
    let run = b.finish(running).expect("still in the book");
    assert!(outcome_of(&run, RunResult::Done(None), &opts(), false).is_none());
    assert_eq!(b.held_in("q"), 0);
    // A second report of the same loss changes nothing.
    assert_eq!(b.lost(&[fence(1, 1, 1)]), (vec![], vec![]));
}

#[test]
fn draining_ready_jobs_frees_their_room() {
    let mut b = book(2, &[("q", 5)]);
    b.claimed(job(1, 1, "q", None), "q", "k");
    b.claimed(job(2, 1, "q", None), "q", "k");
    let drained = b.drain_ready();
    assert_eq!(drained.len(), 2);
    assert_eq!(b.held_in("q"), 0);
    assert_eq!(b.room(0), 2);
    assert!(heartbeated(&b).is_empty());
}

#[test]
fn ready_jobs_wait_in_claim_order_and_one_put_back_comes_first() {
    let mut b = book(4, &[]);
    b.claimed(job(1, 1, "q", None), "q", "k");
    b.claimed(job(2, 1, "q", None), "q", "k");
    assert_eq!(b.ready_len(), 2);
    let first = b.next_ready(0, &mut Vec::new()).unwrap();
    assert_eq!((first.job.id, b.ready_len()), (1, 1));
    b.unready(first);
    assert_eq!(b.ready_len(), 2);
    assert_eq!(b.next_ready(0, &mut Vec::new()).unwrap().job.id, 1);
    assert_eq!(
        b.held_in("q"),
        2,
        "a job taken and put back still counts once"
    );
}

#[test]
fn a_job_of_higher_priority_claimed_later_starts_before_the_buffer() {
    let mut b = book(2, &[]);
    let with = |id, priority| ClaimedJob {
        priority,
        ..job(id, 1, "q", None)
    };
    // A full buffer of priority 0, then 5, then another 0 and a 5.
    for id in 1..=4 {
        b.claimed(with(id, 0), "q", "k");
    }
    b.claimed(with(5, 5), "q", "k");
    b.claimed(with(6, 0), "q", "k");
    b.claimed(with(7, 5), "q", "k");
    b.claimed(with(8, 9), "q", "k");
    let order: Vec<i64> = std::iter::from_fn(|| b.next_ready(0, &mut Vec::new()))
        .map(|r| r.job.id)
        .collect();
    // Highest first; first in, first out within a priority.
    assert_eq!(order, [8, 5, 7, 1, 2, 3, 4, 6]);
}

#[test]
fn a_run_handed_back_waits_again_ahead_of_its_priority_and_keeps_its_claim() {
    let mut b = book(4, &[]);
    b.claimed(job(1, 1, "q", None), "q", "k");
    b.claimed(job(2, 1, "q", None), "q", "k");
    b.claimed(job(3, 1, "q", None), "q", "k");
    let (run, _) = start_next(&mut b);
    let (lost_run, _) = start_next(&mut b);
    assert_eq!(b.unstart(run, job(1, 1, "q", None)), Some(("q", "k")));
    assert_eq!((b.ready_len(), b.running_len(), b.held_in("q")), (2, 1, 3));
    assert!(heartbeated(&b).contains(&fence(1, 1, 1)));
    // Ahead of job 3, which was claimed after it.
    let next = b.next_ready(0, &mut Vec::new()).unwrap();
    assert_eq!((next.job.id, next.run), (1, run));
    // A run whose claim was lost meanwhile is dropped, not buffered.
    b.lost(&[fence(2, 1, 1)]);
    let ready = b.ready_len();
    assert_eq!(b.unstart(lost_run, job(2, 1, "q", None)), Some(("q", "k")));
    assert_eq!(b.ready_len(), ready, "not buffered");
    assert_eq!((b.running_len(), b.held_in("q")), (0, 2));
    // A run the book does not hold.
    assert_eq!(b.unstart(lost_run, job(2, 1, "q", None)), None);
}

#[test]
fn next_ready_if_leaves_an_unwanted_job_first_and_still_gives_back_expired_ones() {
    let mut b = book(4, &[]);
    b.claimed(job(1, 1, "q", Some(5)), "q", "k");
    b.claimed(job(2, 1, "q", None), "q", "slow");
    let mut gone = Vec::new();
    assert!(b
        .next_ready_if(10, &mut gone, |r| r.job_name == "k")
        .is_none());
    assert_eq!(gone.len(), 1, "job 1 expired at 5");
    assert_eq!(b.ready_len(), 1, "job 2 stays first");
    assert_eq!(b.next_ready_if(10, &mut gone, |_| true).unwrap().job.id, 2);
}

#[test]
fn running_lists_every_run_with_its_lease_and_queue() {
    let mut b = book(4, &[]);
    b.claimed(job(1, 1, "q", None), "q", "k");
    let (run, _) = start_next(&mut b);
    let all: Vec<(RunId, Lease, &str)> = b
        .running()
        .map(|(id, r)| (*id, r.fence.lease, r.queue))
        .collect();
    assert_eq!(all, vec![(run, L1, "q")]);
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
    /// The run at this index (modulo) finishes.
    Finish(usize),
    /// A finish for a run the book never had.
    Stale,
    /// The heartbeat finds this (modulo) held claim lost.
    Lost(usize),
    /// The job of the run at this index (modulo) is claimed anew by a
    /// later cycle with the same lease (requeued with fresh attempts).
    Reclaim(usize),
    /// A worker hands the run at this index (modulo) back unstarted.
    Unstart(usize),
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
        (0usize..64).prop_map(Op::Reclaim),
        (0usize..64).prop_map(Op::Unstart),
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
    /// extends exactly the claims held and not lost, a run whose claim
    /// was found lost writes nothing, and every finish of a run not
    /// held is dropped and counted.
    #[test]
    fn the_book_keeps_its_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        let mut b = book(CONCURRENCY, &[("a", LIMIT_A)]);
        let mut in_flight: VecDeque<ClaimPlan> = VecDeque::new();
        // Running runs: id, fence, queue; and which of them lost their claim.
        let mut running: Vec<(RunId, Fence, &'static str)> = Vec::new();
        let mut cycle = 1;
        let mut lost: HashSet<RunId> = HashSet::new();
        let mut next_id = 1;
        let mut now = 0;
        let mut stale = 0;
        for op in ops {
            match op {
                Op::Plan(budget) if in_flight.len() < 2 => {
                    let budget = budget.min(b.room(BUFFER));
                    in_flight.push_back(b.plan(budget, &QUEUES, |_| usize::MAX));
                }
                Op::Plan(_) => {}
                Op::Back(share, expiring) => {
                    let Some(plan) = in_flight.pop_front() else { continue };
                    cycle += 1;
                    let mut left = plan.budget;
                    for (q, room) in &plan.queues {
                        let n = (room * usize::from(share) / 100).min(left);
                        left -= n;
                        for _ in 0..n {
                            let expires = expiring.then_some(now + 1);
                            b.claimed(job_of_cycle(next_id, 1, q, expires, cycle), q, "k");
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
                        running.push((r.run, r.fence.clone(), r.queue));
                    }
                    for (r, _) in gone {
                        prop_assert!(r.job.expires_at.is_some_and(|e| e <= now));
                    }
                }
                Op::Start => {}
                Op::Finish(i) if !running.is_empty() => {
                    let (run, _, _) = running.remove(i % running.len());
                    let r = b.finish(run);
                    prop_assert!(r.is_some());
                    let r = r.unwrap();
                    prop_assert_eq!(r.lost, lost.contains(&run));
                    let out = outcome_of(&r, RunResult::Done(None), &opts(), false);
                    prop_assert_eq!(out.is_some(), !lost.contains(&run));
                }
                Op::Finish(_) => {}
                Op::Stale => {
                    prop_assert!(b.finish(RunId(u64::MAX)).is_none());
                    stale += 1;
                }
                Op::Lost(i) => {
                    let mut held: Vec<Fence> = heartbeated(&b).into_iter().collect();
                    if held.is_empty() { continue }
                    held.sort_by(|x, y| (x.lease.id, &x.worker).cmp(&(y.lease.id, &y.worker)));
                    let pick = held[i % held.len()].clone();
                    b.lost(std::slice::from_ref(&pick));
                    for (run, f, _) in &running {
                        if *f == pick {
                            lost.insert(*run);
                        }
                    }
                }
                Op::Reclaim(i) if !running.is_empty() => {
                    let (_, f, queue) = running[i % running.len()].clone();
                    if queue == "a" && b.held_in("a") + b.reserved_per_queue.get("a").copied().unwrap_or(0) >= LIMIT_A {
                        continue; // the pool would not have claimed it
                    }
                    // A later cycle's claim: the old run goes on until
                    // the heartbeat finds its claim lost.
                    cycle += 1;
                    let (id, attempts) = (f.lease.id, f.lease.attempts);
                    b.claimed(job_of_cycle(id, attempts, queue, None, cycle), queue, "k");
                }
                Op::Reclaim(_) => {}
                Op::Unstart(i) if !running.is_empty() => {
                    let (run, f, queue) = running.remove(i % running.len());
                    let ready = b.ready_len();
                    let back = b.unstart(run, job(f.lease.id, f.lease.attempts, queue, None));
                    prop_assert!(back.is_some());
                    // Back in the buffer unless its claim was lost.
                    prop_assert_eq!(b.ready_len(), ready + usize::from(!lost.contains(&run)));
                }
                Op::Unstart(_) => {}
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
            prop_assert_eq!(b.running_len(), running.len());
            let expected: HashSet<Fence> = b
                .ready
                .iter()
                .map(|r| r.fence.clone())
                .chain(
                    running
                        .iter()
                        .filter(|(run, _, _)| !lost.contains(run))
                        .map(|(_, f, _)| f.clone()),
                )
                .collect();
            prop_assert_eq!(heartbeated(&b), expected);
            prop_assert_eq!(b.stale(), stale);
        }
    }
}

#[test]
fn a_plan_says_how_many_workers_are_free_now() {
    let mut b = ClaimBook::new(4, HashMap::new(), SharedLeases::default());
    let plan = b.plan(b.room(8), &["a"], |_| usize::MAX);
    assert_eq!(plan.free, 4);
    b.unreserve(&plan);
    b.claimed(job(1, 1, "a", None), "a", "k");
    let plan = b.plan(b.room(8), &["a"], |_| usize::MAX);
    assert_eq!(plan.free, 3, "a ready job will take a worker");
}

#[test]
fn free_workers_are_those_no_ready_running_or_reserved_claim_will_take() {
    let mut b = book(10, &[]);
    b.claimed(job(1, 1, "q", None), "q", "k");
    b.claimed(job(2, 1, "q", None), "q", "k");
    start_next(&mut b);
    assert_eq!((b.ready_len(), b.running_len(), b.free()), (1, 1, 8));
    let plan = b.plan(3, &["q"], |_| usize::MAX);
    assert_eq!(plan.budget, 3);
    assert_eq!(b.free(), 5, "10 less 1 ready, 1 running and 3 reserved");
    b.unreserve(&plan);
    assert_eq!(b.free(), 8);
    assert_eq!(book(1, &[]).free(), 1);
}

#[test]
fn a_rate_limited_job_waits_ahead_of_the_buffer_and_never_starts_after_its_window() {
    let mut b = book(4, &[]);
    let with = |id, priority| ClaimedJob {
        priority,
        ..job(id, 1, "q", None)
    };
    // A buffer of higher priority, then two jobs whose rate window ends
    // at second 10: they go first, in claim order.
    b.claimed(with(1, 9), "q", "k");
    b.claimed_until(with(2, 0), fence(2, 1, 1), "lim", "k", Some(10));
    b.claimed(with(3, 5), "q", "k");
    b.claimed_until(with(4, 0), fence(4, 1, 1), "lim", "k", Some(10));
    let order: Vec<i64> = b.ready.iter().map(|r| r.job.id).collect();
    assert_eq!(order, [2, 4, 1, 3]);
    // Started within its window (second 9): taken, and handed back it
    // goes first again, keeping its window.
    let mut gone = Vec::new();
    let r = b.next_ready(9, &mut gone).expect("job 2");
    assert_eq!((r.job.id, r.start_before), (2, Some(10)));
    b.start(&r, Arc::new(JobSignals::default()));
    assert!(b.unstart(r.run, with(2, 0)).is_some());
    let order: Vec<i64> = b.ready.iter().map(|r| r.job.id).collect();
    assert_eq!(order, [2, 4, 1, 3]);
    // At second 10 the window is over: both are given back, not started.
    let r = b.next_ready(10, &mut gone).expect("job 1");
    assert_eq!(r.job.id, 1);
    let back: Vec<(i64, &NotStarted)> = gone.iter().map(|(r, why)| (r.job.id, why)).collect();
    assert_eq!(
        back,
        [(2, &NotStarted::WindowOver), (4, &NotStarted::WindowOver)]
    );
    assert_eq!(b.held_in("lim"), 0, "their room is free");
    assert!(!heartbeated(&b).contains(&fence(2, 1, 1)));
}

#[test]
fn a_run_handed_back_waits_behind_windowed_jobs_and_ahead_of_its_own_priority() {
    let mut b = book(4, &[]);
    let with = |id, priority| ClaimedJob {
        priority,
        ..job(id, 1, "q", None)
    };
    b.claimed(with(1, 5), "q", "k");
    let (run, _) = start_next(&mut b);
    b.claimed_until(with(2, 0), fence(2, 1, 1), "lim", "k", Some(10));
    b.claimed(with(3, 9), "q", "k");
    b.claimed(with(4, 5), "q", "k");
    b.claimed(with(5, 1), "q", "k");
    assert!(b.unstart(run, with(1, 5)).is_some());
    let order: Vec<i64> = b.ready.iter().map(|r| r.job.id).collect();
    assert_eq!(order, [2, 3, 1, 4, 5]);
}
