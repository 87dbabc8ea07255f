//! A pause within one process: jobs a busy pool prefetched do not start.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::{eventually, honker};
use honker_actors::{job, JobError, WorkerPool};

static STARTED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

#[job(queue = "slowq")]
async fn slow_job(n: u32) -> Result<(), JobError> {
    STARTED.lock().unwrap().push(n);
    tokio::time::sleep(Duration::from_millis(400)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_the_start_of_jobs_a_busy_pool_prefetched() {
    let (_d, h) = honker();
    for n in 1..=3 {
        slow_job::enqueue(&h, n).await.unwrap();
    }
    let pool = WorkerPool::builder(&h)
        .register(slow_job)
        .concurrency(1)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || {
            let s = pool.status().await.unwrap();
            s.in_flight == 1 && s.prefetched >= 1
        })
        .await,
        "one runs, one waits prefetched"
    );
    let q = h.queue("slowq");
    q.pause().await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        *STARTED.lock().unwrap(),
        [1],
        "nothing started after the pause"
    );
    let s = q.stats().await.unwrap();
    assert_eq!((s.pending_due, s.processing), (2, 0), "given back: {s:?}");
    q.resume().await.unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || STARTED
            .lock()
            .unwrap()
            .len()
            == 3)
        .await,
        "resumed without a new enqueue"
    );
    pool.shutdown().await.unwrap();
}
