//! One test per semantic of the honker format and per queue
//! operation. Time moves either for real (the 1 s visibility test) or by
//! moving a row's deadline into the past, which is what the passing of time
//! does to it.

use std::time::{Duration, SystemTime};

use honker_core::{
    ack, ack_batch, cancel, cancel_in, claim_batch, enqueue, enqueue_json, fail, get_dead, get_job,
    get_job_in, get_result, heartbeat, heartbeat_batch, job_fate, list_dead, next_claim_at,
    next_expiry_at, pending_due_count, queue_stats, release, requeue_dead, requeue_dead_in, retry,
    save_result, stats, sweep_expired, sweep_results, validate_queue_name, EnqueueOptions, Error,
    JobFate, JobState, RetryOutcome, CANCELLED, MAX_DURATION,
};
use rusqlite::Connection;

const VIS: Duration = Duration::from_secs(300);

fn db() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = honker_core::open(dir.path().join("t.db")).unwrap();
    (dir, conn)
}

fn opts() -> EnqueueOptions {
    EnqueueOptions::default()
}

fn put(conn: &Connection, q: &str, payload: &str, o: EnqueueOptions) -> i64 {
    enqueue(conn, q, payload, &o).unwrap()
}

/// Make a claim look lapsed, as the passing of its visibility timeout does.
fn lapse(conn: &Connection, id: i64) {
    conn.execute(
        "UPDATE _honker_live SET claim_expires_at = unixepoch() - 1 WHERE id = ?1",
        [id],
    )
    .unwrap();
}

fn now(conn: &Connection) -> i64 {
    honker_core::now(conn).unwrap()
}

fn live_ids(conn: &Connection) -> Vec<i64> {
    let mut s = conn
        .prepare("SELECT id FROM _honker_live ORDER BY id")
        .unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn claims_in_priority_then_run_at_then_id_order() {
    let (_d, c) = db();
    let t0 = SystemTime::now() - Duration::from_secs(100);
    let a = put(
        &c,
        "q",
        "1",
        opts().priority(0).run_at(t0 + Duration::from_secs(10)),
    );
    let b = put(&c, "q", "2", opts().priority(5));
    let cc = put(&c, "q", "3", opts().priority(0).run_at(t0));
    let d = put(&c, "q", "4", opts().priority(5));
    let e = put(&c, "q", "5", opts().priority(-3));
    let ids: Vec<i64> = claim_batch(&c, "q", "w", 10, VIS)
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(ids, vec![b, d, cc, a, e]);
}

#[test]
fn claim_batch_takes_at_most_n_and_only_its_queue() {
    let (_d, c) = db();
    for i in 0..5 {
        put(&c, "q", &i.to_string(), opts());
    }
    put(&c, "other", "1", opts());
    assert_eq!(claim_batch(&c, "q", "w", 3, VIS).unwrap().len(), 3);
    assert_eq!(claim_batch(&c, "q", "w", 10, VIS).unwrap().len(), 2);
    assert!(claim_batch(&c, "q", "w", 10, VIS).unwrap().is_empty());
    assert!(claim_batch(&c, "q", "w", 0, VIS).unwrap().is_empty());
    assert_eq!(claim_batch(&c, "other", "w", 10, VIS).unwrap().len(), 1);
}

#[test]
fn claim_returns_every_field() {
    let (_d, c) = db();
    let id = put(
        &c,
        "q",
        r#"{"a":[1,2]}"#,
        opts()
            .priority(7)
            .max_attempts(4)
            .expires(Duration::from_secs(600)),
    );
    let before = now(&c);
    let j = claim_batch(&c, "q", "w-1", 1, Duration::from_secs(30))
        .unwrap()
        .remove(0);
    assert_eq!(j.id, id);
    assert_eq!(j.queue, "q");
    assert_eq!(j.payload, r#"{"a":[1,2]}"#);
    assert_eq!(j.priority, 7);
    assert_eq!(j.worker_id, "w-1");
    assert_eq!(j.attempts, 1);
    assert_eq!(j.max_attempts, 4);
    assert!(j.claim_expires_at >= before + 30 && j.claim_expires_at <= before + 32);
    assert!(j.expires_at.unwrap() >= before + 600);
    let row = get_job(&c, id).unwrap().unwrap();
    assert_eq!(row.state, JobState::Processing);
    assert_eq!(row.worker_id.as_deref(), Some("w-1"));
}

#[test]
fn delayed_job_is_not_claimable_until_due() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts().delay(Duration::from_secs(3600)));
    assert!(claim_batch(&c, "q", "w", 10, VIS).unwrap().is_empty());
    let job = get_job(&c, id).unwrap().unwrap();
    assert!(job.run_at >= now(&c) + 3599);
    // An hour passes.
    c.execute(
        "UPDATE _honker_live SET run_at = unixepoch() WHERE id = ?1",
        [id],
    )
    .unwrap();
    assert_eq!(claim_batch(&c, "q", "w", 10, VIS).unwrap()[0].id, id);
}

#[test]
fn short_delay_becomes_due_for_real() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts().delay(Duration::from_millis(300)));
    assert!(claim_batch(&c, "q", "w", 1, VIS).unwrap().is_empty());
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(claim_batch(&c, "q", "w", 1, VIS).unwrap()[0].id, id);
}

#[test]
fn a_delayed_job_is_never_due_early() {
    let (_d, c) = db();
    for delay_ms in [1u64, 400, 1000, 1500, 2000] {
        let before = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let id = put(&c, "q", "1", opts().delay(Duration::from_millis(delay_ms)));
        let run_at = get_job(&c, id).unwrap().unwrap().run_at;
        let earliest_ms = before.as_millis() as i64 + delay_ms as i64;
        assert!(
            run_at * 1000 >= earliest_ms,
            "delay {delay_ms} ms: due at {run_at}, enqueued at {before:?}"
        );
        assert!(
            run_at * 1000 < earliest_ms + 1000 + 50,
            "at most a second late"
        );
    }
    // A zero delay is due at once.
    let id = put(&c, "q", "1", opts().delay(Duration::ZERO));
    assert!(get_job(&c, id).unwrap().unwrap().run_at <= now(&c));
}

#[test]
fn run_at_in_the_future_waits_and_in_the_past_is_due() {
    let (_d, c) = db();
    let future = put(
        &c,
        "q",
        "1",
        opts().run_at(SystemTime::now() + Duration::from_secs(3600)),
    );
    let past = put(
        &c,
        "q",
        "2",
        opts().run_at(SystemTime::now() - Duration::from_secs(3600)),
    );
    let got = claim_batch(&c, "q", "w", 10, VIS).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, past);
    assert!(get_job(&c, future).unwrap().unwrap().state == JobState::Pending);
    // delay wins over run_at, as in every honker binding
    let both = put(
        &c,
        "q",
        "3",
        opts()
            .run_at(SystemTime::now() - Duration::from_secs(3600))
            .delay(Duration::from_secs(60)),
    );
    assert!(get_job(&c, both).unwrap().unwrap().run_at >= now(&c) + 59);
}

#[test]
fn expired_job_is_never_claimed_and_is_swept_as_expired() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts().expires(Duration::from_secs(60)));
    let keep = put(&c, "q", "2", opts().expires(Duration::from_secs(3600)));
    c.execute(
        "UPDATE _honker_live SET expires_at = unixepoch() - 1 WHERE id = ?1",
        [id],
    )
    .unwrap();
    let got = claim_batch(&c, "q", "w", 10, VIS).unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![keep]);
    assert_eq!(sweep_expired(&c, Some("q")).unwrap(), 1);
    let dead = get_dead(&c, id).unwrap().unwrap();
    assert_eq!(dead.last_error.as_deref(), Some("expired"));
    assert_eq!(dead.payload, "1");
    assert!(get_job(&c, id).unwrap().is_none());
    // the processing job with a valid claim is not swept, even once expired
    c.execute(
        "UPDATE _honker_live SET expires_at = unixepoch() - 1 WHERE id = ?1",
        [keep],
    )
    .unwrap();
    assert_eq!(sweep_expired(&c, None).unwrap(), 0);
    assert!(ack(&c, "w", got[0].lease()).unwrap());
}

