//! A child process for the multi-process tests. Each subcommand does one
//! thing to a database file and reports on stdout.
//!
//! - `commit DB`: enqueue one job on queue `child`.
//! - `rollback DB`: enqueue one job in a transaction, then roll it back
//!   (plain rusqlite, no schema work).
//! - `bootstrap DB`: open a possibly new file, enqueue one job.
//! - `open DB`: try to open; print `OK` or `ERR <kind>: <message>`.
//! - `churn DB`: claim and move jobs to dead (retry-to-dead, fail, sweep)
//!   until the queue is empty, printing a line per batch.
//! - `pool DB`: run a worker pool on queue `mp` (each run inserts a row into
//!   `mp_done`) until the queue is drained, then shut down.
//! - `long DB`: run a pool (visibility 1 s) whose `long` job prints
//!   `running ID` and never finishes, until killed.
//! - `inflight DB`: a pool of 100 (visibility 1 s) whose `rel` jobs record
//!   themselves in `started` and never finish, until killed.
//! - `work DB TOTAL`: a pool on queue `mix` (each run recorded in `done`)
//!   until `done` holds TOTAL distinct jobs.
//! - `produce DB N`: enqueue N `mix` jobs with mixed priorities, 100 per
//!   transaction.

use std::io::Write;
use std::time::Duration;

use honker_core::{EnqueueOptions, Error};
use honker_tests::{Mix, Record, Slow};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (cmd, db) = match (args.get(1), args.get(2)) {
        (Some(c), Some(d)) => (c.as_str(), d.as_str()),
        _ => {
            eprintln!("usage: honker-child <commit|rollback|bootstrap|open|churn> DB");
            std::process::exit(2);
        }
    };
    let result = match cmd {
        "commit" | "bootstrap" => honker_core::open(db).and_then(|c| {
            honker_core::enqueue(
                &c,
                "child",
                r#"{"from":"child"}"#,
                &EnqueueOptions::default(),
            )
            .map(|id| println!("{id}"))
        }),
        "rollback" => rollback(db),
        "open" => {
            match honker_core::open(db) {
                Ok(_) => println!("OK"),
                Err(e) => println!("ERR {}: {e}", kind(&e)),
            }
            Ok(())
        }
        "churn" => churn(db),
        "pool" | "long" => runtime(cmd, db),
        "inflight" | "work" | "produce" => reliability(cmd, db, args.get(3)),
        other => {
            eprintln!("unknown command {other}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("honker-child {cmd}: {e}");
        std::process::exit(1);
    }
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::MissingDirectory { .. } => "MissingDirectory",
        Error::NotADatabase { .. } => "NotADatabase",
        Error::ReadOnly { .. } => "ReadOnly",
        Error::Open { .. } => "Open",
        _ => "Other",
    }
}

fn rollback(db: &str) -> honker_core::Result<()> {
    let conn = rusqlite::Connection::open(db)?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    conn.execute(
        "INSERT INTO _honker_live (queue, payload) VALUES ('child', '{}')",
        [],
    )?;
    conn.execute_batch("ROLLBACK")?;
    println!("rolled back");
    Ok(())
}

fn churn(db: &str) -> honker_core::Result<()> {
    let conn = honker_core::open(db)?;
    let mut out = std::io::stdout().lock();
    let mut round = 0u64;
    loop {
        let jobs = honker_core::claim_batch(&conn, "crash", "churn", 64, Duration::from_secs(1))?;
        if jobs.is_empty() && honker_core::sweep_expired(&conn, None)? == 0 {
            return Ok(());
        }
        for (i, job) in jobs.iter().enumerate() {
            if i % 2 == 0 {
                honker_core::retry(&conn, "churn", job.lease(), Duration::ZERO, "retry-to-dead")?;
            } else {
                honker_core::fail(&conn, "churn", job.lease(), "failed")?;
            }
        }
        honker_core::sweep_expired(&conn, Some("crash"))?;
        round += 1;
        // Ignore a closed pipe: the parent may stop reading before it kills us.
        let _ = writeln!(out, "round {round}");
        let _ = out.flush();
    }
}

struct Long;
impl honker_actors::Job for Long {
    const NAME: &'static str = "long";
    const QUEUE: &'static str = "long";
    type Args = u32;
    type Output = ();
    async fn run(
        &self,
        ctx: honker_actors::JobContext,
        _n: u32,
    ) -> Result<(), honker_actors::JobError> {
        println!("running {}", ctx.id());
        let _ = std::io::stdout().flush();
        std::future::pending::<()>().await;
        Ok(())
    }
}

fn runtime(cmd: &str, db: &str) -> honker_core::Result<()> {
    let rt = tokio_runtime();
    rt.block_on(async {
        let honker = honker_actors::Honker::open(db).map_err(into_core)?;
        let builder = honker_actors::WorkerPool::builder(&honker);
        let pool = if cmd == "pool" {
            builder.register(Record).concurrency(8)
        } else {
            builder
                .register(Long)
                .visibility_timeout(Duration::from_secs(1))
        }
        .start()
        .await
        .map_err(into_core)?;
        if cmd == "long" {
            std::future::pending::<()>().await;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let s = honker.queue("mp").stats().await.map_err(into_core)?;
            if s.pending_due + s.scheduled + s.processing == 0 {
                break;
            }
        }
        pool.shutdown().await.map_err(into_core)?;
        println!("drained");
        Ok(())
    })
}

fn into_core(e: honker_actors::Error) -> honker_core::Error {
    match e {
        honker_actors::Error::Core(c) => c,
        other => honker_core::Error::InvalidOption(other.to_string()),
    }
}

fn reliability(cmd: &str, db: &str, arg: Option<&String>) -> honker_core::Result<()> {
    let n: u64 = arg.and_then(|a| a.parse().ok()).unwrap_or(0);
    let rt = tokio_runtime();
    rt.block_on(async {
        let honker = honker_actors::Honker::open(db).map_err(into_core)?;
        match cmd {
            "inflight" => {
                let _pool = honker_actors::WorkerPool::builder(&honker)
                    .register(Slow)
                    .concurrency(100)
                    .visibility_timeout(Duration::from_secs(1))
                    .start()
                    .await
                    .map_err(into_core)?;
                std::future::pending::<()>().await;
            }
            "work" => {
                let pool = honker_actors::WorkerPool::builder(&honker)
                    .register(Mix)
                    .concurrency(8)
                    .start()
                    .await
                    .map_err(into_core)?;
                let conn = honker_core::open_connection(db)?;
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let done: i64 =
                        conn.query_row("SELECT count(DISTINCT job_id) FROM done", [], |r| {
                            r.get(0)
                        })?;
                    if done as u64 >= n {
                        break;
                    }
                }
                pool.shutdown().await.map_err(into_core)?;
            }
            _ => {
                let mut conn = honker_core::open_connection(db)?;
                let mut i = 0u64;
                while i < n {
                    let tx = conn.transaction()?;
                    for _ in 0..100.min(n - i) {
                        let job = honker_actors::EnqueueBuilder::<Mix>::new(i as u32)
                            .priority((i % 5) as i64);
                        job.enqueue_tx(&tx).map_err(into_core)?;
                        i += 1;
                    }
                    tx.commit()?;
                }
                println!("produced {n}");
            }
        }
        Ok(())
    })
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
