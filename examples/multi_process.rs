//! Three worker processes and one producer process share one SQLite file;
//! every job runs exactly once.
//!
//! Run: `cargo run --example multi_process` (it starts the other processes
//! itself, by running its own binary with `worker` or `producer`).

use std::process::{Command, Stdio};
use std::time::Duration;

use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};

const JOBS: u32 = 600;

#[job(queue = "work")]
async fn work(ctx: JobContext, n: u32) -> Result<(), JobError> {
    let (id, pid) = (ctx.id(), std::process::id());
    ctx.honker()
        .transaction(move |tx| {
            tx.execute(
                "INSERT INTO done (job_id, n, pid) VALUES (?1, ?2, ?3)",
                (id, n, pid),
            )
        })
        .await
        .map_err(JobError::retry)?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("worker") => return worker(&args[2]).await,
        Some("producer") => return producer(&args[2]).await,
        _ => {}
    }
    let path = honker_examples::fresh_db_path("honker-multi-process");
    let honker = Honker::open(&path)?;
    honker
        .transaction(|tx| {
            tx.execute(
                "CREATE TABLE done (job_id INTEGER, n INTEGER, pid INTEGER)",
                [],
            )
        })
        .await?;
    let me = std::env::current_exe()?;
    let spawn = |role: &str| {
        Command::new(&me)
            .arg(role)
            .arg(&path)
            .stdout(Stdio::inherit())
            .spawn()
    };
    let workers: Vec<_> = (0..3).map(|_| spawn("worker")).collect::<Result<_, _>>()?;
    let mut producer = spawn("producer")?;
    assert!(producer.wait()?.success());
    for mut w in workers {
        assert!(w.wait()?.success());
    }
    let conn = honker_core::open(&path)?;
    let (runs, distinct): (i64, i64) =
        conn.query_row("SELECT count(*), count(DISTINCT n) FROM done", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let mut per_pid = conn.prepare("SELECT pid, count(*) FROM done GROUP BY pid ORDER BY pid")?;
    for row in per_pid.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (pid, n) = row?;
        println!("worker process {pid} ran {n} jobs");
    }
    println!("{runs} runs for {distinct} distinct jobs (enqueued {JOBS})");
    assert_eq!((runs, distinct), (i64::from(JOBS), i64::from(JOBS)));
    println!("every job ran exactly once");
    Ok(())
}

async fn producer(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let honker = Honker::open(path)?;
    for n in 0..JOBS {
        work::enqueue(&honker, n).await?;
        if n % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!("producer {} enqueued {JOBS} jobs", std::process::id());
    Ok(())
}

async fn worker(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let honker = Honker::open(path)?;
    let pool = WorkerPool::builder(&honker)
        .register(work)
        .concurrency(4)
        .start()
        .await?;
    // Work until every job is recorded as done.
    let conn = honker_core::open_connection(path)?;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done: i64 = conn.query_row("SELECT count(DISTINCT n) FROM done", [], |r| r.get(0))?;
        if done >= i64::from(JOBS) {
            break;
        }
    }
    pool.shutdown().await?;
    Ok(())
}
