//! The operator's API through a `Honker`: every queue the file knows in
//! the stats, jobs listed by state, dead jobs requeued or purged by filter.

use std::time::Duration;

use super::honker;
use crate::common::eventually;
use honker_actors::core::{DeadFilter, LiveState, ScheduleSpec};
use honker_actors::{job, JobError, WorkerPool};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_list_every_known_queue_with_its_pause_and_oldest_wait() {
    let (_d, h) = honker();
    h.queue("idle").pause().await.unwrap();
    let busy = h.queue("busy");
    busy.enqueue(&1, Default::default()).await.unwrap();
    // A cron job's queue between runs, and a drained queue with a dead job.
    let nightly = ScheduleSpec::new("nightly", "reports", "0 3 * * *", "{}");
    h.schedules().add(nightly).await.unwrap();
    let gone = h
        .queue("drained")
        .enqueue(&1, Default::default())
        .await
        .unwrap();
    h.queue("drained").cancel(gone).await.unwrap();
    h.queue("drained").purge_dead(gone).await.unwrap();
    let all = h.stats().await.unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.queue.as_str()).collect();
    assert_eq!(
        names,
        ["busy", "idle", "reports"],
        "an empty, paused queue and a schedule's queue are listed; a queue \
         nothing names any more is not"
    );
    let reports = &all[2];
    assert_eq!(
        (
            reports.pending_due,
            reports.scheduled,
            reports.dead,
            reports.paused
        ),
        (0, 0, 0, false)
    );
    assert!(all[1].paused && !all[0].paused);
    assert_eq!(all[1].oldest_pending_age, None);
    assert!(all[0]
        .oldest_pending_age
        .is_some_and(|a| (0..=2).contains(&a)));
    assert_eq!(
        busy.list_jobs(LiveState::Pending, 10, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(busy
        .list_jobs(LiveState::Scheduled, 10, 0)
        .await
        .unwrap()
        .is_empty());
}

#[job(queue = "flaky")]
async fn flaky(n: u32) -> Result<u32, JobError> {
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_jobs_are_requeued_by_filter_and_run_or_purged() {
    let (_d, h) = honker();
    let q = h.queue("flaky");
    let keep = flaky::enqueue(&h, 1).await.unwrap().id();
    let drop_it = flaky::enqueue(&h, 2).await.unwrap().id();
    q.cancel(keep).await.unwrap();
    q.cancel(drop_it).await.unwrap();
    assert!(q.purge_dead(drop_it).await.unwrap());
    assert_eq!(q.stats().await.unwrap().dead, 1);
    let pool = WorkerPool::builder(&h)
        .register(flaky)
        .start()
        .await
        .unwrap();
    assert_eq!(
        q.requeue_dead_where(DeadFilter::default().error_contains("cancelled"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        h.result::<u32>(keep, Duration::from_secs(10))
            .await
            .unwrap(),
        1,
        "the requeued job ran"
    );
    pool.shutdown().await.unwrap();
    // Purge the rest of the file's dead jobs: none left.
    let again = flaky::enqueue(&h, 3).await.unwrap().id();
    q.cancel(again).await.unwrap();
    assert_eq!(h.purge_dead_where(DeadFilter::default()).await.unwrap(), 1);
    assert!(
        eventually(Duration::from_secs(1), async || h
            .list_dead_where(DeadFilter::default(), 10, 0)
            .await
            .unwrap()
            .is_empty())
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_finds_its_jobs_by_name_or_argument_text() {
    let (_d, h) = honker();
    let q = h.queue("mail");
    let ann = q
        .enqueue(&serde_json::json!({"to": "ann@x"}), Default::default())
        .await
        .unwrap();
    q.enqueue(&serde_json::json!({"to": "bob@x"}), Default::default())
        .await
        .unwrap();
    h.queue("other")
        .enqueue(&serde_json::json!({"to": "ann@x"}), Default::default())
        .await
        .unwrap();
    let found = q
        .find_jobs(LiveState::Pending, "ann@", 10, 0)
        .await
        .unwrap();
    assert_eq!(found.iter().map(|j| j.id).collect::<Vec<_>>(), [ann]);
    assert!(q
        .find_jobs(LiveState::Scheduled, "ann@", 10, 0)
        .await
        .unwrap()
        .is_empty());
}
