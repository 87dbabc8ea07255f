//! A child process for the PostgreSQL multi-process tests: each command
//! runs on schema SCHEMA of the server at URL and reports on stdout.
//!
//! - `work URL SCHEMA CONCURRENCY VISIBILITY_SECS`: a pool running every
//!   job of `honker_tests::pg` (the scheduler too); says `started
//!   WORKER_ID`, and shuts down gracefully when its stdin closes (says
//!   `stopped`).
//! - `produce URL SCHEMA FROM N`: enqueue `pg_work` FROM..FROM+N, 100 per
//!   batch; says `produced N`.
//! - `uniq URL SCHEMA`: waits for a line on stdin, then enqueues the
//!   unique `pg_charge` for orders 0..20, 10 times each, from 4 tasks at
//!   once; says how many were new.
//!
//! Every command dies with the process that started it (Linux).

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use honker_actors::postgres::{PgOptions, PgStore};
use honker_actors::{Batch, Honker, WorkerPool};
use honker_tests::pg::{pg_charge, pg_limited, pg_long, pg_tick, pg_work};

fn main() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and no
    // pointers.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!(
            "usage: honker-pg-child COMMAND URL SCHEMA [ARGS] (see the module documentation)"
        );
        std::process::exit(2);
    }
    let (cmd, url, schema) = (args[1].as_str(), args[2].as_str(), args[3].as_str());
    let num = |i: usize| -> u64 { args.get(i).and_then(|a| a.parse().ok()).unwrap_or(0) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        let options = PgOptions {
            schema: schema.to_string(),
            ..PgOptions::default()
        };
        let h = Honker::with_store(Arc::new(PgStore::open_with(url, options)?));
        match cmd {
            "work" => work(&h, num(4).max(1) as usize, num(5).max(1)).await,
            "produce" => produce(&h, num(4), num(5)).await,
            "uniq" => uniq(&h).await,
            other => {
                eprintln!("unknown command {other}");
                std::process::exit(2);
            }
        }
    });
    if let Err(e) = result {
        eprintln!("honker-pg-child {cmd}: {e}");
        std::process::exit(1);
    }
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Wait for stdin to say something (a line, or its end).
async fn stdin_line() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    })
    .await;
}

async fn work(h: &Honker, concurrency: usize, visibility: u64) -> honker_actors::Result<()> {
    let pool = WorkerPool::builder(h)
        .register(pg_work)
        .register(pg_long)
        .register(pg_limited)
        .register(pg_tick)
        .concurrency(concurrency)
        .visibility_timeout(Duration::from_secs(visibility))
        .scheduler(true)
        .start()
        .await?;
    say(&format!("started {}", pool.worker_id()));
    stdin_line().await;
    pool.shutdown().await?;
    say("stopped");
    Ok(())
}

async fn produce(h: &Honker, from: u64, n: u64) -> honker_actors::Result<()> {
    let mut i = from;
    while i < from + n {
        let mut batch = Batch::new();
        for _ in 0..100.min(from + n - i) {
            batch.push(pg_work::builder(i))?;
            i += 1;
        }
        h.enqueue_batch(batch).await?;
    }
    say(&format!("produced {n}"));
    Ok(())
}

async fn uniq(h: &Honker) -> honker_actors::Result<()> {
    stdin_line().await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let mut new = 0u32;
            for _ in 0..10 {
                for order in 0..20 {
                    new += u32::from(!pg_charge::enqueue(&h, order).await?.is_duplicate());
                }
            }
            Ok::<_, honker_actors::Error>(new)
        }));
    }
    let mut new = 0;
    for t in tasks {
        new += t
            .await
            .map_err(|e| honker_actors::Error::Panicked(e.to_string()))??;
    }
    say(&format!("{new}"));
    Ok(())
}
