//! Interop with the real `honker` Python package (pip `honker==0.2.4`):
//! each side claims what the other enqueues, reads the other's dead rows,
//! and opens the other's files.
//!
//! The interpreter comes from `$HONKER_PYTHON` or `target/interop-venv`
//! (made by `.ci/run`). The tests run when built with `cfg(honker_python)`
//! (`HONKER_PYTHON` or `CI` set, see `build.rs`), and then a missing Python
//! fails them; otherwise `cargo test` lists them as ignored, with the reason.

mod common;

use std::time::Duration;

use common::{honker_python, run_python};
use honker_core::{EnqueueOptions, JobState};

fn db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("interop.db");
    (dir, p)
}

#[test]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
fn python_enqueues_and_we_claim_in_order_with_the_right_fields() {
    let py = honker_python();
    let (_d, path) = db();
    let out = run_python(
        &py,
        r#"
import honker, json, sys
db = honker.open(sys.argv[1])
q = db.queue("interop", max_attempts=5)
ids = {
  "low": q.enqueue({"n": "low"}),
  "high": q.enqueue({"n": "high"}, priority=10),
  "later": q.enqueue({"n": "later"}, delay=3600),
  "expiring": q.enqueue({"n": "expiring"}, priority=5, expires=600),
}
print(json.dumps(ids))
"#,
        &[path.to_str().unwrap()],
    );
    let ids: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let id = |k: &str| ids[k].as_i64().unwrap();

    let conn = honker_core::open(&path).unwrap();
    let now = honker_core::now(&conn).unwrap();
    let jobs =
        honker_core::claim_batch(&conn, "interop", "rust-worker", 10, Duration::from_secs(60))
            .unwrap();
    let order: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(order, vec![id("high"), id("expiring"), id("low")]);
    for j in &jobs {
        assert_eq!(j.max_attempts, 5);
        assert_eq!(j.attempts, 1);
        let v: serde_json::Value = serde_json::from_str(&j.payload).unwrap();
        assert!(v["n"].is_string());
    }
    assert_eq!(jobs[0].priority, 10);
    let exp = jobs[1].expires_at.expect("expires_at set by python");
    assert!((now + 598..=now + 601).contains(&exp), "{exp} vs {now}");
    assert_eq!(jobs[2].expires_at, None);

    let later = honker_core::get_job(&conn, id("later")).unwrap().unwrap();
    assert_eq!(later.state, JobState::Pending);
    assert!(later.run_at >= now + 3598);

    let leases: Vec<_> = jobs.iter().map(|j| j.lease()).collect();
    assert_eq!(
        honker_core::ack_batch(&conn, "rust-worker", &leases)
            .unwrap()
            .len(),
        3
    );
    let s = honker_core::queue_stats(&conn, "interop").unwrap();
    assert_eq!((s.pending_due, s.scheduled, s.processing), (0, 1, 0));
}