#[test]
fn processing_job_whose_claim_lapsed_after_expiry_is_swept() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts().expires(Duration::from_secs(60)));
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    c.execute(
        "UPDATE _honker_live SET expires_at = unixepoch() - 5, claim_expires_at = unixepoch() - 1 WHERE id = ?1",
        [id],
    )
    .unwrap();
    // never re-claimed ...
    assert!(claim_batch(&c, "q", "w2", 1, VIS).unwrap().is_empty());
    // ... and swept instead of staying in live forever
    assert_eq!(sweep_expired(&c, None).unwrap(), 1);
    let dead = get_dead(&c, id).unwrap().unwrap();
    assert_eq!(
        (dead.last_error.as_deref(), dead.attempts),
        (Some("expired"), 1)
    );
    assert!(!ack(&c, "w", j.lease()).unwrap());
}

#[test]
fn visibility_timeout_lets_another_worker_reclaim() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts());
    let first = claim_batch(&c, "q", "w1", 1, Duration::from_secs(1))
        .unwrap()
        .remove(0);
    assert!(claim_batch(&c, "q", "w2", 1, Duration::from_secs(1))
        .unwrap()
        .is_empty());
    std::thread::sleep(Duration::from_millis(2200));
    let second = claim_batch(&c, "q", "w2", 1, Duration::from_secs(30))
        .unwrap()
        .remove(0);
    assert_eq!((second.id, second.attempts), (id, 2));
    // the first worker's late ack and heartbeat take no effect
    assert!(!ack(&c, "w1", first.lease()).unwrap());
    assert_eq!(
        heartbeat(&c, "w1", first.lease(), Duration::from_secs(60)).unwrap(),
        None
    );
    assert_eq!(
        get_job(&c, id).unwrap().unwrap().worker_id.as_deref(),
        Some("w2")
    );
    assert!(ack(&c, "w2", second.lease()).unwrap());
}

#[test]
fn ack_and_heartbeat_after_a_lapsed_claim_take_no_effect() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts());
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    lapse(&c, id);
    // lapsed but not yet re-claimed: a late heartbeat must not revive it
    assert_eq!(
        heartbeat(&c, "w", j.lease(), Duration::from_secs(60)).unwrap(),
        None
    );
    assert!(!ack(&c, "w", j.lease()).unwrap());
    assert_eq!(
        retry(&c, "w", j.lease(), Duration::ZERO, "x").unwrap(),
        RetryOutcome::Lost
    );
    assert!(!fail(&c, "w", j.lease(), "x").unwrap());
    assert_eq!(live_ids(&c), vec![id]);
    assert!(list_dead(&c, "q", 10, 0).unwrap().is_empty());
}

#[test]
fn stale_attempts_value_is_rejected_even_for_the_same_worker() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts());
    let old = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    lapse(&c, id);
    let new = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    assert_eq!((old.attempts, new.attempts), (1, 2));
    assert!(!ack(&c, "w", old.lease()).unwrap());
    assert_eq!(
        retry(&c, "w", old.lease(), Duration::ZERO, "stale").unwrap(),
        RetryOutcome::Lost
    );
    assert!(!fail(&c, "w", old.lease(), "stale").unwrap());
    assert_eq!(
        heartbeat(&c, "w", old.lease(), Duration::from_secs(1)).unwrap(),
        None
    );
    assert_eq!(release(&c, "w", &[old.lease()]).unwrap(), 0);
    assert!(ack_batch(&c, "w", &[old.lease()]).unwrap().is_empty());
    assert_eq!(get_job(&c, id).unwrap().unwrap().attempts, 2);
    assert!(ack(&c, "w", new.lease()).unwrap());
}

#[test]
fn retry_goes_back_to_pending_after_the_delay() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts());
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    assert_eq!(
        retry(&c, "w", j.lease(), Duration::from_secs(60), "boom").unwrap(),
        RetryOutcome::Retried
    );
    let row = get_job(&c, id).unwrap().unwrap();
    assert_eq!(row.state, JobState::Pending);
    assert_eq!(row.worker_id, None);
    assert!(row.run_at >= now(&c) + 59);
    assert!(claim_batch(&c, "q", "w", 1, VIS).unwrap().is_empty());
    assert_eq!(next_claim_at(&c, "q").unwrap(), Some(row.run_at));
}

#[test]
fn exhausted_retries_go_to_dead_with_the_last_error() {
    let (_d, c) = db();
    let id = put(&c, "q", r#"{"x":1}"#, opts().max_attempts(2));
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    assert_eq!(
        retry(&c, "w", j.lease(), Duration::ZERO, "first").unwrap(),
        RetryOutcome::Retried
    );
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    assert_eq!(j.attempts, 2);
    assert_eq!(
        retry(&c, "w", j.lease(), Duration::ZERO, "second").unwrap(),
        RetryOutcome::Dead
    );
    assert!(get_job(&c, id).unwrap().is_none());
    let d = get_dead(&c, id).unwrap().unwrap();
    assert_eq!(d.last_error.as_deref(), Some("second"));
    assert_eq!((d.attempts, d.max_attempts), (2, 2));
    assert_eq!(d.payload, r#"{"x":1}"#);
}

#[test]
fn exhausted_row_is_dead_lettered_by_the_claim_and_its_slot_refilled() {
    let (_d, c) = db();
    let crashed = put(&c, "q", "1", opts().max_attempts(1).priority(10));
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    assert_eq!(j.id, crashed);
    let next = put(&c, "q", "2", opts());
    // The worker died on the last attempt; its claim lapses.
    lapse(&c, crashed);
    assert_eq!(
        next_claim_at(&c, "q").unwrap(),
        None,
        "a lapsed claim is due now, not in the future"
    );
    let got = claim_batch(&c, "q", "w2", 1, VIS).unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![next]);
    let d = get_dead(&c, crashed).unwrap().unwrap();
    assert_eq!(d.last_error.as_deref(), Some("max attempts exceeded"));
    assert_eq!(d.attempts, 1);
}

#[test]
fn fail_moves_to_dead_at_once() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts().max_attempts(10));
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    assert!(fail(&c, "w", j.lease(), "unrecoverable").unwrap());
    assert!(get_job(&c, id).unwrap().is_none());
    let d = get_dead(&c, id).unwrap().unwrap();
    assert_eq!(
        (d.last_error.as_deref(), d.attempts),
        (Some("unrecoverable"), 1)
    );
    assert!(!fail(&c, "w", j.lease(), "again").unwrap());
}

#[test]
fn cancel_moves_pending_and_processing_jobs_to_dead_as_cancelled() {
    let (_d, c) = db();
    let p = put(&c, "q", "1", opts().delay(Duration::from_secs(60)));
    let r = put(&c, "q", "2", opts());
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    assert_eq!(j.id, r);
    assert!(cancel(&c, p).unwrap());
    assert!(cancel(&c, r).unwrap());
    assert!(!cancel(&c, r).unwrap(), "a dead job is not cancelled twice");
    assert!(
        !ack(&c, "w", j.lease()).unwrap(),
        "the worker finds its claim lost"
    );
    assert_eq!(
        heartbeat(&c, "w", j.lease(), VIS).unwrap(),
        None,
        "and its heartbeat too"
    );
    assert!(live_ids(&c).is_empty());
    // The record stays, with the reason, the attempts made and the payload.
    let dead = list_dead(&c, "q", 10, 0).unwrap();
    let got: Vec<_> = dead
        .iter()
        .map(|d| {
            (
                d.id,
                d.last_error.as_deref(),
                d.attempts,
                d.payload.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        // Newest first: both died in this second, the later id first.
        vec![(r, Some(CANCELLED), 1, "2"), (p, Some(CANCELLED), 0, "1")]
    );
    assert_eq!(CANCELLED, "cancelled");
    // An operator can bring it back.
    assert!(requeue_dead(&c, r).unwrap());
    assert_eq!(claim_batch(&c, "q", "w", 1, VIS).unwrap()[0].id, r);
}

#[test]
fn a_cancel_that_fails_half_way_leaves_no_copy_in_dead() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts());
    // The delete from live fails after the copy to dead succeeded.
    c.execute_batch(
        "CREATE TEMP TRIGGER no_delete BEFORE DELETE ON main._honker_live
         BEGIN SELECT RAISE(ABORT, 'delete refused'); END;",
    )
    .unwrap();
    let e = cancel(&c, id).unwrap_err();
    assert!(e.to_string().contains("delete refused"), "{e}");
    assert!(get_dead(&c, id).unwrap().is_none(), "the copy was undone");
    assert_eq!(live_ids(&c), vec![id]);
    assert!(c.is_autocommit(), "no transaction left open");
}

