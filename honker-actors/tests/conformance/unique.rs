//! Unique jobs through typed enqueues: by arguments (`#[job(unique)]`), by
//! key, while pending only, and for a period.

use std::time::Duration;

use super::honker;
use crate::common::eventually;
use honker_actors::testing::wait_until_drained;
use honker_actors::{job, JobContext, JobError, WorkerPool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Sync {
    account: u32,
    full: bool,
}

#[job(queue = "sync", unique)]
async fn sync_account(_s: Sync) -> Result<(), JobError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_arguments_are_one_job_while_it_waits() {
    let (_d, h) = honker();
    let a = Sync {
        account: 1,
        full: true,
    };
    let first = sync_account::enqueue(&h, a.clone()).await.unwrap();
    let again = sync_account::enqueue(&h, a.clone()).await.unwrap();
    assert!(!first.is_duplicate());
    assert!(again.is_duplicate());
    assert_eq!(again.id(), first.id());
    // Other arguments are another job.
    let other = sync_account::enqueue(
        &h,
        Sync {
            account: 2,
            full: true,
        },
    )
    .await
    .unwrap();
    assert!(!other.is_duplicate());
    // Also in a batch, where its equal is found by id; and one batch
    // holding two equal jobs inserts one.
    let mut batch = honker_actors::Batch::new();
    batch.push(sync_account::builder(a)).unwrap();
    batch
        .push(sync_account::builder(Sync {
            account: 3,
            full: false,
        }))
        .unwrap();
    batch
        .push(sync_account::builder(Sync {
            account: 3,
            full: false,
        }))
        .unwrap();
    let in_batch = h.enqueue_batch(batch).await.unwrap();
    assert_eq!(
        in_batch.iter().map(|d| d.duplicate).collect::<Vec<_>>(),
        [true, false, true]
    );
    assert_eq!(in_batch[0].id, first.id());
    assert_eq!(
        in_batch[2].id, in_batch[1].id,
        "the batch's own job holds the key"
    );
    assert_eq!(h.queue("sync").stats().await.unwrap().pending_due, 3);
    // Once it ran, an equal job is new.
    let pool = WorkerPool::builder(&h)
        .register(sync_account)
        .start()
        .await
        .unwrap();
    wait_until_drained(&h, "sync", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    let later = sync_account::enqueue(
        &h,
        Sync {
            account: 1,
            full: true,
        },
    )
    .await
    .unwrap();
    assert!(!later.is_duplicate());
}

static HOLD: tokio::sync::Notify = tokio::sync::Notify::const_new();
static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[job(queue = "reindex", unique = "pending")]
async fn reindex(_ctx: JobContext, _all: bool) -> Result<(), JobError> {
    STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    HOLD.notified().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_only_lets_one_more_wait_while_one_runs() {
    let (_d, h) = honker();
    reindex::enqueue(&h, true).await.unwrap();
    // One at a time and no prefetch: a claimed job counts as started for
    // "pending only" (its row is processing), prefetched or not.
    let pool = WorkerPool::builder(&h)
        .register(reindex)
        .concurrency(1)
        .queue_concurrency("reindex", 1)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || STARTED
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1)
        .await
    );
    // One runs: one more may wait, a third is its duplicate.
    let waiting = reindex::enqueue(&h, true).await.unwrap();
    assert!(!waiting.is_duplicate());
    let third = reindex::enqueue(&h, true).await.unwrap();
    assert!(third.is_duplicate());
    assert_eq!(third.id(), waiting.id());
    HOLD.notify_waiters();
    assert!(
        eventually(Duration::from_secs(30), async || STARTED
            .load(std::sync::atomic::Ordering::SeqCst)
            == 2)
        .await
    );
    HOLD.notify_waiters();
    wait_until_drained(&h, "reindex", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
}

#[job(queue = "digest")]
async fn digest(_user: u32) -> Result<(), JobError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_and_a_period_allow_one_per_period_whatever_became_of_it() {
    let (_d, h) = honker();
    let once = |user| {
        digest::builder(user)
            .unique_key(format!("digest:{user}"))
            .unique_period(Duration::from_secs(3600))
    };
    let first = once(7).enqueue(&h).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(digest)
        .start()
        .await
        .unwrap();
    wait_until_drained(&h, "digest", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    // Done, but within the hour: still the same job.
    let again = once(7).enqueue(&h).await.unwrap();
    assert!(again.is_duplicate());
    assert_eq!(again.id(), first.id());
    // The key is what counts, not the arguments.
    let by_key = digest::builder(8)
        .unique_key("digest:7")
        .enqueue(&h)
        .await
        .unwrap();
    assert!(by_key.is_duplicate());
}
