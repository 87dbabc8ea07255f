//! The promises at the edges: lapsed claims, rolled-back groups, poison
//! rows, panics, extreme inputs, expiry, cooperative stops, queue scoping,
//! result waits, dropped claims and shutdowns that cannot write. Each test
//! here failed before its fix.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, honker, unix_ms};
use honker_actors::core::rusqlite;
use honker_actors::core::EnqueueOptions;
use honker_actors::testing::wait_until_drained;
use honker_actors::{job, Error, JobContext, JobError, WorkerPool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone)]
struct Args {
    n: u32,
}

fn foreign(h: &honker_actors::Honker) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(h.path().unwrap()).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

// ------------------------------------------------------------ 1. stale run

static LAPSE_RUNS: AtomicUsize = AtomicUsize::new(0);
static SECOND_STARTED: AtomicBool = AtomicBool::new(false);
static FIRST_RETURNED: AtomicBool = AtomicBool::new(false);
#[job(queue = "lapses")]
async fn lapses(ctx: JobContext, a: Args) -> Result<(), JobError> {
    LAPSE_RUNS.fetch_add(1, Ordering::SeqCst);
    if a.n == 0 {
        return Ok(()); // the follow-up job
    }
    if ctx.attempt() == 1 {
        // The claim lapses under the running handler (a paused
        // process, a clock jump, a stalled writer).
        let c = rusqlite::Connection::open(ctx.honker().path().unwrap()).unwrap();
        c.execute(
            "UPDATE _honker_live SET claim_expires_at = unixepoch() - 1 WHERE id = ?1",
            [ctx.id()],
        )
        .unwrap();
        let started = eventually(Duration::from_secs(20), async || {
            SECOND_STARTED.load(Ordering::SeqCst)
        })
        .await;
        assert!(started, "the pool re-claims the lapsed job");
        FIRST_RETURNED.store(true, Ordering::SeqCst);
        return Ok(());
    }
    SECOND_STARTED.store(true, Ordering::SeqCst);
    // Attempt 2 runs on past attempt 1's return.
    eventually(Duration::from_secs(20), async || {
        FIRST_RETURNED.load(Ordering::SeqCst)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let row = ctx
        .honker()
        .queue("lapses")
        .get_job(ctx.id())
        .await
        .unwrap();
    let row = row.expect("attempt 1's Ok did not ack the row attempt 2 holds");
    assert_eq!(row.attempts, 2);
    Err(JobError::retry(
        "attempt 2 fails; its own outcome must be recorded",
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_run_never_completes_the_reclaimed_attempt() {
    let (_d, h) = honker();
    let id = lapses::enqueue(&h, Args { n: 1 }).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(lapses)
        .concurrency(4)
        .queue_concurrency("lapses", 2)
        .start()
        .await
        .unwrap();
    let q = h.queue("lapses");
    // Attempt 2's retry is recorded: the row is pending again with 2 attempts.
    let retried = eventually(Duration::from_secs(30), async || {
        q.get_job(id)
            .await
            .unwrap()
            .is_some_and(|j| j.attempts == 2 && j.state == honker_actors::core::JobState::Pending)
    })
    .await;
    assert!(retried, "attempt 2's own outcome was recorded");
    // No slot leaked: with a limit of 2 the queue still runs new jobs.
    q.cancel(id).await.unwrap();
    for _ in 0..3 {
        lapses::enqueue(&h, Args { n: 0 }).await.unwrap();
    }
    wait_until_drained(&h, "lapses", Duration::from_secs(30))
        .await
        .unwrap();
    let status = pool.status().await.unwrap();
    assert_eq!((status.in_flight, status.prefetched), (0, 0));
    pool.shutdown().await.unwrap();
    assert_eq!(LAPSE_RUNS.load(Ordering::SeqCst), 5);
}

static REQUEUED_SECOND: AtomicBool = AtomicBool::new(false);
static REQUEUED_FIRST_DONE: AtomicBool = AtomicBool::new(false);
static REQUEUED_TOLD: std::sync::Mutex<Option<Option<honker_actors::StopReason>>> =
    std::sync::Mutex::new(None);
#[job(queue = "requeued")]
async fn requeued(ctx: JobContext, _a: Args) -> Result<(), JobError> {
    if !REQUEUED_SECOND.swap(true, Ordering::SeqCst) {
        // An operator cancels the running job and requeues it: fresh
        // attempts, so the new claim has the same id and attempt.
        let q = ctx.honker().queue("requeued");
        assert!(q.cancel(ctx.id()).await.unwrap());
        assert!(q.requeue_dead(ctx.id()).await.unwrap());
        let told = tokio::time::timeout(Duration::from_secs(20), ctx.stopping()).await;
        // Cancelled when the pool saw the cancel before the new claim,
        // ClaimLost when the new claim superseded it first: either way,
        // told. (Asserted by the test, not here: a panic here would only
        // fail this run.)
        *REQUEUED_TOLD.lock().unwrap() = Some(told.ok());
        REQUEUED_FIRST_DONE.store(true, Ordering::SeqCst);
        return Ok(());
    }
    eventually(Duration::from_secs(20), async || {
        REQUEUED_FIRST_DONE.load(Ordering::SeqCst)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    Err(JobError::fail("the second run's own outcome"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeued_job_claimed_again_is_never_completed_by_its_earlier_run() {
    let (_d, h) = honker();
    let id = requeued::enqueue(&h, Args { n: 1 }).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(requeued)
        .concurrency(2)
        .start()
        .await
        .unwrap();
    let q = h.queue("requeued");
    let dead = dies_with(&q, id, "the second run's own outcome").await;
    pool.shutdown().await.unwrap();
    assert!(
        dead,
        "{:?} / {:?}",
        q.get_job(id).await.unwrap(),
        q.list_dead(10, 0).await.unwrap()
    );
    let told = *REQUEUED_TOLD.lock().unwrap();
    assert!(
        matches!(
            told,
            Some(Some(
                honker_actors::StopReason::ClaimLost | honker_actors::StopReason::Cancelled
            ))
        ),
        "the earlier run is told it must stop: {told:?}"
    );
}

static STALE_ACK_RUNS: AtomicUsize = AtomicUsize::new(0);
static STALE_ACK_FINISH: AtomicBool = AtomicBool::new(false);
#[job(queue = "stale_ack")]
async fn stale_ack(_a: Args) -> Result<(), JobError> {
    if STALE_ACK_RUNS.fetch_add(1, Ordering::SeqCst) == 0 {
        // The first run ends when the test says, while another
        // connection holds the write lock.
        eventually(Duration::from_secs(20), async || {
            STALE_ACK_FINISH.load(Ordering::SeqCst)
        })
        .await;
        return Ok(());
    }
    Err(JobError::fail("the second run's own outcome"))
}

#[job(queue = "stale_ack_timer")]
async fn stale_ack_timer(_a: Args) -> Result<(), JobError> {
    Ok(())
}

/// The outside review's case: a run's ack waits behind another
/// connection's write lock, in a cycle queued behind one that claims;
/// that connection cancels the job and requeues it (fresh attempts);
/// the claiming cycle takes it again with the same id and attempt
/// number. The waiting ack must not complete the new claim: the new
/// run's own failure is what the file keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_ack_of_an_earlier_claim_never_completes_the_job_claimed_again() {
    let (_d, h) = honker();
    let id = stale_ack::enqueue(&h, Args { n: 1 }).await.unwrap().id();
    // A delayed job whose due time makes the pool start a claiming cycle
    // while the lock is held.
    let timer = stale_ack_timer::builder(Args { n: 2 })
        .delay(Duration::from_secs(2))
        .enqueue(&h)
        .await
        .unwrap()
        .id();
    let due = h
        .queue("stale_ack_timer")
        .get_job(timer)
        .await
        .unwrap()
        .unwrap()
        .run_at;
    let pool = WorkerPool::builder(&h)
        .register(stale_ack)
        .register(stale_ack_timer)
        .concurrency(2)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), async || STALE_ACK_RUNS
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    let c = foreign(&h);
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    // The timer's cycle is now waiting for the lock.
    let until_due = (i128::from(due) * 1000 + 300) - unix_ms() as i128;
    tokio::time::sleep(Duration::from_millis(until_due.max(0) as u64)).await;
    // The first run ends: its ack goes in the next cycle, behind it.
    STALE_ACK_FINISH.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(honker_actors::core::cancel(&c, id).unwrap());
    assert!(honker_actors::core::requeue_dead(&c, id).unwrap());
    c.execute_batch("COMMIT").unwrap();
    let q = h.queue("stale_ack");
    let dead = dies_with(&q, id, "the second run's own outcome").await;
    pool.shutdown().await.unwrap();
    assert!(
        dead,
        "the job claimed again kept its own outcome: live {:?}, dead {:?}",
        q.get_job(id).await.unwrap(),
        q.list_dead(10, 0).await.unwrap()
    );
    assert_eq!(STALE_ACK_RUNS.load(Ordering::SeqCst), 2);
}

/// Whether job `id` of `q` reaches dead with `error` (within 30 s).
async fn dies_with(q: &honker_actors::Queue, id: i64, error: &str) -> bool {
    eventually(Duration::from_secs(30), async || {
        q.list_dead(10, 0)
            .await
            .unwrap()
            .iter()
            .any(|d| d.id == id && d.last_error.as_deref() == Some(error))
    })
    .await
}

/// A write right after the file was replaced (a restore, a `mv`) went to
/// the old, unlinked file: it is refused, never told Ok. The writer used
/// to look at the file at most every 5 ms, so such a write was told Ok
/// every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_write_after_the_file_is_replaced_is_refused_not_told_ok() {
    for round in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        let h = honker_actors::Honker::open(&db).unwrap();
        let q = h.queue("q");
        q.enqueue(&1, EnqueueOptions::default()).await.unwrap();
        // Another file, made elsewhere, moved over the path.
        let other = dir.path().join("restored.db");
        honker_actors::core::open(&other).unwrap();
        std::fs::rename(&other, &db).unwrap();
        match q.enqueue(&2, EnqueueOptions::default()).await {
            Err(Error::FileGone { what, path }) => {
                assert_eq!(
                    (what, path.as_path()),
                    ("replaced", db.as_path()),
                    "round {round}"
                );
            }
            other => panic!("round {round}: a write after the replacement was told {other:?}"),
        }
        // And every write after it.
        let again = q.enqueue(&3, EnqueueOptions::default()).await;
        assert!(
            matches!(
                again,
                Err(Error::FileGone {
                    what: "replaced",
                    ..
                })
            ),
            "{again:?}"
        );
    }
}

// ------------------------------------------------------------ 2. rolled-back groups

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transaction_closure_commits_nothing_and_the_rest_of_its_group_does() {
    let (_d, h) = honker();
    h.transaction(|tx| tx.execute_batch("CREATE TABLE orders(id INTEGER PRIMARY KEY)"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            match i % 4 {
                // Writes, then fails: nothing of it may be kept.
                0 => h
                    .transaction(move |tx| {
                        tx.execute("INSERT INTO orders(id) VALUES (?1)", [i])
                            .map_err(std::io::Error::other)?;
                        Err::<(), _>(std::io::Error::other("refused"))
                    })
                    .await
                    .map(|_| None),
                // Tries to end the group's transaction itself: refused.
                1 => h
                    .transaction(move |tx| {
                        tx.execute("INSERT INTO orders(id) VALUES (?1)", [i])?;
                        tx.execute_batch("ROLLBACK")
                    })
                    .await
                    .map(|_| None),
                2 => h
                    .transaction(move |tx| {
                        tx.execute("INSERT INTO orders(id) VALUES (?1)", [i])?;
                        tx.execute_batch("COMMIT")
                    })
                    .await
                    .map(|_| None),
                _ => h
                    .queue("g")
                    .enqueue(&i, EnqueueOptions::default())
                    .await
                    .map(Some),
            }
        }));
    }
    let mut told_ok = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match (i % 4, t.await.unwrap()) {
            (3, Ok(Some(id))) => told_ok.push(id),
            (3, other) => panic!("a plain enqueue failed: {other:?}"),
            (_, Ok(_)) => panic!("request {i} should have failed"),
            (_, Err(_)) => {}
        }
    }
    let c = foreign(&h);
    let orders: i64 = c
        .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orders, 0, "no failed or refused closure left a row");
    for id in &told_ok {
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM _honker_live WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "enqueue {id} was reported committed");
    }
    assert_eq!(told_ok.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_sqlite_rolls_a_group_back_no_request_in_it_is_told_ok() {
    let (_d, h) = honker();
    for fault in [
        honker_actors::Fault::DiskFull,
        honker_actors::Fault::IoError,
    ] {
        let at = Arc::new(AtomicUsize::new(usize::MAX));
        let hook_at = at.clone();
        let base = Arc::new(std::sync::Mutex::new(None::<u64>));
        let hook_base = base.clone();
        h.inject_writer_faults(Some(Arc::new(move |k| {
            let mut b = hook_base.lock().unwrap();
            let first = *b.get_or_insert(k);
            (k - first == hook_at.load(Ordering::SeqCst) as u64).then_some(fault)
        })));
        at.store(20, Ordering::SeqCst);
        let mut tasks = Vec::new();
        for i in 0..60u32 {
            let q = h.queue("rb");
            tasks.push(tokio::spawn(async move {
                (i, q.enqueue(&i, EnqueueOptions::default()).await)
            }));
        }
        let mut failed = 0;
        let c = foreign(&h);
        for t in tasks {
            let (i, r) = t.await.unwrap();
            let on_disk: i64 = c
                .query_row(
                    "SELECT count(*) FROM _honker_live WHERE queue = 'rb' AND payload = ?1",
                    [i.to_string()],
                    |r| r.get(0),
                )
                .unwrap();
            match r {
                Ok(_) => assert_eq!(on_disk, 1, "enqueue {i} told Ok must be on disk"),
                Err(e) => {
                    failed += 1;
                    assert_eq!(on_disk, 0, "enqueue {i} told {e} must not be on disk");
                }
            }
        }
        assert!(
            failed >= 1,
            "the injected fault failed at least its own request"
        );
        h.inject_writer_faults(None);
        // The handle keeps working.
        h.queue("rb")
            .enqueue(&"after", EnqueueOptions::default())
            .await
            .unwrap();
        c.execute("DELETE FROM _honker_live WHERE queue = 'rb'", [])
            .unwrap();
    }
}

// ------------------------------------------------------------ 3. poison rows

static POISON_OK: AtomicUsize = AtomicUsize::new(0);
#[job(queue = "poison_a")]
async fn poison_a(_ctx: JobContext, _a: Args) -> Result<(), JobError> {
    POISON_OK.fetch_add(1, Ordering::SeqCst);
    Ok(())
}
#[job(queue = "poison_b")]
async fn poison_b(_ctx: JobContext, _a: Args) -> Result<(), JobError> {
    POISON_OK.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_with_odd_column_types_is_dead_lettered_alone() {
    let (_d, h) = honker();
    let c = foreign(&h);
    let bad_expiry = poison_a::enqueue(&h, Args { n: 1 }).await.unwrap().id();
    let bad_priority = poison_a::enqueue(&h, Args { n: 2 }).await.unwrap().id();
    c.execute(
        "UPDATE _honker_live SET expires_at = 1e30 WHERE id = ?1",
        [bad_expiry],
    )
    .unwrap();
    c.execute(
        "UPDATE _honker_live SET priority = 'high' WHERE id = ?1",
        [bad_priority],
    )
    .unwrap();
    for n in 0..20 {
        poison_a::enqueue(&h, Args { n }).await.unwrap();
        poison_b::enqueue(&h, Args { n }).await.unwrap();
    }
    let pool = WorkerPool::builder(&h)
        .register(poison_a)
        .register(poison_b)
        .start()
        .await
        .unwrap();
    // Both within the one 30 s limit.
    let deadline = Instant::now() + Duration::from_secs(30);
    for queue in ["poison_a", "poison_b"] {
        let left = deadline.saturating_duration_since(Instant::now());
        let done = wait_until_drained(&h, queue, left).await;
        assert!(
            done.is_ok(),
            "both queues drained around the poison rows: {done:?}"
        );
    }
    pool.shutdown().await.unwrap();
    assert_eq!(POISON_OK.load(Ordering::SeqCst), 40);
    let dead = h.queue("poison_a").list_dead(10, 0).await.unwrap();
    let ids: Vec<i64> = dead.iter().map(|d| d.id).collect();
    assert!(
        ids.contains(&bad_expiry) && ids.contains(&bad_priority),
        "{dead:?}"
    );
    for d in &dead {
        assert!(
            d.last_error.as_deref().is_some_and(|e| !e.is_empty()),
            "{d:?}"
        );
    }
}

// ------------------------------------------------------------ 4. panics in requests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_request_fails_alone_and_the_handle_lives_on() {
    let (_d, h) = honker();
    let r = h
        .transaction(|_tx| -> Result<(), std::io::Error> { panic!("boom in a closure") })
        .await;
    assert!(
        matches!(&r, Err(Error::Panicked(m)) if m.contains("boom")),
        "{r:?}"
    );
    let q = h.queue("p");
    q.enqueue(&1, EnqueueOptions::default()).await.unwrap();
    let all = q.claim_batch("w", usize::MAX).await.unwrap();
    assert_eq!(all.len(), 1);
    q.enqueue(&2, EnqueueOptions::default()).await.unwrap();
    assert_eq!(q.stats().await.unwrap().pending_due, 1);
}

// ------------------------------------------------------------ 5. extreme durations

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_durations_are_refused_or_clamped_never_wrapped() {
    let (_d, h) = honker();
    let q = h.queue("far");
    for opts in [
        EnqueueOptions::default().delay(Duration::MAX),
        EnqueueOptions::default().expires(Duration::MAX),
        EnqueueOptions::default().delay(Duration::from_secs(u64::MAX / 2)),
    ] {
        let r = q.enqueue(&1, opts.clone()).await;
        assert!(
            matches!(&r, Err(Error::InvalidOption(_))),
            "{opts:?}: {r:?}"
        );
    }
    assert_eq!(q.stats().await.unwrap().pending_due, 0, "nothing written");
    // A claim of "forever" is clamped, stays an integer, and is long.
    q.enqueue(&1, EnqueueOptions::default()).await.unwrap();
    let job = q
        .clone()
        .with_visibility_timeout(Duration::MAX)
        .claim_batch("w", 1)
        .await
        .unwrap()
        .remove(0);
    assert!(
        job.claim_expires_at > job.run_at + 100 * 365 * 86400,
        "{job:?}"
    );
    let until = q.heartbeat("w", job.lease(), Duration::MAX).await.unwrap();
    assert!(until.is_some());
    let out = q
        .retry("w", job.lease(), Duration::MAX, "later")
        .await
        .unwrap();
    assert_eq!(out, honker_actors::core::RetryOutcome::Retried);
    let typeof_run_at: String = foreign(&h)
        .query_row("SELECT typeof(run_at) FROM _honker_live", [], |r| r.get(0))
        .unwrap();
    assert_eq!(typeof_run_at, "integer");
    // Pool options.
    let e = WorkerPool::builder(&h)
        .register(poison_a)
        .visibility_timeout(Duration::MAX)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    let pool = WorkerPool::builder(&h)
        .register(poison_a)
        .shutdown_timeout(Duration::MAX)
        .start()
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    for n in [0, usize::MAX] {
        let e = WorkerPool::builder(&h)
            .register(poison_a)
            .concurrency(n)
            .start()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e}");
    }
    // A wait "forever" for a result answers as soon as there is an answer.
    let id = q.enqueue(&2, EnqueueOptions::default()).await.unwrap();
    q.cancel(id).await.unwrap();
    let r = h.result::<u32>(id, Duration::MAX).await;
    assert!(matches!(r, Err(Error::JobCancelled { .. })), "{r:?}");
    // Backoff arithmetic never panics.
    let b = honker_actors::Backoff::exponential(Duration::MAX, Duration::MAX);
    assert!(b.delay(u32::MAX) >= Duration::from_secs(u64::MAX / 2));
    let d = honker_actors::Backoff::exponential(Duration::from_secs(3600), Duration::MAX).delay(40);
    assert!(d >= Duration::from_secs(3600));
}

// ------------------------------------------------------------ 8. exhausted lapsed rows

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pool_dead_letters_an_exhausted_row_whose_claim_lapsed() {
    let dir = tempfile::tempdir().unwrap();
    // The watcher is effectively off: only the due-time timer can wake the pool.
    let h = honker_actors::Honker::open_with_watch_interval(
        dir.path().join("app.db"),
        Duration::from_secs(3600),
    )
    .unwrap();
    let q = h
        .queue("lapses")
        .with_visibility_timeout(Duration::from_secs(1));
    let id = q
        .enqueue(&Args { n: 0 }, EnqueueOptions::default().max_attempts(1))
        .await
        .unwrap();
    q.claim_batch("a-crashed-worker", 1).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(lapses)
        .start()
        .await
        .unwrap();
    let dead = eventually(Duration::from_secs(10), async || {
        honker_actors::core::get_dead(&foreign(&h), id)
            .unwrap()
            .is_some()
    })
    .await;
    pool.shutdown().await.unwrap();
    assert!(
        dead,
        "the exhausted row was dead-lettered once its claim lapsed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pool_sweeps_a_running_job_that_expired_once_its_claim_lapses() {
    let dir = tempfile::tempdir().unwrap();
    // The watcher is effectively off: only the due-time timer can wake the pool.
    let h = honker_actors::Honker::open_with_watch_interval(
        dir.path().join("app.db"),
        Duration::from_secs(3600),
    )
    .unwrap();
    let q = h
        .queue("lapses")
        .with_visibility_timeout(Duration::from_secs(2));
    // Expires in 1 s while a worker that then crashed holds it until 2 s:
    // never claimable again, only the sweep can end it.
    let id = q
        .enqueue(
            &Args { n: 0 },
            EnqueueOptions::default().expires(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    q.claim_batch("a-crashed-worker", 1).await.unwrap();
    let started = Instant::now();
    let pool = WorkerPool::builder(&h)
        .register(lapses)
        .start()
        .await
        .unwrap();
    // Within the timer's wake after the lapse (about 3 s), well before the
    // 5 s housekeeping of an active pool.
    let dead = eventually(Duration::from_millis(4500), async || {
        honker_actors::core::get_dead(&foreign(&h), id)
            .unwrap()
            .is_some()
    })
    .await;
    pool.shutdown().await.unwrap();
    assert!(dead, "not swept after {:?}", started.elapsed());
    let row = honker_actors::core::get_dead(&foreign(&h), id)
        .unwrap()
        .unwrap();
    assert_eq!(row.last_error.as_deref(), Some("expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_honker_call_from_inside_a_transaction_closure_is_an_error_not_a_deadlock() {
    let (_d, h) = honker();
    let (h2, rt) = (h.clone(), tokio::runtime::Handle::current());
    let t = Instant::now();
    let r = h
        .transaction(move |_| {
            let inner = rt.block_on(async move {
                let q = h2.queue("q");
                tokio::time::timeout(
                    Duration::from_secs(5),
                    q.enqueue(&1, EnqueueOptions::default()),
                )
                .await
            });
            match inner {
                Ok(Err(Error::NestedWrite)) => Ok(()),
                other => Err(std::io::Error::other(format!("{other:?}"))),
            }
        })
        .await;
    assert!(r.is_ok(), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "answered at once");
    // The handle keeps working.
    h.queue("q")
        .enqueue(&1, EnqueueOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closure_cannot_change_the_shared_connection_for_later_writes() {
    let (_d, h) = honker();
    for pragma in ["PRAGMA query_only = ON", "PRAGMA foreign_keys = OFF"] {
        let r = h.transaction(move |tx| tx.execute_batch(pragma)).await;
        assert!(r.is_err(), "{pragma} was refused");
    }
    // Reading a pragma, and deferring foreign keys for the transaction, are fine.
    let fk: i64 = h
        .transaction(|tx| {
            tx.execute_batch("PRAGMA defer_foreign_keys = ON")?;
            tx.query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        })
        .await
        .unwrap();
    assert_eq!(fk, 1);
    h.queue("q")
        .enqueue(&1, EnqueueOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closure_cannot_commit_through_the_writers_own_cached_statement() {
    let (_d, h) = honker();
    h.transaction(|tx| tx.execute_batch("CREATE TABLE t(x)"))
        .await
        .unwrap();
    let r = h
        .transaction(|tx| {
            tx.execute("INSERT INTO t VALUES (1)", [])
                .map_err(std::io::Error::other)?;
            // Transaction control by any text, the writer's old fixed text
            // included (the statement cache keys by text; a cached,
            // authorized statement would skip the authorizer).
            for sql in [
                "COMMIT /* honker writer */",
                "SAVEPOINT honker_group_op /* honker writer */",
                "ROLLBACK /* honker writer */",
            ] {
                let _ = tx.prepare_cached(sql).and_then(|mut s| s.execute([]));
            }
            Err::<(), _>(std::io::Error::other("fail"))
        })
        .await;
    assert!(r.is_err());
    let n: i64 = foreign(&h)
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "nothing of the failed closure is on disk");
    // Nor through the group savepoint's own RELEASE, in a group with others.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            if i == 10 {
                h.transaction(|tx| {
                    tx.execute("INSERT INTO t VALUES (2)", [])
                        .map_err(std::io::Error::other)?;
                    let _ = tx
                        .prepare_cached("RELEASE honker_group_op /* honker writer */")
                        .and_then(|mut s| s.execute([]));
                    Err::<(), _>(std::io::Error::other("fail"))
                })
                .await
                .map(|_| None)
            } else {
                h.queue("q")
                    .enqueue(&i, EnqueueOptions::default())
                    .await
                    .map(Some)
            }
        }));
    }
    let c = foreign(&h);
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(Some(id)) => {
                let live: i64 = c
                    .query_row(
                        "SELECT count(*) FROM _honker_live WHERE id = ?1",
                        [id],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(live, 1, "enqueue {i} told committed is on disk");
            }
            Ok(None) => panic!("the failing closure was told Ok"),
            Err(_) => {}
        }
    }
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "nothing of the failed closure is on disk");
    // The handle keeps working.
    h.queue("q")
        .enqueue(&1, EnqueueOptions::default())
        .await
        .unwrap();
}

// ------------------------------------------------------------ 13. dropped claims

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_dropped_while_in_flight_is_given_back() {
    let (_d, h) = honker();
    let q = h.queue("dropped");
    let id = q.enqueue(&1, EnqueueOptions::default()).await.unwrap();
    // Keep the writer busy so the claim is in flight when dropped.
    let busy = h.transaction(|_| {
        std::thread::sleep(Duration::from_millis(300));
        Ok::<_, std::io::Error>(())
    });
    let claim = q.claim_batch("w", 1);
    let (busy, claimed) =
        tokio::join!(busy, tokio::time::timeout(Duration::from_millis(50), claim));
    busy.unwrap();
    assert!(
        claimed.is_err(),
        "the claim was dropped before it came back"
    );
    let back = eventually(Duration::from_secs(5), async || {
        q.get_job(id)
            .await
            .unwrap()
            .is_some_and(|j| j.state == honker_actors::core::JobState::Pending && j.attempts == 0)
    })
    .await;
    assert!(back, "{:?}", q.get_job(id).await.unwrap());
    // The claim stream is built on the same claim.
    use futures::StreamExt;
    let busy = h.transaction(|_| {
        std::thread::sleep(Duration::from_millis(300));
        Ok::<_, std::io::Error>(())
    });
    let mut stream = q.claim("w2");
    let (busy, got) = tokio::join!(
        busy,
        tokio::time::timeout(Duration::from_millis(50), stream.next())
    );
    busy.unwrap();
    assert!(got.is_err());
    drop(stream);
    let back = eventually(Duration::from_secs(5), async || {
        q.get_job(id)
            .await
            .unwrap()
            .is_some_and(|j| j.attempts == 0 && j.worker_id.is_none())
    })
    .await;
    assert!(back, "{:?}", q.get_job(id).await.unwrap());
}

// ------------------------------------------------------------ 14. shutdown that cannot write

static LOCKED_STARTED: AtomicBool = AtomicBool::new(false);
static LOCKED_RELEASE: AtomicBool = AtomicBool::new(false);
#[job(queue = "under_lock")]
async fn under_lock(_ctx: JobContext, _a: Args) -> Result<(), JobError> {
    LOCKED_STARTED.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(30), async || {
        LOCKED_RELEASE.load(Ordering::SeqCst)
    })
    .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_that_cannot_write_its_outcomes_says_so() {
    let (_d, h) = honker();
    let id = under_lock::enqueue(&h, Args { n: 1 }).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(under_lock)
        .shutdown_timeout(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(20), async || LOCKED_STARTED
            .load(Ordering::SeqCst))
        .await
    );
    // Another program holds the write lock through the whole shutdown.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (unlock_tx, unlock_rx) = std::sync::mpsc::channel::<()>();
    let path = h.path().unwrap().to_path_buf();
    let holder = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        let _ = unlock_rx.recv_timeout(Duration::from_secs(60));
        c.execute_batch("ROLLBACK").unwrap();
    });
    locked_rx.recv().unwrap();
    LOCKED_RELEASE.store(true, Ordering::SeqCst);
    let r = pool.shutdown().await;
    unlock_tx.send(()).unwrap();
    holder.join().unwrap();
    assert!(
        matches!(r, Err(Error::ShutdownIncomplete { unwritten: 1 })),
        "{r:?}"
    );
    // The job was not acked: it will run again.
    let job = h.queue("under_lock").get_job(id).await.unwrap();
    assert!(job.is_some());
}

