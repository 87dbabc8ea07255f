//! Pools over time: heartbeats past the visibility timeout, graceful
//! shutdown under load, several pools on one file, dropping a pool, and
//! every kind of wake-up (pools and the claim stream).

use super::honker;
use crate::common::{eventually, RunCounts};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use honker_actors::core::EnqueueOptions;
use honker_actors::core::{JobRow, JobState, LiveState};
use honker_actors::testing::wait_until_drained;
use honker_actors::{job, Honker, Job, JobContext, JobError, WorkerPool};

static LONG_RUNS: AtomicUsize = AtomicUsize::new(0);
#[job(queue = "long")]
async fn long(_ctx: JobContext, _a: u32) -> Result<(), JobError> {
    LONG_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_3x_the_visibility_timeout_is_not_reclaimed_while_its_pool_lives() {
    let (_d, h) = honker();
    long::enqueue(&h, 1).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(long)
        .visibility_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || LONG_RUNS
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    // A second pool keeps trying to claim the same queue the whole time.
    let rival = WorkerPool::builder(&h)
        .register(long)
        .visibility_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    wait_until_drained(&h, "long", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        LONG_RUNS.load(Ordering::SeqCst),
        1,
        "never reclaimed while heartbeats ran"
    );
    assert_eq!(h.queue("long").stats().await.unwrap().dead, 0);
    rival.shutdown().await.unwrap();
    pool.shutdown().await.unwrap();
}

static FLOW_DONE: RunCounts = RunCounts::new();
#[job(queue = "flow")]
async fn flow(_ctx: JobContext, n: u32) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_micros(200)).await;
    FLOW_DONE.record(n);
    Ok(())
}

fn flow_done() -> usize {
    FLOW_DONE.distinct()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_in_the_middle_of_10k_jobs_loses_none_and_burns_no_attempt() {
    let (_d, h) = honker();
    let total = 10_000u32;
    let mut batch = honker_actors::Batch::new();
    for n in 0..total {
        batch.push(flow::builder(n)).unwrap();
    }
    h.enqueue_batch(batch).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(flow)
        .concurrency(16)
        .start()
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(60), async || flow_done() >= 2000).await);
    pool.shutdown().await.unwrap();
    let done_at_shutdown = flow_done();
    assert!(done_at_shutdown < total as usize, "shut down mid-way");

    // Nothing left in flight, nothing burned: every unfinished job is pending
    // with the attempts it had before.
    let left = live_jobs(&h, "flow").await;
    let processing = left
        .iter()
        .filter(|j| j.state == JobState::Processing)
        .count();
    let burned = left.iter().filter(|j| j.attempts > 0).count();
    assert_eq!((processing, burned), (0, 0));
    assert_eq!(left.len() + done_at_shutdown, total as usize, "no job lost");

    // A new pool finishes the rest; every job ran exactly once.
    let pool = WorkerPool::builder(&h)
        .register(flow)
        .concurrency(16)
        .start()
        .await
        .unwrap();
    wait_until_drained(&h, "flow", Duration::from_secs(120))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    let done = FLOW_DONE.all();
    assert_eq!(done.len(), total as usize);
    assert!(done.values().all(|&runs| runs == 1), "a job ran twice");
    assert_eq!(h.queue("flow").stats().await.unwrap().dead, 0);
}

