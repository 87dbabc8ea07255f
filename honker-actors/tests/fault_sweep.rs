//! The writer fault sweep: a fixed workload (typed enqueues, application
//! transactions that enqueue, a batch, a pool that claims and acks) runs once per
//! fault kind and per write request k, with that fault injected into the
//! k-th request: SQLite reporting a full disk or an I/O error (and rolling
//! the whole group back), SQLITE_BUSY, or a panic. After each run the file
//! is reopened and checked: every write a caller was told committed is
//! there, no write it was told failed is, every committed job ran exactly
//! once, and the pool recovered (it drained the queue, a job enqueued after
//! the fault ran, and its shutdown reported success); every committed row
//! of a job the pool does not register is dead as `unknown task`, never run.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::eventually;
use honker_actors::core::rusqlite;
use honker_actors::testing::wait_until_drained;
use honker_actors::{job, Fault, Honker, JobContext, JobError, WorkerPool};

/// How often each payload ran, per case.
#[derive(Default)]
struct Runs(Mutex<HashMap<u32, usize>>);

#[job(queue = "sweep")]
async fn sweep(ctx: JobContext, n: u32) -> Result<(), JobError> {
    *ctx.data::<Arc<Runs>>()?
        .0
        .lock()
        .unwrap()
        .entry(n)
        .or_default() += 1;
    Ok(())
}

/// What the workload was told about each write.
struct Told {
    /// payload, job id if told committed.
    enqueues: Vec<(u32, Option<i64>)>,
    /// order id, told committed.
    orders: Vec<(u32, bool)>,
    /// Queue "side": told paused, told its running limit set to 2.
    paused: bool,
    limited: bool,
    /// Two unique enqueues of job UNIQUE: (told Ok, told a duplicate).
    unique: Vec<(bool, bool)>,
    /// A job of queue "trash": told enqueued, cancelled, purged.
    trash: (bool, bool, bool),
    /// The named lock: told taken (owner), told released.
    lock: (Option<String>, bool),
    /// A schedule: told added; the job an operator's run-now was told it
    /// enqueued.
    schedule: (bool, Option<i64>),
}

/// The payload of the unique job (once per hour by key).
const UNIQUE: u32 = 500;

const FINAL: u32 = 999;

async fn workload(h: &Honker) -> Told {
    let mut told = Told {
        enqueues: Vec::new(),
        orders: Vec::new(),
        paused: false,
        limited: false,
        unique: Vec::new(),
        trash: (false, false, false),
        lock: (None, false),
        schedule: (false, None),
    };
    // An operator adds a schedule and runs it now.
    let spec = honker_actors::core::ScheduleSpec::new("nightly", "reports", "0 3 * * *", "{}");
    told.schedule.0 = h.schedules().add(spec).await.is_ok();
    if told.schedule.0 {
        told.schedule.1 = h.schedules().run_now("nightly").await.ok().flatten();
    }
    // A named lock taken and given back.
    if let Ok(Some(g)) = h.try_lock("sweep-lock", Duration::from_secs(3600)).await {
        let owner = g.owner().to_string();
        let released = g.release().await.is_ok_and(|r| r);
        told.lock = (Some(owner), released);
    }
    // An operator cancels a job and purges its dead record.
    let trash = h.queue("trash");
    let id = trash.enqueue(&"trash", Default::default()).await;
    let cancelled = match &id {
        Ok(id) => trash.cancel(*id).await.unwrap_or(false),
        Err(_) => false,
    };
    let purged = trash
        .purge_dead_where(honker_actors::core::DeadFilter::default())
        .await
        .is_ok_and(|n| n == usize::from(cancelled));
    told.trash = (id.is_ok(), cancelled, purged);
    for _ in 0..2 {
        let r = sweep::builder(UNIQUE)
            .unique_key("once")
            .unique_period(Duration::from_secs(3600))
            .enqueue(h)
            .await;
        told.unique
            .push((r.is_ok(), r.is_ok_and(|h| h.is_duplicate())));
    }
    // Queue controls are writes too.
    told.paused = h.queue("side").pause().await.is_ok();
    told.limited = h.queue("side").set_max_running(Some(2)).await.is_ok();
    for i in 0..8u32 {
        if i % 2 == 0 {
            let r = sweep::enqueue(h, i).await;
            told.enqueues.push((i, r.ok().map(|h| h.id())));
        } else {
            let r = h
                .transaction(move |tx| {
                    tx.execute("INSERT INTO orders(id) VALUES (?1)", [i])
                        .map_err(honker_actors::core::Error::from)?;
                    // A job no pool registers: routed to dead.
                    let ghost = honker_actors::core::task_payload("ghost", &i).unwrap();
                    honker_actors::core::enqueue(tx, "sweep", &ghost, &Default::default())?;
                    honker_actors::core::enqueue(tx, "sweep", &i.to_string(), &Default::default())
                })
                .await;
            told.orders.push((i, r.is_ok()));
            told.enqueues.push((i, r.ok()));
        }
    }
    // A batch: both its jobs committed, or neither.
    let mut batch = honker_actors::Batch::new();
    for i in [20u32, 21] {
        batch.push(sweep::builder(i)).unwrap();
    }
    let r = h.enqueue_batch(batch).await;
    for (k, i) in [20u32, 21].into_iter().enumerate() {
        told.enqueues.push((i, r.as_ref().ok().map(|d| d[k].id)));
    }
    told
}

