//! The pool emits the metrics of DESIGN §5, checked with a recording
//! `metrics` recorder (the only test in this binary: a recorder is global).

use std::time::Duration;

use honker_actors::testing::wait_until_drained;
use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[job(queue = "mixed", max_attempts = 2, backoff = "0s")]
async fn mixed(ctx: JobContext, what: String) -> Result<(), JobError> {
    match what.as_str() {
        "ok" => Ok(()),
        "fail" => Err(JobError::fail("no")),
        "retry" => Err(JobError::retry("again")),
        "panic" => panic!("kaboom"),
        "lost" => {
            ctx.honker()
                .queue("mixed")
                .cancel(ctx.id())
                .await
                .map_err(JobError::retry)?;
            Ok(())
        }
        "lost_hb" => {
            // Cancelled while it runs; the pool's heartbeat finds the
            // claim lost and tells the run to stop.
            ctx.honker()
                .queue("mixed")
                .cancel(ctx.id())
                .await
                .map_err(JobError::retry)?;
            let _ = tokio::time::timeout(Duration::from_secs(20), ctx.stopping()).await;
            Ok(())
        }
        other => Err(JobError::fail(format!("unknown {other}"))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_emits_counters_histograms_and_gauges_labelled_by_queue_and_job() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let h = Honker::open(dir.path().join("m.db")).unwrap();
    for what in ["ok", "ok", "fail", "retry", "panic", "lost", "lost_hb"] {
        mixed::enqueue(&h, what.to_string()).await.unwrap();
    }
    // A unique enqueue, twice: one job, one duplicate counted.
    for _ in 0..2 {
        mixed::builder("ok".to_string())
            .unique_key("once")
            .enqueue(&h)
            .await
            .unwrap();
    }
    // A job name no job of the pool has: dead, counted under `_unrouted`.
    let ghost = honker_actors::core::task_payload("ghost", &1).unwrap();
    h.queue("mixed")
        .enqueue_json(ghost, Default::default())
        .await
        .unwrap();
    let pool = WorkerPool::builder(&h)
        .register(mixed)
        .concurrency(2)
        .visibility_timeout(Duration::from_secs(3))
        .start()
        .await
        .unwrap();
    wait_until_drained(&h, "mixed", Duration::from_secs(30))
        .await
        .expect("the queue drained");
    // The depth gauge is read every 5 s, outside write transactions: wait
    // for the next read, woken by a job that is not due (depth counts due
    // jobs only).
    tokio::time::sleep(Duration::from_millis(5200)).await;
    h.queue("mixed")
        .enqueue(
            &"later",
            honker_actors::core::EnqueueOptions::default().delay(Duration::from_secs(600)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    pool.shutdown().await.unwrap();

    let snap = snapshotter.snapshot().into_vec();
    // The series of `name` for queue "mixed", with label `job` = `job`
    // (`None`: no job label) and, if given, label `outcome`.
    let find_for = |name: &str, job: Option<&str>, outcome: Option<&str>| -> Option<&DebugValue> {
        snap.iter()
            .find(|(k, _, _, _)| {
                let key = k.key();
                let label = |n: &str| key.labels().find(|l| l.key() == n).map(|l| l.value());
                key.name() == name
                    && label("queue") == Some("mixed")
                    && label("job") == job
                    && outcome.is_none_or(|o| label("outcome") == Some(o))
            })
            .map(|(_, _, _, v)| v)
    };
    let counter_for =
        |name: &str, job: Option<&str>, outcome: Option<&str>| match find_for(name, job, outcome) {
            Some(DebugValue::Counter(n)) => *n,
            other => panic!("{name} {job:?} {outcome:?}: {other:?}"),
        };
    let find = |name: &str, outcome: Option<&str>| find_for(name, Some("mixed"), outcome);
    let counter = |name: &str, outcome: Option<&str>| counter_for(name, Some("mixed"), outcome);
    assert_eq!(counter("honker_jobs_enqueued_total", None), 8);
    assert_eq!(counter("honker_jobs_duplicate_total", None), 1);
    assert_eq!(
        counter_for("honker_jobs_enqueued_total", None, None),
        2,
        "untyped enqueues carry the queue only"
    );
    assert_eq!(
        counter_for(
            "honker_jobs_completed_total",
            Some("_unrouted"),
            Some("dead")
        ),
        1,
        "a row of an unknown job is counted apart, never as the job's"
    );
    assert_eq!(counter("honker_jobs_completed_total", Some("success")), 3);
    // fail -> dead; retry and panic: retried once, then dead (max_attempts 2)
    assert_eq!(counter("honker_jobs_completed_total", Some("retried")), 2);
    assert_eq!(counter("honker_jobs_completed_total", Some("dead")), 3);
    // The two cancelled runs ("lost", "lost_hb"): each is counted once,
    // as a lost claim when the pool notices the cancel first (it writes
    // nothing for the run), or as an ack that found its claim gone.
    let acked_lost = counter("honker_jobs_completed_total", Some("lost"));
    let noticed = counter_for("honker_jobs_lost_claims_total", None, None);
    assert_eq!(
        acked_lost + noticed,
        2,
        "an ack of a lost claim is not a success: {acked_lost} + {noticed}"
    );
    assert_eq!(
        counter("honker_worker_restarts_total", None),
        2,
        "the panicking job ran twice"
    );
    match find("honker_job_duration_seconds", None) {
        Some(DebugValue::Histogram(v)) => assert!(v.len() >= 7, "{v:?}"),
        other => panic!("duration: {other:?}"),
    }
    match find("honker_job_wait_seconds", None) {
        Some(DebugValue::Histogram(v)) => {
            assert!(v.len() >= 9, "{v:?}");
            // Whole seconds: the format keeps no finer time.
            assert!(v.iter().all(|w| w.0.fract() == 0.0), "{v:?}");
        }
        other => panic!("wait: {other:?}"),
    }
    match find("honker_jobs_in_flight", None) {
        Some(DebugValue::Gauge(g)) => assert_eq!(g.0, 0.0),
        other => panic!("in flight: {other:?}"),
    }
    match find_for("honker_queue_depth", None, None) {
        Some(DebugValue::Gauge(g)) => assert_eq!(g.0, 0.0, "nothing due is waiting"),
        other => panic!("depth: {other:?}"),
    }
}
