//! Periodic jobs: a job with its own schedule, fired by the pool that
//! leads the file's schedulers, each boundary once.
//!
//! Run: `cargo run --example periodic`

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};

static BEATS: AtomicU32 = AtomicU32::new(0);

/// Every second (6-field cron: seconds first).
#[job(queue = "beats", cron = "* * * * * *")]
async fn heartbeat(ctx: JobContext, _none: ()) -> Result<(), JobError> {
    let (schedule, boundary) = ctx.scheduled_at().await?.unwrap_or_default();
    println!(
        "  job {} fired by {schedule:?} for boundary {boundary}",
        ctx.id()
    );
    BEATS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = honker_examples::fresh_db_path("honker-periodic");
    let honker = Honker::open(&path)?;
    println!("database: {}", path.display());
    // Registering the job registers its schedule and makes this pool a
    // scheduler: it leads, as it holds the lock `honker-scheduler`.
    let pool = WorkerPool::builder(&honker)
        .register(heartbeat)
        .start()
        .await?;
    for s in honker.schedules().list().await? {
        println!(
            "schedule {:?}: {:?} into {:?}",
            s.spec.name, s.spec.expr, s.spec.queue
        );
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    pool.shutdown().await?;
    let beats = BEATS.load(Ordering::SeqCst);
    println!("{beats} boundaries fired in 3.5 s, each once");
    if beats < 2 {
        return Err(format!("expected at least 2 beats, got {beats}").into());
    }
    Ok(())
}
