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

/// Unix milliseconds by the system clock, shared by every process here.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The visibility timeout of the `ctl` pools: a claim's second is its
/// `claim_expires_at` minus this.
pub const CTL_VISIBILITY_SECS: i64 = 30;

/// Records its start (unix ms, and the unix second of its claim) in
/// `ctl_starts`, runs `ms` milliseconds, records its end in `ctl_ends`.
#[job(queue = "ctl")]
pub async fn ctl_job(ctx: JobContext, ms: u64) -> Result<(), JobError> {
    let started = unix_ms();
    let row = ctx.honker().queue("ctl").get_job(ctx.id()).await?;
    let claimed_s = row
        .and_then(|r| r.claim_expires_at)
        .map(|t| t - CTL_VISIBILITY_SECS);
    let (id, pid) = (ctx.id(), std::process::id());
    ctx.honker()
        .transaction(move |tx| {
            tx.execute(
                "INSERT INTO ctl_starts (job_id, pid, at_ms, claimed_s) VALUES (?1, ?2, ?3, ?4)",
                (id, pid, started, claimed_s),
            )
        })
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    let ended = unix_ms();
    ctx.honker()
        .transaction(move |tx| {
            tx.execute(
                "INSERT INTO ctl_ends (job_id, at_ms) VALUES (?1, ?2)",
                (id, ended),
            )
        })
        .await?;
    Ok(())
}

/// The tables `ctl_job` records in.
pub const CTL_TABLES: &str = "CREATE TABLE IF NOT EXISTS ctl_starts
    (job_id INTEGER, pid INTEGER, at_ms INTEGER, claimed_s INTEGER);
  CREATE TABLE IF NOT EXISTS ctl_ends (job_id INTEGER, at_ms INTEGER);";

/// Prints `running ID`, waits to be told to stop, prints `stopped ID
/// REASON` (its outcome is then never written).
#[job(queue = "listen")]
pub async fn listen_job(ctx: JobContext, _n: u32) -> Result<(), JobError> {
    use std::io::Write;
    println!("running {}", ctx.id());
    let _ = std::io::stdout().flush();
    let why = ctx.stopping().await;
    println!("stopped {} {why:?}", ctx.id());
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Unique by its argument: one per order while it waits or runs.
#[job(queue = "uniq", unique)]
pub async fn charge_order(_order: u32) -> Result<(), JobError> {
    Ok(())
}

/// Jobs of the PostgreSQL multi-process tests: each says on stdout what
/// it did, one line each (stdout is line-buffered), for the test that
/// started its process to count.
pub mod pg {
    use std::time::Duration;

    use honker_actors::{job, JobContext, JobError, StopReason};

    fn say(line: String) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// A job that says `ran N` (its argument).
    #[job(queue = "pgwork")]
    pub async fn pg_work(n: u64) -> Result<(), JobError> {
        say(format!("ran {n}"));
        Ok(())
    }

    /// A job that says `running ID` and runs until it is cancelled (then
    /// says `cancelled ID`) or its process dies.
    #[job(queue = "pglong")]
    pub async fn pg_long(ctx: JobContext, _n: u64) -> Result<(), JobError> {
        say(format!("running {}", ctx.id()));
        if ctx.stopping().await == StopReason::Cancelled {
            say(format!("cancelled {}", ctx.id()));
        }
        Ok(())
    }

    /// A job of a queue with a running limit: says `start N MS` and, 30 ms
    /// later, `end N MS` (unix milliseconds).
    #[job(queue = "pglimited")]
    pub async fn pg_limited(n: u64) -> Result<(), JobError> {
        say(format!("start {n} {}", crate::unix_ms()));
        tokio::time::sleep(Duration::from_millis(30)).await;
        say(format!("end {n} {}", crate::unix_ms()));
        Ok(())
    }

    /// A unique job: one per order while it waits.
    #[job(queue = "pgcharge", unique)]
    pub async fn pg_charge(_order: u64) -> Result<(), JobError> {
        Ok(())
    }

    /// Every second; says `tick BOUNDARY`.
    #[job(queue = "pgtick", cron = "* * * * * *")]
    pub async fn pg_tick(ctx: JobContext, _none: ()) -> Result<(), JobError> {
        let (_, boundary) = ctx.scheduled_at().await?.unwrap_or_default();
        say(format!("tick {boundary}"));
        Ok(())
    }
}