#[test]
fn cancel_is_atomic_and_rolls_back_with_the_callers_transaction() {
    let (_d, mut c) = db();
    let id = put(&c, "q", "1", opts());
    {
        let tx = c.transaction().unwrap();
        assert!(cancel(&tx, id).unwrap());
        assert!(get_dead(&tx, id).unwrap().is_some());
        tx.rollback().unwrap();
    }
    assert!(get_dead(&c, id).unwrap().is_none());
    assert_eq!(live_ids(&c), vec![id]);
}

#[test]
fn requeue_of_a_dead_job_gives_it_fresh_attempts() {
    let (_d, c) = db();
    let id = put(&c, "q", r#""p""#, opts().max_attempts(1).priority(3));
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    assert_eq!(
        retry(&c, "w", j.lease(), Duration::ZERO, "e").unwrap(),
        RetryOutcome::Dead
    );
    assert!(requeue_dead(&c, id).unwrap());
    assert!(!requeue_dead(&c, id).unwrap());
    assert!(get_dead(&c, id).unwrap().is_none());
    let row = get_job(&c, id).unwrap().unwrap();
    assert_eq!((row.attempts, row.max_attempts, row.priority), (0, 1, 3));
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    assert_eq!((j.id, j.attempts, j.payload.as_str()), (id, 1, r#""p""#));
}

#[test]
fn list_dead_pages_the_newest_death_first() {
    let (_d, c) = db();
    for i in 0..5 {
        put(&c, "q", &i.to_string(), opts());
    }
    for j in claim_batch(&c, "q", "w", 5, VIS).unwrap() {
        fail(&c, "w", j.lease(), &format!("e{}", j.payload)).unwrap();
    }
    // Job 0 died last (an old job that failed late); 1 and 2 died in the
    // same second; 3 and 4 died earlier.
    c.execute_batch(
        "UPDATE _honker_dead SET died_at = 1000 + CASE payload
           WHEN '0' THEN 50 WHEN '1' THEN 40 WHEN '2' THEN 40 WHEN '3' THEN 30 ELSE 20 END",
    )
    .unwrap();
    let payloads = |v: Vec<honker_core::DeadJob>| -> Vec<String> {
        v.into_iter().map(|d| d.payload).collect()
    };
    let all = payloads(list_dead(&c, "q", 10, 0).unwrap());
    assert_eq!(
        all,
        ["0", "2", "1", "3", "4"],
        "by death, then the newest id"
    );
    assert_eq!(payloads(list_dead(&c, "q", 2, 1).unwrap()), ["2", "1"]);
    let filtered = honker_core::list_dead_where(&c, &Default::default(), 10, 0).unwrap();
    assert_eq!(
        payloads(filtered),
        all,
        "the filtered list in the same order"
    );
    assert!(list_dead(&c, "other", 10, 0).unwrap().is_empty());
    let plan: Vec<String> = c
        .prepare(&format!(
            "EXPLAIN QUERY PLAN {}",
            honker_core::sql::LIST_DEAD
        ))
        .unwrap()
        .query_map(rusqlite::params!["q", 10, 0], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("_honker_dead_died") && !plan.contains("TEMP B-TREE"),
        "the newest first without sorting every dead row:\n{plan}"
    );
}

#[test]
fn stats_count_due_scheduled_processing_and_dead_per_queue() {
    let (_d, c) = db();
    for _ in 0..3 {
        put(&c, "a", "1", opts());
    }
    put(&c, "a", "1", opts().delay(Duration::from_secs(60)));
    let expired = put(&c, "a", "1", opts().expires(Duration::from_secs(60)));
    c.execute(
        "UPDATE _honker_live SET expires_at = unixepoch() - 1 WHERE id = ?1",
        [expired],
    )
    .unwrap();
    let jobs = claim_batch(&c, "a", "w", 2, VIS).unwrap();
    fail(&c, "w", jobs[0].lease(), "x").unwrap();
    put(&c, "b", "1", opts());
    let a = queue_stats(&c, "a").unwrap();
    assert_eq!(
        (a.pending_due, a.scheduled, a.processing, a.dead),
        (1, 1, 1, 1)
    );
    let all = stats(&c).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!((all[1].queue.as_str(), all[1].pending_due), ("b", 1));
    assert_eq!(queue_stats(&c, "none").unwrap().pending_due, 0);
}

#[test]
fn heartbeat_extends_but_never_shortens() {
    let (_d, c) = db();
    put(&c, "q", "1", opts());
    let j = claim_batch(&c, "q", "w", 1, Duration::from_secs(300))
        .unwrap()
        .remove(0);
    let same = heartbeat(&c, "w", j.lease(), Duration::from_secs(1))
        .unwrap()
        .unwrap();
    assert_eq!(
        same, j.claim_expires_at,
        "a short heartbeat keeps the longer claim"
    );
    let longer = heartbeat(&c, "w", j.lease(), Duration::from_secs(3600))
        .unwrap()
        .unwrap();
    assert!(longer >= now(&c) + 3599);
    assert_eq!(
        heartbeat(&c, "other", j.lease(), Duration::from_secs(9)).unwrap(),
        None
    );
}

#[test]
fn heartbeat_batch_reports_which_claims_are_still_held() {
    let (_d, c) = db();
    for i in 0..3 {
        put(&c, "q", &i.to_string(), opts());
    }
    let jobs = claim_batch(&c, "q", "w", 3, VIS).unwrap();
    cancel(&c, jobs[1].id).unwrap();
    let leases: Vec<_> = jobs.iter().map(|j| j.lease()).collect();
    let held = heartbeat_batch(&c, "w", &leases, Duration::from_secs(600)).unwrap();
    assert_eq!(held, vec![jobs[0].id, jobs[2].id]);
}

#[test]
fn ack_batch_acks_only_valid_claims() {
    let (_d, c) = db();
    for i in 0..4 {
        put(&c, "q", &i.to_string(), opts());
    }
    let jobs = claim_batch(&c, "q", "w", 4, VIS).unwrap();
    lapse(&c, jobs[3].id);
    let leases: Vec<_> = jobs.iter().map(|j| j.lease()).collect();
    let acked = ack_batch(&c, "w", &leases).unwrap();
    assert_eq!(acked, vec![jobs[0].id, jobs[1].id, jobs[2].id]);
    assert_eq!(live_ids(&c), vec![jobs[3].id]);
}

#[test]
fn release_gives_claims_back_without_burning_an_attempt() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts().max_attempts(1));
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    assert_eq!(release(&c, "w", &[j.lease()]).unwrap(), 1);
    let row = get_job(&c, id).unwrap().unwrap();
    assert_eq!(
        (row.state, row.attempts, row.worker_id),
        (JobState::Pending, 0, None)
    );
    // still claimable, immediately, with its single attempt intact
    let again = claim_batch(&c, "q", "w2", 1, VIS).unwrap().remove(0);
    assert_eq!((again.id, again.attempts), (id, 1));
}

#[test]
fn next_claim_at_reports_the_next_run_at_or_claim_expiry() {
    let (_d, c) = db();
    assert_eq!(next_claim_at(&c, "q").unwrap(), None);
    put(&c, "q", "1", opts());
    assert_eq!(
        next_claim_at(&c, "q").unwrap(),
        None,
        "due now is not in the future"
    );
    let j = claim_batch(&c, "q", "w", 1, Duration::from_secs(100))
        .unwrap()
        .remove(0);
    assert_eq!(
        next_claim_at(&c, "q").unwrap(),
        Some(j.claim_expires_at + 1)
    );
    let later = put(&c, "q", "2", opts().delay(Duration::from_secs(50)));
    let run_at = get_job(&c, later).unwrap().unwrap().run_at;
    assert_eq!(next_claim_at(&c, "q").unwrap(), Some(run_at));
    assert_eq!(next_claim_at(&c, "other").unwrap(), None);
}

#[test]
fn results_are_saved_read_and_swept() {
    let (_d, c) = db();
    save_result(&c, 10, r#"{"n":1}"#, None).unwrap();
    save_result(&c, 11, "null", Some(Duration::from_secs(60))).unwrap();
    assert_eq!(get_result(&c, 10).unwrap().as_deref(), Some(r#"{"n":1}"#));
    assert_eq!(get_result(&c, 11).unwrap().as_deref(), Some("null"));
    assert_eq!(get_result(&c, 12).unwrap(), None);
    save_result(&c, 10, r#"{"n":2}"#, None).unwrap();
    assert_eq!(get_result(&c, 10).unwrap().as_deref(), Some(r#"{"n":2}"#));
    c.execute(
        "UPDATE _honker_results SET expires_at = unixepoch() - 1 WHERE job_id = 11",
        [],
    )
    .unwrap();
    assert_eq!(
        get_result(&c, 11).unwrap(),
        None,
        "expired results are not returned"
    );
    assert_eq!(sweep_results(&c).unwrap(), 1);
    assert!(matches!(
        save_result(&c, 1, "nope", None),
        Err(Error::InvalidPayload(_))
    ));
}

#[test]
fn bad_input_gets_a_clear_error_and_writes_nothing() {
    let (_d, c) = db();
    let e = enqueue(&c, "q", "{\"unterminated\": ", &opts()).unwrap_err();
    assert!(matches!(e, Error::InvalidPayload(_)), "{e}");
    let e = enqueue(&c, "q", "1", &opts().max_attempts(0)).unwrap_err();
    assert!(e.to_string().contains("max_attempts"), "{e}");
    let e = enqueue(&c, "", "1", &opts()).unwrap_err();
    assert!(e.to_string().contains("queue name"), "{e}");
    assert!(live_ids(&c).is_empty());
}

#[test]
fn enqueue_commits_and_rolls_back_with_the_callers_transaction() {
    let (_d, mut c) = db();
    {
        let tx = c.transaction().unwrap();
        tx.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY)", [])
            .unwrap();
        enqueue(&tx, "q", "1", &opts()).unwrap();
        tx.rollback().unwrap();
    }
    assert!(live_ids(&c).is_empty());
    let tx = c.transaction().unwrap();
    let id = enqueue(&tx, "q", "1", &opts()).unwrap();
    tx.commit().unwrap();
    assert_eq!(live_ids(&c), vec![id]);
}

#[test]
fn multi_statement_operations_nest_as_savepoints_in_the_callers_transaction() {
    let (_d, mut c) = db();
    let id = put(&c, "q", "1", opts().max_attempts(1));
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    {
        let tx = c.transaction().unwrap();
        assert_eq!(
            retry(&tx, "w", j.lease(), Duration::ZERO, "e").unwrap(),
            RetryOutcome::Dead
        );
        assert!(get_dead(&tx, id).unwrap().is_some());
        tx.rollback().unwrap();
    }
    // the caller's rollback undid the move to dead as one unit
    assert!(get_dead(&c, id).unwrap().is_none());
    assert_eq!(
        get_job(&c, id).unwrap().unwrap().state,
        JobState::Processing
    );
    let tx = c.transaction().unwrap();
    assert!(fail(&tx, "w", j.lease(), "e2").unwrap());
    tx.commit().unwrap();
    assert_eq!(
        get_dead(&c, id).unwrap().unwrap().last_error.as_deref(),
        Some("e2")
    );
}

#[test]
fn claim_plan_uses_the_partial_claim_index_with_100k_dead_rows() {
    let (_d, c) = db();
    c.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO _honker_dead (id, queue, payload, last_error) SELECT i, 'q', '{}', 'x' FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO _honker_live (id, queue, payload) SELECT 100000 + i, 'q', '{}' FROM n;
         ANALYZE;",
    )
    .unwrap();
    let plan: Vec<String> = c
        .prepare(&format!("EXPLAIN QUERY PLAN {}", honker_core::sql::CLAIM))
        .unwrap()
        .query_map(rusqlite::params!["q", "w", 10, 300], |r| {
            r.get::<_, String>(3)
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let text = plan.join("\n");
    assert!(
        text.contains("USING INDEX _honker_live_claim (queue=?)"),
        "claim plan:\n{text}"
    );
    assert!(
        !text.contains("TEMP B-TREE"),
        "the index must serve the ORDER BY:\n{text}"
    );
    assert!(!text.contains("SCAN"), "no table scan:\n{text}");
    assert_eq!(claim_batch(&c, "q", "w", 10, VIS).unwrap().len(), 10);
}

#[test]
fn open_creates_schema_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.db");
    let c = honker_core::open(&p).unwrap();
    let id = put(&c, "q", "1", opts());
    drop(c);
    let c = honker_core::open(&p).unwrap();
    assert_eq!(live_ids(&c), vec![id]);
    let tables: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name LIKE '\\_honker%' ESCAPE '\\'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        tables, 13,
        "the format's 9; _honker_queue_controls, _honker_unique, _honker_schedule_extras, \
         _honker_schedule_runs"
    );
}

#[test]
fn open_migrates_an_old_scheduler_table() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("old.db");
    {
        let c = Connection::open(&p).unwrap();
        c.execute_batch(
            "CREATE TABLE _honker_scheduler_tasks (
               name TEXT PRIMARY KEY, queue TEXT NOT NULL, cron_expr TEXT NOT NULL,
               payload TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0,
               expires_s INTEGER, next_fire_at INTEGER NOT NULL);
             INSERT INTO _honker_scheduler_tasks (name, queue, cron_expr, payload, next_fire_at)
               VALUES ('t', 'q', '@every 5s', '{}', 0);",
        )
        .unwrap();
    }
    let c = honker_core::open(&p).unwrap();
    let (enabled, max): (i64, i64) = c
        .query_row(
            "SELECT enabled, max_attempts FROM _honker_scheduler_tasks WHERE name = 't'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((enabled, max), (1, 3));
    drop(c);
    honker_core::open(&p).unwrap();
}

#[test]
fn open_reports_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nope").join("a.db");
    let e = honker_core::open(&p).unwrap_err();
    assert!(matches!(e, Error::MissingDirectory { .. }), "{e:?}");
    assert!(e.to_string().contains("nope"), "{e}");
    assert!(!p.exists());
}

#[test]
fn open_reports_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notes.txt");
    std::fs::write(
        &p,
        "this is not a database, it is a text file with some words in it\n".repeat(100),
    )
    .unwrap();
    let e = honker_core::open(&p).unwrap_err();
    assert!(matches!(e, Error::NotADatabase { .. }), "{e:?}");
    assert!(e.to_string().contains("notes.txt"), "{e}");
    assert!(
        std::fs::read_to_string(&p)
            .unwrap()
            .starts_with("this is not"),
        "file untouched"
    );
}

#[test]
fn open_reports_a_directory_given_as_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = honker_core::open(dir.path()).unwrap_err();
    assert!(
        e.to_string().contains(&dir.path().display().to_string()),
        "{e}"
    );
}

#[test]
fn statements_are_never_reprepared() {
    use rusqlite::StatementStatus;
    let (_d, c) = db();
    for i in 0..50 {
        put(
            &c,
            "q",
            "1",
            opts()
                .delay(Duration::from_secs(i % 3))
                .expires(Duration::from_secs(600)),
        );
    }
    // Run every hot-path operation with varying arguments, as a pool does.
    for n in 1..=6usize {
        let jobs = claim_batch(&c, "q", "w", n, VIS).unwrap();
        let leases: Vec<_> = jobs.iter().map(|j| j.lease()).collect();
        heartbeat_batch(&c, "w", &leases, Duration::from_secs(60)).unwrap();
        ack_batch(&c, "w", &leases).unwrap();
        next_claim_at(&c, if n % 2 == 0 { "q" } else { "other" }).unwrap();
        next_expiry_at(&c, if n % 2 == 0 { "q" } else { "other" }).unwrap();
        honker_core::has_claimable(&c, "q").unwrap();
        list_dead(&c, "q", n, n).unwrap();
        queue_stats(&c, if n % 2 == 0 { "q" } else { "other" }).unwrap();
        pending_due_count(&c, if n % 2 == 0 { "q" } else { "other" }).unwrap();
        put(&c, "q", "1", opts().delay(Duration::from_millis(n as u64)));
        // Rounds alternate between mixed priorities (the claim through
        // the claim index) and one priority (the merged claim).
        if n % 2 == 1 {
            put(&c, "q", "1", opts().priority(1));
        } else {
            c.execute("UPDATE _honker_live SET priority = 0", [])
                .unwrap();
        }
    }
    let checks = [
        honker_core::sql::CLAIM,
        honker_core::sql::ONE_PRIORITY,
        honker_core::sql::CLAIM_ONE_PRIORITY,
        honker_core::sql::ACK,
        honker_core::sql::HEARTBEAT,
        honker_core::sql::NEXT_CLAIM_AT,
        honker_core::sql::NEXT_EXPIRY_AT,
        honker_core::sql::HAS_CLAIMABLE,
        honker_core::sql::LIST_DEAD,
        honker_core::sql::STATS_QUEUE,
        honker_core::sql::PENDING_DUE_COUNT,
        honker_core::sql::ENQUEUE,
    ];
    for sql in checks {
        let s = c.prepare_cached(sql).unwrap();
        assert!(s.get_status(StatementStatus::Run) > 1, "exercised: {sql}");
        assert_eq!(
            s.get_status(StatementStatus::RePrepare),
            0,
            "re-prepared on rebind: {sql}"
        );
    }
}

#[test]
fn a_payload_that_is_not_text_goes_to_dead_and_never_blocks_its_queue() {
    let (_d, c) = db();
    // Foreign writers: a BLOB, bytes that are not UTF-8, a bare number.
    c.execute(
        "INSERT INTO _honker_live (queue, payload, priority) VALUES ('q', x'00ff10', 9)",
        [],
    )
    .unwrap();
    let blob = c.last_insert_rowid();
    c.execute(
        "INSERT INTO _honker_live (queue, payload, priority) VALUES ('q', CAST(x'c328' AS TEXT), 8)",
        [],
    )
    .unwrap();
    let not_utf8 = c.last_insert_rowid();
    c.execute(
        "INSERT INTO _honker_live (queue, payload, priority) VALUES ('q', 42, 7)",
        [],
    )
    .unwrap();
    let number = c.last_insert_rowid();
    let good = put(&c, "q", r#"{"ok":true}"#, opts());

    let got = claim_batch(&c, "q", "w", 2, VIS).unwrap();
    let ids: Vec<i64> = got.iter().map(|j| j.id).collect();
    assert_eq!(
        ids,
        vec![number, good],
        "the unusable rows did not take the slots"
    );
    assert_eq!(got[0].payload, "42");
    let why = |id| get_dead(&c, id).unwrap().unwrap().last_error.unwrap();
    assert!(why(blob).contains("BLOB of 3 bytes"), "{}", why(blob));
    assert!(
        why(not_utf8).contains("not valid UTF-8"),
        "{}",
        why(not_utf8)
    );
    // Operators can still list them.
    let listed = list_dead(&c, "q", 10, 0).unwrap();
    assert_eq!(listed.len(), 2);
}

// ------------------------------------------------------------ poison rows

/// Write `value` (an SQL literal) into `column` of live row `id`, as a
/// foreign program might.
fn poison(conn: &Connection, id: i64, column: &str, value: &str) {
    conn.execute(
        &format!("UPDATE _honker_live SET {column} = {value} WHERE id = ?1"),
        [id],
    )
    .unwrap();
}

fn type_of(conn: &Connection, table: &str, column: &str, id: i64) -> String {
    conn.query_row(
        &format!("SELECT typeof({column}) FROM {table} WHERE id = ?1"),
        [id],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_row_with_an_odd_column_type_goes_to_dead_and_never_blocks_its_queue() {
    let (_d, c) = db();
    // Every integer column the claim returns, holding what a foreign writer
    // or an overflow can leave there. Priority 5 puts them before the good rows.
    let cases = [
        ("expires_at", "1e30", "column expires_at holds REAL 1e30"),
        (
            "expires_at",
            "'soon'",
            "column expires_at holds TEXT \"soon\"",
        ),
        ("priority", "'soon'", "column priority holds TEXT \"soon\""),
        ("priority", "1e30", "column priority holds REAL 1e30"),
        ("run_at", "-1e30", "column run_at holds REAL -1e30"),
        ("run_at", "unixepoch() - 0.5", "column run_at holds REAL"),
        ("attempts", "1e30", "column attempts holds REAL 1e30"),
        ("max_attempts", "2.5", "column max_attempts holds REAL 2.5"),
        (
            "max_attempts",
            "'three'",
            "column max_attempts holds TEXT \"three\"",
        ),
        (
            "created_at",
            "x'0102'",
            "column created_at holds BLOB of 2 bytes",
        ),
    ];
    let mut bad = Vec::new();
    for (column, value, why) in cases {
        let id = put(&c, "q", "1", opts().priority(5));
        poison(&c, id, column, value);
        bad.push((id, column, why));
    }
    let good: Vec<i64> = (0..3).map(|_| put(&c, "q", "2", opts())).collect();

    // Reads work before the claim.
    for &(id, column, _) in &bad {
        let job = get_job(&c, id)
            .unwrap()
            .unwrap_or_else(|| panic!("{column}"));
        assert_eq!(job.id, id);
    }
    let s = queue_stats(&c, "q").unwrap();
    assert_eq!(s.pending_due + s.scheduled, 13, "{s:?}");
    assert_eq!(stats(&c).unwrap().len(), 1);
    next_claim_at(&c, "q").unwrap();
    next_expiry_at(&c, "q").unwrap();

    // The good rows are claimed, the bad ones take no slot.
    let got = claim_batch(&c, "q", "w", 2, VIS).unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), good[..2]);
    let got = claim_batch(&c, "q", "w", 10, VIS).unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), good[2..]);

    // Each bad row is in dead with a reason naming the column and its value.
    for &(id, column, why) in &bad {
        let dead = get_dead(&c, id)
            .unwrap()
            .unwrap_or_else(|| panic!("{column} row not dead"));
        let err = dead.last_error.unwrap();
        assert!(err.contains(why), "{column}: {err:?} lacks {why:?}");
        assert!(get_job(&c, id).unwrap().is_none());
    }
    // Dead rows keep what they held, and reading them still works.
    assert_eq!(list_dead(&c, "q", 100, 0).unwrap().len(), bad.len());
    assert_eq!(queue_stats(&c, "q").unwrap().dead, bad.len() as i64);
    assert_eq!(stats(&c).unwrap()[0].dead, bad.len() as i64);
}

