//! The `honker` command on files the `honker` Python package wrote and no
//! honker-rs process ever opened: reading commands show them as they are
//! (and add nothing to them); writing commands leave them working for
//! Python.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

const NEEDS_PYTHON: &str = "needs the honker Python package: set HONKER_PYTHON to a python \
                            that can `import honker` (.ci/run does)";

/// `$HONKER_PYTHON`, else the virtualenv `.ci/run` makes; a missing one
/// fails the test (it runs only where Python is promised).
fn python() -> PathBuf {
    let py = std::env::var_os("HONKER_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/interop-venv/bin/python")
        });
    let ok = Command::new(&py)
        .args(["-c", "import honker"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot `import honker`. {NEEDS_PYTHON}",
        py.display()
    );
    py
}

fn py(script: &str, db: &str) -> String {
    let out = Command::new(python())
        .env("TZ", "UTC")
        .args(["-c", script, db])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn honker(args: &[&str]) -> (i32, String, String) {
    let out = assert_cmd::Command::new(assert_cmd::cargo::cargo_bin!("honker"))
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run honker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> Value {
    let (code, out, err) = honker(args);
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn tables(db: &str) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut s = c
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
fn a_file_python_wrote_is_read_as_it_is_and_stays_workable_for_python() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("py.db").display().to_string();
    py(
        r#"
import honker, sys
db = honker.open(sys.argv[1])
q = db.queue("emails")
for i in range(3):
    q.enqueue({"to": f"u{i}@x"})
q.enqueue({"to": "later"}, delay=600)
job = q.claim_one("py-worker")
job.fail("smtp timeout")
r = db.queue("reports")
r.enqueue({"r": 1}, priority=5)
r.claim_one("py-reporter")
honker.Scheduler(db).add(name="nightly", queue="reports",
    schedule=honker.crontab("0 3 * * *"), payload={"kind": "nightly"})
"#,
        &db,
    );
    let before = tables(&db);
    assert!(
        !before.iter().any(|t| t == "_honker_queue_controls"),
        "{before:?}"
    );

    let stats = json(&["stats", &db, "--json"]);
    let q = |name: &str| {
        stats["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["queue"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: {stats}"))
    };
    let emails = q("emails");
    assert_eq!(
        (
            &emails["pending"],
            &emails["scheduled"],
            &emails["dead"],
            &emails["paused"]
        ),
        (
            &Value::from(2),
            &Value::from(1),
            &Value::from(1),
            &Value::from(false)
        )
    );
    assert_eq!(q("reports")["running"], 1);
    let dead = json(&["jobs", &db, "-q", "emails", "-s", "dead", "--json"]);
    let dead_job = &dead["jobs"][0];
    assert_eq!(dead_job["last_error"], "smtp timeout");
    let detail = json(&["job", &db, &dead_job["id"].to_string(), "--json"]);
    assert_eq!(detail["job"]["last_error"], "smtp timeout");
    assert_eq!(detail["job"]["payload"], r#"{"to": "u0@x"}"#);
    let running = json(&["jobs", &db, "-q", "reports", "-s", "running", "--json"]);
    assert_eq!(running["jobs"][0]["worker_id"], "py-reporter");
    let cron = json(&["cron", &db, "list", "--json"]);
    assert_eq!(cron["schedules"][0]["name"], "nightly");
    assert_eq!(cron["schedules"][0]["enabled"], true);
    let doctor = json(&["doctor", &db, "--json"]);
    assert_eq!(doctor["ok"], true, "{doctor}");
    assert_eq!(
        tables(&db),
        before,
        "reading commands added tables to Python's file"
    );

    // Writing commands: retry Python's dead job, pause and resume, enqueue;
    // Python claims what the command line put back and enqueued.
    let id = dead_job["id"].as_i64().unwrap().to_string();
    let (code, out, err) = honker(&["dead", &db, "retry", &id]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = honker(&["pause", &db, "emails"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = honker(&["resume", &db, "emails"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = honker(&[
        "enqueue",
        &db,
        "cli",
        r#"{"from":"cli"}"#,
        "--priority",
        "9",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let claimed = py(
        r#"
import honker, sys, json
db = honker.open(sys.argv[1])
ids = []
q = db.queue("emails")
while (job := q.claim_one("py-2")) is not None:
    ids.append(job.id)
    job.ack()
cli = db.queue("cli").claim_one("py-2")
print(json.dumps({"emails": ids, "cli": cli.payload}))
"#,
        &db,
    );
    let claimed: Value = serde_json::from_str(claimed.trim()).unwrap();
    let emails: Vec<i64> = serde_json::from_value(claimed["emails"].clone()).unwrap();
    assert!(
        emails.contains(&id.parse().unwrap()),
        "requeued job claimed: {claimed}"
    );
    assert_eq!(
        emails.len(),
        3,
        "two pending and the requeued one: {claimed}"
    );
    assert_eq!(claimed["cli"], serde_json::json!({"from": "cli"}));
}

#[test]
#[cfg_attr(
    not(honker_python),
    ignore = "needs the honker Python package: set HONKER_PYTHON to a python that can `import honker` (.ci/run does)"
)]
fn cron_next_agrees_with_python() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unused").display().to_string();
    for expr in [
        "0 3 * * *",
        "*/15 9-17 * * 1-5",
        "0 0 1 * *",
        "30 2 * * 0",
        "@every 90s",
    ] {
        let ours = json(&[
            "cron",
            "next",
            expr,
            "--after",
            "1767225600",
            "--count",
            "5",
            "--json",
        ]);
        let theirs = py(
            &format!(
                r#"
import json
from honker import _honker_native as n
t, out = 1767225600, []
for _ in range(5):
    t = n.cron_next_after({expr:?}, t)
    out.append(t)
print(json.dumps(out))
"#
            ),
            &db,
        );
        let theirs: Value = serde_json::from_str(theirs.trim()).unwrap();
        assert_eq!(ours["next"], theirs, "{expr}");
    }
}
