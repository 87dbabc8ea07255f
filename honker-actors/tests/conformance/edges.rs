//! Edges every store must keep: a handler that ignores its abort, a
//! prefetched job past its expiry, a cooperative stop, a queue handle
//! confined to its queue, results that cannot come, unsafe queue names,
//! an output that cannot be saved.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::honker;
use crate::common::eventually;
use honker_actors::core::EnqueueOptions;
use honker_actors::testing::wait_until_drained;
use honker_actors::{job, Error, Job, JobContext, JobError, WorkerPool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone)]
struct Args {
    n: u32,
}

static STUBBORN_UP: AtomicBool = AtomicBool::new(false);
#[job(queue = "stubborn")]
async fn stubborn(_a: Args) -> Result<(), JobError> {
    STUBBORN_UP.store(true, Ordering::SeqCst);
    // Blocks its thread: neither the stop, nor the abort, can drop it.
    std::thread::sleep(Duration::from_secs(4));
    Ok(())
}

/// A handler that ignores even the abort (it blocks its thread) does not
/// hold its claim: after the grace and the abort grace the claim is given
/// back, attempt unburned, and its late `Ok` is not written. (The
/// shutdown returns once the blocked runtime thread is free again: here,
/// when the handler returns.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_ignores_the_abort_is_given_back_and_the_shutdown_ends() {
    let (_d, h) = honker();
    let id = stubborn::enqueue(&h, Args { n: 1 }).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(stubborn)
        .concurrency(1)
        .shutdown_timeout(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || STUBBORN_UP
            .load(Ordering::SeqCst))
        .await
    );
    let ended = tokio::time::timeout(Duration::from_secs(20), pool.shutdown()).await;
    assert!(matches!(ended, Ok(Ok(()))), "the shutdown ended: {ended:?}");
    let job = h
        .queue("stubborn")
        .get_job(id)
        .await
        .unwrap()
        .expect("still live");
    assert_eq!(
        job.state,
        honker_actors::core::JobState::Pending,
        "given back"
    );
    assert_eq!(job.attempts, 0, "its attempt unburned");
}

// ------------------------------------------------------------ 6. expiry in the prefetch buffer

static HOG_DONE: AtomicBool = AtomicBool::new(false);
static SHORT_LIVED_RAN: AtomicBool = AtomicBool::new(false);
#[job(queue = "hog")]
async fn hog(_ctx: JobContext, a: Args) -> Result<(), JobError> {
    if a.n == 1 {
        SHORT_LIVED_RAN.store(true, Ordering::SeqCst);
    } else {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        HOG_DONE.store(true, Ordering::SeqCst);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefetched_job_never_starts_after_it_expired() {
    let (_d, h) = honker();
    hog::enqueue(&h, Args { n: 0 }).await.unwrap();
    let short = EnqueueOptions::default().expires(Duration::from_secs(1));
    let id = h.queue("hog").enqueue(&Args { n: 1 }, short).await.unwrap();
    // One worker: the hog holds it while the short-lived job waits,
    // claimed, in the prefetch buffer.
    let pool = WorkerPool::builder(&h)
        .register(hog)
        .concurrency(1)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), async || HOG_DONE
            .load(Ordering::SeqCst))
        .await
    );
    let q = h.queue("hog");
    let dead = eventually(Duration::from_secs(20), async || {
        q.list_dead(10, 0).await.unwrap().iter().any(|d| d.id == id)
    })
    .await;
    pool.shutdown().await.unwrap();
    assert!(dead, "the expired job is swept to dead");
    assert!(!SHORT_LIVED_RAN.load(Ordering::SeqCst), "it never started");
    let d = q.list_dead(10, 0).await.unwrap();
    assert_eq!(d[0].last_error.as_deref(), Some("expired"));
    assert_eq!(d[0].attempts, 0, "its claim was given back unburned");
}

// ------------------------------------------------------------ 7. cooperative stop

