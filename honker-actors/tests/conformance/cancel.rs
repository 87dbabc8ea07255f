//! Cancelling a running job: its handler hears of it within milliseconds,
//! its outcome is never written, and a handler that ignores it is dropped
//! after the pool's `cancel_grace`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::honker;
use crate::common::eventually;
use honker_actors::testing::wait_until_drained;
use honker_actors::{job, JobContext, JobError, StopReason, WorkerPool};

/// (job id, what the handler saw, when it saw it).
static SEEN: Mutex<Vec<(i64, StopReason, Instant)>> = Mutex::new(Vec::new());
static STARTED: Mutex<Vec<i64>> = Mutex::new(Vec::new());

#[job(queue = "listens")]
async fn listens(ctx: JobContext, _n: u32) -> Result<u32, JobError> {
    STARTED.lock().unwrap().push(ctx.id());
    let why = ctx.stopping().await;
    SEEN.lock().unwrap().push((ctx.id(), why, Instant::now()));
    // Claims success anyway: it must not be written.
    Ok(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_hears_of_its_cancel_within_milliseconds_and_its_outcome_is_dropped() {
    let (_d, h) = honker();
    let id = listens::enqueue(&h, 1).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(listens)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || STARTED
            .lock()
            .unwrap()
            .contains(&id))
        .await
    );
    let q = h.queue("listens");
    let at = Instant::now();
    assert!(q.cancel(id).await.unwrap());
    assert!(
        eventually(Duration::from_secs(5), async || SEEN
            .lock()
            .unwrap()
            .iter()
            .any(|s| s.0 == id))
        .await,
        "the handler heard of the cancel"
    );
    let (_, why, when) = *SEEN.lock().unwrap().iter().find(|s| s.0 == id).unwrap();
    assert_eq!(why, StopReason::Cancelled);
    let took = when - at;
    // The check follows the commit; a heartbeat (100 s away) is not it.
    eprintln!("cancel heard after {took:?}");
    assert!(took < Duration::from_millis(200), "heard after {took:?}");
    pool.shutdown().await.unwrap();
    let dead = q.list_dead(10, 0).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap()
        .starts_with("cancelled"));
    assert!(
        matches!(
            h.result::<u32>(id, Duration::from_secs(1)).await,
            Err(honker_actors::Error::JobCancelled { .. })
        ),
        "its Ok(1) was never saved"
    );
}

static DEAF_RUNS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Ignores every signal: sleeps an hour.
#[job(queue = "deaf")]
async fn deaf(n: u32) -> Result<(), JobError> {
    DEAF_RUNS.lock().unwrap().push(n);
    if n == 0 {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_ignores_its_cancel_is_dropped_after_the_grace_period() {
    let (_d, h) = honker();
    let stuck = deaf::enqueue(&h, 0).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(deaf)
        .concurrency(1)
        .cancel_grace(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || DEAF_RUNS
            .lock()
            .unwrap()
            .contains(&0))
        .await
    );
    // The only worker is busy; a second job waits for it.
    deaf::enqueue(&h, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!DEAF_RUNS.lock().unwrap().contains(&1));
    let at = Instant::now();
    h.queue("deaf").cancel(stuck).await.unwrap();
    wait_until_drained(&h, "deaf", Duration::from_secs(30))
        .await
        .unwrap();
    let took = at.elapsed();
    assert!(
        DEAF_RUNS.lock().unwrap().contains(&1),
        "the worker was freed"
    );
    assert!(
        took >= Duration::from_millis(300),
        "dropped only after the grace period: {took:?}"
    );
    let status = pool.status().await.unwrap();
    assert_eq!(status.workers, 1);
    pool.shutdown().await.unwrap();
}

static BYSTANDER_SAW: Mutex<Vec<(u32, StopReason)>> = Mutex::new(Vec::new());
static BYSTANDERS_UP: Mutex<Vec<i64>> = Mutex::new(Vec::new());

#[job(queue = "bystanders")]
async fn bystander(ctx: JobContext, n: u32) -> Result<(), JobError> {
    BYSTANDERS_UP.lock().unwrap().push(ctx.id());
    let why = ctx.stopping().await;
    BYSTANDER_SAW.lock().unwrap().push((n, why));
    Err(JobError::retry("stopped"))
}

/// A cancel is told to the cancelled run alone: another run going at the
/// same time, stopped later by the shutdown, hears `Shutdown`, not
/// `Cancelled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_is_told_to_its_own_run_alone() {
    let (_d, h) = honker();
    let cancelled = bystander::enqueue(&h, 1).await.unwrap().id();
    bystander::enqueue(&h, 2).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(bystander)
        .concurrency(2)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || BYSTANDERS_UP
            .lock()
            .unwrap()
            .len()
            == 2)
        .await
    );
    h.queue("bystanders").cancel(cancelled).await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || !BYSTANDER_SAW
            .lock()
            .unwrap()
            .is_empty())
        .await
    );
    pool.shutdown().await.unwrap();
    let mut saw = BYSTANDER_SAW.lock().unwrap().clone();
    saw.sort_by_key(|(n, _)| *n);
    assert_eq!(
        saw,
        [(1, StopReason::Cancelled), (2, StopReason::Shutdown)],
        "each run hears its own reason"
    );
}