// ------------------------------------------------------------ rows the application pins

static PINNED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[job(queue = "pinned")]
async fn pinned(_ctx: JobContext, _a: Args) -> Result<(), JobError> {
    PINNED_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_an_application_key_pins_never_block_a_queue_or_a_shutdown() {
    let (_d, h) = honker();
    // The application points at job rows (foreign keys are on, as the
    // format's pragmas say): neither the finished job's ack nor the
    // exhausted job's move to dead can delete its row.
    let (acked_id, spent_id) = h
        .transaction(|tx| {
            tx.execute_batch(
                "CREATE TABLE orders(id INTEGER PRIMARY KEY,
                                     job INTEGER REFERENCES _honker_live(id))",
            )?;
            let payload = r#"{"n":1}"#;
            let opts = EnqueueOptions::default();
            let acked = honker_actors::core::enqueue(tx, "pinned", payload, &opts)?;
            let spent = honker_actors::core::enqueue(tx, "pinned", payload, &opts.priority(9))?;
            tx.execute(
                "UPDATE _honker_live SET attempts = max_attempts WHERE id = ?1",
                [spent],
            )?;
            tx.execute("INSERT INTO orders(job) VALUES (?1), (?2)", [acked, spent])?;
            Ok::<_, honker_actors::core::Error>((acked, spent))
        })
        .await
        .unwrap();
    for n in 0..5 {
        pinned::enqueue(&h, Args { n }).await.unwrap();
    }
    let pool = WorkerPool::builder(&h)
        .register(pinned)
        .shutdown_timeout(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    // The queue goes on around the exhausted row it cannot move.
    let ran = eventually(Duration::from_secs(20), async || {
        PINNED_RUNS.load(Ordering::SeqCst) >= 6
    })
    .await;
    assert!(ran, "ran {}", PINNED_RUNS.load(Ordering::SeqCst));
    // The finished job whose ack keeps failing: the shutdown says so, in
    // its own time (grace + 1 s + 5 s), not the caller's safety net.
    let t = Instant::now();
    let r = pool.shutdown().await;
    assert!(
        matches!(r, Err(Error::ShutdownIncomplete { unwritten: 1 })),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let q = h.queue("pinned");
    assert!(q.get_job(acked_id).await.unwrap().is_some());
    assert!(q.get_job(spent_id).await.unwrap().is_some());
}
