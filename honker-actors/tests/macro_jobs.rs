//! `#[job]`: generated types, options, enqueue functions, error types and
//! results, run through a real pool.

mod common;

use common::{eventually, honker};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use honker_actors::{job, Backoff, Job, JobContext, JobError, WorkerPool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Email {
    to: String,
}

static SENT: AtomicUsize = AtomicUsize::new(0);

/// Sends one email.
#[job(
    queue = "emails",
    max_attempts = 5,
    priority = 2,
    timeout = "30s",
    backoff = "exponential(1s, 10m)",
    expires = "1h"
)]
async fn send_email(ctx: JobContext, email: Email) -> Result<(), JobError> {
    assert_eq!(ctx.queue(), "emails");
    assert!(email.to.contains('@'));
    SENT.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[job(queue = "add")]
async fn add(pair: (u64, u64)) -> Result<u64, JobError> {
    Ok(pair.0 + pair.1)
}

#[job(queue = "io_error", max_attempts = 1)]
async fn io_error(_n: u32) -> Result<(), std::io::Error> {
    Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "smtp refused",
    ))
}

#[job(queue = "anyhow_error", max_attempts = 1)]
async fn anyhow_error(_n: u32) -> anyhow::Result<()> {
    let inner: Result<(), anyhow::Error> = Err(anyhow::anyhow!("disk quota"));
    anyhow::Context::context(inner, "saving the upload")?;
    Ok(())
}

#[job(queue = "gives_up", max_attempts = 9, backoff = "5s")]
async fn gives_up(ctx: JobContext, _n: u32) -> Result<(), JobError> {
    Err(JobError::fail(format!(
        "attempt {} gives up",
        ctx.attempt()
    )))
}

#[job]
async fn defaults(_n: u32) -> Result<(), JobError> {
    Ok(())
}

#[job(name = "myapp.tasks.renamed")]
async fn renamed(_n: u32) -> Result<(), JobError> {
    Ok(())
}

#[job(raw, queue = "raw_in")]
async fn takes_raw(_n: u32) -> Result<(), JobError> {
    Ok(())
}

/// A raw identifier names the job without its `r#`.
#[job(queue = "match", timeout = "1500ms", backoff = "0s", priority = -3)]
async fn r#match(_n: u32) -> Result<(), JobError> {
    Ok(())
}

#[test]
fn the_attribute_sets_name_queue_and_options() {
    assert_eq!(send_email::NAME, "send_email");
    assert_eq!(send_email::QUEUE, "emails");
    let o = send_email::options();
    assert_eq!(o.max_attempts, 5);
    assert_eq!(o.priority, 2);
    assert_eq!(o.timeout, Some(Duration::from_secs(30)));
    assert_eq!(o.expires, Some(Duration::from_secs(3600)));
    assert_eq!(
        o.backoff,
        Backoff::exponential(Duration::from_secs(1), Duration::from_secs(600))
    );
    assert_eq!(add::QUEUE, "add", "the queue given is kept");
    assert_eq!(
        (defaults::NAME, defaults::QUEUE, defaults::RAW),
        ("defaults", "default", false),
        "the queue defaults to `default`, the name to the function's"
    );
    assert_eq!(
        (renamed::NAME, renamed::QUEUE),
        ("myapp.tasks.renamed", "default")
    );
    assert_eq!((takes_raw::RAW, takes_raw::QUEUE), (true, "raw_in"));
    assert_eq!(add::options().max_attempts, 3);
    assert_eq!(
        gives_up::options().backoff,
        Backoff::fixed(Duration::from_secs(5))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_builder_and_enqueue_tx_write_the_jobs_defaults_and_options() {
    let (_d, h) = honker();
    let q = h.queue("emails");
    let plain = send_email::enqueue(&h, Email { to: "a@b.c".into() })
        .await
        .unwrap()
        .id();
    let row = q.get_job(plain).await.unwrap().unwrap();
    assert_eq!((row.max_attempts, row.priority), (5, 2));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&row.payload).unwrap(),
        serde_json::json!({"__honker_task__": {
            "task": "send_email", "args": [], "kwargs": {"to": "a@b.c"}
        }}),
        "the payload is the task envelope the Python package writes"
    );
    assert!(row.expires_at.is_some());

    let built = send_email::builder(Email { to: "b@b.c".into() })
        .delay(Duration::from_secs(60))
        .priority(9)
        .max_attempts(2)
        .expires(Duration::from_secs(7200))
        .enqueue(&h)
        .await
        .unwrap()
        .id();
    let row = q.get_job(built).await.unwrap().unwrap();
    assert_eq!((row.max_attempts, row.priority), (2, 9));
    assert!(row.run_at > row.created_at + 58);

    let mut conn = honker_core::open(h.path().unwrap()).unwrap();
    let tx = conn.transaction().unwrap();
    let rolled_back = send_email::enqueue_tx(&tx, Email { to: "c@b.c".into() })
        .unwrap()
        .id();
    tx.rollback().unwrap();
    assert!(q.get_job(rolled_back).await.unwrap().is_none());
    let tx = conn.transaction().unwrap();
    let committed = send_email::enqueue_tx(&tx, Email { to: "d@b.c".into() })
        .unwrap()
        .id();
    tx.commit().unwrap();
    assert!(q.get_job(committed).await.unwrap().is_some());

    let pool = WorkerPool::builder(&h)
        .register(send_email)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || SENT
            .load(Ordering::SeqCst)
            == 2)
        .await
    );
    pool.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_are_saved_and_errors_of_any_kind_are_recorded() {
    let (_d, h) = honker();
    let sum = add::enqueue(&h, (20, 22)).await.unwrap().id();
    io_error::enqueue(&h, 1).await.unwrap();
    anyhow_error::enqueue(&h, 1).await.unwrap();
    gives_up::enqueue(&h, 1).await.unwrap();
    let pool = WorkerPool::builder(&h)
        .register(add)
        .register(io_error)
        .register(anyhow_error)
        .register(gives_up)
        .start()
        .await
        .unwrap();
    assert_eq!(
        h.result::<u64>(sum, Duration::from_secs(30)).await.unwrap(),
        42
    );
    for q in ["io_error", "anyhow_error", "gives_up"] {
        let queue = h.queue(q);
        assert!(
            eventually(Duration::from_secs(30), async || queue
                .stats()
                .await
                .unwrap()
                .dead
                == 1)
            .await,
            "{q}"
        );
    }
    pool.shutdown().await.unwrap();
    let last = |q: &'static str| {
        let h = h.clone();
        async move { h.queue(q).list_dead(1, 0).await.unwrap()[0].clone() }
    };
    assert_eq!(
        last("io_error").await.last_error.as_deref(),
        Some("smtp refused")
    );
    assert_eq!(
        last("anyhow_error").await.last_error.as_deref(),
        Some("saving the upload: disk quota")
    );
    let g = last("gives_up").await;
    assert_eq!(
        (g.attempts, g.last_error.as_deref()),
        (1, Some("attempt 1 gives up"))
    );
}

#[test]
fn raw_names_millisecond_timeouts_zero_backoff_and_negative_priority() {
    assert_eq!((r#match::NAME, r#match::QUEUE), ("match", "match"));
    let o = r#match::options();
    assert_eq!(
        o.timeout,
        Some(Duration::from_millis(1500)),
        "a timeout keeps its milliseconds"
    );
    assert_eq!(o.backoff, Backoff::fixed(Duration::ZERO));
    assert_eq!(o.priority, -3);
}
