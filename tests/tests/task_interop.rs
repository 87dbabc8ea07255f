//! Tasks across languages, against the real `honker` Python package:
//! Python `@q.task` calls run by Rust `#[job]`s and Rust typed enqueues
//! run by Python's `run_workers`, with keyword, one positional and several
//! positional arguments; results read both ways with the same TTL meaning;
//! unknown tasks dead-lettered by either side with Python's words; and a
//! Python raw `q.enqueue({...})` reaching a Rust job.
//!
//! Run like `interop.rs`: with `cfg(honker_python)` (see `build.rs`), and
//! listed as ignored, with the reason, without it.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{honker_python, run_python};
use honker_actors::{job, Error, Honker, JobError, JobOptions, WorkerPool};
use serde::{Deserialize, Serialize};

fn db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tasks.db");
    (dir, p)
}

async fn python(script: String, args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let py = honker_python();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_python(&py, &script, &args)
    })
    .await
    .unwrap()
}

/// `expires_at - created_at` of job `id`'s saved result (`None`: kept
/// until swept).
fn result_ttl(path: &Path, id: i64) -> Option<i64> {
    let conn = honker_core::open(path).unwrap();
    conn.query_row(
        "SELECT expires_at - created_at FROM _honker_results WHERE job_id = ?1",
        [id],
        |r| r.get(0),
    )
    .unwrap()
}

#[derive(Serialize, Deserialize, Debug)]
struct Greet {
    name: String,
}

#[derive(Serialize, Deserialize, Debug)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Serialize, Deserialize, Debug)]
struct Signup {
    to: String,
}

// The Rust side of tasks Python defines too.
#[job(queue = "tasks", name = "greet", result_ttl = "2h")]
async fn greet(g: Greet) -> Result<String, JobError> {
    Ok(format!("hello {}", g.name))
}

#[job(queue = "tasks", name = "square")]
async fn square(n: u64) -> Result<u64, JobError> {
    Ok(n * n)
}

/// Python calls `add(2, 3)`: several positionals, a tuple here.
#[job(queue = "tasks", name = "add")]
async fn add_pair(pair: (i64, i64)) -> Result<i64, JobError> {
    Ok(pair.0 + pair.1)
}

/// Rust calls Python's `add(a, b)` by keyword: a struct.
#[job(queue = "tasks", name = "add")]
async fn add_named(args: Add) -> Result<i64, JobError> {
    Ok(args.a + args.b)
}

/// No Python task has this name.
#[job(queue = "tasks", name = "rust_only")]
async fn rust_only(_n: u32) -> Result<(), JobError> {
    Ok(())
}

/// The only job of its queue: takes Python's raw `q.enqueue({...})`.
#[job(queue = "py_raw")]
async fn welcome(s: Signup) -> Result<String, JobError> {
    Ok(format!("welcomed {}", s.to))
}

/// Python's side, defining the same tasks.
const PY_TASKS: &str = r#"
import honker, json, sys
db = honker.open(sys.argv[1])
q = db.queue("tasks")

@q.task(name="greet")
def greet(name):
    return "hello " + name

@q.task(name="square")
def square(n):
    return n * n

@q.task(name="add")
def add(a, b):
    return a + b

@q.task(name="py_only")
def py_only():
    return 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