#[test]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
fn we_enqueue_and_python_claims_in_order_and_acks() {
    let py = honker_python();
    let (_d, path) = db();
    let conn = honker_core::open(&path).unwrap();
    let o = EnqueueOptions::default;
    let a = honker_core::enqueue(&conn, "interop", r#"{"n":"a"}"#, &o()).unwrap();
    let b = honker_core::enqueue(&conn, "interop", r#"{"n":"b"}"#, &o().priority(3)).unwrap();
    let c = honker_core::enqueue(&conn, "interop", r#"{"n":"c"}"#, &o().priority(3)).unwrap();
    let later = honker_core::enqueue(
        &conn,
        "interop",
        r#"{"n":"later"}"#,
        &o().delay(Duration::from_secs(600)),
    )
    .unwrap();
    let out = run_python(
        &py,
        r#"
import honker, json, sys
db = honker.open(sys.argv[1])
q = db.queue("interop")
# A limited batch takes the two highest-priority jobs (python returns a
# batch in rowid order, so compare it as a set) ...
first_two = q.claim_batch("py-worker", 2)
# ... and one-at-a-time claims then show the full order.
jobs = list(first_two)
while (job := q.claim_one("py-worker")) is not None:
    jobs.append(job)
acked = q.ack_batch([j.id for j in jobs], "py-worker")
print(json.dumps({"first_two": sorted(j.id for j in first_two),
                  "ids": [j.id for j in jobs], "payloads": [j.payload for j in jobs],
                  "attempts": [j.attempts for j in jobs], "acked": acked}))
"#,
        &[path.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let got: Vec<i64> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    assert_eq!(v["first_two"], serde_json::json!([b, c]));
    assert_eq!(got[2], a, "the priority-0 job is claimed last");
    assert_eq!(got.len(), 3, "the delayed job is not claimed");
    assert_eq!(v["payloads"][2]["n"], "a");
    assert_eq!(v["attempts"][0], 1);
    assert_eq!(v["acked"], 3);
    assert!(honker_core::get_job(&conn, a).unwrap().is_none());
    assert!(honker_core::get_job(&conn, later).unwrap().is_some());
}

#[test]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
fn dead_rows_written_by_either_side_are_read_by_the_other() {
    let py = honker_python();
    let (_d, path) = db();
    let conn = honker_core::open(&path).unwrap();
    // Ours: a job we fail.
    let ours =
        honker_core::enqueue(&conn, "interop", r#"{"side":"rust"}"#, &Default::default()).unwrap();
    let j = honker_core::claim_batch(&conn, "interop", "rw", 1, Duration::from_secs(60))
        .unwrap()
        .remove(0);
    assert!(honker_core::fail(&conn, "rw", j.lease(), "failed in rust").unwrap());

    let out = run_python(
        &py,
        r#"
import honker, json, sys
db = honker.open(sys.argv[1])
q = db.queue("interop", max_attempts=1)
theirs = q.enqueue({"side": "python"})
job = q.claim_one("py-worker")
assert job.id == theirs, (job.id, theirs)
assert job.fail("failed in python")
rows = db.query("SELECT id, payload, last_error, attempts FROM _honker_dead ORDER BY id")
print(json.dumps({"theirs": theirs, "dead": [dict(r) for r in rows]}))
"#,
        &[path.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let dead = v["dead"].as_array().unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0]["id"], ours);
    assert_eq!(dead[0]["last_error"], "failed in rust");
    assert_eq!(dead[0]["payload"], r#"{"side":"rust"}"#);

    let theirs = v["theirs"].as_i64().unwrap();
    let d = honker_core::get_dead(&conn, theirs).unwrap().unwrap();
    assert_eq!(d.last_error.as_deref(), Some("failed in python"));
    assert_eq!(d.attempts, 1);
    let listed: Vec<i64> = honker_core::list_dead(&conn, "interop", 10, 0)
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(listed, vec![theirs, ours], "the newest death first");
    // And a requeued python dead job is claimable by python again.
    assert!(honker_core::requeue_dead(&conn, theirs).unwrap());
    let out = run_python(
        &py,
        r#"
import honker, sys
q = honker.open(sys.argv[1]).queue("interop")
job = q.claim_one("py-worker")
print(job.id, job.attempts)
"#,
        &[path.to_str().unwrap()],
    );
    assert_eq!(out.trim(), format!("{theirs} 1"));
}

#[test]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
fn a_file_created_by_either_side_opens_cleanly_on_the_other() {
    let py = honker_python();
    // Python creates; we open, check and use it.
    let (_d1, py_file) = db();
    run_python(
        &py,
        r#"
import honker, sys
db = honker.open(sys.argv[1])
db.queue("made-by-python").enqueue({"hello": "rust"})
"#,
        &[py_file.to_str().unwrap()],
    );
    let conn = honker_core::open(&py_file).unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let j =
        honker_core::claim_batch(&conn, "made-by-python", "rw", 5, Duration::from_secs(9)).unwrap();
    assert_eq!(j.len(), 1);
    assert_eq!(j[0].payload, r#"{"hello": "rust"}"#);

    // We create; Python opens, checks and uses it.
    let (_d2, rs_file) = db();
    let conn = honker_core::open(&rs_file).unwrap();
    honker_core::enqueue(
        &conn,
        "made-by-rust",
        r#"{"hello":"python"}"#,
        &Default::default(),
    )
    .unwrap();
    drop(conn);
    let out = run_python(
        &py,
        r#"
import honker, sys
db = honker.open(sys.argv[1])
print(db.query("PRAGMA integrity_check")[0]["integrity_check"])
job = db.queue("made-by-rust").claim_one("py")
print(job.payload["hello"], job.ack())
"#,
        &[rs_file.to_str().unwrap()],
    );
    assert_eq!(out.trim(), "ok\npython True");
}

#[test]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
fn queue_controls_and_unique_keys_are_harmless_to_python_and_rate_limits_count_together() {
    let py = honker_python();
    let (_d, path) = db();
    let conn = honker_core::open(&path).unwrap();
    // Every control this crate stores, on the queue Python works.
    honker_core::pause_queue(&conn, "other").unwrap();
    honker_core::set_max_running(&conn, "interop", Some(5)).unwrap();
    let rate = honker_core::RateLimit {
        limit: 4,
        per: Duration::from_secs(3600),
    };
    honker_core::set_rate_limit(&conn, "interop", Some(rate)).unwrap();
    // A unique job's key, and a cancelled job (dead, "cancelled").
    let unique = EnqueueOptions::default().unique(honker_core::Unique::key("k"));
    honker_core::enqueue_outcome(&conn, "other", "1", &unique).unwrap();
    let gone = honker_core::enqueue(&conn, "other", "2", &Default::default()).unwrap();
    honker_core::cancel(&conn, gone).unwrap();
    // Two claims through our rate limit: 2 of the window's 4 used.
    for n in 0..2 {
        honker_core::enqueue(&conn, "interop", &n.to_string(), &Default::default()).unwrap();
    }
    let ours =
        honker_core::claim_batch(&conn, "interop", "rw", 10, Duration::from_secs(60)).unwrap();
    assert_eq!(ours.len(), 2);
    for j in &ours {
        assert!(honker_core::ack(&conn, "rw", j.lease()).unwrap());
    }
    let out = run_python(
        &py,
        r#"
import honker, json, sys
db = honker.open(sys.argv[1])
q = db.queue("interop", max_attempts=2)
a = q.enqueue({"n": "a"})
b = q.enqueue({"n": "b"})
c = q.enqueue({"n": "c"})
got = q.claim_one("py")
assert got.ack()
got = q.claim_one("py")
assert got.retry(delay_s=0, error="again")
got = q.claim_one("py")
assert got.fail("no")
# The rate limit Rust claims count in: 2 of 4 used this window.
allowed = [db.try_rate_limit("interop", 4, 3600) for _ in range(3)]
dead = [r["id"] for r in db.query("SELECT id FROM _honker_dead")]
print(json.dumps({"ids": [a, b, c], "allowed": allowed, "dead": dead}))
"#,
        &[path.to_str().unwrap()],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["allowed"], serde_json::json!([true, true, false]));
    assert_eq!(
        v["dead"].as_array().unwrap().len(),
        2,
        "ours (cancelled) and the one Python failed"
    );
    // Python's two allowed calls used up the window for our claims too.
    honker_core::enqueue(&conn, "interop", "9", &Default::default()).unwrap();
    let none =
        honker_core::claim_batch(&conn, "interop", "rw", 10, Duration::from_secs(60)).unwrap();
    assert!(none.is_empty(), "the window is used up on both sides");
    let left = honker_core::queue_stats(&conn, "interop").unwrap();
    assert!(left.pending_due >= 2, "{left:?}");
}

#[test]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
fn named_locks_are_one_lock_for_python_and_rust() {
    let py = honker_python();
    let (_d, path) = db();
    let conn = honker_core::open(&path).unwrap();
    let minute = Duration::from_secs(60);
    assert!(honker_core::try_lock(&conn, "nightly", "rust-1", minute).unwrap());
    // Python cannot take it while Rust holds it.
    let out = run_python(
        &py,
        r#"
import honker, sys
db = honker.open(sys.argv[1])
try:
    with db.lock("nightly", ttl=60):
        print("acquired")
except honker.LockHeld:
    print("held")
"#,
        &[path.to_str().unwrap()],
    );
    assert_eq!(out.trim(), "held");
    assert!(honker_core::unlock(&conn, "nightly", "rust-1").unwrap());
    // Python holds it (in a row Rust reads); Rust cannot take it.
    let out = run_python(
        &py,
        r#"
import honker, sys
db = honker.open(sys.argv[1])
lock = db.lock("nightly", ttl=60)
lock.__enter__()
print(lock.owner)
"#,
        &[path.to_str().unwrap()],
    );
    let python_owner = out.trim().to_string();
    let (holder, _) = honker_core::lock_holder(&conn, "nightly").unwrap().unwrap();
    assert_eq!(holder, python_owner);
    assert!(!honker_core::try_lock(&conn, "nightly", "rust-2", minute).unwrap());
}

/// Schedule expressions of every shape the format knows.
const CRON_CORPUS: &[&str] = &[
    "* * * * *",
    "*/5 * * * *",
    "0 * * * *",
    "30 2 * * *",
    "30 1 * * *",
    "0 3 * * *",
    "15,45 1-3 * * *",
    "0 9 * * 1-5",
    "0 0 * * 0",
    "0 0 1 * *",
    "0 0 13 * 5",
    "0 12 1 1,7 *",
    "59 23 31 12 *",
    "0 0 29 2 *",
    "5/15 * * * *",
    "0-30/10 2 * * *",
    "*/20 * * * * *",
    "30 30 2 * * *",
    "0 0 0 1 * *",
    "59 59 1 * * *",
    "@every 1s",
    "@every 90m",
    "@every 1d",
    "0 0 31 2 *",
];

#[test]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
fn next_boundaries_match_the_python_packages_across_dst_changes() {
    let py = honker_python();
    // Around each 2026 DST change of two zones, every 20 minutes for 6
    // hours, plus ordinary instants through the year.
    let changes = [
        1_772_953_200i64,
        1_793_512_800,
        1_774_746_000,
        1_792_890_000,
    ];
    let mut instants: Vec<i64> = changes
        .iter()
        .flat_map(|c| (-9..9).map(move |k| c + k * 1200))
        .collect();
    instants.extend((0..12).map(|m| 1_767_225_600 + m * 2_629_800 + 12_345));
    for zone in ["America/New_York", "Europe/London"] {
        let corpus = serde_json::json!({"exprs": CRON_CORPUS, "instants": instants});
        let out = std::process::Command::new(&py)
            .env("TZ", zone)
            .arg("-c")
            .arg(
                r#"
import json, sys
from honker import _honker_native as n
c = json.loads(sys.argv[1])
out = []
for e in c["exprs"]:
    for t in c["instants"]:
        try:
            out.append(n.cron_next_after(e, t))
        except ValueError:
            out.append(None)
print(json.dumps(out))
"#,
            )
            .arg(corpus.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: Vec<Option<i64>> = serde_json::from_slice(&out.stdout).unwrap();
        // Ours on the host's wall clock, in a process under the same TZ.
        let mine = std::process::Command::new(env!("CARGO_BIN_EXE_honker-child"))
            .env("TZ", zone)
            .arg("cron-next")
            .arg(corpus.to_string())
            .output()
            .unwrap();
        assert!(
            mine.status.success(),
            "{}",
            String::from_utf8_lossy(&mine.stderr)
        );
        let ours: Vec<Option<i64>> = serde_json::from_slice(&mine.stdout).unwrap();
        assert_eq!(ours.len(), theirs.len());
        let mut compared = 0;
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            let (expr, at) = (
                CRON_CORPUS[i / instants.len()],
                instants[i % instants.len()],
            );
            assert_eq!(o, t, "{zone}: next boundary of {expr:?} after {at}");
            compared += 1;
        }
        assert_eq!(compared, CRON_CORPUS.len() * instants.len());
        // A schedule given the zone by name computes the same.
        for (i, o) in ours.iter().enumerate() {
            let (expr, at) = (
                CRON_CORPUS[i / instants.len()],
                instants[i % instants.len()],
            );
            let named = honker_core::next_boundary(expr, at, Some(zone)).ok();
            assert_eq!(&named, o, "{zone} by name: {expr:?} after {at}");
        }
        eprintln!("{zone}: {compared} next boundaries match the Python package's, by name too");
    }
}

#[test]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
fn schedules_are_one_table_for_python_and_rust() {
    let py = honker_python();
    let (_d, path) = db();
    let conn = honker_core::open(&path).unwrap();
    // Ours, due now; Python's scheduler fires it and lists it.
    let mut ours =
        honker_core::ScheduleSpec::new("rust-tick", "ticks", "@every 1s", r#"{"from":"rust"}"#);
    ours.zone = Some("UTC".into());
    honker_core::register_schedule(&conn, &ours).unwrap();
    let now = honker_core::now(&conn).unwrap();
    conn.execute(
        "UPDATE _honker_scheduler_tasks SET next_fire_at = ?1 WHERE name = 'rust-tick'",
        [now],
    )
    .unwrap();
    // Python's tick looks at `now`, however long its interpreter takes
    // to start: at its own clock, a second or more later, it would also
    // find the next boundaries due and fire them too.
    let out = run_python(
        &py,
        r#"
import honker, json, sys
db = honker.open(sys.argv[1])
s = honker.Scheduler(db)
names = sorted(t["name"] for t in s.list())
with db.transaction() as tx:
    tx.query("SELECT honker_scheduler_tick(?)", [int(sys.argv[2])])
s.add(name="py-tick", queue="ticks", schedule=honker.crontab("* * * * *"), payload={"from": "python"})
print(json.dumps(names))
"#,
        &[path.to_str().unwrap(), &now.to_string()],
    );
    assert_eq!(out.trim(), r#"["rust-tick"]"#);
    let jobs = honker_core::claim_batch(&conn, "ticks", "w", 10, Duration::from_secs(60)).unwrap();
    assert_eq!(jobs.len(), 1, "Python fired our schedule");
    assert_eq!(jobs[0].payload, r#"{"from":"rust"}"#);
    // Theirs, read and fired by us.
    let theirs = honker_core::get_schedule(&conn, "py-tick")
        .unwrap()
        .unwrap();
    assert_eq!(
        (theirs.spec.queue.as_str(), theirs.spec.expr.as_str()),
        ("ticks", "* * * * *")
    );
    assert!(theirs.enabled);
    let fired = honker_core::fire_due(&conn, theirs.next_fire_at).unwrap();
    assert!(fired
        .iter()
        .any(|f| f.schedule == "py-tick" && f.boundary == theirs.next_fire_at));
    let job = honker_core::get_job(
        &conn,
        fired
            .iter()
            .find(|f| f.schedule == "py-tick")
            .unwrap()
            .job_id,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&job.payload).unwrap(),
        serde_json::json!({"from": "python"})
    );
}