/// Run the workload with `fault` at request `k` (after the hook is
/// installed); `None`: count the requests instead. Returns how many
/// requests the writer ran.
async fn run_case(fault: Option<(Fault, u64)>) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let h = Honker::open(&path).unwrap();
    h.transaction(|tx| tx.execute_batch("CREATE TABLE orders(id INTEGER PRIMARY KEY)"))
        .await
        .unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    let base = Arc::new(Mutex::new(None::<u64>));
    {
        let (seen, base) = (seen.clone(), base.clone());
        h.inject_writer_faults(Some(Arc::new(move |k| {
            let first = *base.lock().unwrap().get_or_insert(k);
            let i = k - first;
            seen.fetch_max(i + 1, Ordering::SeqCst);
            fault.and_then(|(f, at)| (i == at).then_some(f))
        })));
    }
    let runs = Arc::new(Runs::default());
    let pool = WorkerPool::builder(&h)
        .register(sweep)
        .concurrency(2)
        .data(runs.clone())
        .start()
        .await
        .unwrap();
    let told = workload(&h).await;
    // A caller told its enqueue failed tries again; the one fault is spent.
    let last = match sweep::enqueue(&h, FINAL).await {
        Ok(id) => Ok(id),
        Err(_) => sweep::enqueue(&h, FINAL).await,
    };
    // The requests that matter: up to the last enqueue (the pool's later
    // cycles repeat what came before).
    let requests = seen.load(Ordering::SeqCst);
    // The later job ran and the queue drained, within the one 20 s limit.
    let deadline = Instant::now() + Duration::from_secs(20);
    let final_ran = eventually(Duration::from_secs(20), async || {
        runs.0.lock().unwrap().contains_key(&FINAL)
    })
    .await;
    let left = deadline.saturating_duration_since(Instant::now());
    let ran_final = final_ran && wait_until_drained(&h, "sweep", left).await.is_ok();
    let stopped = pool.shutdown().await;
    h.inject_writer_faults(None);
    drop(h);
    let case = format!("{fault:?}");
    assert!(
        last.is_ok(),
        "{case}: a retried enqueue after the fault: {last:?}"
    );
    assert!(ran_final, "{case}: the pool recovered and ran a later job");
    assert!(stopped.is_ok(), "{case}: shutdown {stopped:?}");

    let c = rusqlite::Connection::open(&path).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "{case}");
    for (id, committed) in &told.orders {
        let n: i64 = c
            .query_row("SELECT count(*) FROM orders WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            n,
            i64::from(*committed),
            "{case}: order {id}, told committed={committed}"
        );
        // Its unroutable row: dead with the reason iff committed, never run.
        let ghost = honker_actors::core::task_payload("ghost", id).unwrap();
        let dead: Vec<String> = c
            .prepare("SELECT last_error FROM _honker_dead WHERE payload = ?1")
            .unwrap()
            .query_map([&ghost], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let live: i64 = c
            .query_row(
                "SELECT count(*) FROM _honker_live WHERE payload = ?1",
                [&ghost],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(live, 0, "{case}: ghost {id} left in live");
        if *committed {
            assert_eq!(dead.len(), 1, "{case}: ghost {id}");
            assert!(
                dead[0].starts_with("unknown task: 'ghost'"),
                "{case}: {}",
                dead[0]
            );
        } else {
            assert!(dead.is_empty(), "{case}: ghost {id} of a failed order");
        }
    }
    // The unique job: one row at most, run once iff an enqueue said so.
    let inserted = told.unique.iter().filter(|(ok, dup)| *ok && !dup).count();
    let said_dup = told.unique.iter().filter(|(_, dup)| *dup).count();
    assert!(inserted <= 1, "{case}: {:?}", told.unique);
    if said_dup > 0 {
        assert_eq!(
            inserted, 1,
            "{case}: a duplicate of nothing: {:?}",
            told.unique
        );
    }
    assert_eq!(
        runs.0.lock().unwrap().get(&UNIQUE).copied().unwrap_or(0),
        inserted,
        "{case}: the unique job ran once iff inserted"
    );
    let trash_rows = count(
        &c,
        "SELECT (SELECT count(*) FROM _honker_live WHERE queue = 'trash')
              + (SELECT count(*) FROM _honker_dead WHERE queue = 'trash')",
    );
    let expect = match told.trash {
        (false, _, _) => 0,
        (true, true, true) => 0,
        (true, _, _) => 1,
    };
    assert_eq!(trash_rows, expect, "{case}: trash {:?}", told.trash);
    let holder = honker_actors::core::lock_holder(&c, "sweep-lock")
        .unwrap()
        .map(|(o, _)| o);
    match &told.lock {
        (Some(owner), false) => {
            assert_eq!(
                holder.as_ref(),
                Some(owner),
                "{case}: lock told taken, not released"
            )
        }
        _ => assert_eq!(holder, None, "{case}: lock {:?}", told.lock),
    }
    let schedule = honker_actors::core::get_schedule(&c, "nightly").unwrap();
    assert_eq!(
        schedule.is_some(),
        told.schedule.0,
        "{case}: schedule added"
    );
    let reports: Vec<i64> = c
        .prepare("SELECT id FROM _honker_live WHERE queue = 'reports'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        reports,
        told.schedule.1.into_iter().collect::<Vec<_>>(),
        "{case}: run-now"
    );
    let side = honker_actors::core::queue_controls(&c, "side").unwrap();
    assert_eq!(side.paused, told.paused, "{case}: pause");
    assert_eq!(
        side.max_running.is_some(),
        told.limited,
        "{case}: running limit"
    );
    let runs = runs.0.lock().unwrap();
    for (n, id) in &told.enqueues {
        let ran = runs.get(n).copied().unwrap_or(0);
        let stored: i64 = c
            .query_row(
                "SELECT (SELECT count(*) FROM _honker_live WHERE payload IN (?1, ?2))
                      + (SELECT count(*) FROM _honker_dead WHERE payload IN (?1, ?2))",
                [
                    n.to_string(),
                    honker_actors::core::task_payload("sweep", n).unwrap(),
                ],
                |r| r.get(0),
            )
            .unwrap();
        match id {
            Some(_) => assert_eq!((ran, stored), (1, 0), "{case}: job {n} told committed"),
            None => assert_eq!((ran, stored), (0, 0), "{case}: job {n} told failed"),
        }
    }
    requests
}

fn count(c: &rusqlite::Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Injected panics are expected; keep them out of the test output.
fn quiet_injected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .unwrap_or_default();
        if !msg.starts_with("injected fault") {
            default(info);
        }
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_at_every_write_keeps_every_promise() {
    quiet_injected_panics();
    let requests = run_case(None).await;
    assert!(
        requests >= 10,
        "the workload makes {requests} write requests"
    );
    let mut cases = 0;
    for fault in [Fault::DiskFull, Fault::IoError, Fault::Busy, Fault::Panic] {
        for k in 0..requests + 2 {
            run_case(Some((fault, k))).await;
            cases += 1;
        }
    }
    eprintln!("fault sweep: {cases} cases over {requests} write requests");
}
