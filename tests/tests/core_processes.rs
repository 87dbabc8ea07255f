//! honker-core across processes: atomicity under SIGKILL, the watcher,
//! concurrent bootstrap, and files that cannot be written.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::child;
use honker_core::{EnqueueOptions, Watcher};
use rusqlite::Connection;

fn ids(conn: &Connection, table: &str) -> Vec<i64> {
    let mut s = conn.prepare(&format!("SELECT id FROM {table}")).unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn sigkill_during_multi_row_operations_loses_no_job() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let conn = honker_core::open(&db).unwrap();
    let total = 6000;
    let mut enqueued = HashSet::new();
    conn.execute_batch("BEGIN").unwrap();
    for i in 0..total {
        // max_attempts 1 makes every retry a move to dead; a third expire so
        // that the sweep has work too.
        let mut o = EnqueueOptions::default().max_attempts(1);
        if i % 3 == 0 {
            o = o.expires(Duration::from_secs(3600));
        }
        enqueued.insert(honker_core::enqueue(&conn, "crash", "{}", &o).unwrap());
    }
    conn.execute_batch(
        "UPDATE _honker_live SET expires_at = unixepoch() - 1 WHERE expires_at IS NOT NULL; COMMIT",
    )
    .unwrap();

    // Kill the churning child at several points in its run.
    let mut kills = 0;
    for (round, wait_rounds) in [3u64, 17, 31, 45].into_iter().enumerate() {
        let mut c = child("churn", &db).stdout(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(c.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while seen < wait_rounds {
            match lines.next() {
                Some(Ok(_)) => seen += 1,
                _ => break,
            }
        }
        // Land the kill at a different offset inside the next batches.
        std::thread::sleep(Duration::from_micros(300 * round as u64));
        if c.try_wait().unwrap().is_none() {
            c.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        c.wait().unwrap();
    }
    assert!(
        kills >= 2,
        "the child must be killed mid-run at least twice (got {kills})"
    );

    let check = Connection::open(&db).unwrap();
    let integrity: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let live: HashSet<i64> = ids(&check, "_honker_live").into_iter().collect();
    let dead: HashSet<i64> = ids(&check, "_honker_dead").into_iter().collect();
    assert!(live.is_disjoint(&dead), "a job is in both live and dead");
    let all: HashSet<i64> = live.union(&dead).copied().collect();
    assert_eq!(all, enqueued, "every job is in exactly one of live or dead");
    assert!(!dead.is_empty());
}

#[test]
fn watcher_signals_a_commit_from_another_process_but_not_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    honker_core::open(&db).unwrap();
    let watcher = Watcher::start(&db).unwrap();
    let sub = watcher.subscribe();

    let out = child("rollback", &db).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !sub.wait_timeout(Duration::from_millis(300)),
        "a rollback must not signal"
    );

    let out = child("commit", &db).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        sub.wait_timeout(Duration::from_secs(5)),
        "a commit must signal"
    );
    assert!(watcher.changes() >= 1);
    assert_eq!(watcher.error(), None);
}

#[test]
fn watcher_survives_checkpoints_and_removes_dropped_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let conn = honker_core::open(&db).unwrap();
    let watcher = Watcher::start(&db).unwrap();
    let a = watcher.subscribe();
    let b = watcher.subscribe();
    assert_eq!(watcher.subscriber_count(), 2);
    for round in 0..3 {
        honker_core::enqueue(&conn, "q", "1", &EnqueueOptions::default()).unwrap();
        assert!(a.wait_timeout(Duration::from_secs(5)), "round {round}");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        // settle: a checkpoint may or may not count as a change
        std::thread::sleep(Duration::from_millis(20));
        a.try_take();
    }
    assert!(b.try_take(), "every subscriber is signalled");
    drop(b);
    assert_eq!(watcher.subscriber_count(), 1);
    watcher.stop();
    // `a` outlives the watcher without harm
    assert!(!a.wait_timeout(Duration::from_millis(10)));
}

#[test]
fn watcher_stops_and_no_longer_calls_back() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let conn = honker_core::open(&db).unwrap();
    let watcher = Watcher::start(&db).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let _sub = watcher.on_change(move || {
        c2.fetch_add(1, Ordering::SeqCst);
    });
    honker_core::enqueue(&conn, "q", "1", &EnqueueOptions::default()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while calls.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(calls.load(Ordering::SeqCst) >= 1);
    watcher.stop();
    let before = calls.load(Ordering::SeqCst);
    honker_core::enqueue(&conn, "q", "1", &EnqueueOptions::default()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(calls.load(Ordering::SeqCst), before);
}

#[test]
fn many_processes_bootstrap_one_new_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let children: Vec<_> = (0..16)
        .map(|_| {
            child("bootstrap", &db)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "bootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let conn = honker_core::open(&db).unwrap();
    assert_eq!(ids(&conn, "_honker_live").len(), 16);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Try `honker_core::open` as an unprivileged user (root ignores file
/// permissions, so as root the attempt runs in a child as `nobody`).
fn open_as_user(path: &Path) -> String {
    if is_root() {
        use std::os::unix::process::CommandExt;
        let out = child("open", path).uid(65534).gid(65534).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    } else {
        match honker_core::open(path) {
            Ok(_) => "OK".into(),
            Err(e) => format!(
                "ERR {}: {e}",
                match e {
                    honker_core::Error::ReadOnly { .. } => "ReadOnly",
                    _ => "Other",
                }
            ),
        }
    }
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn read_only_file_or_directory_gives_a_typed_error_naming_the_path() {
    let base = tempfile::tempdir().unwrap();
    chmod(base.path(), 0o755);

    // A read-only database file in a writable directory.
    let d1 = base.path().join("rofile");
    std::fs::create_dir(&d1).unwrap();
    chmod(&d1, 0o777);
    let f1 = d1.join("app.db");
    let conn = honker_core::open(&f1).unwrap();
    let id = honker_core::enqueue(&conn, "q", "1", &EnqueueOptions::default()).unwrap();
    drop(conn);
    chmod(&f1, 0o444);
    let got = open_as_user(&f1);
    assert!(got.starts_with("ERR ReadOnly"), "{got}");
    assert!(got.contains("app.db"), "{got}");

    // A database file in a read-only directory (no room for -wal / -shm).
    let d2 = base.path().join("rodir");
    std::fs::create_dir(&d2).unwrap();
    let f2 = d2.join("app.db");
    drop(honker_core::open(&f2).unwrap());
    chmod(&f2, 0o666);
    chmod(&d2, 0o555);
    let got = open_as_user(&f2);
    assert!(got.starts_with("ERR ReadOnly"), "{got}");
    assert!(got.contains("rodir"), "{got}");

    // A new file in a read-only directory.
    let got = open_as_user(&d2.join("new.db"));
    assert!(got.starts_with("ERR ReadOnly"), "{got}");
    assert!(!d2.join("new.db").exists());

    // Nothing was lost or changed.
    chmod(&d2, 0o755);
    chmod(&f1, 0o644);
    let conn = honker_core::open(&f1).unwrap();
    assert_eq!(ids(&conn, "_honker_live"), vec![id]);
}