#[test]
fn reads_coerce_odd_values_instead_of_failing() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts());
    poison(&c, id, "priority", "1e30");
    poison(&c, id, "max_attempts", "'7'");
    poison(&c, id, "created_at", "'yesterday'");
    poison(&c, id, "expires_at", "-1e300");
    poison(&c, id, "queue", "CAST(x'71ff' AS TEXT)");
    let job = get_job(&c, id).unwrap().unwrap();
    assert_eq!(job.priority, i64::MAX, "REAL saturates");
    assert_eq!(job.max_attempts, 7, "integer-looking TEXT is its value");
    assert_eq!(job.created_at, 0, "anything else is 0");
    assert_eq!(job.expires_at, Some(i64::MIN));
    assert_eq!(
        job.queue, "q\u{fffd}",
        "text that is not UTF-8 is shown lossily"
    );
    assert_eq!(stats(&c).unwrap()[0].queue, "q\u{fffd}");
    // A dead row written by a foreign program.
    c.execute(
        "INSERT INTO _honker_dead (id, queue, payload, priority, run_at, attempts, died_at)
         VALUES (99, 'q', '{}', 'high', 1.5, 1e30, ' 12 ')",
        [],
    )
    .unwrap();
    let d = get_dead(&c, 99).unwrap().unwrap();
    assert_eq!(
        (d.priority, d.run_at, d.attempts, d.died_at),
        (0, 1, i64::MAX, 12)
    );
    assert_eq!(list_dead(&c, "q", 10, 0).unwrap().len(), 1);
    assert_eq!(queue_stats(&c, "q").unwrap().dead, 1);
}

