//! Quickstart: three typed jobs (two of them sharing the `emails` queue),
//! enqueued with priority and delay, run by one worker pool on a SQLite
//! file, with a retry, a typed result, a graceful shutdown and a summary.
//!
//! Run: `cargo run --example quickstart`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
struct Email {
    to: String,
    subject: String,
}

#[derive(Serialize, Deserialize, Debug)]
struct Digest {
    to: String,
    articles: u32,
}

#[derive(Serialize, Deserialize, Debug)]
struct Thumbnail {
    image: String,
    width: u32,
}

static FLAKY_SMTP: AtomicU32 = AtomicU32::new(0);
static SENT: AtomicU32 = AtomicU32::new(0);
static DIGESTS: AtomicU32 = AtomicU32::new(0);
static THUMBNAILS: AtomicU32 = AtomicU32::new(0);

/// Sends an email. The first try to one address fails, to show a retry.
#[job(queue = "emails", max_attempts = 3, backoff = "1s", timeout = "10s")]
async fn send_email(ctx: JobContext, email: Email) -> Result<(), JobError> {
    if email.to.starts_with("flaky") && FLAKY_SMTP.fetch_add(1, Ordering::SeqCst) == 0 {
        println!(
            "  [emails] job {} to {}: SMTP timeout (attempt {}/{}), will retry",
            ctx.id(),
            email.to,
            ctx.attempt(),
            ctx.max_attempts()
        );
        return Err(JobError::retry("SMTP timeout"));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    println!(
        "  [emails] job {} sent {:?} to {} (attempt {})",
        ctx.id(),
        email.subject,
        email.to,
        ctx.attempt()
    );
    SENT.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Sends a weekly digest: a second kind of job on the same queue. Each
/// row names its job, and the pool runs it with that job's handler.
#[job(queue = "emails")]
async fn send_digest(ctx: JobContext, d: Digest) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(30)).await;
    println!(
        "  [emails] job {} sent a digest of {} articles to {}",
        ctx.id(),
        d.articles,
        d.to
    );
    DIGESTS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Makes a thumbnail and returns its path (saved as the job's result).
#[job(queue = "images")]
async fn make_thumbnail(ctx: JobContext, t: Thumbnail) -> Result<String, JobError> {
    tokio::time::sleep(Duration::from_millis(80)).await;
    let out = format!("{}.{}px.jpg", t.image.trim_end_matches(".jpg"), t.width);
    println!("  [images] job {} made {out}", ctx.id());
    THUMBNAILS.fetch_add(1, Ordering::SeqCst);
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = honker_examples::fresh_db_path("honker-quickstart");
    let honker = Honker::open(&path)?;
    println!("database: {}", path.display());

    // Enqueue: plain, urgent (priority), delayed.
    send_email::enqueue(
        &honker,
        Email {
            to: "ada@example.com".into(),
            subject: "welcome".into(),
        },
    )
    .await?;
    send_email::enqueue(
        &honker,
        Email {
            to: "flaky@example.com".into(),
            subject: "receipt".into(),
        },
    )
    .await?;
    send_email::builder(Email {
        to: "ceo@example.com".into(),
        subject: "urgent".into(),
    })
    .priority(10)
    .enqueue(&honker)
    .await?;
    send_email::builder(Email {
        to: "later@example.com".into(),
        subject: "reminder".into(),
    })
    .delay(Duration::from_secs(2))
    .enqueue(&honker)
    .await?;
    send_digest::enqueue(
        &honker,
        Digest {
            to: "ada@example.com".into(),
            articles: 5,
        },
    )
    .await?;
    // A typed handle: its result is a String, checked at compile time.
    let thumb = make_thumbnail::enqueue(
        &honker,
        Thumbnail {
            image: "cat.jpg".into(),
            width: 128,
        },
    )
    .await?;
    println!("enqueued 4 emails (1 urgent, 1 delayed by 2 s), 1 digest and 1 thumbnail\n");

    // One pool runs all three jobs, two at a time.
    let started = Instant::now();
    let pool = WorkerPool::builder(&honker)
        .register(send_email)
        .register(send_digest)
        .register(make_thumbnail)
        .concurrency(2)
        .start()
        .await?;
    println!("pool {} started; working...", pool.worker_id());

    let path_of_thumb: String = thumb.result(&honker, Duration::from_secs(30)).await?;
    println!("  result of job {thumb}: {path_of_thumb}");
    honker_examples::wait_until_drained(&honker, "emails").await?;
    pool.shutdown().await?;
    println!(
        "\npool shut down gracefully after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    println!("summary:");
    println!(
        "  emails sent: {} (retries: {})",
        SENT.load(Ordering::SeqCst),
        FLAKY_SMTP.load(Ordering::SeqCst).saturating_sub(1)
    );
    println!("  digests sent: {}", DIGESTS.load(Ordering::SeqCst));
    println!("  thumbnails made: {}", THUMBNAILS.load(Ordering::SeqCst));
    for q in ["emails", "images"] {
        let s = honker.queue(q).stats().await?;
        println!(
            "  queue {q:<6}: {} waiting, {} running, {} dead",
            s.pending_due + s.scheduled,
            s.processing,
            s.dead
        );
    }
    Ok(())
}
