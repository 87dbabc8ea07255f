//! Each wake-up source alone, so a degraded path cannot hide behind
//! another: the in-process enqueue with the commit watcher off, the
//! watcher with no in-process wake (a foreign connection commits), and the
//! due-time timer with neither. The bounds are generous safety margins
//! against "never" or "seconds late", not speed assertions.

mod common;

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::eventually;
use honker_actors::core::rusqlite;
use honker_actors::core::EnqueueOptions;
use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};

/// When each job started (unix seconds, fractional), by payload.
static STARTED: Mutex<Vec<(u32, f64)>> = Mutex::new(Vec::new());

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn started(n: u32) -> Option<f64> {
    STARTED
        .lock()
        .unwrap()
        .iter()
        .find(|(m, _)| *m == n)
        .map(|(_, t)| *t)
}

#[job(queue = "stamp")]
async fn stamp(_ctx: JobContext, n: u32) -> Result<(), JobError> {
    STARTED.lock().unwrap().push((n, unix_now()));
    Ok(())
}

/// A handle whose commit watcher polls once an hour: effectively off.
fn without_watcher() -> (tempfile::TempDir, Honker) {
    let dir = tempfile::tempdir().unwrap();
    let h = Honker::open_with_watch_interval(dir.path().join("app.db"), Duration::from_secs(3600))
        .unwrap();
    (dir, h)
}

async fn idle_pool(h: &Honker) -> WorkerPool {
    let pool = WorkerPool::builder(h)
        .register(stamp)
        .start()
        .await
        .unwrap();
    // Let the first cycle pass and the watcher back off: the pool is idle.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pool
}

async fn starts_within(n: u32, limit: Duration) -> bool {
    let t = Instant::now();
    eventually(Duration::from_secs(10), async || started(n).is_some()).await && t.elapsed() < limit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_enqueue_wakes_an_idle_pool_without_the_watcher() {
    let (_d, h) = without_watcher();
    let pool = idle_pool(&h).await;
    for n in 100..103 {
        stamp::enqueue(&h, n).await.unwrap();
        assert!(
            starts_within(n, Duration::from_millis(500)).await,
            "job {n}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    pool.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_alone_wakes_an_idle_pool_for_a_foreign_commit() {
    let (_d, h) = common::honker();
    let pool = idle_pool(&h).await;
    let foreign = rusqlite::Connection::open(h.path().unwrap()).unwrap();
    // Three times: a watcher polling a thousand times slower would be
    // lucky once, not three times in a row.
    for n in 200..203 {
        honker_actors::core::enqueue(
            &foreign,
            "stamp",
            &n.to_string(),
            &EnqueueOptions::default(),
        )
        .unwrap();
        assert!(
            starts_within(n, Duration::from_millis(400)).await,
            "job {n}"
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    pool.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_due_time_timer_alone_starts_a_delayed_job_on_time() {
    let (_d, h) = without_watcher();
    let pool = idle_pool(&h).await;
    let id = h
        .queue("stamp")
        .enqueue(
            &300u32,
            EnqueueOptions::default().delay(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    let run_at = h.queue("stamp").get_job(id).await.unwrap().unwrap().run_at as f64;
    assert!(eventually(Duration::from_secs(15), async || started(300).is_some()).await);
    let at = started(300).unwrap();
    assert!(at >= run_at, "never early: started {at}, due {run_at}");
    assert!(
        at < run_at + 1.0,
        "the timer fired on time: started {at}, due {run_at}"
    );
    pool.shutdown().await.unwrap();
}