#[test]
fn deadlines_that_are_not_integers_are_ignored_not_fatal() {
    let (_d, c) = db();
    let t = now(&c);
    // Only odd future times: MIN(..) would be TEXT or a non-integral REAL.
    let text = put(&c, "sched", "1", opts().delay(Duration::from_secs(60)));
    poison(&c, text, "run_at", "'later'");
    assert_eq!(next_claim_at(&c, "sched").unwrap(), None);
    let real = put(&c, "sched", "1", opts().delay(Duration::from_secs(60)));
    poison(&c, real, "run_at", "unixepoch() + 10.5");
    let good = put(&c, "sched", "1", opts().delay(Duration::from_secs(100)));
    let good_at = get_job(&c, good).unwrap().unwrap().run_at;
    assert!(good_at >= t + 100);
    assert_eq!(
        next_claim_at(&c, "sched").unwrap(),
        Some(good_at),
        "the odd rows never hide a real deadline"
    );
    // A processing row whose claim deadline is odd.
    let p = put(&c, "proc", "1", opts());
    claim_batch(&c, "proc", "w", 1, VIS).unwrap();
    poison(&c, p, "claim_expires_at", "1e30");
    assert_eq!(next_claim_at(&c, "proc").unwrap(), None);
    // The largest integer deadline: one second after it is past i64.
    poison(&c, p, "claim_expires_at", "9223372036854775807");
    assert_eq!(next_claim_at(&c, "proc").unwrap(), None);
    // Expiry times.
    let e = put(&c, "exp", "1", opts().expires(Duration::from_secs(60)));
    poison(&c, e, "expires_at", "'never'");
    assert_eq!(next_expiry_at(&c, "exp").unwrap(), None);
    poison(&c, e, "expires_at", "unixepoch() + 0.5");
    assert_eq!(next_expiry_at(&c, "exp").unwrap(), None);
    let e2 = put(&c, "exp", "1", opts().expires(Duration::from_secs(60)));
    let e2_at = get_job(&c, e2).unwrap().unwrap().expires_at;
    assert_eq!(next_expiry_at(&c, "exp").unwrap(), e2_at);
}

