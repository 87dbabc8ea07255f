//! Every outcome path of a job run through a real pool: success, retry,
//! explicit retry delay, permanent failure, bad payload, panic, timeout,
//! plus results, application data and per-queue concurrency.

mod common;

use common::{drained, eventually, honker};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use honker_actors::{Backoff, Job, JobContext, JobError, JobOptions, StopReason, WorkerPool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Args {
    n: u64,
}

static OK_RUNS: AtomicUsize = AtomicUsize::new(0);
struct Succeeds;
impl Job for Succeeds {
    const NAME: &'static str = "succeeds";
    const QUEUE: &'static str = "succeeds";
    type Args = Args;
    type Output = ();
    async fn run(&self, ctx: JobContext, _a: Args) -> Result<(), JobError> {
        assert_eq!(ctx.queue(), "succeeds");
        assert_eq!(ctx.attempt(), 1);
        OK_RUNS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_jobs_are_acked() {
    let (_d, h) = honker();
    for n in 0..50 {
        h.enqueue::<Succeeds>(Args { n }).await.unwrap();
    }
    let pool = WorkerPool::builder(&h)
        .register(Succeeds)
        .concurrency(4)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || drained(&h, "succeeds")
            .await)
        .await
    );
    pool.shutdown().await.unwrap();
    assert_eq!(OK_RUNS.load(Ordering::SeqCst), 50);
    let s = h.queue("succeeds").stats().await.unwrap();
    assert_eq!(s.dead, 0);
}

static RETRY_RUNS: AtomicUsize = AtomicUsize::new(0);
struct AlwaysErrors;
impl Job for AlwaysErrors {
    const NAME: &'static str = "always_errors";
    const QUEUE: &'static str = "always_errors";
    type Args = Args;
    type Output = ();
    fn options() -> JobOptions {
        JobOptions::default()
            .max_attempts(3)
            .backoff(Backoff::fixed(Duration::ZERO))
    }
    async fn run(&self, ctx: JobContext, _a: Args) -> Result<(), JobError> {
        RETRY_RUNS.fetch_add(1, Ordering::SeqCst);
        // Any std error converts into a retryable JobError.
        let parsed: Result<u32, _> = format!("attempt-{}", ctx.attempt()).parse::<u32>();
        parsed?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_retried_until_max_attempts_then_dead_with_the_last_error() {
    let (_d, h) = honker();
    let id = h.enqueue::<AlwaysErrors>(Args { n: 1 }).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(AlwaysErrors)
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

struct RetriesLater;
impl Job for RetriesLater {
    const NAME: &'static str = "retries_later";
    const QUEUE: &'static str = "retries_later";
    type Args = Args;
    type Output = ();
    async fn run(&self, _ctx: JobContext, _a: Args) -> Result<(), JobError> {
        Err(JobError::retry_after(Duration::from_secs(3600)).with_message("rate limited"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_overrides_the_backoff() {
    let (_d, h) = honker();
    let id = h.enqueue::<RetriesLater>(Args { n: 1 }).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(RetriesLater)
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

struct FailsPermanently;
impl Job for FailsPermanently {
    const NAME: &'static str = "fails";
    const QUEUE: &'static str = "fails";
    type Args = Args;
    type Output = ();
    fn options() -> JobOptions {
        JobOptions::default().max_attempts(10)
    }
    async fn run(&self, _ctx: JobContext, a: Args) -> Result<(), JobError> {
        Err(JobError::fail(format!("record {} is invalid", a.n)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_goes_to_dead_at_once_and_bad_payloads_are_never_retried() {
    let (_d, h) = honker();
    let id = h.enqueue::<FailsPermanently>(Args { n: 7 }).await.unwrap();
    let q = h.queue("fails");
    let bad = q
        .enqueue_json(
            r#"{"n":"not a number"}"#.into(),
            honker_actors::EnqueueOptions::default().max_attempts(10),
        )
        .await
        .unwrap();
    let pool = WorkerPool::builder(&h)
        .register(FailsPermanently)
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
struct Panics;
impl Job for Panics {
    const NAME: &'static str = "panics";
    const QUEUE: &'static str = "panics";
    type Args = Args;
    type Output = ();
    fn options() -> JobOptions {
        JobOptions::default().max_attempts(1)
    }
    async fn run(&self, _ctx: JobContext, a: Args) -> Result<(), JobError> {
        PANIC_RUNS.fetch_add(1, Ordering::SeqCst);
        panic!("boom {}", a.n);
    }
}

struct Quick;
impl Job for Quick {
    const NAME: &'static str = "quick";
    const QUEUE: &'static str = "quick";
    type Args = Args;
    type Output = ();
    async fn run(&self, _ctx: JobContext, _a: Args) -> Result<(), JobError> {
        Ok(())
    }
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
        h.enqueue::<Panics>(Args { n }).await.unwrap();
    }
    let pool = WorkerPool::builder(&h)
        .register(Panics)
        .register(Quick)
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
    let dead = q.list_dead(1, 0).await.unwrap();
    assert_eq!(dead[0].last_error.as_deref(), Some("panicked: boom 0"));
    let status = pool.status().await.unwrap();
    assert_eq!(status.workers, 8, "the pool keeps its full size");
    assert_eq!(status.restarts, total);
    // ... and still runs ordinary jobs.
    for n in 0..100 {
        h.enqueue::<Quick>(Args { n }).await.unwrap();
    }
    assert!(eventually(Duration::from_secs(30), async || drained(&h, "quick").await).await);
    assert_eq!(h.queue("quick").stats().await.unwrap().dead, 0);
    pool.shutdown().await.unwrap();
}

struct PanicsOnce;
impl Job for PanicsOnce {
    const NAME: &'static str = "panics_once";
    const QUEUE: &'static str = "panics_once";
    type Args = Args;
    type Output = ();
    fn options() -> JobOptions {
        JobOptions::default().backoff(Backoff::fixed(Duration::ZERO))
    }
    async fn run(&self, ctx: JobContext, _a: Args) -> Result<(), JobError> {
        if ctx.attempt() == 1 {
            panic!("first attempt fails");
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_retryable_error() {
    let (_d, h) = honker();
    h.enqueue::<PanicsOnce>(Args { n: 1 }).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(PanicsOnce)
        .concurrency(1)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || drained(&h, "panics_once")
            .await)
        .await
    );
    assert_eq!(h.queue("panics_once").stats().await.unwrap().dead, 0);
    assert_eq!(pool.status().await.unwrap().restarts, 1);
    pool.shutdown().await.unwrap();
}

static SLOW_ATTEMPTS: AtomicUsize = AtomicUsize::new(0);
struct Slow;
impl Job for Slow {
    const NAME: &'static str = "slow";
    const QUEUE: &'static str = "slow";
    type Args = Args;
    type Output = ();
    fn options() -> JobOptions {
        JobOptions::default()
            .max_attempts(2)
            .backoff(honker_actors::Backoff::fixed(Duration::ZERO))
            .timeout(Duration::from_millis(200))
    }
    async fn run(&self, ctx: JobContext, _a: Args) -> Result<(), JobError> {
        SLOW_ATTEMPTS.fetch_add(1, Ordering::SeqCst);
        // The first run overruns its timeout; the retry succeeds.
        if ctx.attempt() == 1 {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_drops_the_handler_and_counts_as_a_retryable_error() {
    let (_d, h) = honker();
    h.enqueue::<Slow>(Args { n: 1 }).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(Slow)
        .start()
        .await
        .unwrap();
    let q = h.queue("slow");
    assert!(eventually(Duration::from_secs(30), async || drained(&h, "slow").await).await);
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
struct Adds;
impl Job for Adds {
    const NAME: &'static str = "adds";
    const QUEUE: &'static str = "adds";
    type Args = Sum;
    type Output = u64;
    async fn run(&self, ctx: JobContext, s: Sum) -> Result<u64, JobError> {
        let offset: &u64 = ctx.data::<u64>()?;
        Ok(s.a + s.b + offset)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_saved_and_application_data_is_reachable() {
    let (_d, h) = honker();
    let id = h.enqueue::<Adds>(Sum { a: 2, b: 3 }).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(Adds)
        .data(100u64)
        .start()
        .await
        .unwrap();
    let sum: u64 = h.result(id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(sum, 105);
    pool.shutdown().await.unwrap();
}

struct NeedsData;
impl Job for NeedsData {
    const NAME: &'static str = "needs_data";
    const QUEUE: &'static str = "needs_data";
    type Args = Args;
    type Output = ();
    fn options() -> JobOptions {
        JobOptions::default().max_attempts(1)
    }
    async fn run(&self, ctx: JobContext, _a: Args) -> Result<(), JobError> {
        ctx.data::<Vec<String>>()?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_application_data_is_a_clear_error() {
    let (_d, h) = honker();
    h.enqueue::<NeedsData>(Args { n: 1 }).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(NeedsData)
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
struct Limited;
impl Job for Limited {
    const NAME: &'static str = "limited";
    const QUEUE: &'static str = "limited";
    type Args = Args;
    type Output = ();
    async fn run(&self, _ctx: JobContext, _a: Args) -> Result<(), JobError> {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MAX_RUNNING.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_concurrency_limits_one_queue_within_the_pool() {
    let (_d, h) = honker();
    for n in 0..40 {
        h.enqueue::<Limited>(Args { n }).await.unwrap();
    }
    let pool = WorkerPool::builder(&h)
        .register(Limited)
        .register(Quick)
        .concurrency(8)
        .queue_concurrency("limited", 2)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || drained(&h, "limited")
            .await)
        .await
    );
    pool.shutdown().await.unwrap();
    assert_eq!(MAX_RUNNING.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pool_configuration_is_refused() {
    let (_d, h) = honker();
    let e = WorkerPool::builder(&h).start().await.unwrap_err();
    assert!(e.to_string().contains("register at least one job"), "{e}");
    let e = WorkerPool::builder(&h)
        .register(Quick)
        .concurrency(0)
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("concurrency"), "{e}");
    let e = WorkerPool::builder(&h)
        .register(Quick)
        .queue_concurrency("nope", 1)
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
    let e = WorkerPool::builder(&h)
        .register(Quick)
        .visibility_timeout(Duration::from_millis(10))
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("visibility"), "{e}");
}

static SEEN_STOP: Mutex<Option<StopReason>> = Mutex::new(None);
struct SelfCancelling;
impl Job for SelfCancelling {
    const NAME: &'static str = "self_cancelling";
    const QUEUE: &'static str = "self_cancelling";
    type Args = Args;
    type Output = ();
    async fn run(&self, ctx: JobContext, _a: Args) -> Result<(), JobError> {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_claim_is_lost_is_told_and_its_ack_does_nothing() {
    let (_d, h) = honker();
    let id = h.enqueue::<SelfCancelling>(Args { n: 1 }).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(SelfCancelling)
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
    assert_eq!(*SEEN_STOP.lock().unwrap(), Some(StopReason::ClaimLost));
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
struct Solo;
impl Job for Solo {
    const NAME: &'static str = "solo";
    const QUEUE: &'static str = "solo";
    type Args = Args;
    type Output = ();
    async fn run(&self, _ctx: JobContext, _a: Args) -> Result<(), JobError> {
        let now = SOLO_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        SOLO_MAX.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2)).await;
        SOLO_RUNNING.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Busy;
impl Job for Busy {
    const NAME: &'static str = "busy";
    const QUEUE: &'static str = "busy";
    type Args = Args;
    type Output = ();
    async fn run(&self, _ctx: JobContext, _a: Args) -> Result<(), JobError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_limit_holds_while_a_busy_queue_keeps_two_cycles_in_flight() {
    let (_d, h) = honker();
    h.transaction(|tx| {
        for n in 0..300 {
            honker_actors::enqueue_tx::<Solo>(tx, Args { n })?;
        }
        for n in 0..20_000 {
            honker_actors::enqueue_tx::<Busy>(tx, Args { n })?;
        }
        Ok::<_, honker_actors::Error>(())
    })
    .await
    .unwrap();
    let pool = WorkerPool::builder(&h)
        .register(Solo)
        .register(Busy)
        .concurrency(16)
        .queue_concurrency("solo", 1)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), async || drained(&h, "solo").await
            && drained(&h, "busy").await)
        .await
    );
    pool.shutdown().await.unwrap();
    assert_eq!(
        SOLO_MAX.load(Ordering::SeqCst),
        1,
        "queue_concurrency 1 was exceeded"
    );
}
