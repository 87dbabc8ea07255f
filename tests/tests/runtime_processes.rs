//! Worker pools across processes on one file.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use common::{child, eventually, run, ChildGuard};
use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};
use honker_tests::record;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_in_two_processes_run_each_job_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mp.db");
    let h = Honker::open(&db).unwrap();
    let total = 3000u32;
    h.transaction(move |tx| {
        tx.execute("CREATE TABLE mp_done (job_id INTEGER, pid INTEGER)", [])?;
        for n in 0..total {
            record::enqueue_tx(tx, n)?;
        }
        Ok::<_, honker_actors::Error>(())
    })
    .await
    .unwrap();
    let other = ChildGuard::spawn(
        child("pool", &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
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
        .register(record)
        .concurrency(8)
        .start()
        .await
        .unwrap();
    let out = other.output_async(Duration::from_secs(120)).await;
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

/// The payloads `from_child` ran with.
static CHILD_JOB_RUNS: Mutex<Vec<serde_json::Value>> = Mutex::new(Vec::new());
#[job(queue = "child")]
async fn from_child(_ctx: JobContext, v: serde_json::Value) -> Result<(), JobError> {
    CHILD_JOB_RUNS.lock().unwrap().push(v);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_from_another_process_wakes_an_idle_pool() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wake.db");
    let h = Honker::open(&db).unwrap();
    let pool = WorkerPool::builder(&h)
        .register(from_child)
        .start()
        .await
        .unwrap();
    // Idle: nothing scheduled, so no timer could run the job; only the
    // watcher seeing the other process's commit can.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = run(&mut child("commit", &db), Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(Duration::from_secs(10), async || !CHILD_JOB_RUNS
            .lock()
            .unwrap()
            .is_empty())
        .await,
        "the idle pool never ran the other process's job"
    );
    pool.shutdown().await.unwrap();
    assert_eq!(
        *CHILD_JOB_RUNS.lock().unwrap(),
        [serde_json::json!({"from": "child"})]
    );
}

/// The attempt number of each run of `long` in this process.
static RECLAIMED: Mutex<Vec<u32>> = Mutex::new(Vec::new());
#[job(queue = "long")]
async fn long(ctx: JobContext, _n: u32) -> Result<(), JobError> {
    RECLAIMED.lock().unwrap().push(ctx.attempt());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_is_reclaimed_after_its_process_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("long.db");
    let h = Honker::open(&db).unwrap();
    let id = long::enqueue(&h, 1).await.unwrap().id();
    let mut c = ChildGuard::spawn(child("long", &db).stdout(Stdio::piped()));
    let lines = c.stdout_lines();
    let line = lines.next_within(Duration::from_secs(30));
    assert_eq!(line, Some(format!("running {id}")));
    let claimed = h.queue("long").get_job(id).await.unwrap().unwrap();
    let first_deadline = claimed.claim_expires_at.expect("claimed");
    // While the child lives, its heartbeats keep the claim valid well past
    // its 1 s visibility timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let job = h.queue("long").get_job(id).await.unwrap().unwrap();
    let now: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT unixepoch()", [], |r| r.get(0))
        .unwrap();
    assert_eq!(job.attempts, 1);
    let deadline = job.claim_expires_at.expect("still claimed");
    assert!(
        deadline > first_deadline && deadline >= now,
        "heartbeats extend the claim: deadline {deadline} (first {first_deadline}), now {now}"
    );
    c.kill(); // SIGKILL
    let pool = WorkerPool::builder(&h)
        .register(long)
        .visibility_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(15), async || !RECLAIMED
            .lock()
            .unwrap()
            .is_empty())
        .await,
        "the job was never reclaimed"
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
    assert_eq!(
        *RECLAIMED.lock().unwrap(),
        [2],
        "run once more, as the second claim, after the first process died"
    );
}

