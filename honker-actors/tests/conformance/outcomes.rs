//! Every outcome path of a job run through a real pool: success, retry,
//! explicit retry delay, permanent failure, bad payload, panic, timeout,
//! plus results, application data and per-queue concurrency.

use super::honker;
use crate::common::eventually;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use honker_actors::testing::wait_until_drained;
use honker_actors::{job, JobContext, JobError, StopReason, WorkerPool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Args {
    n: u64,
}

static OK_RUNS: AtomicUsize = AtomicUsize::new(0);
#[job(queue = "succeeds")]
async fn succeeds(ctx: JobContext, _a: Args) -> Result<(), JobError> {
    assert_eq!(ctx.queue(), "succeeds");
    assert_eq!(ctx.attempt(), 1);
    OK_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_jobs_are_acked() {
    let (_d, h) = honker();
    for n in 0..50 {
        succeeds::enqueue(&h, Args { n }).await.unwrap();
    }
    let pool = WorkerPool::builder(&h)
        .register(succeeds)
        .concurrency(4)
        .start()
        .await
        .unwrap();
    wait_until_drained(&h, "succeeds", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    assert_eq!(OK_RUNS.load(Ordering::SeqCst), 50);
    let s = h.queue("succeeds").stats().await.unwrap();
    assert_eq!(s.dead, 0);
}

static RETRY_RUNS: AtomicUsize = AtomicUsize::new(0);
#[job(queue = "always_errors", max_attempts = 3, backoff = "0s")]
async fn always_errors(ctx: JobContext, _a: Args) -> Result<(), JobError> {
    RETRY_RUNS.fetch_add(1, Ordering::SeqCst);
    // Any std error converts into a retryable JobError.
    let parsed: Result<u32, _> = format!("attempt-{}", ctx.attempt()).parse::<u32>();
    parsed?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_retried_until_max_attempts_then_dead_with_the_last_error() {
    let (_d, h) = honker();
    let id = always_errors::enqueue(&h, Args { n: 1 })
        .await
        .unwrap()
        .id();
    let pool = WorkerPool::builder(&h)
        .register(always_errors)
        .start()
        .await
        .unwrap();
    let q = h.queue("always_errors");
    assert!(
        eventually(Duration::from_secs(30), async || q
            .stats()
            .await
            .unwrap()
            .dead
            == 1)
        .await
    );
    pool.shutdown().await.unwrap();
    assert_eq!(RETRY_RUNS.load(Ordering::SeqCst), 3);
    let dead = q.list_dead(10, 0).await.unwrap();
    assert_eq!(dead[0].id, id);
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("invalid digit found in string")
    );
}

#[job(queue = "retries_later")]
async fn retries_later(_ctx: JobContext, _a: Args) -> Result<(), JobError> {
    Err(JobError::retry_after(Duration::from_secs(3600)).with_message("rate limited"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_overrides_the_backoff() {
    let (_d, h) = honker();
    let id = retries_later::enqueue(&h, Args { n: 1 })
        .await
        .unwrap()
        .id();
    let pool = WorkerPool::builder(&h)
        .register(retries_later)
        .start()
        .await
        .unwrap();
    let q = h.queue("retries_later");
    assert!(
        eventually(Duration::from_secs(30), async || q
            .stats()
            .await
            .unwrap()
            .scheduled
            == 1)
        .await
    );
    pool.shutdown().await.unwrap();
    let job = q.get_job(id).await.unwrap().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(job.run_at >= now + 3590, "run_at {} now {now}", job.run_at);
    assert_eq!(job.attempts, 1);
}

#[job(queue = "fails", max_attempts = 10)]
async fn fails(_ctx: JobContext, a: Args) -> Result<(), JobError> {
    Err(JobError::fail(format!("record {} is invalid", a.n)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_goes_to_dead_at_once_and_bad_payloads_are_never_retried() {
    let (_d, h) = honker();
    let id = fails::enqueue(&h, Args { n: 7 }).await.unwrap().id();
    let q = h.queue("fails");
    let bad = q
        .enqueue_json(
            r#"{"n":"not a number"}"#.into(),
            honker_actors::core::EnqueueOptions::default().max_attempts(10),
        )
        .await
        .unwrap();
    let pool = WorkerPool::builder(&h)
        .register(fails)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || q
            .stats()
            .await
            .unwrap()
            .dead
            == 2)
        .await
    );
    pool.shutdown().await.unwrap();
    let dead = q.list_dead(10, 0).await.unwrap();
    let failed = dead.iter().find(|d| d.id == id).unwrap();
    assert_eq!(
        (failed.attempts, failed.last_error.as_deref()),
        (1, Some("record 7 is invalid"))
    );
    let undecodable = dead.iter().find(|d| d.id == bad).unwrap();
    assert_eq!(undecodable.attempts, 1);
    let msg = undecodable.last_error.as_deref().unwrap();
    assert!(
        msg.contains("payload does not decode") && msg.contains("invalid type"),
        "{msg}"
    );
}

static PANIC_RUNS: AtomicUsize = AtomicUsize::new(0);
#[job(queue = "panics", max_attempts = 1)]
async fn panics(_ctx: JobContext, a: Args) -> Result<(), JobError> {
    PANIC_RUNS.fetch_add(1, Ordering::SeqCst);
    panic!("boom {}", a.n);
}

#[job(queue = "quick")]
async fn quick(_ctx: JobContext, _a: Args) -> Result<(), JobError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_are_caught_recorded_and_the_pool_keeps_its_size() {
    // A thousand deliberate panics would flood the log; others still print.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let deliberate = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with("boom "));
        if !deliberate {
            default(info);
        }
    }));
    let (_d, h) = honker();
    let total = 1000;
    for n in 0..total {
        panics::enqueue(&h, Args { n }).await.unwrap();
    }
    let pool = WorkerPool::builder(&h)
        .register(panics)
        .register(quick)
        .concurrency(8)
        .start()
        .await
        .unwrap();
    let q = h.queue("panics");
    assert!(
        eventually(Duration::from_secs(120), async || q
            .stats()
            .await
            .unwrap()
            .dead
            == total as i64)
        .await,
        "{:?}",
        q.stats().await.unwrap()
    );
    assert_eq!(PANIC_RUNS.load(Ordering::SeqCst), total as usize);
    let errors: std::collections::BTreeSet<String> = q
        .list_dead(total as usize, 0)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|d| d.last_error)
        .collect();
    let want = (0..total).map(|i| format!("panicked: boom {i}")).collect();
    assert_eq!(errors, want, "each dead job says which panic killed it");
    let status = pool.status().await.unwrap();
    assert_eq!(status.workers, 8, "the pool keeps its full size");
    assert_eq!(status.restarts, total);
    // ... and still runs ordinary jobs.
    for n in 0..100 {
        quick::enqueue(&h, Args { n }).await.unwrap();
    }
    wait_until_drained(&h, "quick", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(h.queue("quick").stats().await.unwrap().dead, 0);
    pool.shutdown().await.unwrap();
}

#[job(queue = "panics_once", backoff = "0s")]
async fn panics_once(ctx: JobContext, _a: Args) -> Result<(), JobError> {
    if ctx.attempt() == 1 {
        panic!("first attempt fails");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_retryable_error() {
    let (_d, h) = honker();
    panics_once::enqueue(&h, Args { n: 1 }).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(panics_once)
        .concurrency(1)
        .start()
        .await
        .unwrap();
    wait_until_drained(&h, "panics_once", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(h.queue("panics_once").stats().await.unwrap().dead, 0);
    assert_eq!(pool.status().await.unwrap().restarts, 1);
    pool.shutdown().await.unwrap();
}

static SLOW_ATTEMPTS: AtomicUsize = AtomicUsize::new(0);
#[job(queue = "slow", max_attempts = 2, backoff = "0s", timeout = "200ms")]
async fn slow(ctx: JobContext, _a: Args) -> Result<(), JobError> {
    SLOW_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
    // The first run overruns its timeout; the retry succeeds.
    if ctx.attempt() == 1 {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_drops_the_handler_and_counts_as_a_retryable_error() {
    let (_d, h) = honker();
    slow::enqueue(&h, Args { n: 1 }).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(slow)
        .start()
        .await
        .unwrap();
    let q = h.queue("slow");
    wait_until_drained(&h, "slow", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    // Retried, not failed: the second attempt ran and succeeded.
    assert_eq!(SLOW_ATTEMPTS.load(Ordering::SeqCst), 2);
    assert_eq!(q.stats().await.unwrap().dead, 0);
}

#[derive(Serialize, Deserialize)]
struct Sum {
    a: u64,
    b: u64,
}
#[job(queue = "adds")]
async fn adds(ctx: JobContext, s: Sum) -> Result<u64, JobError> {
    let offset: &u64 = ctx.data::<u64>()?;
    Ok(s.a + s.b + offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_saved_and_application_data_is_reachable() {
    let (_d, h) = honker();
    let id = adds::enqueue(&h, Sum { a: 2, b: 3 }).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(adds)
        .data(100u64)
        .start()
        .await
        .unwrap();
    let sum: u64 = h.result(id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(sum, 105);
    pool.shutdown().await.unwrap();
}

#[job(queue = "needs_data", max_attempts = 1)]
async fn needs_data(ctx: JobContext, _a: Args) -> Result<(), JobError> {
    ctx.data::<Vec<String>>()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_application_data_is_a_clear_error() {
    let (_d, h) = honker();
    needs_data::enqueue(&h, Args { n: 1 }).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(needs_data)
        .start()
        .await
        .unwrap();
    let q = h.queue("needs_data");
    assert!(
        eventually(Duration::from_secs(30), async || q
            .stats()
            .await
            .unwrap()
            .dead
            == 1)
        .await
    );
    pool.shutdown().await.unwrap();
    let msg = q.list_dead(1, 0).await.unwrap()[0]
        .last_error
        .clone()
        .unwrap();
    assert!(
        msg.contains("Vec<alloc::string::String>") && msg.contains("WorkerPoolBuilder::data"),
        "{msg}"
    );
    // A configuration error: failed at once, never retried.
    assert_eq!(q.list_dead(1, 0).await.unwrap()[0].attempts, 1);
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MAX_RUNNING: AtomicUsize = AtomicUsize::new(0);
#[job(queue = "limited")]
async fn limited(_ctx: JobContext, _a: Args) -> Result<(), JobError> {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MAX_RUNNING.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_concurrency_limits_one_queue_within_the_pool() {
    let (_d, h) = honker();
    for n in 0..40 {
        limited::enqueue(&h, Args { n }).await.unwrap();
    }
    let pool = WorkerPool::builder(&h)
        .register(limited)
        .register(quick)
        .concurrency(8)
        .queue_concurrency("limited", 2)
        .start()
        .await
        .unwrap();
    wait_until_drained(&h, "limited", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    assert_eq!(MAX_RUNNING.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pool_configuration_is_refused() {
    let (_d, h) = honker();
    let e = WorkerPool::builder(&h).start().await.unwrap_err();
    assert!(e.to_string().contains("register at least one job"), "{e}");
    let e = WorkerPool::builder(&h)
        .register(quick)
        .concurrency(0)
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("concurrency"), "{e}");
    let e = WorkerPool::builder(&h)
        .register(quick)
        .queue_concurrency("nope", 1)
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = WorkerPool::builder(&h)
        .register(quick)
        .visibility_timeout(Duration::from_millis(10))
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("visibility"), "{e}");
}

static SEEN_STOP: Mutex<Option<StopReason>> = Mutex::new(None);
#[job(queue = "self_cancelling")]
async fn self_cancelling(ctx: JobContext, _a: Args) -> Result<(), JobError> {
    // An operator cancels the job while it runs: the claim is gone.
    ctx.honker()
        .queue(ctx.queue())
        .cancel(ctx.id())
        .await
        .map_err(JobError::retry)?;
    let held = ctx
        .heartbeat(Duration::from_secs(60))
        .await
        .map_err(JobError::retry)?;
    assert!(!held);
    let reason = tokio::time::timeout(Duration::from_secs(5), ctx.stopping())
        .await
        .ok();
    *SEEN_STOP.lock().unwrap() = reason;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_claim_is_lost_is_told_and_its_ack_does_nothing() {
    let (_d, h) = honker();
    let id = self_cancelling::enqueue(&h, Args { n: 1 })
        .await
        .unwrap()
        .id();
    let pool = WorkerPool::builder(&h)
        .register(self_cancelling)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || SEEN_STOP
            .lock()
            .unwrap()
            .is_some())
        .await
    );
    assert_eq!(*SEEN_STOP.lock().unwrap(), Some(StopReason::Cancelled));
    assert!(
        eventually(Duration::from_secs(10), async || pool
            .status()
            .await
            .unwrap()
            .pending_outcomes
            == 0
            && pool.status().await.unwrap().in_flight == 0)
        .await
    );
    pool.shutdown().await.unwrap();
    let q = h.queue("self_cancelling");
    assert!(q.get_job(id).await.unwrap().is_none());
    // The cancelled row is kept as cancelled; the run's Ok did not turn it
    // into a success or remove it.
    let dead = q.list_dead(10, 0).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error.as_deref(), Some("cancelled"));
    let asked = std::time::Instant::now();
    let r = h.result::<()>(id, Duration::from_secs(30)).await;
    assert!(
        matches!(r, Err(honker_actors::Error::JobCancelled { job_id }) if job_id == id),
        "{r:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "answered at once, not after the timeout"
    );
}

static SOLO_RUNNING: AtomicUsize = AtomicUsize::new(0);
static SOLO_MAX: AtomicUsize = AtomicUsize::new(0);
#[job(queue = "solo")]
async fn solo(_ctx: JobContext, _a: Args) -> Result<(), JobError> {
    let now = SOLO_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    SOLO_MAX.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2)).await;
    SOLO_RUNNING.fetch_sub(1, Ordering::SeqCst);
    Ok(())
}

#[job(queue = "busy")]
async fn busy(_ctx: JobContext, _a: Args) -> Result<(), JobError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_limit_holds_while_a_busy_queue_keeps_two_cycles_in_flight() {
    let (_d, h) = honker();
    let mut batch = honker_actors::Batch::new();
    for n in 0..300 {
        batch.push(solo::builder(Args { n })).unwrap();
    }
    for n in 0..20_000 {
        batch.push(busy::builder(Args { n })).unwrap();
    }
    h.enqueue_batch(batch).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(solo)
        .register(busy)
        .concurrency(16)
        .queue_concurrency("solo", 1)
        .start()
        .await
        .unwrap();
    // Both within the one 60 s limit.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for queue in ["solo", "busy"] {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        wait_until_drained(&h, queue, left).await.unwrap();
    }
    pool.shutdown().await.unwrap();
    assert_eq!(
        SOLO_MAX.load(Ordering::SeqCst),
        1,
        "queue_concurrency 1 was exceeded"
    );
}

#[job(queue = "nul_errors", max_attempts = 1)]
async fn nul_error(n: u32) -> Result<(), JobError> {
    if n == 0 {
        return Err(JobError::fail("bad\0byte"));
    }
    Ok(())
}

/// An error message holding a NUL (which a server's text may refuse) is
/// written, and the pool goes on: the job is dead with the message's
/// visible parts, and the next job runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_holding_a_nul_is_written_and_the_pool_goes_on() {
    let (_d, h) = honker();
    let bad = nul_error::enqueue(&h, 0).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(nul_error)
        .start()
        .await
        .unwrap();
    let dead = eventually(Duration::from_secs(10), async || {
        h.store().dead_job(bad.id()).await.unwrap().is_some()
    });
    assert!(dead.await, "the failed job is dead");
    let last = h
        .store()
        .dead_job(bad.id())
        .await
        .unwrap()
        .unwrap()
        .last_error
        .unwrap();
    assert!(
        last.starts_with("bad") && last.ends_with("byte"),
        "{last:?}"
    );
    let good = nul_error::enqueue(&h, 1).await.unwrap();
    good.result(&h, Duration::from_secs(10)).await.unwrap();
    pool.shutdown().await.unwrap();
}
