//! Queue controls across processes: a pause, a running limit and a rate
//! limit set in one process hold for pools in others (child processes).

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use common::{child, eventually, ChildGuard};
use honker_actors::core::RateLimit;
use honker_actors::Honker;
use honker_tests::{ctl_job, listen_job, unix_ms, CTL_TABLES};

fn setup(jobs: u32, ms: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ctl.db");
    let conn = honker_core::open(&db).unwrap();
    conn.execute_batch(CTL_TABLES).unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for _ in 0..jobs {
        ctl_job::enqueue_tx(&tx, ms).unwrap();
    }
    tx.commit().unwrap();
    (dir, db)
}

/// Start `n` child pools of `concurrency` workers and wait until each
/// says it runs.
fn pools(db: &std::path::Path, n: usize, concurrency: usize) -> Vec<ChildGuard> {
    (0..n)
        .map(|_| {
            let mut c = ChildGuard::spawn(
                child("ctl", db)
                    .arg(concurrency.to_string())
                    .stdout(Stdio::piped()),
            );
            let line = c.stdout_lines().next_within(Duration::from_secs(30));
            assert_eq!(line.as_deref(), Some("started"));
            c
        })
        .collect()
}

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_in_one_process_stops_starts_in_another_within_50ms_and_survives_a_restart() {
    let (_d, db) = setup(400, 20);
    let h = Honker::open(&db).unwrap();
    let q = h.queue("ctl");
    let watch = rusqlite::Connection::open(&db).unwrap();
    let first = pools(&db, 1, 4);
    assert!(
        eventually(Duration::from_secs(30), async || count(
            &watch,
            "SELECT count(*) FROM ctl_starts"
        ) >= 10)
        .await
    );
    assert!(q.pause().await.unwrap());
    let paused_at = unix_ms();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let late: i64 = watch
        .query_row(
            "SELECT count(*) FROM ctl_starts WHERE at_ms > ?1",
            [paused_at + 50],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(late, 0, "jobs started more than 50 ms after the pause");
    let stats = q.stats().await.unwrap();
    assert!(
        stats.pending_due > 0,
        "work was left when paused: {stats:?}"
    );
    assert_eq!(stats.processing, 0, "claimed-not-started jobs went back");

    // A new process on the file stays paused too.
    drop(first);
    let _second = pools(&db, 1, 4);
    let before = count(&watch, "SELECT count(*) FROM ctl_starts");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&watch, "SELECT count(*) FROM ctl_starts"), before);
    assert!(q.resume().await.unwrap());
    assert!(
        eventually(Duration::from_secs(30), async || count(
            &watch,
            "SELECT count(*) FROM ctl_starts"
        ) > before)
        .await,
        "resumed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_limit_of_3_over_4_pools_never_has_more_than_3_running() {
    let (_d, db) = setup(80, 40);
    let h = Honker::open(&db).unwrap();
    h.queue("ctl").set_max_running(Some(3)).await.unwrap();
    // One worker each: four could run four at once, only the file's limit
    // keeps it to three.
    let _pools = pools(&db, 4, 1);
    let watch = rusqlite::Connection::open(&db).unwrap();
    let mut most = 0;
    let mut samples = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count(&watch, "SELECT count(*) FROM ctl_ends") < 80 {
        assert!(std::time::Instant::now() < deadline, "not drained");
        let running = count(
            &watch,
            "SELECT count(*) FROM _honker_live WHERE queue = 'ctl' AND state = 'processing'
               AND claim_expires_at >= unixepoch()",
        );
        most = most.max(running);
        samples += 1;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert!(most <= 3, "sampled {most} claims held at once");
    assert!(samples > 50, "{samples} samples");
    // And as the handlers saw it: at most 3 runs overlap at any instant.
    let mut events: Vec<(i64, i32)> = Vec::new();
    let mut stmt = watch
        .prepare("SELECT s.at_ms, e.at_ms FROM ctl_starts s JOIN ctl_ends e USING (job_id)")
        .unwrap();
    for row in stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
    {
        let (s, e) = row.unwrap();
        events.push((s, 1));
        events.push((e, -1));
    }
    // Ends before starts at the same millisecond.
    events.sort();
    let (mut now, mut peak) = (0, 0);
    for (_, d) in events {
        now += d;
        peak = peak.max(now);
    }
    assert_eq!(
        peak, 3,
        "at most 3 runs overlapped, and the limit was reached"
    );
    let pids = count(&watch, "SELECT count(DISTINCT pid) FROM ctl_starts");
    assert!(
        pids >= 3,
        "the limit was shared, not one pool's: {pids} pools ran jobs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_of_10_per_second_over_3_pools_starts_at_most_10_in_any_window() {
    let (_d, db) = setup(35, 1);
    let h = Honker::open(&db).unwrap();
    let rate = RateLimit {
        limit: 10,
        per: Duration::from_secs(1),
    };
    h.queue("ctl").set_rate_limit(Some(rate)).await.unwrap();
    let _pools = pools(&db, 3, 4);
    let watch = rusqlite::Connection::open(&db).unwrap();
    assert!(
        eventually(Duration::from_secs(60), async || count(
            &watch,
            "SELECT count(*) FROM ctl_ends"
        ) == 35)
        .await,
        "drained"
    );
    let mut per_window: HashMap<i64, i64> = HashMap::new();
    let mut stmt = watch.prepare("SELECT claimed_s FROM ctl_starts").unwrap();
    for s in stmt.query_map([], |r| r.get::<_, i64>(0)).unwrap() {
        *per_window.entry(s.unwrap()).or_default() += 1;
    }
    assert!(
        per_window.values().all(|n| *n <= 10),
        "starts per one-second window: {per_window:?}"
    );
    assert!(
        per_window.len() >= 4,
        "35 starts at 10/s take 4 windows: {per_window:?}"
    );
    // Counted where Python's try_rate_limit counts, one row per window,
    // never over the limit, each start in its own claim's window. A claim
    // counted in a window that ended before a worker took it is given back
    // unstarted and counted again later, so the counts may exceed the
    // starts (on a loaded machine they do).
    let mut counted: HashMap<i64, i64> = HashMap::new();
    let mut stmt = watch
        .prepare("SELECT window_start, count FROM _honker_rate_limits WHERE name = 'ctl'")
        .unwrap();
    for row in stmt
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
    {
        let (w, n) = row.unwrap();
        counted.insert(w, n);
    }
    assert!(counted.values().all(|n| *n <= 10), "counted: {counted:?}");
    for (w, starts) in &per_window {
        assert!(
            counted.get(w).is_some_and(|c| c >= starts),
            "window {w}: {starts} starts, counted {counted:?}"
        );
    }
    assert!(counted.values().sum::<i64>() >= 35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_in_one_process_reaches_a_running_handler_in_another_within_50ms() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cancel.db");
    let h = Honker::open(&db).unwrap();
    let id = listen_job::enqueue(&h, 1).await.unwrap().id();
    let mut c = ChildGuard::spawn(child("listen", &db).stdout(Stdio::piped()));
    let lines = c.stdout_lines();
    assert_eq!(
        lines.next_within(Duration::from_secs(30)),
        Some(format!("running {id}"))
    );
    let at = std::time::Instant::now();
    assert!(h.queue("listen").cancel(id).await.unwrap());
    let line = lines.next_within(Duration::from_secs(10));
    let took = at.elapsed();
    assert_eq!(line, Some(format!("stopped {id} Cancelled")));
    assert!(took < Duration::from_millis(50), "heard after {took:?}");
    // The handler's Ok is never written: the row stays dead as cancelled.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dead = h.queue("listen").list_dead(10, 0).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0]
        .last_error
        .as_deref()
        .unwrap()
        .starts_with("cancelled"));
}

#[test]
fn processes_racing_to_enqueue_one_unique_job_insert_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("uniq.db");
    drop(honker_core::open(&db).unwrap());
    let racers: Vec<ChildGuard> = (0..4)
        .map(|_| ChildGuard::spawn(child("uniq", &db).stdout(Stdio::piped())))
        .collect();
    // Let every process open the file, then start them together.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(format!("{}.go", db.display()), "").unwrap();
    let mut new = 0;
    for r in racers {
        let out = r.output(Duration::from_secs(120));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        new += line
            .strip_prefix("new ")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("child said {line:?}"));
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows = count(
        &conn,
        "SELECT count(*) FROM _honker_live WHERE queue = 'uniq'",
    );
    assert_eq!(
        rows, 20,
        "one row per order, of 800 enqueues from 16 tasks in 4 processes"
    );
    assert_eq!(
        new, 20,
        "exactly one enqueue per order was told it inserted"
    );
    let keys = count(
        &conn,
        "SELECT count(*) FROM _honker_unique WHERE queue = 'uniq'",
    );
    assert_eq!(keys, 20);
}