#[test]
fn a_foreign_table_without_column_types_holding_integral_reals_is_claimed() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("foreign.db");
    {
        // No declared types: no affinity, so 5.0 stays a REAL on disk.
        let c = Connection::open(&p).unwrap();
        c.execute_batch(
            "CREATE TABLE _honker_live (
               id INTEGER PRIMARY KEY AUTOINCREMENT, queue, payload,
               state DEFAULT 'pending', priority DEFAULT 0,
               run_at DEFAULT (unixepoch()), worker_id, claim_expires_at,
               attempts DEFAULT 0, max_attempts DEFAULT 3,
               created_at DEFAULT (unixepoch()), expires_at);
             INSERT INTO _honker_live (queue, payload, priority, run_at, attempts,
                                       max_attempts, created_at, expires_at)
               VALUES ('q', '{}', 5.0, unixepoch() - 10.0, 0.0, 3.0,
                       unixepoch() - 20.0, unixepoch() + 3600.0);",
        )
        .unwrap();
    }
    let c = honker_core::open(&p).unwrap();
    assert_eq!(type_of(&c, "_honker_live", "priority", 1), "real");
    let j = claim_batch(&c, "q", "w", 1, VIS).unwrap().remove(0);
    assert_eq!((j.priority, j.attempts, j.max_attempts), (5, 1, 3));
    assert!(j.expires_at.unwrap() > j.run_at);
    assert!(ack(&c, "w", j.lease()).unwrap());
    assert!(list_dead(&c, "q", 10, 0).unwrap().is_empty());
}

// ------------------------------------------------------------ limits

#[test]
fn enqueue_rejects_durations_and_times_beyond_the_limits_and_writes_nothing() {
    let (_d, c) = db();
    let epoch = SystemTime::UNIX_EPOCH;
    let past_limit = MAX_DURATION + Duration::from_secs(1);
    let cases = [
        (opts().delay(Duration::MAX), "delay"),
        (opts().delay(past_limit), "delay"),
        (opts().expires(Duration::MAX), "expires"),
        (opts().expires(past_limit), "expires"),
        (
            opts().run_at(epoch + Duration::from_secs(253_402_300_800)),
            "run_at",
        ),
        (
            opts().run_at(epoch + Duration::from_millis(253_402_300_799_001)),
            "run_at",
        ),
    ];
    for (o, option) in cases {
        for e in [
            enqueue(&c, "q", "1", &o).unwrap_err(),
            enqueue_json(&c, "q", "1", &o).unwrap_err(),
        ] {
            assert!(matches!(e, Error::InvalidOption(_)), "{option}: {e:?}");
            let msg = e.to_string();
            assert!(msg.contains(option), "{msg}");
            assert!(
                msg.contains("200 years") || msg.contains("253402300799"),
                "names the limit: {msg}"
            );
        }
    }
    assert!(live_ids(&c).is_empty());

    // The limits themselves are accepted, and stored as integers.
    let a = put(&c, "q", "1", opts().delay(MAX_DURATION));
    let b = put(&c, "q", "1", opts().expires(MAX_DURATION));
    let r = put(
        &c,
        "q",
        "1",
        opts().run_at(epoch + Duration::from_secs(253_402_300_799)),
    );
    let t = now(&c);
    let limit = MAX_DURATION.as_secs() as i64;
    assert_eq!(type_of(&c, "_honker_live", "run_at", a), "integer");
    let a_at = get_job(&c, a).unwrap().unwrap().run_at;
    assert!(a_at >= t + limit - 2 && a_at <= t + limit + 1, "{a_at}");
    assert_eq!(type_of(&c, "_honker_live", "expires_at", b), "integer");
    assert_eq!(get_job(&c, r).unwrap().unwrap().run_at, 253_402_300_799);
}

#[test]
fn durations_past_the_limit_are_clamped_and_times_stay_integers() {
    let (_d, c) = db();
    let limit = MAX_DURATION.as_secs() as i64;
    let sane = |at: i64| {
        let t = now(&c);
        at >= t + limit - 2 && at <= t + limit + 1
    };
    let id = put(&c, "q", "1", opts());
    let j = claim_batch(&c, "q", "w", 1, Duration::MAX)
        .unwrap()
        .remove(0);
    assert_eq!(
        type_of(&c, "_honker_live", "claim_expires_at", id),
        "integer"
    );
    assert!(sane(j.claim_expires_at), "{}", j.claim_expires_at);

    let until = heartbeat(&c, "w", j.lease(), Duration::MAX)
        .unwrap()
        .unwrap();
    assert_eq!(
        type_of(&c, "_honker_live", "claim_expires_at", id),
        "integer"
    );
    assert!(sane(until), "{until}");
    assert_eq!(
        heartbeat_batch(&c, "w", &[j.lease()], Duration::MAX).unwrap(),
        vec![id]
    );

    assert_eq!(
        retry(&c, "w", j.lease(), Duration::MAX, "later").unwrap(),
        RetryOutcome::Retried
    );
    assert_eq!(type_of(&c, "_honker_live", "run_at", id), "integer");
    let run_at = get_job(&c, id).unwrap().unwrap().run_at;
    assert!(sane(run_at), "{run_at}");

    save_result(&c, id, "1", Some(Duration::MAX)).unwrap();
    let (kind, at): (String, i64) = c
        .query_row(
            "SELECT typeof(expires_at), expires_at FROM _honker_results WHERE job_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kind, "integer");
    assert!(sane(at), "{at}");
    assert_eq!(get_result(&c, id).unwrap().as_deref(), Some("1"));
}

#[test]
fn claim_batch_of_usize_max_claims_everything_without_panicking() {
    let (_d, c) = db();
    let ids: Vec<i64> = (0..5)
        .map(|i| put(&c, "q", &i.to_string(), opts()))
        .collect();
    let got = claim_batch(&c, "q", "w", usize::MAX, VIS).unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), ids);
    assert!(claim_batch(&c, "q", "w", usize::MAX, VIS)
        .unwrap()
        .is_empty());
}

#[test]
fn list_dead_limit_and_offset_saturate_instead_of_wrapping() {
    let (_d, c) = db();
    for i in 0..3 {
        put(&c, "q", &i.to_string(), opts());
    }
    for j in claim_batch(&c, "q", "w", 3, VIS).unwrap() {
        fail(&c, "w", j.lease(), "x").unwrap();
    }
    assert_eq!(list_dead(&c, "q", usize::MAX, 0).unwrap().len(), 3);
    assert_eq!(list_dead(&c, "q", usize::MAX, 2).unwrap().len(), 1);
    assert!(
        list_dead(&c, "q", 10, usize::MAX).unwrap().is_empty(),
        "an offset past every row is past every row, not -1"
    );
}

// ------------------------------------------------------------ wake-ups

