//! One cycle of a pool, run on the writer thread inside the group
//! transaction: write the outcomes that came in, claim for the room the
//! supervisor planned, sweep when asked, and read when something is next
//! due. Synchronous code over a `&Connection`, tested on a file of its own.
//!
//! Isolation: each outcome and each queue's claim runs in a savepoint of
//! its own. One that fails is rolled back alone and reported; the others
//! commit. Only a failure that ends the whole transaction (SQLite rolled
//! it back) fails the cycle.

use honker_core::rusqlite::Connection;
use honker_core::{atomically, RetryOutcome};

use crate::store::cycle::earliest;
use crate::store::{Applied, CycleOutput, CycleRequest, Fence, NextTimes, Outcome};
use crate::Result;

/// Run one cycle on `c`, inside the caller's transaction.
pub(crate) fn run_cycle(c: &Connection, cy: &CycleRequest) -> Result<CycleOutput> {
    let mut out = CycleOutput {
        applied: Vec::with_capacity(cy.outcomes.len()),
        ..CycleOutput::default()
    };
    for o in &cy.outcomes {
        // Each outcome is atomic on its own (one statement, or a savepoint
        // inside `apply`), so a failing one rolls back alone.
        match apply(c, o) {
            Ok(a) => out.applied.push(Ok(a)),
            Err(e) if c.is_autocommit() => return Err(e.into()),
            Err(e) => out.applied.push(Err(e.to_string())),
        }
    }
    // The controls first: which queues are paused, and which limited
    // across processes.
    let mut limited = Vec::new();
    for (q, ctl) in honker_core::controlled_queues(c)? {
        if ctl.paused {
            out.paused.push(q);
        } else if ctl.max_running.is_some() || ctl.rate.is_some() {
            limited.push(q);
        }
    }
    let is_limited = |q: &str| limited.iter().any(|l| l == q);
    let (first, rest): (Vec<_>, Vec<_>) = cy.plan.queues.iter().partition(|(q, _)| is_limited(q));
    let mut budget = cy.plan.budget;
    let mut free = cy.plan.free;
    for &(q, room) in first.into_iter().chain(rest) {
        let n = budget.min(room);
        if n == 0 {
            out.maybe_more = true;
            continue;
        }
        // A limited queue waits for a free worker: the run that frees one
        // brings its outcome, and so a cycle, at once.
        let n = if is_limited(q) { n.min(free) } else { n };
        if n == 0 {
            continue;
        }
        match honker_core::claim_counted(c, q, &cy.worker, n, cy.visibility) {
            Ok(honker_core::Counted { jobs, start_before }) => {
                if let Some(end) = start_before {
                    out.start_before.push((q, end));
                }
                out.maybe_more |= jobs.len() == n;
                budget = budget.saturating_sub(jobs.len());
                free = free.saturating_sub(jobs.len());
                out.claimed.extend(jobs);
            }
            Err(e) if c.is_autocommit() => return Err(e.into()),
            Err(e) => out.claim_errors.push((q, e.to_string())),
        }
    }
    if cy.sweep {
        // One statement for every queue, through the expiry index.
        out.swept = honker_core::sweep_expired(c, None)?;
        honker_core::sweep_results(c)?;
        honker_core::sweep_unique(c)?;
    }
    // The next due times matter only once the queues run dry; while a
    // claim comes back full, the next cycle follows at once anyway.
    if !out.maybe_more {
        out.next = Some(next_times(c, &cy.queues)?);
    }
    Ok(out)
}