async fn python_task_calls_are_run_by_rust_jobs_and_python_reads_the_results() {
    let (_d, path) = db();
    let h = Honker::open(&path).unwrap();
    let script = with_tasks(
        r#"
ids = {
  "kw": greet(name="ada").id,
  "one": square(7).id,
  "many": add(2, 3).id,
  "unknown": py_only().id,
  "raw": db.queue("py_raw").enqueue({"to": "bob"}),
}
print(json.dumps(ids))
"#,
    );
    let out = python(script, vec![path.display().to_string()]).await;
    let ids: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let id = |k: &str| ids[k].as_i64().unwrap();

    let pool = WorkerPool::builder(&h)
        .register(greet)
        .register(square)
        .register(add_pair)
        .register(welcome)
        .start()
        .await
        .unwrap();
    let wait = Duration::from_secs(30);
    assert_eq!(
        h.result::<String>(id("kw"), wait).await.unwrap(),
        "hello ada"
    );
    assert_eq!(h.result::<u64>(id("one"), wait).await.unwrap(), 49);
    assert_eq!(h.result::<i64>(id("many"), wait).await.unwrap(), 5);
    assert_eq!(
        h.result::<String>(id("raw"), wait).await.unwrap(),
        "welcomed bob"
    );
    match h.result::<i64>(id("unknown"), wait).await {
        Err(Error::JobDead { last_error, .. }) => {
            assert_eq!(
            last_error.as_deref(),
            Some("unknown task: 'py_only'. Registered tasks: ['add', 'greet', 'square', 'welcome']")
        )
        }
        other => panic!("{other:?}"),
    }
    pool.shutdown().await.unwrap();

    // Python reads what Rust saved, through TaskResult.get().
    let read = python(
        String::from(
            r#"
import honker, json, sys
db = honker.open(sys.argv[1])
q = db.queue("tasks")
ids = json.loads(sys.argv[2])
out = {k: honker.TaskResult(db, q, ids[k]).get(timeout=10) for k in ("kw", "one", "many")}
print(json.dumps(out))
"#,
        ),
        vec![path.display().to_string(), ids.to_string()],
    )
    .await;
    let read: serde_json::Value = serde_json::from_str(read.trim()).unwrap();
    assert_eq!(
        read,
        serde_json::json!({"kw": "hello ada", "one": 49, "many": 5})
    );
    // The TTL means the same on both sides: expires_at = saved + ttl.
    assert_eq!(
        result_ttl(&path, id("kw")),
        Some(7200),
        "greet's result_ttl"
    );
    let default = JobOptions::default().result_ttl.unwrap().as_secs() as i64;
    assert_eq!(result_ttl(&path, id("one")), Some(default));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
async fn rust_task_calls_are_run_by_python_workers_and_rust_reads_the_typed_results() {
    let (_d, path) = db();
    let h = Honker::open(&path).unwrap();
    let kw = greet::enqueue(&h, Greet { name: "ada".into() })
        .await
        .unwrap();
    let one = square::enqueue(&h, 9).await.unwrap();
    let named = add_named::enqueue(&h, Add { a: 40, b: 2 }).await.unwrap();
    let unknown = rust_only::enqueue(&h, 1).await.unwrap();
    let ids = serde_json::json!({
        "wait": [kw.id(), one.id(), named.id()],
        "unknown": unknown.id(),
    });
    let script = with_tasks(
        r#"
import asyncio, sqlite3, time
ids = json.loads(sys.argv[2])

def dead(i):
    c = sqlite3.connect(sys.argv[1])
    try:
        return c.execute("SELECT count(*) FROM _honker_dead WHERE id = ?", (i,)).fetchone()[0]
    finally:
        c.close()

async def main():
    stop = asyncio.Event()
    workers = asyncio.create_task(db.run_workers(queue="tasks", concurrency=2, stop_event=stop))
    deadline = time.time() + 60
    while time.time() < deadline:
        if all(q.get_result(i)[0] for i in ids["wait"]) and dead(ids["unknown"]):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await workers

asyncio.run(main())
print("done")
"#,
    );
    let out = python(script, vec![path.display().to_string(), ids.to_string()]).await;
    assert_eq!(out.trim(), "done");

    let wait = Duration::from_secs(5);
    let s: String = kw.result(&h, wait).await.unwrap();
    assert_eq!(s, "hello ada");
    let n: u64 = one.result(&h, wait).await.unwrap();
    assert_eq!(n, 81);
    let sum: i64 = named.result(&h, wait).await.unwrap();
    assert_eq!(sum, 42);
    match unknown.result(&h, wait).await {
        Err(Error::JobDead { last_error, .. }) => assert_eq!(
            last_error.as_deref(),
            Some("unknown task: 'rust_only'. Registered tasks: ['add', 'greet', 'py_only', 'square']")
        ),
        other => panic!("{other:?}"),
    }
    // Python's @task keeps results an hour by default: stored as
    // expires_at = saved + 3600, which Rust reads the same way.
    assert_eq!(result_ttl(&path, kw.id()), Some(3600));
}

/// Python's task definitions, then `rest`.
fn with_tasks(rest: &str) -> String {
    format!("{PY_TASKS}\n{rest}")
}

static HEARD: std::sync::Mutex<Option<honker_actors::StopReason>> = std::sync::Mutex::new(None);

#[job(queue = "py_cancels")]
async fn waits_for_cancel(ctx: honker_actors::JobContext, _n: u32) -> Result<(), JobError> {
    let why = ctx.stopping().await;
    *HEARD.lock().unwrap() = Some(why);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
async fn pythons_cancel_of_a_running_job_reaches_the_rust_handler() {
    let (_d, path) = db();
    let h = Honker::open(&path).unwrap();
    let id = waits_for_cancel::enqueue(&h, 1).await.unwrap().id();
    let pool = WorkerPool::builder(&h)
        .register(waits_for_cancel)
        .start()
        .await
        .unwrap();
    let q = h.queue("py_cancels");
    for _ in 0..3000 {
        if q.get_job(id)
            .await
            .unwrap()
            .is_some_and(|j| j.attempts == 1)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Python's cancel deletes the row (no dead record).
    let out = python(
        String::from(
            r#"
import honker, sys
q = honker.open(sys.argv[1]).queue("py_cancels")
print(q.cancel(int(sys.argv[2])))
"#,
        ),
        vec![path.display().to_string(), id.to_string()],
    )
    .await;
    assert_eq!(out.trim(), "True");
    let mut heard = None;
    for _ in 0..500 {
        heard = *HEARD.lock().unwrap();
        if heard.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(heard, Some(honker_actors::StopReason::Cancelled));
    pool.shutdown().await.unwrap();
    assert!(q.get_job(id).await.unwrap().is_none());
}

/// Takes the raw payloads the schedule below enqueues.
#[job(queue = "shared_ticks", raw)]
async fn shared_tick(_v: serde_json::Value) -> Result<(), JobError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
async fn a_python_scheduler_and_two_rust_pools_fire_each_boundary_once_between_them() {
    let (_d, path) = db();
    let h = Honker::open(&path).unwrap();
    let conn = honker_core::open(&path).unwrap();
    let mut s = honker_core::ScheduleSpec::new("shared", "shared_ticks", "@every 1s", "{}");
    s.zone = Some("UTC".into());
    honker_core::register_schedule(&conn, &s).unwrap();
    let first = honker_core::get_schedule(&conn, "shared")
        .unwrap()
        .unwrap()
        .next_fire_at;
    // Two Rust pools (two handles, as two processes would be): one leads.
    let other = Honker::open(&path).unwrap();
    let mut pools = Vec::new();
    for handle in [&h, &other] {
        pools.push(
            WorkerPool::builder(handle)
                .register(shared_tick)
                .scheduler_lock_ttl(Duration::from_secs(3))
                .start()
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Python stands by (its run() raises LockHeld while Rust leads), then
    // leads for 3 s once Rust's pool shuts down and gives the lock back.
    let py = tokio::task::spawn_blocking(move || {
        let py = honker_python();
        std::process::Command::new(py)
            .arg("-c")
            .arg(
                r#"
import asyncio, honker, sys, time
db = honker.open(sys.argv[1])
async def main():
    deadline = time.time() + 60
    while time.time() < deadline:
        stop = asyncio.Event()
        s = honker.Scheduler(db)
        async def stop_later():
            await asyncio.sleep(3)
            stop.set()
        try:
            t = asyncio.create_task(stop_later())
            await s.run(stop)
            print("led")
            return
        except honker.LockHeld:
            t.cancel()
            await asyncio.sleep(0.1)
asyncio.run(main())
"#,
            )
            .arg(&path)
            .output()
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for pool in pools {
        pool.shutdown().await.unwrap();
    }
    let out = py.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "led");
    let last = honker_core::get_schedule(&conn, "shared")
        .unwrap()
        .unwrap()
        .next_fire_at;
    // Boundaries Rust fired are recorded; those Python fired are the jobs
    // (still waiting: no Rust worker ran after the shutdown) it enqueued.
    let ours: i64 = conn
        .query_row("SELECT count(*) FROM _honker_schedule_runs", [], |r| {
            r.get(0)
        })
        .unwrap();
    let theirs: i64 = conn
        .query_row(
            "SELECT count(*) FROM _honker_live WHERE queue = 'shared_ticks'
               AND id NOT IN (SELECT job_id FROM _honker_schedule_runs)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        ours + theirs,
        last - first,
        "one job per boundary from {first} to {last}: {ours} fired by Rust, {theirs} by Python"
    );
    assert!(
        ours >= 2 && last - first - ours >= 2,
        "both led: {ours} of {}",
        last - first
    );
}