#[test]
fn next_claim_at_wakes_for_an_exhausted_or_expiring_claim_when_it_lapses() {
    let (_d, c) = db();
    let id = put(&c, "q", "1", opts().max_attempts(1));
    let j = claim_batch(&c, "q", "w", 1, Duration::from_secs(1))
        .unwrap()
        .remove(0);
    assert_eq!(j.attempts, j.max_attempts, "exhausted");
    let wake = next_claim_at(&c, "q").unwrap();
    assert_eq!(wake, Some(j.claim_expires_at + 1));
    // Wait until then, for real: the claim dead-letters the row.
    while now(&c) < j.claim_expires_at + 1 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(claim_batch(&c, "q", "w2", 1, VIS).unwrap().is_empty());
    assert_eq!(
        get_dead(&c, id).unwrap().unwrap().last_error.as_deref(),
        Some("max attempts exceeded")
    );
    assert_eq!(next_claim_at(&c, "q").unwrap(), None);

    // A processing row that expires before its claim lapses: the wake-up
    // comes when the claim lapses, and the sweep then moves it.
    let e = put(&c, "e", "1", opts().expires(Duration::from_secs(3600)));
    let j = claim_batch(&c, "e", "w", 1, VIS).unwrap().remove(0);
    c.execute(
        "UPDATE _honker_live SET expires_at = unixepoch() + 5 WHERE id = ?1",
        [e],
    )
    .unwrap();
    assert_eq!(
        next_claim_at(&c, "e").unwrap(),
        Some(j.claim_expires_at + 1)
    );
    c.execute(
        "UPDATE _honker_live SET expires_at = unixepoch() - 2 WHERE id = ?1",
        [e],
    )
    .unwrap();
    lapse(&c, e);
    assert_eq!(sweep_expired(&c, Some("e")).unwrap(), 1);
    assert_eq!(
        get_dead(&c, e).unwrap().unwrap().last_error.as_deref(),
        Some("expired")
    );
}

// ------------------------------------------------------------ queue-scoped admin

#[test]
fn queue_scoped_admin_acts_only_on_its_own_queue() {
    let (_d, c) = db();
    let a = put(&c, "a", "1", opts());
    let b = put(&c, "b", "1", opts());
    assert!(get_job_in(&c, "b", a).unwrap().is_none());
    assert_eq!(get_job_in(&c, "a", a).unwrap().unwrap().id, a);

    assert!(!cancel_in(&c, "b", a).unwrap(), "another queue's job");
    assert_eq!(live_ids(&c), vec![a, b], "touched nothing");
    assert!(get_dead(&c, a).unwrap().is_none());
    assert!(cancel_in(&c, "a", a).unwrap());
    assert_eq!(
        get_dead(&c, a).unwrap().unwrap().last_error.as_deref(),
        Some(CANCELLED)
    );

    assert!(!requeue_dead_in(&c, "b", a).unwrap(), "another queue's job");
    assert!(get_dead(&c, a).unwrap().is_some(), "touched nothing");
    assert!(get_job(&c, a).unwrap().is_none());
    assert!(requeue_dead_in(&c, "a", a).unwrap());
    assert!(get_dead(&c, a).unwrap().is_none());
    assert_eq!(get_job_in(&c, "a", a).unwrap().unwrap().attempts, 0);
    assert!(!requeue_dead_in(&c, "a", a).unwrap(), "no longer dead");
    assert!(!cancel_in(&c, "a", 12345).unwrap());
}

// ------------------------------------------------------------ job fate

#[test]
fn job_fate_tells_live_dead_and_gone_apart() {
    let (_d, c) = db();
    let pending = put(&c, "q", "1", opts().delay(Duration::from_secs(60)));
    let running = put(&c, "q", "2", opts());
    let failing = put(&c, "q", "3", opts());
    let acked = put(&c, "q", "4", opts());
    let jobs = claim_batch(&c, "q", "w", 3, VIS).unwrap();
    assert_eq!(jobs.len(), 3);
    let lease = |id| jobs.iter().find(|j| j.id == id).unwrap().lease();
    fail(&c, "w", lease(failing), "bad input").unwrap();
    ack(&c, "w", lease(acked)).unwrap();

    assert_eq!(
        job_fate(&c, pending).unwrap(),
        JobFate::Live(JobState::Pending)
    );
    assert_eq!(
        job_fate(&c, running).unwrap(),
        JobFate::Live(JobState::Processing)
    );
    assert_eq!(
        job_fate(&c, failing).unwrap(),
        JobFate::Dead {
            last_error: Some("bad input".into())
        }
    );
    assert_eq!(job_fate(&c, acked).unwrap(), JobFate::Gone);
    assert_eq!(job_fate(&c, 9999).unwrap(), JobFate::Gone);
    cancel(&c, running).unwrap();
    assert_eq!(
        job_fate(&c, running).unwrap(),
        JobFate::Dead {
            last_error: Some(CANCELLED.into())
        }
    );
}

// ------------------------------------------------------------ depth reads

fn plan(c: &Connection, sql: &str, queue: &str) -> String {
    let lines: Vec<String> = c
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map([queue], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    lines.join("\n")
}

#[test]
fn per_queue_depth_reads_use_indexes_with_100k_rows() {
    let (_d, c) = db();
    c.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO _honker_dead (id, queue, payload, last_error)
           SELECT i, CASE WHEN i % 100 = 0 THEN 'q' ELSE 'other' END, '{}', 'x' FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         INSERT INTO _honker_live (id, queue, payload, state, run_at, claim_expires_at)
           SELECT 100000 + i, CASE WHEN i % 100 = 0 THEN 'q' ELSE 'other' END, '{}',
                  CASE WHEN i % 3 = 0 THEN 'processing' ELSE 'pending' END,
                  CASE WHEN i % 7 = 0 THEN unixepoch() + 60 ELSE unixepoch() END,
                  CASE WHEN i % 3 = 0 THEN unixepoch() + 300 END
           FROM n;
         UPDATE _honker_live SET expires_at = unixepoch() + (id % 5) * 60 - 120
           WHERE id % 11 = 0;
         ANALYZE;",
    )
    .unwrap();
    for (name, sql) in [
        ("queue_stats", honker_core::sql::STATS_QUEUE),
        ("pending_due_count", honker_core::sql::PENDING_DUE_COUNT),
    ] {
        let text = plan(&c, sql, "q");
        assert!(
            text.lines()
                .all(|l| !l.starts_with("SCAN") || l == "SCAN CONSTANT ROW"),
            "{name}: no table scan:\n{text}"
        );
        assert!(text.contains("USING"), "{name}: through an index:\n{text}");
    }
    let text = plan(&c, honker_core::sql::PENDING_DUE_COUNT, "q");
    assert!(
        text.contains("USING COVERING INDEX _honker_live_pending_deadline (queue=? AND run_at<?)"),
        "pending_due_count reads the index alone:\n{text}"
    );
    let text = plan(&c, honker_core::sql::STATS_QUEUE, "q");
    for index in [
        "USING COVERING INDEX _honker_live_pending_deadline (queue=? AND run_at<?)",
        "USING COVERING INDEX _honker_live_pending_deadline (queue=? AND run_at>?)",
        "USING INDEX _honker_live_expiry (expires_at<?)",
        "USING COVERING INDEX _honker_live_processing_deadline (queue=?)",
        "USING COVERING INDEX _honker_dead_queue (queue=?)",
    ] {
        assert!(
            text.contains(index),
            "queue_stats plan lacks {index}:\n{text}"
        );
    }
    // And the numbers agree with a plain count.
    let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    let s = queue_stats(&c, "q").unwrap();
    let unexpired = "(expires_at IS NULL OR expires_at > unixepoch())";
    assert_eq!(
        s.pending_due,
        count(&format!("SELECT count(*) FROM _honker_live WHERE queue = 'q' AND state = 'pending' AND run_at <= unixepoch() AND {unexpired}"))
    );
    assert_eq!(
        s.scheduled,
        count(&format!("SELECT count(*) FROM _honker_live WHERE queue = 'q' AND state = 'pending' AND run_at > unixepoch() AND {unexpired}"))
    );
    let expired_due = count("SELECT count(*) FROM _honker_live WHERE queue = 'q' AND state = 'pending' AND run_at <= unixepoch() AND expires_at <= unixepoch()");
    assert!(expired_due > 0, "the fixture has expired rows");
    assert_eq!(
        s.processing,
        count("SELECT count(*) FROM _honker_live WHERE queue = 'q' AND state = 'processing'")
    );
    assert_eq!(s.dead, 1000);
    assert_eq!(
        pending_due_count(&c, "q").unwrap(),
        s.pending_due + expired_due,
        "pending_due_count also counts expired rows not yet swept"
    );
    // The same from `stats`, read a moment later: the oldest pending age
    // may have ticked one second on between the two reads.
    let all = stats(&c).unwrap();
    let mut from_all = all.iter().find(|s| s.queue == "q").unwrap().clone();
    let (a, b) = (
        s.oldest_pending_age.unwrap(),
        from_all.oldest_pending_age.unwrap(),
    );
    assert!(b == a || b == a + 1, "{a} then {b}");
    from_all.oldest_pending_age = s.oldest_pending_age;
    assert_eq!(from_all, s);
}

