//! A job that runs four times longer than the visibility timeout keeps its
//! claim: the pool's heartbeat actor extends it while the job works, so no
//! other worker takes it.
//!
//! Run: `cargo run --example long_running`

use std::time::{Duration, Instant};

use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};

#[job(queue = "reports")]
async fn build_report(ctx: JobContext, month: String) -> Result<(), JobError> {
    let started = Instant::now();
    for step in 1..=8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let job = ctx
            .honker()
            .queue("reports")
            .get_job(ctx.id())
            .await
            .map_err(JobError::retry)?;
        let claim = job.and_then(|j| j.claim_expires_at).unwrap_or_default();
        println!(
            "  {month} report: step {step}/8 at {:.1} s, claim held until unix {claim}, attempt {}",
            started.elapsed().as_secs_f64(),
            ctx.attempt()
        );
        if ctx.is_stopping() {
            return Err(JobError::retry("pool stopping"));
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = honker_examples::fresh_db_path("honker-long-running");
    let honker = Honker::open(&path)?;
    let id = build_report::enqueue(&honker, "May".to_string())
        .await?
        .id();
    let pool = WorkerPool::builder(&honker)
        .register(build_report)
        .visibility_timeout(Duration::from_secs(1))
        .start()
        .await?;
    println!("job {id} runs ~4 s with a 1 s visibility timeout");
    // A rival pool (another service instance) polls the same queue all along.
    let rival = Honker::open(&path)?;
    let rival_pool = WorkerPool::builder(&rival)
        .register(build_report)
        .visibility_timeout(Duration::from_secs(1))
        .start()
        .await?;
    while honker.queue("reports").get_job(id).await?.is_some() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rival_pool.shutdown().await?;
    pool.shutdown().await?;
    println!("job {id} finished on its first attempt; the rival never took it");
    Ok(())
}