static GRACE_STARTED: AtomicUsize = AtomicUsize::new(0);
static GRACE_FINISHED: AtomicUsize = AtomicUsize::new(0);
static GRACE_SAW_STOP: AtomicBool = AtomicBool::new(false);
#[job(queue = "graceful")]
async fn graceful(ctx: JobContext, millis: u64) -> Result<(), JobError> {
    GRACE_STARTED.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(millis)).await;
    if ctx.is_stopping() {
        GRACE_SAW_STOP.store(true, Ordering::SeqCst);
    }
    GRACE_FINISHED.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_short_jobs_finish_and_puts_long_ones_back() {
    let (_d, h) = honker();
    let q = h.queue("graceful");
    let short_id = graceful::enqueue(&h, 300).await.unwrap().id();
    let long_id = graceful::enqueue(&h, 60_000).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(graceful)
        .shutdown_timeout(Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    // Both running: started by their handlers (a row claimed is not yet
    // a run: a claim whose answer the pool has not taken when the
    // shutdown begins goes straight back).
    assert!(
        eventually(Duration::from_secs(10), async || {
            GRACE_STARTED.load(Ordering::SeqCst) == 2 && q.stats().await.unwrap().processing == 2
        })
        .await
    );
    pool.shutdown().await.unwrap();
    assert!(
        q.get_job(short_id).await.unwrap().is_none(),
        "the short job finished and was acked"
    );
    assert!(
        GRACE_SAW_STOP.load(Ordering::SeqCst),
        "running jobs are told the pool is stopping"
    );
    assert_eq!(
        GRACE_FINISHED.load(Ordering::SeqCst),
        1,
        "the long job was stopped"
    );
    let back = q.get_job(long_id).await.unwrap().unwrap();
    assert_eq!(back.state, JobState::Pending);
    assert_eq!(back.attempts, 0, "putting it back burns no attempt");
}

static TWO_POOLS: RunCounts = RunCounts::new();
#[job(queue = "counted")]
async fn counted(_ctx: JobContext, n: u32) -> Result<(), JobError> {
    TWO_POOLS.record(n);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_in_one_process_run_each_job_exactly_once() {
    let (_d, h) = honker();
    // The second pool has its own Honker (own writer connection), like a
    // second service instance would.
    let h2 = _d.another();
    let a = WorkerPool::builder(&h)
        .register(counted)
        .concurrency(8)
        .start()
        .await
        .unwrap();
    let b = WorkerPool::builder(&h2)
        .register(counted)
        .concurrency(8)
        .start()
        .await
        .unwrap();
    assert_ne!(a.worker_id(), b.worker_id());
    for n in 0..2000u32 {
        let target = if n % 2 == 0 { &h } else { &h2 };
        counted::enqueue(target, n).await.unwrap();
    }
    wait_until_drained(&h, "counted", Duration::from_secs(60))
        .await
        .unwrap();
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let done = TWO_POOLS.all();
    assert_eq!(done.len(), 2000);
    assert!(done.values().all(|&r| r == 1));
}

static STUCK_RUNS: AtomicUsize = AtomicUsize::new(0);
#[job(queue = "stuck", max_attempts = 5)]
async fn stuck(ctx: JobContext, _a: u32) -> Result<(), JobError> {
    if STUCK_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        // The first run never finishes: its pool is dropped under it.
        std::future::pending::<()>().await;
    }
    assert_eq!(ctx.attempt(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_pool_without_shutdown_loses_nothing() {
    let (_d, h) = honker();
    let id = stuck::enqueue(&h, 1).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(stuck)
        .visibility_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || STUCK_RUNS
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    drop(pool);
    // The claim lapses (no more heartbeats) and a new pool runs the job again.
    let pool = WorkerPool::builder(&h)
        .register(stuck)
        .visibility_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    wait_until_drained(&h, "stuck", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    assert_eq!(STUCK_RUNS.load(Ordering::SeqCst), 2);
    assert!(h.queue("stuck").get_job(id).await.unwrap().is_none());
}

static WOKEN: AtomicUsize = AtomicUsize::new(0);
#[job(queue = "wakes")]
async fn wakes(_ctx: JobContext, _a: u32) -> Result<(), JobError> {
    WOKEN.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pool_wakes_for_enqueues_foreign_commits_and_due_times() {
    let (_d, h) = honker();
    let pool = WorkerPool::builder(&h)
        .register(wakes)
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // 1. An enqueue through this Honker.
    wakes::enqueue(&h, 1).await.unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || WOKEN
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    // 2. A commit by a handle the pool knows nothing about.
    let foreign = _d.another();
    foreign
        .queue("wakes")
        .enqueue(&2u32, EnqueueOptions::default())
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || WOKEN
            .load(Ordering::SeqCst)
            == 2)
        .await
    );
    // 3. A job that falls due later, enqueued by that foreign connection.
    foreign
        .queue("wakes")
        .enqueue(
            &3u32,
            EnqueueOptions::default().delay(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(WOKEN.load(Ordering::SeqCst), 2, "not before it is due");
    assert!(
        eventually(Duration::from_secs(10), async || WOKEN
            .load(Ordering::SeqCst)
            == 3)
        .await
    );
    pool.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_stream_wakes_on_enqueue_and_on_a_due_run_at() {
    let (_d, h) = honker();
    let q = h.queue("stream");
    let mut jobs = q.claim("stream-worker");
    let producer = {
        let q = q.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            q.enqueue(&"now", EnqueueOptions::default()).await.unwrap();
            q.enqueue(
                &"later",
                EnqueueOptions::default().delay(Duration::from_secs(1)),
            )
            .await
            .unwrap();
        })
    };
    let first = tokio::time::timeout(Duration::from_secs(10), jobs.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.payload::<String>().unwrap(), "now");
    assert!(first.ack().await.unwrap());
    producer.await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), jobs.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.payload::<String>().unwrap(), "later");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(second.run_at <= now, "yielded only once due");
    assert_eq!(
        second.retry(Duration::ZERO, "again").await.unwrap(),
        honker_actors::core::RetryOutcome::Retried
    );
    let third = tokio::time::timeout(Duration::from_secs(10), jobs.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((third.id, third.attempts), (second.id, 2));
    assert!(third.fail("giving up").await.unwrap());
    assert_eq!(
        q.list_dead(10, 0).await.unwrap()[0].last_error.as_deref(),
        Some("giving up")
    );
}

// A gate the `gated` jobs wait at, one pass per job (job 0 passes free).
static GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);
static STARTS: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());
#[job(queue = "gated")]
async fn gated(_ctx: JobContext, n: u32) -> Result<(), JobError> {
    STARTS.lock().unwrap().push(n);
    if n > 0 {
        GATE.acquire().await.unwrap().forget();
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_of_higher_priority_claimed_behind_a_prefetched_buffer_starts_next() {
    let (_d, h) = honker();
    for n in 0..=12 {
        gated::enqueue(&h, n).await.unwrap();
    }
    let pool = WorkerPool::builder(&h)
        .register(gated)
        .concurrency(4)
        .start()
        .await
        .unwrap();
    // Job 0 is fast, so the buffer grows and takes every other job: four
    // run (held at the gate), the rest wait in the buffer.
    let buffered = eventually(Duration::from_secs(10), async || {
        let s = pool.status().await.unwrap();
        s.in_flight == 4 && s.prefetched == 8
    });
    assert!(buffered.await, "{:?}", pool.status().await.unwrap());
    let high = gated::builder(100)
        .priority(9)
        .enqueue(&h)
        .await
        .unwrap()
        .id();
    // Claimed, and in the pool's hands (a store may show the claim a
    // moment before the pool has taken its answer).
    let claimed = eventually(Duration::from_secs(10), async || {
        h.queue("gated")
            .get_job(high)
            .await
            .unwrap()
            .is_some_and(|j| j.state == honker_actors::core::JobState::Processing)
            && pool.status().await.unwrap().prefetched == 9
    });
    assert!(claimed.await, "{:?}", pool.status().await.unwrap());
    // The first worker to be free starts it, ahead of the buffer.
    GATE.add_permits(1);
    let started = eventually(Duration::from_secs(10), async || {
        STARTS.lock().unwrap().contains(&100)
    });
    assert!(started.await, "{:?}", STARTS.lock().unwrap());
    GATE.add_permits(100);
    wait_until_drained(&h, "gated", Duration::from_secs(10))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    let starts = STARTS.lock().unwrap().clone();
    let mut first: Vec<u32> = starts[..5].to_vec();
    first.sort_unstable();
    assert_eq!(first, [0, 1, 2, 3, 4], "{starts:?}");
    assert_eq!(
        starts[5], 100,
        "ahead of 5..=12, buffered before it: {starts:?}"
    );
}

// ------------------------------------------------------------ batches

/// Run `n` jobs of `J` with `args` through the pool already started on
/// `h`, so that it measures the job (fast, for a no-op argument).
async fn measure<J: Job>(h: &Honker, args: J::Args, n: usize)
where
    J::Args: Clone,
{
    for _ in 0..n {
        h.enqueue::<J>(args.clone()).await.unwrap();
    }
    wait_until_drained(h, J::QUEUE, Duration::from_secs(10))
        .await
        .unwrap();
}

static MIXED_DONE: AtomicUsize = AtomicUsize::new(0);
static SLOW_STARTED: AtomicBool = AtomicBool::new(false);
/// Fast, except the argument 1, which takes 3 s.
#[job(queue = "mixed")]
async fn mixed(_ctx: JobContext, slow: u32) -> Result<(), JobError> {
    if slow == 1 {
        SLOW_STARTED.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    MIXED_DONE.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_batched_behind_a_slow_one_are_handed_back_and_run_by_another_worker() {
    let (_d, h) = honker();
    let pool = WorkerPool::builder(&h)
        .register(mixed)
        .concurrency(2)
        .start()
        .await
        .unwrap();
    measure::<mixed>(&h, 0, 20).await;
    // One commit: the pool claims them together, and hands them out in
    // two batches, the slow job first in one of them.
    let mut batch = honker_actors::Batch::new();
    batch.push(mixed::builder(1)).unwrap();
    for _ in 0..20 {
        batch.push(mixed::builder(0)).unwrap();
    }
    h.enqueue_batch(batch).await.unwrap();
    let fast_done = eventually(Duration::from_secs(2), async || {
        MIXED_DONE.load(Ordering::SeqCst) >= 40
    });
    assert!(
        fast_done.await,
        "the 20 fast jobs finished while the slow one runs: {} done",
        MIXED_DONE.load(Ordering::SeqCst)
    );
    assert!(SLOW_STARTED.load(Ordering::SeqCst));
    wait_until_drained(&h, "mixed", Duration::from_secs(10))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    assert_eq!(MIXED_DONE.load(Ordering::SeqCst), 41);
}

static BATCH_RUNS: RunCounts = RunCounts::new();
/// Fast; the argument 0 panics on its first attempt.
#[job(queue = "batch_panics", backoff = "0s")]
async fn batch_panics(ctx: JobContext, n: u32) -> Result<(), JobError> {
    BATCH_RUNS.record(n);
    if n == 0 && ctx.attempt() == 1 {
        panic!("first attempt of 0");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_batch_loses_no_outcome_and_hands_the_rest_back() {
    let (_d, h) = honker();
    let pool = WorkerPool::builder(&h)
        .register(batch_panics)
        .concurrency(1)
        .start()
        .await
        .unwrap();
    for n in 100..120 {
        batch_panics::enqueue(&h, n).await.unwrap();
    }
    wait_until_drained(&h, "batch_panics", Duration::from_secs(10))
        .await
        .unwrap();
    // One worker, one commit: 0 first in a batch, 1..=10 behind it.
    let mut batch = honker_actors::Batch::new();
    for n in 0..=10 {
        batch.push(batch_panics::builder(n)).unwrap();
    }
    h.enqueue_batch(batch).await.unwrap();
    wait_until_drained(&h, "batch_panics", Duration::from_secs(10))
        .await
        .unwrap();
    let status = pool.status().await.unwrap();
    pool.shutdown().await.unwrap();
    let runs = BATCH_RUNS.all();
    assert_eq!(runs.get(&0), Some(&2), "retried once after its panic");
    for n in (1..=10).chain(100..120) {
        assert_eq!(runs.get(&n), Some(&1), "job {n} ran exactly once");
    }
    let stats = h.queue("batch_panics").stats().await.unwrap();
    assert_eq!((stats.dead, stats.processing), (0, 0));
    assert_eq!(status.restarts, 1, "the worker was replaced");
    assert_eq!(status.stale_finishes, 0);
}

// What an outside review broke in the first cut of batches: jobs handed
// back during a shutdown or a pause, handlers that never yield, a panic
// while a handler is dropped, and a prefetch sized by another queue's jobs.

fn spin(ms: u64) {
    let until = std::time::Instant::now() + Duration::from_millis(ms);
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
}

static EDGE_STARTS: std::sync::Mutex<Vec<(u64, std::time::Instant)>> =
    std::sync::Mutex::new(Vec::new());
/// Fast for 0; for n > 0 spins n ms, then awaits n ms, then panics when
/// n is odd.
#[job(queue = "batch_edges")]
async fn batch_edges(_ctx: JobContext, n: u64) -> Result<(), JobError> {
    EDGE_STARTS
        .lock()
        .unwrap()
        .push((n, std::time::Instant::now()));
    if n > 0 {
        spin(n);
        tokio::time::sleep(Duration::from_millis(n)).await;
        assert!(n.is_multiple_of(2), "odd ones panic");
    }
    Ok(())
}

/// A pool of `concurrency` whose `batch_edges` job is measured fast.
async fn warm_edges(h: &Honker, concurrency: usize) -> WorkerPool {
    let pool = WorkerPool::builder(h)
        .register(batch_edges)
        .concurrency(concurrency)
        .start()
        .await
        .unwrap();
    measure::<batch_edges>(h, 0, 40).await;
    pool
}

/// One commit: a slow job first, then `fast` fast ones.
async fn slow_then_fast(h: &Honker, slow: u64, fast: usize) {
    let mut batch = honker_actors::Batch::new();
    batch.push(batch_edges::builder(slow)).unwrap();
    for _ in 0..fast {
        batch.push(batch_edges::builder(0)).unwrap();
    }
    h.enqueue_batch(batch).await.unwrap();
    let started = eventually(Duration::from_secs(10), async || {
        EDGE_STARTS.lock().unwrap().iter().any(|(n, _)| *n == slow)
    });
    assert!(started.await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_edges_under_shutdown_pause_and_cpu_bound_handlers() {
    // Shutdown while a batch's slow job (which then panics) holds the rest:
    // none of them starts, each is given back, attempt unburned.
    let (_d, h) = honker();
    let pool = warm_edges(&h, 1).await;
    slow_then_fast(&h, 201, 10).await;
    let stopping = std::time::Instant::now();
    pool.shutdown().await.unwrap();
    let late = EDGE_STARTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| *t > stopping)
        .count();
    assert_eq!(late, 0, "nothing starts once the shutdown began");
    let q = h.queue("batch_edges");
    let s = q.stats().await.unwrap();
    assert_eq!((s.processing, s.pending_due), (0, 11), "{s:?}");
    let burned = live_jobs(&h, "batch_edges")
        .await
        .iter()
        .filter(|j| j.attempts > 0 && !j.payload.contains("201"))
        .count();
    assert_eq!(burned, 0, "the jobs never started burned no attempt");

    // A pause while the slow job runs: the jobs behind it, handed back,
    // do not start.
    let (_d, h) = honker();
    EDGE_STARTS.lock().unwrap().clear();
    let pool = warm_edges(&h, 2).await;
    slow_then_fast(&h, 300, 20).await;
    let q = h.queue("batch_edges");
    q.pause().await.unwrap();
    let paused_at = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let late: Vec<u64> = EDGE_STARTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| *t > paused_at + Duration::from_millis(50))
        .map(|(n, _)| *n)
        .collect();
    assert!(late.is_empty(), "started after the pause: {late:?}");
    q.resume().await.unwrap();
    wait_until_drained(&h, "batch_edges", Duration::from_secs(10))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();

    // Handlers that never yield: a job of higher priority waits for at
    // most the one running, not the whole batch behind it.
    let (_d, h) = honker();
    let pool = WorkerPool::builder(&h)
        .register(spinner)
        .concurrency(1)
        .start()
        .await
        .unwrap();
    measure::<spinner>(&h, 0, 40).await;
    SPINS.lock().unwrap().clear();
    let mut batch = honker_actors::Batch::new();
    for _ in 0..16 {
        batch.push(spinner::builder(30)).unwrap();
    }
    h.enqueue_batch(batch).await.unwrap();
    let started = eventually(Duration::from_secs(10), async || {
        !SPINS.lock().unwrap().is_empty()
    });
    assert!(started.await);
    spinner::builder(2).priority(9).enqueue(&h).await.unwrap();
    wait_until_drained(&h, "spinners", Duration::from_secs(20))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    let order = SPINS.lock().unwrap().clone();
    let at = order.iter().position(|n| *n == 2).unwrap();
    assert!(at <= 2, "the high-priority job started {at}th: {order:?}");
}

static SPINS: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());
/// Spins `ms` and never yields.
#[job(queue = "spinners")]
async fn spinner(_ctx: JobContext, ms: u64) -> Result<(), JobError> {
    if ms > 0 {
        SPINS.lock().unwrap().push(ms);
        spin(ms);
    }
    Ok(())
}

static DROP_RUNS: RunCounts = RunCounts::new();
struct PanicOnDrop(bool);
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if self.0 && !std::thread::panicking() {
            panic!("guard dropped mid-run");
        }
    }
}
#[job(queue = "drop_panics")]
async fn drop_fast(_ctx: JobContext, n: u32) -> Result<(), JobError> {
    DROP_RUNS.record(n);
    Ok(())
}
#[job(queue = "drop_panics", backoff = "0s", timeout = "20ms")]
async fn drop_slow(ctx: JobContext, n: u32) -> Result<(), JobError> {
    DROP_RUNS.record(n);
    // Job 1's first attempt overruns its timeout, and its future panics
    // as it is dropped.
    let first = n == 1 && ctx.attempt() == 1;
    let guard = PanicOnDrop(first);
    if first {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    std::mem::forget(guard);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_a_timed_out_handler_is_dropped_is_that_jobs_alone() {
    let (_d, h) = honker();
    let pool = WorkerPool::builder(&h)
        .register(drop_fast)
        .register(drop_slow)
        .concurrency(1)
        .start()
        .await
        .unwrap();
    // Both jobs measured fast (drop_slow with n = 0 does not sleep).
    for _ in 0..40 {
        drop_fast::enqueue(&h, 0).await.unwrap();
        drop_slow::enqueue(&h, 0).await.unwrap();
    }
    wait_until_drained(&h, "drop_panics", Duration::from_secs(10))
        .await
        .unwrap();
    let warm = DROP_RUNS.all().get(&0).copied().unwrap_or(0);
    let mut batch = honker_actors::Batch::new();
    for n in 10..15 {
        batch.push(drop_fast::builder(n)).unwrap();
    }
    batch.push(drop_slow::builder(1)).unwrap();
    h.enqueue_batch(batch).await.unwrap();
    wait_until_drained(&h, "drop_panics", Duration::from_secs(20))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    let runs = DROP_RUNS.all();
    for n in 10..15 {
        assert_eq!(runs.get(&n), Some(&1), "job {n} ran once: {runs:?}");
    }
    assert_eq!(runs.get(&1), Some(&2), "timed out, panicked, retried once");
    assert!(warm >= 40);
}

#[job(queue = "slowq")]
async fn slowq(_ctx: JobContext, _n: u32) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_queue_is_not_prefetched_by_what_a_fast_queue_measured() {
    let (_d, h) = honker();
    let pool = WorkerPool::builder(&h)
        .register(batch_edges)
        .register(slowq)
        .concurrency(2)
        .start()
        .await
        .unwrap();
    measure::<batch_edges>(&h, 0, 200).await;
    let mut batch = honker_actors::Batch::new();
    for n in 0..40 {
        batch.push(slowq::builder(n)).unwrap();
    }
    h.enqueue_batch(batch).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = pool.status().await.unwrap();
    // Unmeasured: the concurrency ahead at most, not the fast queue's 16x.
    assert_eq!(s.in_flight, 2, "{s:?}");
    assert!(s.prefetched <= 2, "{s:?}");
    pool.shutdown().await.unwrap();
}

// A second review: a batch whose first job never yields reported twice
// (its early hand-back, then the end), and the worker was made free twice.

static DQ_RUNS: RunCounts = RunCounts::new();
static DQ_SPINNING: AtomicBool = AtomicBool::new(false);
/// 0: no-op. 1: spins 400 ms, never yields. 2: panics. 3: awaits 400 ms.
#[job(queue = "dq")]
async fn dj(_ctx: JobContext, n: u32) -> Result<(), JobError> {
    DQ_RUNS.record(n);
    match n {
        1 => {
            DQ_SPINNING.store(true, Ordering::SeqCst);
            spin(400)
        }
        2 => panic!("boom"),
        3 => tokio::time::sleep(Duration::from_millis(400)).await,
        _ => {}
    }
    Ok(())
}

/// A pool of one worker that has just handed back a batch whose jobs were
/// all cancelled meanwhile (the buffer is empty after the hand-back).
async fn after_an_early_hand_back(h: &Honker) -> WorkerPool {
    let pool = WorkerPool::builder(h)
        .register(dj)
        .concurrency(1)
        .start()
        .await
        .unwrap();
    measure::<dj>(h, 0, 40).await;
    DQ_SPINNING.store(false, Ordering::SeqCst);
    let mut batch = honker_actors::Batch::new();
    batch.push(dj::builder(1)).unwrap();
    for _ in 0..10 {
        batch.push(dj::builder(0)).unwrap();
    }
    let ids: Vec<i64> = h.enqueue_batch(batch).await.unwrap()[1..]
        .iter()
        .map(|d| d.id)
        .collect();
    let spinning = eventually(Duration::from_secs(5), async || {
        DQ_SPINNING.load(Ordering::SeqCst)
    });
    assert!(spinning.await);
    let q = h.queue("dq");
    for id in ids {
        q.cancel(id).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    pool
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_early_hand_back_the_worker_is_free_once() {
    // (One test: the two cases share the job's statics.)
    // A job behind a panicking one still runs, and nothing stays claimed.
    let (_d, h) = honker();
    let pool = after_an_early_hand_back(&h).await;
    let mut batch = honker_actors::Batch::new();
    batch.push(dj::builder(2)).unwrap();
    batch.push(dj::builder(100)).unwrap();
    h.enqueue_batch(batch).await.unwrap();
    let ran = eventually(Duration::from_secs(8), async || {
        DQ_RUNS.all().contains_key(&100)
    });
    assert!(ran.await, "{:?}", pool.status().await.unwrap());
    let stopping = std::time::Instant::now();
    pool.shutdown().await.unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "nothing left running"
    );
    let s = h.queue("dq").stats().await.unwrap();
    assert_eq!(s.processing, 0, "{s:?}");

    // A job cancelled before it starts never starts.
    let (_d, h) = honker();
    let pool = after_an_early_hand_back(&h).await;
    let mut batch = honker_actors::Batch::new();
    batch.push(dj::builder(3)).unwrap();
    batch.push(dj::builder(101)).unwrap();
    let cancelled = h.enqueue_batch(batch).await.unwrap()[1].id;
    let started = eventually(Duration::from_secs(5), async || {
        DQ_RUNS.all().contains_key(&3)
    });
    assert!(started.await);
    assert!(h.queue("dq").cancel(cancelled).await.unwrap());
    tokio::time::sleep(Duration::from_millis(800)).await;
    pool.shutdown().await.unwrap();
    let runs = DQ_RUNS.all();
    assert_eq!(runs.get(&101), None, "the cancelled job started: {runs:?}");
}

/// Every live job of `queue`, whatever its state.
async fn live_jobs(h: &Honker, queue: &str) -> Vec<JobRow> {
    let mut all = Vec::new();
    for state in [LiveState::Pending, LiveState::Scheduled, LiveState::Running] {
        all.extend(
            h.store()
                .list_jobs(queue, state, usize::MAX, 0)
                .await
                .unwrap(),
        );
    }
    all
}
