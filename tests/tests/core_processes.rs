//! honker-core across processes: atomicity under SIGKILL and at exact
//! crash points, the watcher, concurrent bootstrap, and files that cannot
//! be written.

mod common;

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{child, run, ChildGuard};
use honker_core::EnqueueOptions;
use rusqlite::types::Value;
use rusqlite::Connection;

/// How long a child may take before the test gives up on it (and kills it).
const CHILD_LIMIT: Duration = Duration::from_secs(60);

fn ids(conn: &Connection, table: &str) -> Vec<i64> {
    let mut s = conn.prepare(&format!("SELECT id FROM {table}")).unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Every row of `table`, every column, by id.
fn rows(conn: &Connection, table: &str) -> Vec<Vec<Value>> {
    let mut s = conn
        .prepare(&format!("SELECT * FROM {table} ORDER BY id"))
        .unwrap();
    let n = s.column_count();
    s.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i)).collect())
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
        let mut c = ChildGuard::spawn(child("churn", &db).stdout(Stdio::piped()));
        let lines = c.stdout_lines();
        let mut seen = 0;
        while seen < wait_rounds {
            match lines.next_within(CHILD_LIMIT) {
                Some(_) => seen += 1,
                None => break,
            }
        }
        // Land the kill at a different offset inside the next batches.
        std::thread::sleep(Duration::from_micros(300 * round as u64));
        if c.try_wait().unwrap().is_none() {
            c.kill(); // SIGKILL
            kills += 1;
        } else {
            let status = c.wait_for_exit(CHILD_LIMIT);
            assert!(status.success(), "churn failed: {status}");
        }
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

/// The worker id the `crash-move` child claims under (see honker-child).
const CRASH_WORKER: &str = "crash-worker";

/// One multi-row operation of honker-core, set up on a fresh file so that
/// its next call moves job `moved` between live and dead; returns the
/// arguments of `honker-child crash-move` that run it.
struct MoveCase {
    name: &'static str,
    setup: fn(&Connection) -> (i64, Vec<String>),
    /// Whether the operation must move a row between the tables (`cancel`
    /// may also just delete; then there is no crash point to land on).
    must_move: bool,
}

fn claim_one(conn: &Connection) -> honker_core::ClaimedJob {
    let mut jobs =
        honker_core::claim_batch(conn, "crash", CRASH_WORKER, 1, Duration::from_secs(60)).unwrap();
    assert_eq!(jobs.len(), 1, "setup: one job claimed");
    jobs.remove(0)
}

fn lease_args(op: &str, job: &honker_core::ClaimedJob) -> Vec<String> {
    vec![op.into(), job.id.to_string(), job.attempts.to_string()]
}

const MOVE_CASES: &[MoveCase] = &[
    MoveCase {
        name: "retry with attempts exhausted",
        setup: |c| {
            let o = EnqueueOptions::default().max_attempts(1);
            honker_core::enqueue(c, "crash", "{}", &o).unwrap();
            let job = claim_one(c);
            (job.id, lease_args("retry", &job))
        },
        must_move: true,
    },
    MoveCase {
        name: "fail",
        setup: |c| {
            honker_core::enqueue(c, "crash", "{}", &EnqueueOptions::default()).unwrap();
            let job = claim_one(c);
            (job.id, lease_args("fail", &job))
        },
        must_move: true,
    },
    MoveCase {
        name: "sweep of expired rows",
        setup: |c| {
            let o = EnqueueOptions::default().expires(Duration::from_secs(3600));
            let pending = honker_core::enqueue(c, "crash", "{}", &o).unwrap();
            honker_core::enqueue(c, "crash", "{}", &o).unwrap();
            // A processing row whose claim lapsed after it expired.
            let job = claim_one(c);
            c.execute(
                "UPDATE _honker_live SET claim_expires_at = unixepoch() - 5 WHERE id = ?1",
                [job.id],
            )
            .unwrap();
            c.execute(
                "UPDATE _honker_live SET expires_at = unixepoch() - 10 WHERE expires_at IS NOT NULL",
                [],
            )
            .unwrap();
            (pending, vec!["sweep".into()])
        },
        must_move: true,
    },
    MoveCase {
        name: "claim dead-lettering an exhausted row",
        setup: |c| {
            let o = EnqueueOptions::default().max_attempts(1);
            honker_core::enqueue(c, "crash", "{}", &o).unwrap();
            let job = claim_one(c);
            // Its claim lapsed: the next claim takes attempt 2 of 1.
            c.execute(
                "UPDATE _honker_live SET claim_expires_at = unixepoch() - 5 WHERE id = ?1",
                [job.id],
            )
            .unwrap();
            (job.id, vec!["claim".into()])
        },
        must_move: true,
    },
    MoveCase {
        name: "claim dead-lettering an unusable payload",
        setup: |c| {
            c.execute(
                "INSERT INTO _honker_live (queue, payload) VALUES ('crash', x'00ff')",
                [],
            )
            .unwrap();
            (c.last_insert_rowid(), vec!["claim".into()])
        },
        must_move: true,
    },
    MoveCase {
        name: "requeue of a dead job",
        setup: |c| {
            honker_core::enqueue(c, "crash", "{}", &EnqueueOptions::default()).unwrap();
            let job = claim_one(c);
            assert!(honker_core::fail(c, CRASH_WORKER, job.lease(), "setup").unwrap());
            (job.id, vec!["requeue".into(), job.id.to_string()])
        },
        must_move: true,
    },
    MoveCase {
        name: "cancel",
        setup: |c| {
            let id = honker_core::enqueue(c, "crash", "{}", &EnqueueOptions::default()).unwrap();
            (id, vec!["cancel".into(), id.to_string()])
        },
        must_move: false,
    },
];