/// When something next happens on `queues`.
pub(crate) fn next_times(c: &Connection, queues: &[&'static str]) -> Result<NextTimes> {
    let mut next = NextTimes::default();
    for q in queues {
        next.claim = earliest(next.claim, honker_core::next_claim_allowed_at(c, q)?);
    }
    // The sweep covers every queue, so its wake does too: one index seek.
    next.expiry = honker_core::next_expiry_any(c)?;
    Ok(next)
}

/// Write `o` with the fence of its own claim.
fn apply(c: &Connection, o: &Outcome) -> honker_core::Result<Applied> {
    let Fence { worker, lease } = o.fence();
    let (worker, lease) = (&**worker, *lease);
    Ok(match o {
        Outcome::Ack { result: None, .. } => {
            if honker_core::ack(c, worker, lease)? {
                Applied::Acked
            } else {
                Applied::Lost
            }
        }
        Outcome::Ack {
            result: Some((value, ttl)),
            ..
        } => atomically(c, |c| {
            if !honker_core::ack(c, worker, lease)? {
                return Ok(Applied::Lost);
            }
            honker_core::save_result(c, lease.id, value, *ttl)?;
            Ok(Applied::Acked)
        })?,
        Outcome::Retry { delay, error, .. } => {
            match honker_core::retry(c, worker, lease, *delay, error)? {
                RetryOutcome::Retried => Applied::Retried,
                RetryOutcome::Dead => Applied::Dead,
                RetryOutcome::Lost => Applied::Lost,
            }
        }
        Outcome::Fail { error, .. } => {
            if honker_core::fail(c, worker, lease, error)? {
                Applied::Dead
            } else {
                Applied::Lost
            }
        }
        Outcome::Release { .. } => {
            if honker_core::release(c, worker, &[lease])? == 1 {
                Applied::Released
            } else {
                Applied::Lost
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ClaimPlan;
    use honker_core::EnqueueOptions;
    use honker_core::Lease;
    use std::time::Duration;

    const W: &str = "pool-1";
    const VIS: Duration = Duration::from_secs(60);

    fn db() -> Connection {
        honker_core::open_in_memory().expect("in-memory database")
    }

    fn enqueue(c: &Connection, q: &str) -> i64 {
        honker_core::enqueue(c, q, "{}", &EnqueueOptions::default()).expect("enqueue")
    }

    fn cycle(outcomes: &[Outcome], plan: &ClaimPlan, queues: &[&'static str]) -> CycleRequest {
        CycleRequest {
            worker: W.into(),
            outcomes: outcomes.to_vec(),
            plan: plan.clone(),
            visibility: VIS,
            queues: queues.into(),
            sweep: false,
        }
    }

    fn in_tx<T>(c: &Connection, f: impl FnOnce(&Connection) -> T) -> T {
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        let out = f(c);
        if !c.is_autocommit() {
            c.execute_batch("COMMIT").unwrap();
        }
        out
    }

    #[test]
    fn claims_within_the_budget_across_queues_in_plan_order() {
        let c = db();
        for _ in 0..3 {
            enqueue(&c, "a");
            enqueue(&c, "b");
        }
        let plan = ClaimPlan {
            budget: 4,
            queues: vec![("b", 3), ("a", 3)],
            free: 64,
        };
        let out = in_tx(&c, |c| run_cycle(c, &cycle(&[], &plan, &["a", "b"]))).unwrap();
        let queues: Vec<&str> = out.claimed.iter().map(|j| j.queue.as_str()).collect();
        assert_eq!(queues, ["b", "b", "b", "a"]);
        assert!(out.maybe_more, "queue b gave all it was asked");
        assert!(out.next.is_none());
    }

    #[test]
    fn a_drained_queue_reports_the_next_due_time() {
        let c = db();
        let opts = EnqueueOptions::default().delay(Duration::from_secs(30));
        honker_core::enqueue(&c, "a", "{}", &opts).unwrap();
        let plan = ClaimPlan {
            budget: 4,
            queues: vec![("a", 4)],
            free: 64,
        };
        let out = in_tx(&c, |c| run_cycle(c, &cycle(&[], &plan, &["a"]))).unwrap();
        assert!(out.claimed.is_empty());
        assert!(!out.maybe_more);
        let now = honker_core::now(&c).unwrap();
        let next = out
            .next
            .expect("read when drained")
            .claim
            .expect("a delayed job");
        assert!((now + 29..=now + 31).contains(&next), "{next} vs {now}");
    }

    /// Two jobs of queue "a", claimed by a cycle: their ids, and the
    /// fence of each.
    fn two_claimed(c: &Connection) -> (i64, i64, impl Fn(i64) -> Fence) {
        let a = enqueue(c, "a");
        let b = enqueue(c, "a");
        let plan = ClaimPlan {
            budget: 2,
            queues: vec![("a", 2)],
            free: 64,
        };
        let jobs = in_tx(c, |c| run_cycle(c, &cycle(&[], &plan, &["a"])))
            .unwrap()
            .claimed;
        let lease = move |id| Fence::of(jobs.iter().find(|j| j.id == id).unwrap());
        (a, b, lease)
    }

    #[test]
    fn outcomes_are_written_and_a_stale_lease_changes_nothing() {
        let c = db();
        let (a, b, lease) = two_claimed(&c);
        let stale = Fence {
            worker: W.into(),
            lease: Lease {
                id: b,
                attempts: lease(b).lease.attempts - 1,
            },
        };
        let outcomes = [
            Outcome::Ack {
                fence: lease(a),
                queue: "a",
                job_name: "k",
                result: Some(("42".into(), None)),
            },
            Outcome::Fail {
                fence: stale,
                queue: "a",
                job_name: "k",
                error: "stale".into(),
            },
        ];
        let none = ClaimPlan::default();
        let out = in_tx(&c, |c| run_cycle(c, &cycle(&outcomes, &none, &["a"]))).unwrap();
        assert_eq!(out.applied, vec![Ok(Applied::Acked), Ok(Applied::Lost)]);
        assert_eq!(
            honker_core::get_result(&c, a).unwrap().as_deref(),
            Some("42")
        );
        let row = honker_core::get_job(&c, b).unwrap().expect("b untouched");
        assert_eq!(row.attempts, 1);
        assert_eq!(row.state, honker_core::JobState::Processing);
    }

    #[test]
    fn an_outcome_of_an_earlier_claim_with_the_same_lease_changes_nothing() {
        // Job a was claimed by cycle 1 ("pool-1"), cancelled, requeued
        // with fresh attempts and claimed again by cycle 2 ("pool-1#2"):
        // the same id and attempt number. Cycle 1's ack, written late,
        // must not complete cycle 2's claim.
        let c = db();
        let (a, _, lease) = two_claimed(&c);
        let old = lease(a);
        honker_core::cancel(&c, a).unwrap();
        assert!(honker_core::requeue_dead(&c, a).unwrap());
        let plan = ClaimPlan {
            budget: 1,
            queues: vec![("a", 1)],
            free: 64,
        };
        let mut second = cycle(&[], &plan, &["a"]);
        second.worker = "pool-1#2".into();
        let new = in_tx(&c, |c| run_cycle(c, &second)).unwrap().claimed;
        assert_eq!(new.len(), 1);
        let new = Fence::of(&new[0]);
        assert_eq!(new.lease, old.lease, "the same id and attempt number");
        let stale = [Outcome::Ack {
            fence: old,
            queue: "a",
            job_name: "k",
            result: None,
        }];
        let none = ClaimPlan::default();
        let out = in_tx(&c, |c| run_cycle(c, &cycle(&stale, &none, &["a"]))).unwrap();
        assert_eq!(out.applied, vec![Ok(Applied::Lost)]);
        let row = honker_core::get_job(&c, a)
            .unwrap()
            .expect("the new claim's row");
        assert_eq!(row.worker_id.as_deref(), Some("pool-1#2"));
        let fresh = [Outcome::Ack {
            fence: new,
            queue: "a",
            job_name: "k",
            result: None,
        }];
        let out = in_tx(&c, |c| run_cycle(c, &cycle(&fresh, &none, &["a"]))).unwrap();
        assert_eq!(out.applied, vec![Ok(Applied::Acked)]);
    }

    #[test]
    fn a_failing_outcome_rolls_back_alone_and_the_rest_commit() {
        let c = db();
        let (a, b, lease) = two_claimed(&c);
        // A result that is not JSON makes that ack fail after its DELETE.
        let outcomes = [
            Outcome::Ack {
                fence: lease(a),
                queue: "a",
                job_name: "k",
                result: Some(("{not json".into(), None)),
            },
            Outcome::Ack {
                fence: lease(b),
                queue: "a",
                job_name: "k",
                result: None,
            },
        ];
        let none = ClaimPlan::default();
        let out = in_tx(&c, |c| run_cycle(c, &cycle(&outcomes, &none, &["a"]))).unwrap();
        assert!(out.applied[0].is_err(), "{:?}", out.applied);
        assert_eq!(out.applied[1], Ok(Applied::Acked));
        assert!(
            honker_core::get_job(&c, a).unwrap().is_some(),
            "the failed ack was rolled back, row kept"
        );
        assert!(honker_core::get_job(&c, b).unwrap().is_none());
    }

    #[test]
    fn outcomes_name_their_queue_and_lease() {
        let lease = Lease { id: 3, attempts: 2 };
        let fence = Fence {
            worker: "w#1".into(),
            lease,
        };
        let all = [
            Outcome::Ack {
                fence: fence.clone(),
                queue: "a",
                job_name: "k",
                result: None,
            },
            Outcome::Retry {
                fence: fence.clone(),
                queue: "a",
                job_name: "k",
                delay: Duration::ZERO,
                error: String::new(),
            },
            Outcome::Fail {
                fence: fence.clone(),
                queue: "a",
                job_name: "k",
                error: String::new(),
            },
            Outcome::Release {
                fence: fence.clone(),
                queue: "a",
                job_name: "k",
            },
        ];
        for o in &all {
            assert_eq!((o.queue(), o.lease()), ("a", lease), "{o:?}");
            assert_eq!(o.fence(), &fence);
        }
    }

    #[test]
    fn the_next_wake_is_the_earlier_of_the_two_times() {
        let t = |claim, expiry| NextTimes { claim, expiry }.first();
        assert_eq!(t(Some(10), Some(5)), Some(5));
        assert_eq!(t(Some(10), None), Some(10));
        assert_eq!(t(None, Some(7)), Some(7));
        assert_eq!(t(None, None), None);
    }

    #[test]
    fn a_release_is_counted_released_then_lost() {
        let c = db();
        let (a, _, lease) = two_claimed(&c);
        let release = [Outcome::Release {
            fence: lease(a),
            queue: "a",
            job_name: "k",
        }];
        let none = ClaimPlan::default();
        let first = in_tx(&c, |c| run_cycle(c, &cycle(&release, &none, &["a"]))).unwrap();
        assert_eq!(first.applied, vec![Ok(Applied::Released)]);
        let again = in_tx(&c, |c| run_cycle(c, &cycle(&release, &none, &["a"]))).unwrap();
        assert_eq!(again.applied, vec![Ok(Applied::Lost)]);
    }

    #[test]
    fn a_failure_that_ends_the_transaction_fails_the_cycle() {
        // An outcome whose statement makes SQLite roll the whole
        // transaction back: nothing of the cycle may be reported done.
        let c = db();
        let (a, _, lease) = two_claimed(&c);
        c.execute_batch(&format!(
            "CREATE TEMP TRIGGER boom BEFORE DELETE ON _honker_live WHEN old.id = {a}
             BEGIN SELECT RAISE(ROLLBACK, 'boom'); END"
        ))
        .unwrap();
        let ack = [Outcome::Ack {
            fence: lease(a),
            queue: "a",
            job_name: "k",
            result: None,
        }];
        let none = ClaimPlan::default();
        assert!(in_tx(&c, |c| run_cycle(c, &cycle(&ack, &none, &["a"]))).is_err());
        // The same for a claim.
        c.execute_batch("DROP TRIGGER boom").unwrap();
        enqueue(&c, "a");
        c.execute_batch(
            "CREATE TEMP TRIGGER boom BEFORE UPDATE ON _honker_live
             BEGIN SELECT RAISE(ROLLBACK, 'boom'); END",
        )
        .unwrap();
        let plan = ClaimPlan {
            budget: 1,
            queues: vec![("a", 1)],
            free: 64,
        };
        assert!(in_tx(&c, |c| run_cycle(c, &cycle(&[], &plan, &["a"]))).is_err());
    }

    #[test]
    fn a_queue_whose_claim_fails_is_reported_alone_and_the_others_claim() {
        let c = db();
        enqueue(&c, "bad");
        enqueue(&c, "a");
        c.execute_batch(
            "CREATE TEMP TRIGGER refuse BEFORE UPDATE ON _honker_live WHEN old.queue = 'bad'
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .unwrap();
        let plan = ClaimPlan {
            budget: 2,
            queues: vec![("bad", 1), ("a", 1)],
            free: 64,
        };
        let out = in_tx(&c, |c| run_cycle(c, &cycle(&[], &plan, &["a", "bad"]))).unwrap();
        assert_eq!(out.claim_errors.len(), 1);
        assert_eq!(out.claim_errors[0].0, "bad");
        let claimed: Vec<&str> = out.claimed.iter().map(|j| j.queue.as_str()).collect();
        assert_eq!(claimed, ["a"]);
    }

    #[test]
    fn the_sweep_moves_expired_jobs_of_every_queue() {
        let c = db();
        let a = enqueue(&c, "a");
        let b = enqueue(&c, "other");
        c.execute(
            "UPDATE _honker_live SET expires_at = unixepoch() - 1 WHERE id IN (?1, ?2)",
            [a, b],
        )
        .unwrap();
        let none = ClaimPlan::default();
        let mut cy = cycle(&[], &none, &["a"]);
        cy.sweep = true;
        let out = in_tx(&c, |c| run_cycle(c, &cy)).unwrap();
        assert_eq!(out.swept, 2);
        assert!(honker_core::get_dead(&c, a).unwrap().is_some());
    }

    #[test]
    fn a_queue_limited_across_processes_is_claimed_first_and_only_for_free_workers() {
        let c = db();
        for _ in 0..3 {
            enqueue(&c, "free");
            enqueue(&c, "lim");
        }
        honker_core::set_max_running(&c, "lim", Some(5)).unwrap();
        // One worker free, room for 3: the limited queue takes the free
        // worker whatever the plan's order; the other queue the buffer.
        let plan = ClaimPlan {
            budget: 3,
            queues: vec![("free", 3), ("lim", 3)],
            free: 1,
        };
        let out = in_tx(&c, |c| run_cycle(c, &cycle(&[], &plan, &["free", "lim"]))).unwrap();
        let queues: Vec<&str> = out.claimed.iter().map(|j| j.queue.as_str()).collect();
        assert_eq!(queues, ["lim", "free", "free"]);
        // No worker free: nothing of it, however much room.
        let none = ClaimPlan {
            budget: 3,
            queues: vec![("lim", 3)],
            free: 0,
        };
        let out = in_tx(&c, |c| run_cycle(c, &cycle(&[], &none, &["lim"]))).unwrap();
        assert!(out.claimed.is_empty());
    }
}