#[test]
fn pending_due_count_counts_due_pending_rows_even_expired_ones() {
    let (_d, c) = db();
    put(&c, "q", "1", opts());
    put(&c, "q", "1", opts().delay(Duration::from_secs(60)));
    let expired = put(&c, "q", "1", opts().expires(Duration::from_secs(60)));
    put(&c, "other", "1", opts());
    let running = put(&c, "q", "1", opts().priority(9));
    assert_eq!(claim_batch(&c, "q", "w", 1, VIS).unwrap()[0].id, running);
    c.execute(
        "UPDATE _honker_live SET expires_at = unixepoch() - 1 WHERE id = ?1",
        [expired],
    )
    .unwrap();
    assert_eq!(pending_due_count(&c, "q").unwrap(), 2, "expired, not swept");
    assert_eq!(queue_stats(&c, "q").unwrap().pending_due, 1);
    sweep_expired(&c, None).unwrap();
    assert_eq!(pending_due_count(&c, "q").unwrap(), 1);
    assert_eq!(pending_due_count(&c, "none").unwrap(), 0);
}

// ------------------------------------------------------------ queue names

#[test]
fn queue_names_are_checked_and_bad_ones_write_nothing() {
    let (_d, c) = db();
    let longest = "x".repeat(128);
    for good in [
        "a",
        "emails",
        "Billing.v2:eu-west/invoices_1",
        longest.as_str(),
    ] {
        validate_queue_name(good).unwrap();
        put(&c, good, "1", opts());
    }
    let n = live_ids(&c).len();
    let too_long = "x".repeat(129);
    for (bad, reason) in [
        ("", "empty"),
        (too_long.as_str(), "128 bytes"),
        ("a\\b", "ASCII"),
        ("a b", "ASCII"),
        ("emails\n", "ASCII"),
        ("é", "ASCII"),
        ("q*", "ASCII"),
        ("{q=\"x\"}", "ASCII"),
    ] {
        let e = validate_queue_name(bad).unwrap_err();
        match &e {
            Error::InvalidQueueName { name, reason: why } => {
                assert_eq!(name, bad);
                assert!(why.contains(reason), "{why}");
            }
            other => panic!("{other:?}"),
        }
        for e in [
            enqueue(&c, bad, "1", &opts()).unwrap_err(),
            enqueue_json(&c, bad, "1", &opts()).unwrap_err(),
        ] {
            assert!(matches!(e, Error::InvalidQueueName { .. }), "{e:?}");
            assert!(e.to_string().contains("queue name"), "{e}");
        }
    }
    assert_eq!(live_ids(&c).len(), n, "nothing written");
}

#[test]
fn a_stale_dead_row_with_the_same_id_never_blocks_a_move_to_dead() {
    let (_d, c) = db();
    // A peer requeued these jobs without deleting their dead records.
    let exhausted = put(&c, "q", "1", opts().max_attempts(1).priority(9));
    let failing = put(&c, "q", "2", opts().priority(8));
    let next = put(&c, "q", "3", opts());
    for id in [exhausted, failing] {
        c.execute(
            "INSERT INTO _honker_dead (id, queue, payload, last_error) VALUES (?1, 'q', '{}', 'old')",
            [id],
        )
        .unwrap();
    }
    let jobs = claim_batch(&c, "q", "w", 2, VIS).unwrap();
    assert_eq!(jobs[0].id, exhausted);
    lapse(&c, exhausted);
    // The claim dead-letters the exhausted row and still serves the queue.
    let got = claim_batch(&c, "q", "w2", 1, VIS).unwrap();
    assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![next]);
    assert_eq!(
        get_dead(&c, exhausted)
            .unwrap()
            .unwrap()
            .last_error
            .as_deref(),
        Some("max attempts exceeded"),
        "the latest death is the record"
    );
    // A worker can still record its outcome.
    assert!(fail(&c, "w", jobs[1].lease(), "new").unwrap());
    assert_eq!(
        get_dead(&c, failing)
            .unwrap()
            .unwrap()
            .last_error
            .as_deref(),
        Some("new")
    );
}

#[test]
fn dead_lettering_an_unusable_and_an_exhausted_row_in_one_batch_still_refills() {
    let (_d, c) = db();
    let blob = put(&c, "q", "1", opts().priority(9));
    c.execute(
        "UPDATE _honker_live SET payload = x'00ff' WHERE id = ?1",
        [blob],
    )
    .unwrap();
    let spent = put(&c, "q", "2", opts().priority(8).max_attempts(1));
    c.execute(
        "UPDATE _honker_live SET attempts = 1 WHERE id = ?1",
        [spent],
    )
    .unwrap();
    let good = put(&c, "q", "3", opts());
    let jobs = claim_batch(&c, "q", "w", 2, Duration::from_secs(60)).unwrap();
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(
        ids,
        [good],
        "both bad rows dead-lettered, the slot refilled"
    );
    assert!(get_dead(&c, blob).unwrap().is_some());
    assert!(get_dead(&c, spent).unwrap().is_some());
}

#[test]
fn the_next_expiry_of_any_queue_is_the_earliest() {
    let (_d, c) = db();
    assert_eq!(honker_core::next_expiry_any(&c).unwrap(), None);
    put(&c, "a", "1", opts().expires(Duration::from_secs(60)));
    put(&c, "b", "1", opts().expires(Duration::from_secs(30)));
    put(&c, "b", "2", opts());
    let t = now(&c);
    let next = honker_core::next_expiry_any(&c)
        .unwrap()
        .expect("two expiring jobs");
    assert!((t + 29..=t + 31).contains(&next), "{next} vs {t}");
}

#[test]
fn a_row_whose_attempts_are_not_a_run_number_is_dead_lettered() {
    let (_d, c) = db();
    let negative = put(&c, "q", "1", opts());
    let huge = put(&c, "q", "2", opts().max_attempts(u32::MAX));
    c.execute(
        "UPDATE _honker_live SET attempts = -5 WHERE id = ?1",
        [negative],
    )
    .unwrap();
    c.execute(
        "UPDATE _honker_live SET attempts = 4294967295 WHERE id = ?1",
        [huge],
    )
    .unwrap();
    let good = put(&c, "q", "3", opts());
    let jobs = claim_batch(&c, "q", "w", 3, Duration::from_secs(60)).unwrap();
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, [good]);
    for id in [negative, huge] {
        let dead = get_dead(&c, id).unwrap().expect("dead-lettered");
        assert!(dead.last_error.unwrap().contains("attempts"), "job {id}");
    }
}

#[test]
fn rows_with_text_times_or_no_claim_deadline_are_never_stuck() {
    let (_d, c) = db();
    let text_run_at = put(&c, "q", "1", opts());
    c.execute(
        "UPDATE _honker_live SET run_at = 'soon' WHERE id = ?1",
        [text_run_at],
    )
    .unwrap();
    let no_deadline = put(&c, "q", "2", opts());
    c.execute(
        "UPDATE _honker_live SET state = 'processing', worker_id = NULL,
                claim_expires_at = NULL, attempts = 1 WHERE id = ?1",
        [no_deadline],
    )
    .unwrap();
    let text_deadline = put(&c, "q", "3", opts());
    c.execute(
        "UPDATE _honker_live SET state = 'processing', worker_id = 'w0',
                claim_expires_at = 'later', attempts = 1 WHERE id = ?1",
        [text_deadline],
    )
    .unwrap();
    assert!(honker_core::has_claimable(&c, "q").unwrap());
    let jobs = claim_batch(&c, "q", "w", 10, Duration::from_secs(60)).unwrap();
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    // Processing rows with no deadline or one that is not a time are
    // reclaimed as lapsed claims (the claim writes a real deadline).
    assert_eq!(ids, [no_deadline, text_deadline]);
    assert!(jobs.iter().all(|j| j.attempts == 2));
    // A pending row whose due time is TEXT is dead-lettered, naming it.
    let dead = get_dead(&c, text_run_at).unwrap().expect("dead-lettered");
    assert!(dead.last_error.unwrap().contains("run_at"));
    assert!(!honker_core::has_claimable(&c, "q").unwrap());
}
