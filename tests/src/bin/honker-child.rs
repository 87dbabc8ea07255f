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
//! - `ctrl-c DB`: enqueue a `long` job, run a pool with the defaults that
//!   prints `running ID` when the job starts, and shut it down on ctrl-c
//!   (`shutdown_on_ctrl_c`); prints `stopped` and exits when it is done.
//! - `inflight DB`: a pool of 100 (visibility 1 s) whose `rel` jobs record
//!   themselves in `started` and never finish, until killed.
//! - `work DB TOTAL`: a pool on queue `mix` (each run recorded in `done`)
//!   until `done` holds TOTAL distinct jobs.
//! - `produce DB N`: enqueue N `mix` jobs with mixed priorities, 100 per
//!   transaction.
//! - `crash-move DB OP [ID ATTEMPTS]`: run one honker-core operation that
//!   moves rows between `_honker_live` and `_honker_dead` (OP: `retry`,
//!   `fail`, `cancel` or `requeue` of job ID, whose claim by `crash-worker`
//!   returned ATTEMPTS; `sweep`; `claim` on queue `crash`), and abort the
//!   process at the first row written (inserted or deleted) in one of the
//!   two tables after a row written in the other: between the copy and the
//!   delete, before either commits. Prints `completed ...` when the
//!   operation ends without reaching that point.
//! - `move DB OP [ID ATTEMPTS]`: the same operation, without the abort.
//!
//! Every command dies with the process that started it (Linux).

use std::io::Write;
use std::time::Duration;

use honker_core::{EnqueueOptions, Error};
use honker_tests::{mix, record, slow};

fn main() {
    die_with_parent();
    // For debugging a multi-process test: `HONKER_CHILD_LOG=/tmp/log` makes
    // each child write honker-actors' trace to `/tmp/log.PID`.
    if let Some(path) = std::env::var_os("HONKER_CHILD_LOG") {
        let file =
            std::fs::File::create(format!("{}.{}", path.to_string_lossy(), std::process::id()))
                .unwrap();
        tracing_subscriber::fmt()
            .with_env_filter("honker_actors=trace")
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .init();
    }
    let args: Vec<String> = std::env::args().collect();
    let (cmd, db) = match (args.get(1), args.get(2)) {
        (Some(c), Some(d)) => (c.as_str(), d.as_str()),
        _ => {
            eprintln!("usage: honker-child COMMAND DB [ARGS] (see the module documentation)");
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
        "ctrl-c" => ctrl_c(db),
        "lead" => lead(db),
        "listen" => listen_pool(db),
        "uniq" => uniq(db),
        "cron-next" => cron_next(db),
        "ctl" => ctl_pool(db, args.get(3).and_then(|a| a.parse().ok()).unwrap_or(4)),
        "inflight" | "work" | "produce" => reliability(cmd, db, args.get(3)),
        "crash-move" | "move" => crash_move(db, &args[3..], cmd == "crash-move"),
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

/// Ask the kernel to SIGKILL this process when the thread that spawned it
/// exits (the test that started it ended, or its process died), so a
/// failing test never leaves a child running. The parent passes its pid:
/// when it already died before the request, exit at once.
fn die_with_parent() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_PDEATHSIG takes a signal number; no pointers.
        let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        if rc != 0 {
            eprintln!(
                "honker-child: prctl(PR_SET_PDEATHSIG): {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(2);
        }
    }
    let expected = std::env::var("HONKER_CHILD_PARENT_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    if let Some(expected) = expected {
        // SAFETY: getppid has no preconditions.
        let parent = unsafe { libc::getppid() } as u32;
        if parent != expected {
            eprintln!("honker-child: parent {expected} is gone");
            std::process::exit(3);
        }
    }
}

/// The worker id the `crash-move` claims are made under.
const CRASH_WORKER: &str = "crash-worker";

fn crash_move(db: &str, args: &[String], crash: bool) -> honker_core::Result<()> {
    let op = args.first().map(String::as_str).unwrap_or("");
    let num = |i: usize| -> i64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            eprintln!("crash-move {op}: argument {i} must be a number");
            std::process::exit(2)
        })
    };
    let mut conn = honker_core::open(db)?;
    if crash {
        abort_mid_move(&mut conn)?;
    }
    let lease = || honker_core::Lease {
        id: num(1),
        attempts: num(2),
    };
    let done = match op {
        "retry" => format!(
            "{:?}",
            honker_core::retry(
                &conn,
                CRASH_WORKER,
                lease(),
                Duration::ZERO,
                "retry-to-dead"
            )?
        ),
        "fail" => honker_core::fail(&conn, CRASH_WORKER, lease(), "failed")?.to_string(),
        "sweep" => honker_core::sweep_expired(&conn, None)?.to_string(),
        "claim" => {
            let jobs = honker_core::claim_batch(
                &conn,
                "crash",
                CRASH_WORKER,
                10,
                Duration::from_secs(60),
            )?;
            format!("{:?}", jobs.iter().map(|j| j.id).collect::<Vec<_>>())
        }
        "cancel" => honker_core::cancel(&conn, num(1))?.to_string(),
        "requeue" => honker_core::requeue_dead(&conn, num(1))?.to_string(),
        other => {
            eprintln!("crash-move: unknown operation {other}");
            std::process::exit(2);
        }
    };
    println!("completed {op}: {done}");
    Ok(())
}

