//! Jobs shared by the `honker-child` binary and the integration tests, so
//! a job a child process runs and the same job in the test process are one
//! definition.

use honker_actors::{job, JobContext, JobError};

/// Run `statements` (each taking the job id and this process's pid) in one
/// transaction on the job's database: how these jobs record that they ran.
pub async fn record_run(
    ctx: &JobContext,
    statements: &'static [&'static str],
) -> Result<(), JobError> {
    let (id, pid) = (ctx.id(), std::process::id());
    ctx.honker()
        .transaction(move |tx| {
            for sql in statements {
                tx.execute(sql, (id, pid))?;
            }
            Ok::<_, honker_actors::Error>(())
        })
        .await
        .map_err(JobError::retry)
}

/// Records each run in `mp_done`. Takes a couple of milliseconds, as a
/// real job would: with 3000 of them, a pool in another process that
/// starts a moment later still finds work (a no-op job drains the queue
/// before it can claim).
#[job(queue = "mp")]
pub async fn record(ctx: JobContext, _n: u32) -> Result<(), JobError> {
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    record_run(&ctx, &["INSERT INTO mp_done (job_id, pid) VALUES (?1, ?2)"]).await
}

/// Records each run in `done`.
#[job(queue = "mix")]
pub async fn mix(ctx: JobContext, _n: u32) -> Result<(), JobError> {
    record_run(&ctx, &["INSERT INTO done (job_id, pid) VALUES (?1, ?2)"]).await
}

/// Records its start in `started`, then never finishes (its process is killed).
#[job(queue = "rel")]
pub async fn slow(ctx: JobContext, _n: u32) -> Result<(), JobError> {
    record_run(&ctx, &["INSERT INTO started (job_id, pid) VALUES (?1, ?2)"]).await?;
    std::future::pending::<()>().await;
    Ok(())
}