/// A child runs each operation that moves a job between `_honker_live` and
/// `_honker_dead`, and aborts exactly between its two statements, after the
/// copy and before the delete (a SQLite update hook, see `honker-child
/// crash-move`). The operation must have been one transaction: after the
/// crash both tables are exactly as before, and every job is in one of
/// them. (Unlike the random SIGKILL above, this lands on the crash point
/// every run.)
#[test]
fn a_crash_between_the_copy_and_the_delete_of_a_move_loses_no_job() {
    for case in MOVE_CASES {
        let name = case.name;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("move.db");
        let conn = honker_core::open(&db).unwrap();
        // Bystanders in another queue, one of them already dead.
        for _ in 0..2 {
            honker_core::enqueue(&conn, "other", "{}", &EnqueueOptions::default()).unwrap();
        }
        let gone = honker_core::claim_batch(&conn, "other", "w", 1, Duration::from_secs(60))
            .unwrap()
            .remove(0);
        assert!(honker_core::fail(&conn, "w", gone.lease(), "bystander").unwrap());
        let (moved, args) = (case.setup)(&conn);
        let live_before = rows(&conn, "_honker_live");
        let dead_before = rows(&conn, "_honker_dead");
        let all: HashSet<i64> = ids(&conn, "_honker_live")
            .into_iter()
            .chain(ids(&conn, "_honker_dead"))
            .collect();
        drop(conn);

        let out = run(child("crash-move", &db).args(&args), CHILD_LIMIT);
        let said = format!(
            "{name}: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );

        // Reopen without writing anything (SQLite recovers the WAL).
        let check = Connection::open(&db).unwrap();
        let integrity: String = check
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok", "{said}");
        let live: HashSet<i64> = ids(&check, "_honker_live").into_iter().collect();
        let dead: HashSet<i64> = ids(&check, "_honker_dead").into_iter().collect();
        let both: Vec<_> = live.intersection(&dead).collect();
        assert!(
            both.is_empty(),
            "jobs {both:?} are in live and dead\n{said}"
        );

        if out.status.signal() == Some(libc::SIGABRT) {
            let now: HashSet<i64> = live.union(&dead).copied().collect();
            assert_eq!(now, all, "every job is in exactly one table\n{said}");
            assert_eq!(
                rows(&check, "_honker_live"),
                live_before,
                "live rows unchanged: the move rolled back\n{said}"
            );
            assert_eq!(
                rows(&check, "_honker_dead"),
                dead_before,
                "dead rows unchanged: the move rolled back\n{said}"
            );
            // The same call, uninterrupted, does move the job: the crash
            // point was inside a real move.
            drop(check);
            let out = run(child("move", &db).args(&args), CHILD_LIMIT);
            assert!(
                out.status.success(),
                "{name}, uninterrupted: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let check = Connection::open(&db).unwrap();
            let (in_live, in_dead) = (
                ids(&check, "_honker_live").contains(&moved),
                ids(&check, "_honker_dead").contains(&moved),
            );
            let was_dead = dead_before.iter().any(|r| r[0] == Value::Integer(moved));
            assert_eq!(
                (in_live, in_dead),
                (was_dead, !was_dead),
                "{name}: job {moved} moves when uninterrupted"
            );
        } else {
            // No crash point was reached: only a single-statement delete may
            // do that, and then it removed the job from live without a copy.
            assert!(!case.must_move, "the child did not abort mid-move\n{said}");
            assert!(out.status.success(), "{said}");
            assert!(!live.contains(&moved) && !dead.contains(&moved), "{said}");
            let mut expected = all.clone();
            expected.remove(&moved);
            assert_eq!(live.union(&dead).copied().collect::<HashSet<_>>(), expected);
            eprintln!("{name}: a single-statement delete, no move to crash in");
        }
    }
}

/// The commit watch a `Honker` starts (`on_commit`) hears a commit by
/// another process, and not its rollback.
#[test]
fn a_commit_from_another_process_is_heard_but_not_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let honker = rt
        .block_on(async { honker_actors::Honker::open(&db) })
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let _guard = honker.on_commit(move || {
        let _ = tx.send(());
    });

    let out = run(&mut child("rollback", &db), CHILD_LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a rollback must not be heard"
    );

    let out = run(&mut child("commit", &db), CHILD_LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        rx.recv_timeout(Duration::from_secs(5)).is_ok(),
        "a commit must be heard"
    );
}

#[test]
fn many_processes_bootstrap_one_new_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let children: Vec<_> = (0..16)
        .map(|_| {
            ChildGuard::spawn(
                child("bootstrap", &db)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped()),
            )
        })
        .collect();
    for c in children {
        let out = c.output(CHILD_LIMIT);
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
        let out = run(child("open", path).uid(65534).gid(65534), CHILD_LIMIT);
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

    // A database in rollback-journal mode in a read-only directory: SQLite
    // opens it, but can switch it to WAL no more than it can journal a
    // write there; honker refuses it, naming the directory.
    let d3 = base.path().join("rojournal");
    std::fs::create_dir(&d3).unwrap();
    let f3 = d3.join("app.db");
    let plain = rusqlite::Connection::open(&f3).unwrap();
    plain.execute_batch("CREATE TABLE t(x)").unwrap();
    drop(plain);
    chmod(&f3, 0o666);
    chmod(&d3, 0o555);
    let got = open_as_user(&f3);
    assert!(got.starts_with("ERR ReadOnly"), "{got}");
    assert!(got.contains("rojournal is not writable"), "{got}");
    chmod(&d3, 0o755);

    // Nothing was lost or changed.
    chmod(&d2, 0o755);
    chmod(&f1, 0o644);
    let conn = honker_core::open(&f1).unwrap();
    assert_eq!(ids(&conn, "_honker_live"), vec![id]);
}