/// Abort the process between the two statements of a move: at the first
/// INSERT or DELETE on `_honker_live` or `_honker_dead` that follows an
/// INSERT or DELETE on the other one (for a move done as copy-then-delete,
/// the DELETE after the copy). The update hook runs while the statement
/// executes, before anything commits.
fn abort_mid_move(conn: &mut rusqlite::Connection) -> honker_core::Result<()> {
    use rusqlite::hooks::Action;
    // No core file for the deliberate abort.
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit for the duration of the call.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    let mut first_table: Option<String> = None;
    conn.update_hook(Some(
        move |action: Action, _db: &str, table: &str, _rowid: i64| {
            let moving = ["_honker_live", "_honker_dead"].contains(&table)
                && matches!(action, Action::SQLITE_INSERT | Action::SQLITE_DELETE);
            if !moving {
                return;
            }
            match &first_table {
                None => first_table = Some(table.to_string()),
                Some(t) if t != table => std::process::abort(),
                Some(_) => {}
            }
        },
    ))?;
    Ok(())
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

/// Runs until its process is killed.
#[honker_actors::job(queue = "long")]
async fn long(ctx: honker_actors::JobContext, _n: u32) -> Result<(), honker_actors::JobError> {
    println!("running {}", ctx.id());
    let _ = std::io::stdout().flush();
    std::future::pending::<()>().await;
    Ok(())
}

fn ctrl_c(db: &str) -> honker_core::Result<()> {
    let rt = tokio_runtime();
    rt.block_on(async {
        let honker = honker_actors::Honker::open(db).map_err(into_core)?;
        long::enqueue(&honker, 1).await.map_err(into_core)?;
        let pool = honker_actors::WorkerPool::builder(&honker)
            .register(long)
            .start()
            .await
            .map_err(into_core)?;
        pool.shutdown_on_ctrl_c().await.map_err(into_core)?;
        println!("stopped");
        Ok(())
    })
}

fn runtime(cmd: &str, db: &str) -> honker_core::Result<()> {
    let rt = tokio_runtime();
    rt.block_on(async {
        let honker = honker_actors::Honker::open(db).map_err(into_core)?;
        let builder = honker_actors::WorkerPool::builder(&honker);
        let pool = if cmd == "pool" {
            builder.register(record).concurrency(8)
        } else {
            builder
                .register(long)
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

/// A pool that fires the file's schedules with the default settings;
/// prints `leading` once it holds the scheduler lock, then runs until
/// killed.
fn lead(db: &str) -> honker_core::Result<()> {
    let rt = tokio_runtime();
    rt.block_on(async {
        let honker = honker_actors::Honker::open(db).map_err(into_core)?;
        let pool = honker_actors::WorkerPool::builder(&honker)
            .register(record)
            .scheduler(true)
            .start()
            .await
            .map_err(into_core)?;
        let conn = honker_core::open(db)?;
        loop {
            let holder = honker_core::lock_holder(&conn, "honker-scheduler")?;
            if holder.is_some_and(|(owner, _)| owner == pool.worker_id()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("leading");
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// Waits for the file `DB.go`, then enqueues the unique job for orders
/// 0..20, 10 times each, from 4 tasks at once; prints how many were new.
fn uniq(db: &str) -> honker_core::Result<()> {
    let rt = tokio_runtime();
    rt.block_on(async {
        let honker = honker_actors::Honker::open(db).map_err(into_core)?;
        let go = format!("{db}.go");
        while !std::path::Path::new(&go).exists() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let h = honker.clone();
            tasks.push(tokio::spawn(async move {
                let mut new = 0u32;
                for _ in 0..10 {
                    for order in 0..20 {
                        let handle = honker_tests::charge_order::enqueue(&h, order).await?;
                        new += u32::from(!handle.is_duplicate());
                    }
                }
                Ok::<_, honker_actors::Error>(new)
            }));
        }
        let mut new = 0;
        for t in tasks {
            new += t
                .await
                .map_err(|e| Error::InvalidOption(e.to_string()))?
                .map_err(into_core)?;
        }
        println!("new {new}");
        Ok(())
    })
}

/// Prints, as a JSON list, the next boundary on the host's wall clock (so
/// as `TZ` says) of every expression after every instant of the corpus
/// given as JSON in place of the database path; `null` for an error.
fn cron_next(corpus: &str) -> honker_core::Result<()> {
    let c: serde_json::Value = serde_json::from_str(corpus).map_err(Error::InvalidPayload)?;
    let mut out = Vec::new();
    for e in c["exprs"].as_array().into_iter().flatten() {
        for t in c["instants"].as_array().into_iter().flatten() {
            let (e, t) = (e.as_str().unwrap_or(""), t.as_i64().unwrap_or(0));
            out.push(honker_core::next_boundary(e, t, None).ok());
        }
    }
    println!("{}", serde_json::Value::from(out));
    Ok(())
}

/// A pool running `listen_job` until the process is killed.
fn listen_pool(db: &str) -> honker_core::Result<()> {
    let rt = tokio_runtime();
    rt.block_on(async {
        let honker = honker_actors::Honker::open(db).map_err(into_core)?;
        let _pool = honker_actors::WorkerPool::builder(&honker)
            .register(honker_tests::listen_job)
            .start()
            .await
            .map_err(into_core)?;
        std::future::pending::<()>().await;
        Ok(())
    })
}

/// A pool of `concurrency` running `ctl_job` until the process is
/// killed; prints `started` once it runs.
fn ctl_pool(db: &str, concurrency: usize) -> honker_core::Result<()> {
    let rt = tokio_runtime();
    rt.block_on(async {
        let honker = honker_actors::Honker::open(db).map_err(into_core)?;
        let _pool = honker_actors::WorkerPool::builder(&honker)
            .register(honker_tests::ctl_job)
            .concurrency(concurrency)
            .visibility_timeout(Duration::from_secs(
                honker_tests::CTL_VISIBILITY_SECS.unsigned_abs(),
            ))
            .start()
            .await
            .map_err(into_core)?;
        println!("started");
        let _ = std::io::stdout().flush();
        std::future::pending::<()>().await;
        Ok(())
    })
}

fn into_core(e: honker_actors::Error) -> Error {
    match e {
        honker_actors::Error::Store(e) => match e.into_inner().downcast::<Error>() {
            Ok(c) => *c,
            Err(other) => Error::InvalidOption(other.to_string()),
        },
        other => Error::InvalidOption(other.to_string()),
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
                    .register(slow)
                    .concurrency(100)
                    .visibility_timeout(Duration::from_secs(1))
                    .start()
                    .await
                    .map_err(into_core)?;
                std::future::pending::<()>().await;
            }
            "work" => {
                let pool = honker_actors::WorkerPool::builder(&honker)
                    .register(mix)
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
                        let job = honker_actors::EnqueueBuilder::<mix>::new(i as u32)
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
