//! Worker pools across processes on one file.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{child, eventually};
use honker_actors::{Honker, Job, JobContext, JobError, WorkerPool};
use honker_tests::Record;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_in_two_processes_run_each_job_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mp.db");
    let h = Honker::open(&db).unwrap();
    let total = 3000u32;
    h.transaction(move |tx| {
        tx.execute("CREATE TABLE mp_done (job_id INTEGER, pid INTEGER)", [])?;
        for n in 0..total {
            honker_actors::enqueue_tx::<Record>(tx, &n)?;
        }
        Ok::<_, honker_actors::Error>(())
    })
    .await
    .unwrap();
    let other = child("pool", &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Start this process's pool once the child is working, so that both
    // compete for the queue (a loaded machine may start the child late).
    let watch = rusqlite::Connection::open(&db).unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || {
            watch
                .query_row("SELECT count(*) FROM mp_done", [], |r| r.get::<_, i64>(0))
                .unwrap()
                > 0
        })
        .await,
        "the child process never ran a job"
    );
    let pool = WorkerPool::builder(&h)
        .register(Record)
        .concurrency(8)
        .start()
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || other.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(Duration::from_secs(60), async || {
            let s = h.queue("mp").stats().await.unwrap();
            s.pending_due + s.processing == 0
        })
        .await
    );
    pool.shutdown().await.unwrap();

    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut runs: HashMap<i64, usize> = HashMap::new();
    let mut pids: HashMap<i64, usize> = HashMap::new();
    let mut s = conn.prepare("SELECT job_id, pid FROM mp_done").unwrap();
    for row in s
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
    {
        let (id, pid) = row.unwrap();
        *runs.entry(id).or_default() += 1;
        *pids.entry(pid).or_default() += 1;
    }
    assert_eq!(runs.len(), total as usize, "every job ran");
    assert!(runs.values().all(|&n| n == 1), "no job ran twice");
    assert_eq!(pids.len(), 2, "both processes took part: {pids:?}");
}

static CHILD_JOB_RUNS: AtomicUsize = AtomicUsize::new(0);
struct FromChild;
impl Job for FromChild {
    const NAME: &'static str = "from_child";
    const QUEUE: &'static str = "child";
    type Args = serde_json::Value;
    type Output = ();
    async fn run(&self, _ctx: JobContext, v: serde_json::Value) -> Result<(), JobError> {
        assert_eq!(v["from"], "child");
        CHILD_JOB_RUNS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_from_another_process_wakes_an_idle_pool() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wake.db");
    let h = Honker::open(&db).unwrap();
    let pool = WorkerPool::builder(&h)
        .register(FromChild)
        .start()
        .await
        .unwrap();
    // Idle: nothing scheduled, so no timer could run the job; only the
    // watcher seeing the other process's commit can.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = child("commit", &db).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(Duration::from_secs(10), async || CHILD_JOB_RUNS
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    pool.shutdown().await.unwrap();
}

static RECLAIMED: AtomicUsize = AtomicUsize::new(0);
struct LongHere;
impl Job for LongHere {
    const NAME: &'static str = "long";
    const QUEUE: &'static str = "long";
    type Args = u32;
    type Output = ();
    async fn run(&self, ctx: JobContext, _n: u32) -> Result<(), JobError> {
        assert_eq!(
            ctx.attempt(),
            2,
            "second claim, after the first process died"
        );
        RECLAIMED.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_is_reclaimed_after_its_process_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("long.db");
    let h = Honker::open(&db).unwrap();
    let id = h.enqueue::<LongHere>(&1).await.unwrap();
    let mut c = child("long", &db).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    assert_eq!(line, format!("running {id}"));
    // While the child lives, its heartbeats keep the claim well past 1 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let job = h.queue("long").get_job(id).await.unwrap().unwrap();
    assert_eq!(job.attempts, 1);
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();
    let pool = WorkerPool::builder(&h)
        .register(LongHere)
        .visibility_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(15), async || RECLAIMED
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    assert!(
        eventually(Duration::from_secs(5), async || h
            .queue("long")
            .get_job(id)
            .await
            .unwrap()
            .is_none())
        .await
    );
    pool.shutdown().await.unwrap();
}
