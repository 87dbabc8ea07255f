//! The store traits themselves, operation by operation: which job each
//! call touches, what it returns, what it refuses. Every store must
//! answer the same.

use std::time::Duration;

use honker_actors::core::{
    ClaimGone, DeadFilter, EnqueueOptions, JobFate, JobState, LiveState, RateLimit, RetryOutcome,
    ScheduleSpec, Unique, CANCELLED,
};
use honker_actors::store::{Applied, ClaimPlan, CycleRequest, Fence, Outcome, Store};
use honker_actors::Honker;

use super::honker;

const VIS: Duration = Duration::from_secs(60);

async fn put(s: &dyn Store, queue: &str, payload: &str, opts: EnqueueOptions) -> i64 {
    let done = s.enqueue(queue, payload.into(), opts).await.unwrap();
    assert!(!done.duplicate);
    done.id
}

fn store(h: &Honker) -> &dyn Store {
    h.store()
}

#[tokio::test]
async fn an_enqueued_job_reads_back_as_written_and_is_counted() {
    let (_g, h) = honker();
    let s = store(&h);
    let before = s.now().await.unwrap();
    let opts = EnqueueOptions::default().priority(5).max_attempts(7);
    let id = put(s, "q", r#"{"a":1}"#, opts).await;
    let j = s.job(id).await.unwrap().expect("the job");
    assert_eq!((j.queue.as_str(), j.payload.as_str()), ("q", r#"{"a":1}"#));
    assert_eq!(
        (j.state, j.priority, j.attempts, j.max_attempts),
        (JobState::Pending, 5, 0, 7)
    );
    assert!(
        j.run_at >= before && j.run_at <= before + 1,
        "due now: {}",
        j.run_at
    );
    assert_eq!(j.worker_id, None);
    assert_eq!(s.job_in("q", id).await.unwrap().map(|j| j.id), Some(id));
    assert!(
        s.job_in("other", id).await.unwrap().is_none(),
        "another queue's id"
    );
    let st = s.queue_stats("q").await.unwrap();
    assert_eq!(
        (st.pending_due, st.scheduled, st.processing, st.dead),
        (1, 0, 0, 0)
    );
    let later = EnqueueOptions::default().delay(Duration::from_secs(3600));
    put(s, "q", "2", later).await;
    let st = s.queue_stats("q").await.unwrap();
    assert_eq!((st.pending_due, st.scheduled), (1, 1));
    assert_eq!(s.row_totals().await.unwrap().live, 2);
}

#[tokio::test]
async fn a_claim_takes_due_jobs_by_priority_then_age_up_to_n() {
    let (_g, h) = honker();
    let s = store(&h);
    let low = put(s, "q", "1", EnqueueOptions::default()).await;
    let high = put(s, "q", "2", EnqueueOptions::default().priority(9)).await;
    let low2 = put(s, "q", "3", EnqueueOptions::default()).await;
    put(
        s,
        "q",
        "4",
        EnqueueOptions::default().delay(Duration::from_secs(3600)),
    )
    .await;
    put(s, "other", "5", EnqueueOptions::default()).await;
    let got = s.claim("q", "w#1", 2, VIS).await.unwrap();
    let ids: Vec<i64> = got.iter().map(|j| j.id).collect();
    assert_eq!(ids, [high, low], "priority first, then the oldest");
    let now = s.now().await.unwrap();
    for j in &got {
        assert_eq!((j.attempts, j.worker_id.as_str()), (1, "w#1"));
        assert!((now + 59..=now + 61).contains(&j.claim_expires_at), "{j:?}");
    }
    let rest = s.claim("q", "w#2", 10, VIS).await.unwrap();
    assert_eq!(
        rest.iter().map(|j| j.id).collect::<Vec<_>>(),
        [low2],
        "not the delayed one"
    );
    assert!(s.claim("q", "w#3", 10, VIS).await.unwrap().is_empty());
    let mut running = s.running_ids(10).await.unwrap();
    running.sort_unstable();
    assert_eq!(running, [low, high, low2]);
}

#[tokio::test]
async fn a_claim_takes_lapsed_claims_and_due_jobs_together_in_claim_order() {
    let (_g, h) = honker();
    let s = store(&h);
    let low = put(s, "q", "1", EnqueueOptions::default()).await;
    let high = put(s, "q", "2", EnqueueOptions::default().priority(9)).await;
    let first = s
        .claim("q", "w#1", 1, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(first.iter().map(|j| j.id).collect::<Vec<_>>(), [high]);
    let mid = put(s, "q", "3", EnqueueOptions::default().priority(5)).await;
    // The claim of `high` lapses (its end is in whole seconds).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let got = s.claim("q", "w#2", 2, VIS).await.unwrap();
    assert_eq!(
        got.iter().map(|j| (j.id, j.attempts)).collect::<Vec<_>>(),
        [(high, 2), (mid, 1)],
        "the lapsed claim, then the due job of the next priority"
    );
    let rest = s.claim("q", "w#3", 2, VIS).await.unwrap();
    assert_eq!(rest.iter().map(|j| j.id).collect::<Vec<_>>(), [low]);
}

#[tokio::test]
async fn an_ack_deletes_only_its_own_claim_of_its_own_queue() {
    let (_g, h) = honker();
    let s = store(&h);
    let a = put(s, "q", "1", EnqueueOptions::default()).await;
    let b = put(s, "q", "2", EnqueueOptions::default()).await;
    let got = s.claim("q", "w#1", 2, VIS).await.unwrap();
    let (la, lb) = (got[0].lease(), got[1].lease());
    assert!(
        s.ack_in("other", "w#1", vec![la]).await.unwrap().is_empty(),
        "wrong queue"
    );
    assert!(
        s.ack_in("q", "w#9", vec![la]).await.unwrap().is_empty(),
        "wrong worker"
    );
    let stale = honker_actors::core::Lease { id: a, attempts: 9 };
    assert!(
        s.ack_in("q", "w#1", vec![stale]).await.unwrap().is_empty(),
        "stale attempt"
    );
    assert_eq!(s.ack_in("q", "w#1", vec![la]).await.unwrap(), [a]);
    assert!(s.job(a).await.unwrap().is_none());
    assert_eq!(s.job(b).await.unwrap().unwrap().state, JobState::Processing);
    assert!(
        s.ack_in("q", "w#1", vec![la]).await.unwrap().is_empty(),
        "once"
    );
    assert_eq!(s.ack_in("q", "w#1", vec![lb]).await.unwrap(), [b]);
    assert_eq!(s.row_totals().await.unwrap().live, 0);
}

#[tokio::test]
async fn a_retry_waits_its_delay_until_the_attempts_are_spent_then_dies_with_its_error() {
    let (_g, h) = honker();
    let s = store(&h);
    let id = put(s, "q", "1", EnqueueOptions::default().max_attempts(2)).await;
    let l = s.claim("q", "w#1", 1, VIS).await.unwrap()[0].lease();
    let now = s.now().await.unwrap();
    let out = s.retry_in("q", "w#1", l, Duration::from_secs(30), "first".into());
    assert_eq!(out.await.unwrap(), RetryOutcome::Retried);
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Pending, 1));
    assert!(
        (now + 29..=now + 31).contains(&j.run_at),
        "due in 30 s: {}",
        j.run_at
    );
    assert!(
        s.claim("q", "w#2", 1, VIS).await.unwrap().is_empty(),
        "not due yet"
    );
    let again = s.retry_in("q", "w#1", l, Duration::ZERO, "stale".into());
    assert_eq!(
        again.await.unwrap(),
        RetryOutcome::Lost,
        "its claim is gone"
    );
    // The last attempt's retry is a death, with its error.
    let last = put(s, "last", "1", EnqueueOptions::default().max_attempts(1)).await;
    let job = s.claim("last", "w#3", 1, VIS).await.unwrap().remove(0);
    let out = s.retry_in("last", "w#3", job.lease(), Duration::ZERO, "final".into());
    assert_eq!(out.await.unwrap(), RetryOutcome::Dead);
    let dead = s.dead_job(last).await.unwrap().expect("dead");
    assert_eq!(
        (dead.attempts, dead.last_error.as_deref()),
        (1, Some("final"))
    );
    assert!(s.job(last).await.unwrap().is_none());
}

#[tokio::test]
async fn a_failure_dies_at_once_and_a_dead_job_is_requeued_fresh_or_purged() {
    let (_g, h) = honker();
    let s = store(&h);
    let a = put(s, "q", r#""a""#, EnqueueOptions::default().max_attempts(5)).await;
    let b = put(s, "q", r#""b""#, EnqueueOptions::default()).await;
    let got = s.claim("q", "w#1", 2, VIS).await.unwrap();
    assert!(s
        .fail_in("q", "w#1", got[0].lease(), "boom".into())
        .await
        .unwrap());
    assert!(
        !s.fail_in("q", "w#1", got[0].lease(), "again".into())
            .await
            .unwrap(),
        "once"
    );
    assert!(s
        .fail_in("q", "w#1", got[1].lease(), "bang".into())
        .await
        .unwrap());
    let dead = s.dead_in("q", 10, 0).await.unwrap();
    assert_eq!(
        dead.iter().map(|d| d.id).collect::<Vec<_>>(),
        [b, a],
        "the newest death first"
    );
    assert_eq!(dead[1].last_error.as_deref(), Some("boom"));
    assert_eq!(dead[1].payload, r#""a""#);
    let bang = DeadFilter::default().queue("q").error_contains("ban");
    assert_eq!(
        s.list_dead_where(bang.clone(), 10, 0).await.unwrap()[0].id,
        b
    );

    assert!(
        !s.requeue_dead_in("other", a).await.unwrap(),
        "another queue's id"
    );
    assert!(s.requeue_dead_in("q", a).await.unwrap());
    let j = s.job(a).await.unwrap().expect("live again");
    assert_eq!(
        (j.attempts, j.max_attempts, j.state),
        (0, 5, JobState::Pending)
    );
    assert!(s.dead_job(a).await.unwrap().is_none());
    assert_eq!(s.purge_dead_where(bang).await.unwrap(), 1);
    assert!(s.dead_job(b).await.unwrap().is_none());
    assert!(!s.purge_dead_in("q", b).await.unwrap(), "already gone");
    assert_eq!(s.row_totals().await.unwrap().dead, 0);
}

#[tokio::test]
async fn a_cancel_moves_a_live_job_of_its_queue_to_dead_as_cancelled() {
    let (_g, h) = honker();
    let s = store(&h);
    let a = put(s, "q", "1", EnqueueOptions::default()).await;
    let b = put(s, "q", "2", EnqueueOptions::default()).await;
    let claimed = s.claim("q", "w#1", 1, VIS).await.unwrap();
    assert_eq!(claimed[0].id, a);
    assert!(
        !s.cancel_in("other", a).await.unwrap(),
        "another queue's id"
    );
    assert!(s.cancel_in("q", a).await.unwrap(), "a running job");
    assert!(s.cancel_in("q", b).await.unwrap(), "a pending job");
    assert!(!s.cancel_in("q", b).await.unwrap(), "once");
    for id in [a, b] {
        let d = s.dead_job(id).await.unwrap().expect("dead");
        assert_eq!(d.last_error.as_deref(), Some(CANCELLED));
    }
    let (_, fate) = s.result_or_fate(a).await.unwrap();
    assert!(
        matches!(&fate, Some(JobFate::Dead { last_error: Some(e) }) if e == CANCELLED),
        "{fate:?}"
    );
    // The claim heard of it: gone, and why.
    let fence = Fence {
        worker: "w#1".into(),
        lease: claimed[0].lease(),
    };
    let seen = s.look_at_claims(vec![fence.clone()]).await.unwrap();
    assert_eq!(seen.gone, [(fence, ClaimGone::Cancelled)]);
}

#[tokio::test]
async fn a_heartbeat_extends_its_own_claim_only() {
    let (_g, h) = honker();
    let s = store(&h);
    put(s, "q", "1", EnqueueOptions::default()).await;
    let job = s
        .claim("q", "w#1", 1, Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    let now = s.now().await.unwrap();
    let until = s.heartbeat_in("q", "w#1", job.lease(), VIS).await.unwrap();
    assert!(
        until.is_some_and(|t| (now + 59..=now + 61).contains(&t)),
        "{until:?}"
    );
    assert_eq!(
        s.heartbeat_in("q", "w#2", job.lease(), VIS).await.unwrap(),
        None
    );
    assert_eq!(
        s.heartbeat_in("other", "w#1", job.lease(), VIS)
            .await
            .unwrap(),
        None
    );
    let fence = Fence {
        worker: "w#1".into(),
        lease: job.lease(),
    };
    assert_eq!(
        s.extend_claim(fence.clone(), VIS).await.unwrap(),
        None,
        "held"
    );
    let other = Fence {
        worker: "w#2".into(),
        lease: job.lease(),
    };
    assert_eq!(
        s.extend_claim(other, VIS).await.unwrap(),
        Some(ClaimGone::Lost),
        "another claim's fence"
    );
    assert!(s
        .extend_claims(vec![fence.clone()], VIS)
        .await
        .unwrap()
        .is_empty());
    // Extended each by its own fence: a cancelled claim comes back, and why.
    put(s, "q", "2", EnqueueOptions::default()).await;
    let other = s.claim("q", "w#3", 1, VIS).await.unwrap().remove(0);
    assert!(s.cancel_in("q", other.id).await.unwrap());
    let gone = Fence {
        worker: "w#3".into(),
        lease: other.lease(),
    };
    let lost = s
        .extend_claims(vec![fence, gone.clone()], VIS)
        .await
        .unwrap();
    assert_eq!(lost, [(gone.clone(), ClaimGone::Cancelled)]);
    // One by one, the same answer: cancelled, not lost.
    assert_eq!(
        s.extend_claim(gone, VIS).await.unwrap(),
        Some(ClaimGone::Cancelled)
    );
}

#[tokio::test]
async fn a_unique_key_holds_while_its_job_is_live() {
    let (_g, h) = honker();
    let s = store(&h);
    let u = || EnqueueOptions::default().unique(Unique::key("k"));
    let first = s.enqueue("q", "1".into(), u()).await.unwrap();
    let second = s.enqueue("q", "2".into(), u()).await.unwrap();
    assert!(second.duplicate);
    assert_eq!(second.id, first.id);
    assert_eq!(
        s.waiting_payloads("q").await.unwrap(),
        ["1"],
        "the first payload kept"
    );
    let other_key = EnqueueOptions::default().unique(Unique::key("other"));
    assert!(
        !s.enqueue("q", "3".into(), other_key)
            .await
            .unwrap()
            .duplicate
    );
    let job = s.claim("q", "w#1", 1, VIS).await.unwrap().remove(0);
    assert_eq!(job.id, first.id);
    assert!(
        s.enqueue("q", "4".into(), u()).await.unwrap().duplicate,
        "running holds it"
    );
    s.ack_in("q", "w#1", vec![job.lease()]).await.unwrap();
    let after = s.enqueue("q", "5".into(), u()).await.unwrap();
    assert!(!after.duplicate && after.id != first.id, "freed once done");
}

#[tokio::test]
async fn controls_stop_and_limit_claims_and_read_back() {
    let (_g, h) = honker();
    let s = store(&h);
    for n in 0..4 {
        put(s, "q", &n.to_string(), EnqueueOptions::default()).await;
    }
    assert!(s.pause_queue("q").await.unwrap());
    assert!(!s.pause_queue("q").await.unwrap(), "already paused");
    assert!(s.queue_controls("q").await.unwrap().paused);
    assert!(
        s.claim("q", "w#1", 4, VIS).await.unwrap().is_empty(),
        "paused"
    );
    assert!(s.queue_stats("q").await.unwrap().paused);
    assert!(s.resume_queue("q").await.unwrap());
    assert!(!s.resume_queue("q").await.unwrap());
    s.set_max_running("q", Some(1)).await.unwrap();
    assert_eq!(
        s.claim("q", "w#1", 4, VIS).await.unwrap().len(),
        1,
        "one at a time"
    );
    assert!(
        s.claim("q", "w#2", 4, VIS).await.unwrap().is_empty(),
        "one runs"
    );
    s.set_max_running("q", None).await.unwrap();
    let rate = RateLimit {
        limit: 1,
        per: Duration::from_secs(3600),
    };
    s.set_rate_limit("q", Some(rate)).await.unwrap();
    let c = s.queue_controls("q").await.unwrap();
    assert_eq!((c.paused, c.max_running, c.rate), (false, None, Some(rate)));
    assert_eq!(
        s.claim("q", "w#3", 4, VIS).await.unwrap().len(),
        1,
        "one start an hour"
    );
    assert!(s.claim("q", "w#4", 4, VIS).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_lock_has_one_owner_until_released_or_lapsed() {
    let (_g, h) = honker();
    let s = store(&h);
    let ttl = Duration::from_secs(60);
    assert!(s.try_lock("l", "a", ttl).await.unwrap());
    assert!(!s.try_lock("l", "b", ttl).await.unwrap(), "held by a");
    assert!(s.renew_lock("l", "a", ttl).await.unwrap());
    assert!(!s.renew_lock("l", "b", ttl).await.unwrap(), "not b's");
    assert!(!s.unlock("l", "b").await.unwrap(), "not b's to release");
    assert!(s.unlock("l", "a").await.unwrap());
    assert!(!s.unlock("l", "a").await.unwrap(), "once");
    assert!(s.try_lock("l", "b", ttl).await.unwrap(), "free again");
    assert!(
        s.try_lock("other", "a", ttl).await.unwrap(),
        "locks are by name"
    );
}

#[tokio::test]
async fn a_schedule_is_registered_listed_paused_run_now_and_removed() {
    let (_g, h) = honker();
    let s = store(&h);
    let spec = ScheduleSpec::new("nightly", "q", "0 3 * * *", r#"{"n":1}"#);
    s.register_schedules(vec![spec]).await.unwrap();
    let row = s
        .get_schedule("nightly")
        .await
        .unwrap()
        .expect("registered");
    assert!(row.enabled);
    let now = s.now().await.unwrap();
    assert!(
        row.next_fire_at > now && row.next_fire_at <= now + 86_400,
        "{row:?}"
    );
    assert!(!s.schedule_due().await.unwrap(), "not due for hours");
    assert!(s.fire_due().await.unwrap().is_empty());
    assert!(s.set_schedule_enabled("nightly", false).await.unwrap());
    assert!(!s.list_schedules().await.unwrap()[0].enabled);
    let id = s.run_schedule_now("nightly").await.unwrap().expect("a job");
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!((j.queue.as_str(), j.payload.as_str()), ("q", r#"{"n":1}"#));
    assert!(s.run_schedule_now("none").await.unwrap().is_none());
    assert!(s.remove_schedule("nightly").await.unwrap());
    assert!(!s.remove_schedule("nightly").await.unwrap());
    assert!(s.list_schedules().await.unwrap().is_empty());
}

#[tokio::test]
async fn jobs_are_listed_by_state_and_the_outlook_says_when_to_look_again() {
    let (_g, h) = honker();
    let s = store(&h);
    let due = put(s, "q", "1", EnqueueOptions::default()).await;
    let later = put(
        s,
        "q",
        "2",
        EnqueueOptions::default().delay(Duration::from_secs(600)),
    )
    .await;
    let (claimable, _) = s.claim_outlook("q").await.unwrap();
    assert!(claimable);
    let running = s.claim("q", "w#1", 1, VIS).await.unwrap().remove(0);
    assert_eq!(running.id, due);
    let ids = |v: Vec<honker_actors::core::JobRow>| v.into_iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_jobs("q", LiveState::Running, 10, 0).await.unwrap()),
        [due]
    );
    assert_eq!(
        ids(s.list_jobs("q", LiveState::Scheduled, 10, 0).await.unwrap()),
        [later]
    );
    assert!(s
        .list_jobs("q", LiveState::Pending, 10, 0)
        .await
        .unwrap()
        .is_empty());
    let (claimable, next) = s.claim_outlook("q").await.unwrap();
    let now = s.now().await.unwrap();
    assert!(!claimable);
    // The earlier of the scheduled job and the running claim's lapse.
    assert!(
        next.is_some_and(|t| (now + 59..=now + 61).contains(&t)),
        "{next:?}"
    );
    let (claimable, times) = s.claimable(&["q"]).await.unwrap();
    assert!(!claimable);
    assert!(times.first().is_some(), "{times:?}");
    assert_eq!(s.depths(&["q"]).await.unwrap(), [("q", 0)]);
}

#[tokio::test]
async fn a_cycle_writes_its_outcomes_and_claims_in_one_answer() {
    let (_g, h) = honker();
    let s = store(&h);
    let a = put(s, "q", "1", EnqueueOptions::default()).await;
    let b = put(s, "q", "2", EnqueueOptions::default()).await;
    let c = put(s, "q", "3", EnqueueOptions::default()).await;
    let job = s.claim("q", "w#1", 1, VIS).await.unwrap().remove(0);
    assert_eq!(job.id, a);
    let fence = Fence {
        worker: "w#1".into(),
        lease: job.lease(),
    };
    let request = CycleRequest {
        worker: "w#2".into(),
        outcomes: vec![Outcome::Ack {
            fence,
            queue: "q",
            job_name: "k",
            result: Some(("42".into(), None)),
        }],
        plan: ClaimPlan {
            budget: 1,
            queues: vec![("q", 1)],
            free: 1,
        },
        visibility: VIS,
        queues: vec!["q"].into(),
        sweep: true,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    s.run_cycle(
        request,
        Box::new(move |_, out| {
            let _ = tx.send(out);
        }),
    );
    let out = rx.await.unwrap().unwrap();
    assert_eq!(out.applied.len(), 1);
    assert_eq!(out.applied[0], Ok(Applied::Acked));
    assert_eq!(out.claimed.iter().map(|j| j.id).collect::<Vec<_>>(), [b]);
    assert_eq!(
        out.claimed[0].worker_id, "w#2",
        "the cycle's own worker string"
    );
    assert!(out.maybe_more, "it took all it asked for");
    assert_eq!(s.result(a).await.unwrap().as_deref(), Some("42"));
    assert_eq!(s.job(c).await.unwrap().unwrap().state, JobState::Pending);
}

#[tokio::test]
async fn the_expiry_sweep_moves_only_the_queues_expired_jobs_to_dead() {
    let (_g, h) = honker();
    let s = store(&h);
    let soon = || EnqueueOptions::default().expires(Duration::from_secs(1));
    let a = put(s, "q", "1", soon()).await;
    let b = put(s, "q", "2", soon()).await;
    let kept = put(s, "q", "3", EnqueueOptions::default()).await;
    let elsewhere = put(s, "other", "4", soon()).await;
    let expires_at = s
        .job(a)
        .await
        .unwrap()
        .unwrap()
        .expires_at
        .expect("an expiry");
    while s.now().await.unwrap() <= expires_at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.sweep_expired("q").await.unwrap(), 2);
    assert_eq!(s.sweep_expired("q").await.unwrap(), 0, "once");
    for id in [a, b] {
        let d = s.dead_job(id).await.unwrap().expect("dead");
        assert_eq!(d.last_error.as_deref(), Some("expired"));
    }
    assert!(s.job(kept).await.unwrap().is_some());
    assert!(s.job(elsewhere).await.unwrap().is_some(), "another queue's");
}

#[tokio::test]
async fn a_due_boundary_fires_once_and_its_job_knows_which() {
    let (_g, h) = honker();
    let s = store(&h);
    let spec = ScheduleSpec::new("tick", "q", "@every 1s", r#"{"t":1}"#);
    s.register_schedules(vec![spec]).await.unwrap();
    let due_at = s.get_schedule("tick").await.unwrap().unwrap().next_fire_at;
    while !s.schedule_due().await.unwrap() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(s.now().await.unwrap() >= due_at);
    let fired = s.fire_due().await.unwrap();
    let first = fired.first().expect("the due boundary fired");
    assert_eq!((first.schedule.as_str(), first.boundary), ("tick", due_at));
    assert_eq!(
        s.fired_for(first.job_id).await.unwrap(),
        Some(("tick".to_string(), due_at))
    );
    let j = s.job(first.job_id).await.unwrap().unwrap();
    assert_eq!((j.queue.as_str(), j.payload.as_str()), ("q", r#"{"t":1}"#));
    let again = s.fire_due().await.unwrap();
    assert!(
        again.iter().all(|f| f.boundary > due_at),
        "a boundary fires once: {again:?}"
    );
    let plain = put(s, "q", "1", EnqueueOptions::default()).await;
    assert_eq!(s.fired_for(plain).await.unwrap(), None);
}

#[tokio::test]
async fn health_and_schema_describe_the_store_as_it_is() {
    let (_g, h) = honker();
    let s = store(&h);
    let empty = s.health(5).await.unwrap();
    assert_eq!(
        (empty.expired_claims, empty.exhausted, empty.created_ahead),
        (0, 0, None)
    );
    put(s, "q", "1", EnqueueOptions::default()).await;
    let one = s.health(5).await.unwrap();
    assert!(one.created_ahead.is_some_and(|a| a <= 0), "{one:?}");
    let objects = s.schema_objects().await.unwrap();
    assert!(
        objects.iter().any(|o| o.kind == "table") && objects.iter().any(|o| o.kind == "index"),
        "{objects:?}"
    );
    assert!(
        objects.iter().all(|o| o.present),
        "a fresh store has every object"
    );
}

#[tokio::test]
async fn a_search_finds_jobs_by_name_or_argument_text_in_each_state_and_in_dead() {
    let (_g, h) = honker();
    let s = store(&h);
    let call = |name: &str, to: &str| {
        format!(r#"{{"__honker_task__":{{"task":"{name}","args":[],"kwargs":{{"to":"{to}"}}}}}}"#)
    };
    let ann = put(s, "q", &call("send_email", "ann@x"), Default::default()).await;
    let bob = put(s, "q", &call("send_email", "bob@x"), Default::default()).await;
    let rep = put(s, "q", &call("report", "ann@x"), Default::default()).await;
    let later = EnqueueOptions::default().delay(Duration::from_secs(600));
    let cy = put(s, "q", &call("send_email", "cy@x"), later).await;
    put(s, "other", &call("send_email", "ann@x"), Default::default()).await;
    let ids = async |state, text: &str| -> Vec<i64> {
        let rows = s.find_jobs("q", state, text, 10, 0).await.unwrap();
        rows.into_iter().map(|j| j.id).collect()
    };
    assert_eq!(
        ids(LiveState::Pending, "send_email").await,
        [ann, bob],
        "by name, in claim order"
    );
    assert_eq!(
        ids(LiveState::Pending, "ann@").await,
        [ann, rep],
        "by argument text"
    );
    assert_eq!(ids(LiveState::Scheduled, "send_email").await, [cy]);
    assert!(ids(LiveState::Pending, "nobody").await.is_empty());
    let page = s
        .find_jobs("q", LiveState::Pending, "send_email", 1, 1)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|j| j.id).collect::<Vec<_>>(),
        [bob],
        "paged"
    );

    let got = s.claim("q", "w#1", 1, VIS).await.unwrap();
    assert_eq!(got[0].id, ann);
    assert_eq!(ids(LiveState::Running, "ann@").await, [ann]);
    assert!(ids(LiveState::Running, "bob@").await.is_empty());
    assert!(s
        .fail_in("q", "w#1", got[0].lease(), "smtp".into())
        .await
        .unwrap());
    assert!(s.cancel_in("q", rep).await.unwrap());
    let dead = async |f: DeadFilter| -> Vec<i64> {
        let rows = s.list_dead_where(f, 10, 0).await.unwrap();
        rows.into_iter().map(|d| d.id).collect()
    };
    let mut both = dead(DeadFilter::default().payload_contains("ann@")).await;
    both.sort_unstable();
    assert_eq!(both, [ann, rep]);
    let f = DeadFilter::default()
        .queue("q")
        .payload_contains("send_email");
    assert_eq!(dead(f.clone()).await, [ann]);
    assert_eq!(
        s.requeue_dead_where(f).await.unwrap(),
        1,
        "acts on its matches only"
    );
    assert!(s.job(ann).await.unwrap().is_some());
    assert!(s.dead_job(rep).await.unwrap().is_some());
}