static COOP_STARTED: AtomicBool = AtomicBool::new(false);
#[job(queue = "cooperative", max_attempts = 1)]
async fn cooperative(ctx: JobContext, _a: Args) -> Result<(), JobError> {
    COOP_STARTED.store(true, Ordering::SeqCst);
    loop {
        if ctx.is_stopping() {
            // As the docs suggest.
            return Err(JobError::retry("stopping; will resume"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooperative_stop_on_shutdown_burns_no_attempt() {
    let (_d, h) = honker();
    let id = cooperative::enqueue(&h, Args { n: 1 }).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(cooperative)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), async || COOP_STARTED
            .load(Ordering::SeqCst))
        .await
    );
    pool.shutdown().await.unwrap();
    let job = h.queue("cooperative").get_job(id).await.unwrap();
    let job = job.expect("still live, not dead, with max_attempts 1");
    assert_eq!(job.attempts, 0);
    assert_eq!(job.state, honker_actors::core::JobState::Pending);
}

// ------------------------------------------------------------ 9. queue scoping

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_handle_never_acts_on_another_queues_job() {
    let (_d, h) = honker();
    let (a, b) = (h.queue("a"), h.queue("b"));
    let id = b.enqueue(&1, EnqueueOptions::default()).await.unwrap();
    assert!(a.get_job(id).await.unwrap().is_none());
    assert!(!a.cancel(id).await.unwrap());
    assert!(b.get_job(id).await.unwrap().is_some(), "untouched");
    let job = b.claim_batch("w", 1).await.unwrap().remove(0);
    assert!(b.fail("w", job.lease(), "bad").await.unwrap());
    assert!(!a.requeue_dead(id).await.unwrap());
    assert_eq!(b.list_dead(10, 0).await.unwrap().len(), 1, "still dead");
    assert!(b.requeue_dead(id).await.unwrap());
    // The fenced operations too: a claim of queue a, through queue b.
    let job = b.claim_batch("w", 1).await.unwrap().remove(0);
    let lease = job.lease();
    assert!(a
        .heartbeat("w", lease, Duration::from_secs(999))
        .await
        .unwrap()
        .is_none());
    assert!(!a.fail("w", lease, "from a").await.unwrap());
    let retried = a.retry("w", lease, Duration::ZERO, "from a").await.unwrap();
    assert_eq!(retried, honker_actors::core::RetryOutcome::Lost);
    assert!(!a.ack("w", lease).await.unwrap());
    let row = b
        .get_job(id)
        .await
        .unwrap()
        .expect("still b's, still claimed");
    assert_eq!(row.claim_expires_at, Some(job.claim_expires_at));
    assert!(b.ack("w", lease).await.unwrap());
}

// ------------------------------------------------------------ 10. result waits

#[job(queue = "doomed")]
async fn doomed(_ctx: JobContext, a: Args) -> Result<u32, JobError> {
    match a.n {
        0 => Err(JobError::fail("no such customer")),
        n => Ok(n),
    }
}
#[job(queue = "silent")]
async fn silent(_ctx: JobContext, _a: Args) -> Result<(), JobError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_result_of_a_job_that_cannot_have_one_answers_at_once() {
    let (_d, h) = honker();
    let dead = doomed::enqueue(&h, Args { n: 0 }).await.unwrap().id();
    let ok = doomed::enqueue(&h, Args { n: 7 }).await.unwrap().id();
    let silent_id = silent::enqueue(&h, Args { n: 0 }).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(doomed)
        .register(silent)
        .start()
        .await
        .unwrap();
    assert_eq!(
        h.result::<u32>(ok, Duration::from_secs(30)).await.unwrap(),
        7
    );
    // Both within the one 30 s limit.
    let deadline = Instant::now() + Duration::from_secs(30);
    for queue in ["doomed", "silent"] {
        let left = deadline.saturating_duration_since(Instant::now());
        wait_until_drained(&h, queue, left).await.unwrap();
    }
    pool.shutdown().await.unwrap();
    let t = Instant::now();
    let r = h.result::<u32>(dead, Duration::from_secs(30)).await;
    assert!(
        matches!(&r, Err(Error::JobDead { job_id, last_error: Some(e) }) if *job_id == dead && e == "no such customer"),
        "{r:?}"
    );
    let r = h.result::<()>(silent_id, Duration::from_secs(30)).await;
    assert!(matches!(r, Err(Error::NoResult { .. })), "{r:?}");
    let r = h.result::<u32>(999_999, Duration::from_secs(30)).await;
    assert!(matches!(r, Err(Error::NoResult { .. })), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(10), "answered at once");
}

// ------------------------------------------------------------ 16. queue names

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_names_that_are_not_safe_labels_are_refused() {
    let (_d, h) = honker();
    for bad in ["a\\b", "", "with space", "é", &"x".repeat(129)] {
        let r = h.queue(bad).enqueue(&1, EnqueueOptions::default()).await;
        assert!(
            matches!(&r, Err(Error::InvalidQueueName { .. })),
            "{bad:?}: {r:?}"
        );
    }
    // Hand-written: `#[job]` refuses this queue name at compile time, and
    // the test is about the pool refusing it at run time.
    struct BadQueue;
    impl Job for BadQueue {
        const NAME: &'static str = "bad_queue";
        const QUEUE: &'static str = "bad\\queue";
        type Args = Args;
        type Output = ();
        async fn run(&self, _ctx: JobContext, _a: Args) -> Result<(), JobError> {
            Ok(())
        }
    }
    let e = WorkerPool::builder(&h)
        .register(BadQueue)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    h.queue("emails.v2:eu/high-priority_1")
        .enqueue(&1, EnqueueOptions::default())
        .await
        .unwrap();
}

// ------------------------------------------------------------ outputs that cannot be kept

#[job(queue = "unkeepable")]
async fn unkeepable(
    _ctx: JobContext,
    _a: Args,
) -> Result<std::collections::HashMap<(u8, u8), u8>, JobError> {
    // A map with tuple keys has no JSON form.
    Ok([((1, 2), 3)].into_iter().collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_that_cannot_be_saved_is_a_failure_not_a_silent_success() {
    let (_d, h) = honker();
    let id = unkeepable::enqueue(&h, Args { n: 1 }).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(unkeepable)
        .start()
        .await
        .unwrap();
    let r = h
        .result::<serde_json::Value>(id, Duration::from_secs(30))
        .await;
    pool.shutdown().await.unwrap();
    match r {
        Err(Error::JobDead {
            last_error: Some(e),
            ..
        }) => {
            assert!(e.contains("does not serialize"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}
