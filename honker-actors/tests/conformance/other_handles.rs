//! What one handle hears of another's work, as a second service instance
//! (another process, another machine) would: a result it waits for, and a
//! running limit's slot the other one frees. Each is heard at once, never
//! at a timer's fallback.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use honker_actors::{job, JobContext, JobError, WorkerPool};

use super::honker;
use crate::common::eventually;

#[job(queue = "awaited")]
async fn finishes_later(_ctx: JobContext, ms: u64) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_awaited_on_one_handle_arrives_when_another_handles_pool_finishes_the_job() {
    let (d, waiter) = honker();
    let worker = d.another();
    let pool = WorkerPool::builder(&worker)
        .register(finishes_later)
        .concurrency(2)
        .start()
        .await
        .unwrap();
    for round in 0..3 {
        // The job finishes well after the wait began: only the other
        // handle's ack can end the wait before its deadline.
        let handle = finishes_later::enqueue(&waiter, 400).await.unwrap();
        let asked = Instant::now();
        let got = handle.result(&waiter, Duration::from_secs(20)).await;
        assert!(got.is_ok(), "round {round}: {got:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "round {round}: heard {:?} after the wait began, not at once",
            asked.elapsed()
        );
    }
    pool.shutdown().await.unwrap();
}

static GATED: Mutex<Vec<(u32, Instant)>> = Mutex::new(Vec::new());

/// Job 1 runs until its pool stops; the others return at once.
#[job(queue = "one_at_a_time")]
async fn gated(ctx: JobContext, n: u32) -> Result<(), JobError> {
    GATED.lock().unwrap().push((n, Instant::now()));
    if n == 1 {
        ctx.stopping().await;
    }
    Ok(())
}

fn started(n: u32) -> Option<Instant> {
    GATED
        .lock()
        .unwrap()
        .iter()
        .find(|(m, _)| *m == n)
        .map(|(_, t)| *t)
}

/// A pool of one worker for `gated`, whose claims lapse only in a minute:
/// no timer of its own wakes it sooner.
async fn gated_pool(h: &honker_actors::Honker) -> WorkerPool {
    WorkerPool::builder(h)
        .register(gated)
        .concurrency(1)
        .visibility_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_limits_slot_freed_by_one_handles_pool_wakes_another_handles_pool_at_once() {
    GATED.lock().unwrap().clear();
    let (d, a) = honker();
    let b = d.another();
    let q = a.queue("one_at_a_time");
    q.set_max_running(Some(1)).await.unwrap();
    gated::enqueue(&a, 1).await.unwrap();
    gated::enqueue(&a, 2).await.unwrap();
    let pool_a = gated_pool(&a).await;
    assert!(eventually(Duration::from_secs(10), async || started(1).is_some()).await);
    let pool_b = gated_pool(&b).await;
    // B looks, and finds the one slot taken.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(started(2), None, "job 2 started past the running limit");
    // A stops: job 1 ends, its ack is A's last write, and A claims
    // nothing more. Only B can run job 2, once it hears of the slot.
    let freed = Instant::now();
    pool_a.shutdown().await.unwrap();
    assert!(
        eventually(Duration::from_secs(20), async || started(2).is_some()).await,
        "job 2 never started"
    );
    let after = started(2).unwrap().saturating_duration_since(freed);
    assert!(
        after < Duration::from_secs(3),
        "job 2 started {after:?} after the slot was freed, not at once"
    );
    pool_b.shutdown().await.unwrap();
    assert_eq!(q.stats().await.unwrap().pending_due, 0);
}