/// With the default settings, a scheduler leader killed with SIGKILL (in
/// another process) is followed by a pool of this process that fires
/// every `@every 1s` boundary of the gap, each once: the leader's lock
/// runs out (15 s) before the boundaries it missed are older than the
/// misfire window (30 s). With the Python package's 60 s, 26 of them
/// were never fired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_scheduler_leader_loses_and_doubles_no_boundary_with_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lead.db");
    let h = Honker::open(&db).unwrap();
    let watch = honker_actors::core::open(&db).unwrap();
    let mut s = honker_actors::core::ScheduleSpec::new("tick", "mp", "@every 1s", "{}");
    s.zone = Some("UTC".into());
    honker_actors::core::register_schedule(&watch, &s).unwrap();
    let mut leader = ChildGuard::spawn(child("lead", &db).stdout(Stdio::piped()));
    let lines = leader.stdout_lines();
    assert_eq!(
        lines.next_within(Duration::from_secs(30)).as_deref(),
        Some("leading")
    );
    // A follower with the defaults.
    let follower = WorkerPool::builder(&h)
        .register(record)
        .scheduler(true)
        .start()
        .await
        .unwrap();
    let boundaries = || -> Vec<i64> {
        let mut stmt = watch
            .prepare("SELECT boundary FROM _honker_schedule_runs ORDER BY boundary")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert!(eventually(Duration::from_secs(10), async || boundaries().len() >= 2).await);
    leader.kill(); // SIGKILL
    let killed_at: i64 = watch
        .query_row("SELECT unixepoch()", [], |r| r.get(0))
        .unwrap();
    // The follower leads within the default TTL, and goes on firing.
    assert!(
        eventually(Duration::from_secs(40), async || {
            boundaries().last().is_some_and(|b| *b >= killed_at + 20)
        })
        .await,
        "the follower fires the boundaries after the leader died: {:?}",
        boundaries()
    );
    let holder = honker_actors::core::lock_holder(&watch, "honker-scheduler").unwrap();
    assert_eq!(holder.map(|h| h.0).as_deref(), Some(follower.worker_id()));
    follower.shutdown().await.unwrap();
    let b = boundaries();
    let distinct: std::collections::BTreeSet<_> = b.iter().collect();
    assert_eq!(distinct.len(), b.len(), "a boundary fired twice: {b:?}");
    assert!(
        b.windows(2).all(|w| w[1] == w[0] + 1),
        "a boundary was lost across the takeover: {b:?}"
    );
}

/// One ctrl-c lets a running job finish within the shutdown timeout; a
/// second cuts that short: the job is stopped at once, its claim given
/// back with the attempt unburned, and the process exits.
#[test]
fn a_second_ctrl_c_stops_the_running_jobs_now_and_gives_their_claims_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ctrlc.db");
    drop(honker_actors::core::open(&db).unwrap());
    let mut pool = ChildGuard::spawn(child("ctrl-c", &db).stdout(Stdio::piped()));
    let lines = pool.stdout_lines();
    let running = lines
        .next_within(Duration::from_secs(30))
        .expect("the job starts");
    let id: i64 = running.strip_prefix("running ").unwrap().parse().unwrap();
    pool.interrupt();
    // The default grace is 30 s: the job is still waited for.
    assert!(
        lines.silent_for(Duration::from_millis(700)),
        "still graceful"
    );
    assert!(pool.try_wait().unwrap().is_none(), "still running");
    let second = std::time::Instant::now();
    pool.interrupt();
    assert_eq!(
        lines.next_within(Duration::from_secs(10)).as_deref(),
        Some("stopped")
    );
    assert!(pool.wait_for_exit(Duration::from_secs(5)).success());
    let took = second.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after the second ctrl-c"
    );
    let conn = honker_actors::core::open(&db).unwrap();
    let job = honker_actors::core::get_job(&conn, id)
        .unwrap()
        .expect("live");
    assert_eq!(
        (job.state, job.attempts, job.worker_id),
        (honker_actors::core::JobState::Pending, 0, None),
        "given back, attempt unburned"
    );
}
