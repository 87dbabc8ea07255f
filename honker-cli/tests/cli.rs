//! The `honker` command against real files: each command's output and
//! effect, `--json` parsed back, and bad input refused with a clear message
//! and a non-zero exit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use honker_core::rusqlite::Connection;
use honker_core::{EnqueueOptions, ScheduleSpec};
use serde_json::Value;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn honker(args: &[&str]) -> Out {
    let out = assert_cmd::Command::new(assert_cmd::cargo::cargo_bin!("honker"))
        .args(args)
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run honker");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run, expect success, parse stdout as JSON.
fn json(args: &[&str]) -> Value {
    let out = honker(args);
    assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", out.stdout))
}

fn ok(args: &[&str]) -> String {
    let out = honker(args);
    assert_eq!(out.code, 0, "{args:?}: {}{}", out.stdout, out.stderr);
    out.stdout
}

fn fails(args: &[&str], says: &str) -> Out {
    let out = honker(args);
    assert_ne!(out.code, 0, "{args:?} should fail: {}", out.stdout);
    assert!(
        out.stderr.contains(says),
        "{args:?}: stderr should say {says:?}: {}",
        out.stderr
    );
    out
}

fn file() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    honker_core::open(&path).unwrap();
    let s = path.display().to_string();
    (dir, path, s)
}

fn conn(p: &Path) -> Connection {
    honker_core::open(p).unwrap()
}

/// The database file's bytes, after folding the WAL into it.
fn settled_bytes(p: &Path) -> Vec<u8> {
    let c = Connection::open(p).unwrap();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    drop(c);
    std::fs::read(p).unwrap()
}

#[test]
fn reading_commands_never_create_a_file_and_never_write_one() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("tpyo.db");
    let t = typo.display().to_string();
    for args in [
        vec!["stats", &t],
        vec!["jobs", &t, "--queue", "q"],
        vec!["job", &t, "1"],
        vec!["cron", &t, "list"],
        vec!["doctor", &t],
        vec!["dead", &t, "retry", "--all", "--dry-run"],
        vec!["pause", &t, "q"],
        vec!["enqueue", &t, "q", "1"],
    ] {
        let out = fails(&args, "tpyo.db");
        assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
        assert!(!typo.exists(), "{args:?} created the file");
    }

    let (_d, path, p) = file();
    let c = conn(&path);
    let id = honker_core::enqueue(&c, "q", "1", &EnqueueOptions::default()).unwrap();
    honker_core::claim_batch(&c, "q", "w", 1, Duration::from_secs(60)).unwrap();
    honker_core::fail(
        &c,
        "w",
        honker_core::get_job(&c, id)
            .unwrap()
            .map(|j| honker_core::Lease {
                id,
                attempts: j.attempts,
            })
            .unwrap(),
        "boom",
    )
    .unwrap();
    drop(c);
    let before = settled_bytes(&path);
    for args in [
        vec!["stats", &p],
        vec!["stats", &p, "--json"],
        vec!["jobs", &p, "--queue", "q", "--state", "dead"],
        vec!["job", &p, "1"],
        vec!["cron", &p, "list"],
        vec!["doctor", &p],
        vec!["dead", &p, "retry", "--all", "--dry-run"],
        vec!["dead", &p, "purge", "1", "--dry-run"],
    ] {
        ok(&args);
    }
    assert_eq!(settled_bytes(&path), before, "a reading command wrote");
    // At rest (no connection open): nothing is created beside the file.
    let listing = || {
        let mut v: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let files = listing();
    assert_eq!(files.len(), 1, "{files:?}");
    ok(&["stats", &p]);
    ok(&["doctor", &p]);
    assert_eq!(listing(), files, "a reading command created files");
}

#[test]
fn names_and_errors_from_the_file_never_put_control_characters_on_the_terminal() {
    let (_d, path, p) = file();
    let c = conn(&path);
    // Another binding allowed these; ours never writes them.
    c.execute(
        "INSERT INTO _honker_dead (id, queue, payload, last_error) VALUES (7, ?1, '{}', ?2)",
        [
            "\u{1b}[2J\u{1b}]0;PWNED\u{7}q",
            "boom \u{1b}[41mERR\u{1b}[0m\nsecond line",
        ],
    )
    .unwrap();
    for args in [
        vec!["stats", &p],
        vec!["job", &p, "7"],
        vec!["dead", &p, "retry", "7", "--dry-run"],
    ] {
        let out = ok(&args);
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{7}'),
            "{args:?}: {out:?}"
        );
    }
    c.execute(
        "INSERT INTO _honker_live (queue, payload, state, worker_id, claim_expires_at)
         VALUES (?1, '{}', 'processing', ?2, 1)",
        ["stuck\u{1b}[31mRED\u{7}\r", "w\u{1b}[2K\u{9b}"],
    )
    .unwrap();
    let out = honker(&["doctor", &p]).stdout;
    assert!(out.contains("WARN  claims"), "{out}");
    assert!(
        !out.chars().any(|ch| ch.is_control() && ch != '\n'),
        "doctor: {out:?}"
    );
    let out = ok(&["jobs", &p, "--queue", "q\u{1b}]0;x\u{7}"]);
    assert!(!out.contains('\u{1b}'), "an argument echoed: {out:?}");
    assert!(
        ok(&["job", &p, "7"]).contains("second line"),
        "newlines of an error are kept"
    );
}

#[test]
fn output_cut_short_by_the_reader_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("honker"))
        .args([
            "cron",
            "next",
            "* * * * * *",
            "--after",
            "0",
            "--count",
            "10000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is gone (`| head -1`).
    let out = child.wait_with_output().unwrap();
    assert!(first.starts_with('1'), "{first}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "not a panic");
}

#[test]
fn stats_and_jobs_list_every_state_and_their_json_parses_back() {
    let (_d, path, p) = file();
    let c = conn(&path);
    let pending = honker_core::enqueue(&c, "emails", r#"{"to":"a"}"#, &Default::default()).unwrap();
    let later = EnqueueOptions::default().delay(Duration::from_secs(600));
    let scheduled = honker_core::enqueue(&c, "emails", r#"{"to":"b"}"#, &later).unwrap();
    let running = honker_core::enqueue(&c, "reports", "1", &Default::default()).unwrap();
    let claimed =
        honker_core::claim_batch(&c, "reports", "w-1", 1, Duration::from_secs(60)).unwrap();
    let one = EnqueueOptions::default().max_attempts(1);
    let dead = honker_core::enqueue(&c, "reports", "2", &one).unwrap();
    let got = honker_core::claim_batch(&c, "reports", "w-1", 1, Duration::from_secs(60)).unwrap();
    honker_core::fail(&c, "w-1", got[0].lease(), "smtp timeout").unwrap();
    honker_core::pause_queue(&c, "emails").unwrap();

    let doc = json(&["stats", &p, "--json"]);
    let queues = doc["queues"].as_array().unwrap();
    let emails = &queues[0];
    assert_eq!(emails["queue"], "emails");
    assert_eq!(
        (
            &emails["pending"],
            &emails["scheduled"],
            &emails["running"],
            &emails["dead"]
        ),
        (
            &Value::from(1),
            &Value::from(1),
            &Value::from(0),
            &Value::from(0)
        )
    );
    assert_eq!(emails["paused"], true);
    let due = emails["next_due_at"].as_i64().unwrap();
    assert!(
        (599..=601).contains(&(due - doc["now"].as_i64().unwrap())),
        "{due}"
    );
    let reports = &queues[1];
    assert_eq!(
        (&reports["running"], &reports["dead"]),
        (&Value::from(1), &Value::from(1))
    );

    let text = ok(&["stats", &p]);
    assert!(text.starts_with("QUEUE"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("emails") && l.contains("yes")),
        "{text}"
    );

    let ids = |state: &str, queue: &str| -> Vec<i64> {
        let doc = json(&["jobs", &p, "--queue", queue, "--state", state, "--json"]);
        assert_eq!(doc["state"], state);
        doc["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                assert_eq!(j["state"], state, "{j}");
                j["id"].as_i64().unwrap()
            })
            .collect()
    };
    assert_eq!(ids("pending", "emails"), [pending]);
    assert_eq!(ids("scheduled", "emails"), [scheduled]);
    assert_eq!(ids("running", "reports"), [running]);
    assert_eq!(claimed[0].id, running);
    assert_eq!(ids("dead", "reports"), [dead]);
    let dead_text = ok(&["jobs", &p, "--queue", "reports", "--state", "dead"]);
    assert!(dead_text.contains("smtp timeout"), "{dead_text}");
    let running_text = ok(&["jobs", &p, "-q", "reports", "-s", "running"]);
    assert!(running_text.contains("w-1"), "{running_text}");
    assert!(ok(&["jobs", &p, "-q", "none"]).contains("no pending jobs on queue none"));
    let paged = json(&[
        "jobs", &p, "-q", "emails", "-s", "pending", "--limit", "1", "--offset", "1", "--json",
    ]);
    assert!(paged["jobs"].as_array().unwrap().is_empty());
}

#[test]
fn job_shows_payload_attempts_error_times_result_and_schedule() {
    let (_d, path, p) = file();
    let c = conn(&path);
    let one = EnqueueOptions::default().max_attempts(1);
    let task = honker_core::task_payload("send_email", &serde_json::json!({"to": "a@b"})).unwrap();
    let id = honker_core::enqueue(&c, "emails", &task, &one).unwrap();
    let got = honker_core::claim_batch(&c, "emails", "w", 1, Duration::from_secs(60)).unwrap();
    honker_core::fail(&c, "w", got[0].lease(), "mailbox full").unwrap();
    let doc = json(&["job", &p, &id.to_string(), "--json"]);
    let job = &doc["job"];
    assert_eq!(
        (&job["state"], &job["name"]),
        (&Value::from("dead"), &Value::from("send_email"))
    );
    assert_eq!(job["payload"], task.as_str());
    assert_eq!(
        (&job["attempts"], &job["max_attempts"]),
        (&Value::from(1), &Value::from(1))
    );
    assert_eq!(job["last_error"], "mailbox full");
    assert!(job["died_at"].as_i64().unwrap() >= job["created_at"].as_i64().unwrap());
    let text = ok(&["job", &p, &id.to_string()]);
    assert!(
        text.contains("mailbox full") && text.contains("\"to\": \"a@b\""),
        "{text}"
    );

    // A job that succeeded left only its result.
    let done = honker_core::enqueue(&c, "emails", "1", &Default::default()).unwrap();
    let got = honker_core::claim_batch(&c, "emails", "w", 1, Duration::from_secs(60)).unwrap();
    honker_core::save_result(&c, done, r#"{"sent":true}"#, None).unwrap();
    honker_core::ack(&c, "w", got[0].lease()).unwrap();
    let doc = json(&["job", &p, &done.to_string(), "--json"]);
    assert!(doc["job"].is_null());
    assert_eq!(doc["result"], r#"{"sent":true}"#);
    assert!(ok(&["job", &p, &done.to_string()]).contains("finished"));

    // A job a schedule fired names it.
    honker_core::register_schedule(
        &c,
        &ScheduleSpec::new("nightly", "reports", "0 3 * * *", "{}"),
    )
    .unwrap();
    let fired = honker_core::run_schedule_now(&c, "nightly")
        .unwrap()
        .unwrap();
    let doc = json(&["job", &p, &fired.to_string(), "--json"]);
    assert_eq!(doc["fired_by"]["schedule"], "nightly");

    fails(&["job", &p, "999"], "no job 999");
}

#[test]
fn a_dead_job_whose_unique_key_another_holds_is_refused_by_name_and_the_rest_retried() {
    let (_d, path, p) = file();
    let c = conn(&path);
    let unique = EnqueueOptions::default()
        .max_attempts(1)
        .unique(honker_core::Unique::key("nightly-report"));
    let first = honker_core::enqueue(&c, "r", "1", &unique).unwrap();
    let got = honker_core::claim_batch(&c, "r", "w", 1, Duration::from_secs(60)).unwrap();
    honker_core::fail(&c, "w", got[0].lease(), "boom").unwrap();
    let holder = honker_core::enqueue(&c, "r", "2", &unique).unwrap();
    assert_ne!(holder, first, "a dead job holds no key against a new one");
    let other = dead_job(&c, "s", "timeout");

    let out = honker(&["dead", &p, "retry", &first.to_string(), &other.to_string()]);
    assert_eq!(out.code, 1, "a refusal fails the command: {}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("requeued 1 dead job(s): {other}")),
        "the other id is still retried: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains(&format!(
            "job {first} refused: job {first} cannot be requeued: its unique key \"nightly-report\" is held by job {holder}"
        )),
        "{}",
        out.stderr
    );
    assert!(
        honker_core::get_job(&c, first).unwrap().is_none(),
        "still dead"
    );
    assert_eq!(honker_core::list_dead(&c, "r", 10, 0).unwrap()[0].id, first);

    let doc = json_failing(&["dead", &p, "retry", &first.to_string(), "--json"]);
    assert_eq!(doc["refused"][0]["id"], first);
    assert!(
        doc["refused"][0]["error"]
            .as_str()
            .unwrap()
            .contains(&format!("held by job {holder}")),
        "{doc}"
    );
    assert_eq!(doc["count"], 0);
}

#[test]
fn dead_jobs_found_by_payload_text_are_retried_alone() {
    let (_d, path, p) = file();
    let c = conn(&path);
    let one = EnqueueOptions::default().max_attempts(1);
    let call = |to: &str| {
        honker_core::task_payload("send_email", &serde_json::json!({ "to": to })).unwrap()
    };
    let ann = honker_core::enqueue(&c, "m", &call("ann@x"), &one).unwrap();
    let bob = honker_core::enqueue(&c, "m", &call("bob@x"), &one).unwrap();
    for j in honker_core::claim_batch(&c, "m", "w", 2, Duration::from_secs(60)).unwrap() {
        honker_core::fail(&c, "w", j.lease(), "smtp").unwrap();
    }
    let doc = json(&[
        "dead",
        &p,
        "retry",
        "--queue",
        "m",
        "--search",
        "ann@",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(doc["count"], 1);
    assert!(
        honker_core::get_dead(&c, ann).unwrap().is_some(),
        "a dry run changes nothing"
    );
    let doc = json(&["dead", &p, "retry", "--all", "--search", "ann@", "--json"]);
    assert_eq!(doc["count"], 1);
    assert!(honker_core::get_job(&c, ann).unwrap().is_some());
    assert!(
        honker_core::get_dead(&c, bob).unwrap().is_some(),
        "bob@ does not match"
    );
    fails(
        &["dead", &p, "purge", &bob.to_string(), "--search", "bob"],
        "--error-contains and --search filter --queue or --all",
    );
}

/// Run, expect exit code 1 (done in part), parse stdout as JSON.
fn json_failing(args: &[&str]) -> Value {
    let out = honker(args);
    assert_eq!(out.code, 1, "{args:?}: {}{}", out.stdout, out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", out.stdout))
}

#[test]
fn jobs_are_found_by_name_or_argument_text() {
    let (_d, path, p) = file();
    let c = conn(&path);
    let call = |name: &str, to: &str| {
        honker_core::task_payload(name, &serde_json::json!({ "to": to })).unwrap()
    };
    let o = EnqueueOptions::default();
    let ann = honker_core::enqueue(&c, "m", &call("send_email", "ann@x"), &o).unwrap();
    let bob = honker_core::enqueue(&c, "m", &call("send_email", "bob@x"), &o).unwrap();
    let rep = honker_core::enqueue(&c, "m", &call("report", "ann@x"), &o).unwrap();
    let found = |state: &str, text: &str| -> Vec<i64> {
        let doc = json(&[
            "jobs", &p, "-q", "m", "-s", state, "--search", text, "--json",
        ]);
        doc["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(found("pending", "send_email"), [ann, bob]);
    assert_eq!(found("pending", "ann@"), [ann, rep]);
    assert!(found("pending", "nobody").is_empty());
    let text = ok(&["jobs", &p, "-q", "m", "--search", "report"]);
    assert!(
        text.contains(&rep.to_string()) && !text.contains("send_email"),
        "{text}"
    );
    let j = honker_core::claim_batch(&c, "m", "w", 1, Duration::from_secs(60)).unwrap();
    honker_core::fail(&c, "w", j[0].lease(), "smtp").unwrap();
    assert_eq!(found("dead", "ann@"), [ann]);
    assert!(found("dead", "bob@").is_empty());
    assert_eq!(found("pending", "bob@"), [bob]);
}

fn dead_job(c: &Connection, queue: &str, error: &str) -> i64 {
    let one = EnqueueOptions::default().max_attempts(1);
    let id = honker_core::enqueue(c, queue, "1", &one).unwrap();
    let got = honker_core::claim_batch(c, queue, "w", 1, Duration::from_secs(60)).unwrap();
    assert_eq!(got[0].id, id);
    honker_core::fail(c, "w", got[0].lease(), error).unwrap();
    id
}

#[test]
fn dead_jobs_are_retried_and_purged_by_id_queue_filter_and_all() {
    let (_d, path, p) = file();
    let c = conn(&path);
    let a1 = dead_job(&c, "a", "timeout");
    let a2 = dead_job(&c, "a", "refused");
    let b1 = dead_job(&c, "b", "timeout");
    let b2 = dead_job(&c, "b", "timeout");
    let c1 = dead_job(&c, "c", "bad");
    let dead_ids = |q: &str| -> Vec<i64> {
        honker_core::list_dead(&c, q, 100, 0)
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect()
    };

    // A dry run lists and changes nothing.
    let doc = json(&["dead", &p, "retry", "--all", "--dry-run", "--json"]);
    assert_eq!(doc["count"], 5);
    assert_eq!(doc["dry_run"], true);
    assert_eq!(dead_ids("a").len() + dead_ids("b").len(), 4);

    // By id: the one named is back to pending; a missing id is reported.
    let out = honker(&["dead", &p, "retry", &a1.to_string(), "999"]);
    assert_eq!(
        out.code, 1,
        "a missing id fails the command: {}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("requeued 1 dead job(s): {a1}")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("not dead (nothing done): 999"),
        "{}",
        out.stdout
    );
    let back = honker_core::get_job(&c, a1).unwrap().unwrap();
    assert_eq!(
        (back.state, back.attempts),
        (honker_core::JobState::Pending, 0)
    );

    // By queue and error text.
    let doc = json(&[
        "dead",
        &p,
        "purge",
        "--queue",
        "b",
        "--error-contains",
        "timeout",
        "--json",
    ]);
    assert_eq!(doc["count"], 2);
    assert!(dead_ids("b").is_empty());
    assert!(
        honker_core::get_job(&c, b1).unwrap().is_none()
            && honker_core::get_job(&c, b2).unwrap().is_none()
    );

    // By id, purge; then all.
    assert!(ok(&["dead", &p, "purge", &c1.to_string()])
        .contains(&format!("purged 1 dead job(s): {c1}")));
    assert!(honker_core::get_dead(&c, c1).unwrap().is_none());
    assert!(ok(&["dead", &p, "retry", "--all"]).contains("requeued 1 dead job(s)"));
    assert!(honker_core::get_job(&c, a2).unwrap().is_some());

    fails(&["dead", &p, "retry"], "say which dead jobs");
    fails(
        &["dead", &p, "retry", "1", "--error-contains", "x"],
        "--error-contains",
    );
    fails(&["dead", &p, "bury", "--all"], "invalid value 'bury'");
}

#[test]
fn cancel_pause_resume_and_enqueue_say_what_they_changed() {
    let (_d, path, p) = file();
    let out = ok(&[
        "enqueue",
        &p,
        "emails",
        r#"{"to":"a@b"}"#,
        "--task", // the alias of --job (Python's word)
        "send_email",
        "--delay",
        "90s",
        "--priority",
        "-3",
        "--max-attempts",
        "7",
        "--expires",
        "1h",
    ]);
    let id: i64 = out
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(out.contains("(job send_email), due in 90s"), "{out}");
    let c = conn(&path);
    let job = honker_core::get_job(&c, id).unwrap().unwrap();
    assert_eq!((job.priority, job.max_attempts), (-3, 7));
    let now = honker_core::now(&c).unwrap();
    assert!(
        (90..=91).contains(&(job.run_at - now)),
        "{}",
        job.run_at - now
    );
    assert!((3599..=3601).contains(&(job.expires_at.unwrap() - now)));
    let call = honker_core::read_payload(&job.payload).unwrap();
    let honker_core::Payload::Task(call) = call else {
        panic!("a task envelope: {}", job.payload)
    };
    assert_eq!(call.name, "send_email");
    let args: Value = call.decode().unwrap();
    assert_eq!(args, serde_json::json!({"to": "a@b"}));

    let raw = json(&["enqueue", &p, "emails", "[1, 2]", "--json"]);
    let raw_id = raw["ids"][0].as_i64().unwrap();
    assert_eq!(
        honker_core::get_job(&c, raw_id).unwrap().unwrap().payload,
        "[1, 2]"
    );
    // Stored as written: numbers beyond f64 and key order are kept.
    let exact = r#"{"big": 12345678901234567890123, "b": 1, "a": 2}"#;
    let doc = json(&["enqueue", &p, "exact", exact, "--json"]);
    let stored = honker_core::get_job(&c, doc["ids"][0].as_i64().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(stored.payload, exact);
    let doc = json(&["enqueue", &p, "exact", exact, "--job", "t", "--json"]);
    let stored = honker_core::get_job(&c, doc["ids"][0].as_i64().unwrap())
        .unwrap()
        .unwrap();
    assert!(
        stored
            .payload
            .contains(r#""kwargs":{"big": 12345678901234567890123, "b": 1, "a": 2}"#),
        "{}",
        stored.payload
    );

    assert_eq!(ok(&["pause", &p, "emails"]).trim(), "paused queue emails");
    assert!(honker_core::queue_controls(&c, "emails").unwrap().paused);
    assert!(ok(&["pause", &p, "emails"]).contains("already paused"));
    assert_eq!(ok(&["resume", &p, "emails"]).trim(), "resumed queue emails");
    assert!(!honker_core::queue_controls(&c, "emails").unwrap().paused);

    let out = ok(&["cancel", &p, &raw_id.to_string()]);
    assert!(
        out.contains(&format!(
            "cancelled job {raw_id} on queue emails (was pending)"
        )),
        "{out}"
    );
    assert_eq!(
        honker_core::get_dead(&c, raw_id)
            .unwrap()
            .unwrap()
            .last_error
            .as_deref(),
        Some(honker_core::CANCELLED)
    );
    fails(
        &["cancel", &p, &raw_id.to_string()],
        "not pending or running",
    );
}

#[test]
fn schedules_are_listed_paused_resumed_run_now_and_their_boundaries_computed() {
    let (_d, path, p) = file();
    let c = conn(&path);
    let mut spec = ScheduleSpec::new("nightly", "reports", "0 3 * * *", r#"{"kind":"nightly"}"#);
    spec.zone = Some("Europe/Paris".into());
    honker_core::register_schedule(&c, &spec).unwrap();
    let doc = json(&["cron", &p, "list", "--json"]);
    let s = &doc["schedules"][0];
    assert_eq!(
        (&s["name"], &s["zone"], &s["enabled"]),
        (
            &Value::from("nightly"),
            &Value::from("Europe/Paris"),
            &Value::from(true)
        )
    );
    assert_eq!(
        s["next_fire_at"],
        honker_core::get_schedule(&c, "nightly")
            .unwrap()
            .unwrap()
            .next_fire_at
    );

    assert!(ok(&["cron", &p, "pause", "nightly"]).contains("paused schedule nightly"));
    assert!(
        !honker_core::get_schedule(&c, "nightly")
            .unwrap()
            .unwrap()
            .enabled
    );
    assert!(ok(&["cron", &p, "list"]).contains("paused"));
    assert!(ok(&["cron", &p, "resume", "nightly"]).contains("resumed schedule nightly"));
    let doc = json(&["cron", &p, "run-now", "nightly", "--json"]);
    let id = doc["ids"][0].as_i64().unwrap();
    let job = honker_core::get_job(&c, id).unwrap().unwrap();
    assert_eq!(
        (job.queue.as_str(), job.payload.as_str()),
        ("reports", r#"{"kind":"nightly"}"#)
    );
    fails(
        &["cron", &p, "run-now", "weekly"],
        "no schedule named \"weekly\"",
    );

    // 2026-01-01 00:00 UTC: 03:00 UTC, then Paris's 03:00 (02:00 UTC).
    let doc = json(&[
        "cron",
        "next",
        "0 3 * * *",
        "--after",
        "1767225600",
        "--count",
        "2",
        "--json",
    ]);
    assert_eq!(doc["next"], serde_json::json!([1767236400, 1767322800]));
    let doc = json(&[
        "cron",
        "next",
        "0 3 * * *",
        "--after",
        "1767225600",
        "--count",
        "1",
        "--zone",
        "Europe/Paris",
        "--json",
    ]);
    assert_eq!(doc["next"], serde_json::json!([1767232800]));
    assert_eq!(
        ok(&[
            "cron",
            "next",
            "@every 5s",
            "--after",
            "100",
            "--count",
            "2"
        ])
        .lines()
        .count(),
        2
    );
    fails(
        &["cron", "next", "61 * * * *", "--after", "0"],
        "outside 0-59",
    );
    fails(&["cron", "next", "* * * * *", "--count", "0"], "--count");
    fails(
        &["cron", "next", "* * * * *", "--zone", "Mars/Olympus"],
        "Mars/Olympus",
    );
    fails(&["cron"], "required");
}

#[test]
fn doctor_passes_a_healthy_file_warns_of_stuck_claims_and_fails_a_broken_one() {
    let (_d, path, p) = file();
    let doc = json(&["doctor", &p, "--json"]);
    assert_eq!(doc["ok"], true);
    let status = |doc: &Value, name: &str| -> String {
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no check {name}: {doc}"))
    };
    assert_eq!(status(&doc, "journal_mode"), "ok");
    let c = conn(&path);
    let id = honker_core::enqueue(&c, "q", "1", &Default::default()).unwrap();
    honker_core::claim_batch(&c, "q", "dead-worker", 1, Duration::from_secs(60)).unwrap();
    c.execute(
        "UPDATE _honker_live SET claim_expires_at = unixepoch() - 120 WHERE id = ?1",
        [id],
    )
    .unwrap();
    let out = honker(&["doctor", &p]);
    assert_eq!(out.code, 0, "a warning is not a failure: {}", out.stdout);
    assert!(
        out.stdout.contains("WARN  claims") && out.stdout.contains("dead-worker"),
        "{}",
        out.stdout
    );

    c.execute_batch("DROP INDEX _honker_live_claim").unwrap();
    drop(c);
    let out = honker(&["doctor", &p, "--json"]);
    assert_eq!(out.code, 1);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(status(&doc, "format"), "fail");
}

#[test]
fn bad_input_is_refused_with_a_clear_message_and_nothing_written() {
    let (dir, path, p) = file();
    let before = settled_bytes(&path);
    fails(
        &["enqueue", &p, "q", "{not json"],
        "the payload is not JSON",
    );
    fails(&["enqueue", &p, "q", "1", "--delay", "10x"], "unknown unit");
    fails(
        &["enqueue", &p, "q", "1", "--delay", "99999999d"],
        "longest",
    );
    fails(&["enqueue", &p, "bad queue!", "1"], "invalid queue name");
    fails(
        &["enqueue", &p, "q", "1", "--max-attempts", "0"],
        "--max-attempts",
    );
    fails(
        &["enqueue", &p, "q", "1", "--job", ""],
        "--job needs a name",
    );
    fails(
        &["jobs", &p, "--queue", "q", "--state", "zombie"],
        "invalid value 'zombie'",
    );
    fails(&["job", &p, "seven"], "invalid value 'seven'");
    fails(&["pause", &p, ""], "invalid queue name");
    assert_eq!(settled_bytes(&path), before, "a refused command wrote");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "these are notes, not a database; honker must say so").unwrap();
    let t = text.display().to_string();
    fails(&["stats", &t], "not a SQLite database");
    fails(&["pause", &t, "q"], "not a SQLite database");
    let plain = dir.path().join("plain.db");
    Connection::open(&plain)
        .unwrap()
        .execute_batch("CREATE TABLE t(x)")
        .unwrap();
    let pl = plain.display().to_string();
    fails(&["stats", &pl], "without the honker tables");
    fails(&["enqueue", &pl, "q", "1"], "without the honker tables");
    // Another program's WAL file at rest: refused by every kind of
    // command, and nothing made beside it.
    let wal = dir.path().join("theirs.db");
    let c = Connection::open(&wal).unwrap();
    c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t(x)")
        .unwrap();
    drop(c);
    let w = wal.display().to_string();
    let beside = |s: &str| dir.path().join(format!("theirs.db{s}")).exists();
    assert!(!beside("-wal") && !beside("-shm"), "at rest");
    fails(&["stats", &w], "without the honker tables");
    fails(&["pause", &w, "q"], "without the honker tables");
    fails(&["enqueue", &w, "q", "1"], "without the honker tables");
    fails(&["dead", &w, "retry", "--all"], "without the honker tables");
    fails(&["web", &w, "--read-only"], "without the honker tables");
    assert!(
        !beside("-wal") && !beside("-shm"),
        "a refused command left a file beside theirs"
    );
    fails(
        &["stats", &dir.path().display().to_string()],
        "not a SQLite database",
    );
    fails(&["stats", "/dev/null"], "not a SQLite database");
}

/// `GET path` with `Host: host` from the server at `addr`: the status line.
fn http_get(addr: &str, path: &str, host: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_read_only_dashboard_never_writes_and_answers_only_for_its_own_host_names() {
    use std::io::{BufRead, BufReader};
    // A file left by a crashed writer: its WAL holds commits, no -shm.
    let (dir, path, _) = file();
    let c = conn(&path);
    for i in 0..50 {
        honker_core::enqueue(&c, "q", &i.to_string(), &Default::default()).unwrap();
    }
    let copy = dir.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    let db = copy.join("app.db");
    std::fs::copy(&path, &db).unwrap();
    std::fs::copy(path.with_file_name("app.db-wal"), copy.join("app.db-wal")).unwrap();
    drop(c);
    let bytes = |p: &Path| std::fs::read(p).unwrap();
    let (db_before, wal_before) = (bytes(&db), bytes(&copy.join("app.db-wal")));

    let d = db.display().to_string();
    let serve = || {
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("honker"))
            .args(["web", &d, "--read-only", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("{line}"))
            .to_string();
        (child, addr)
    };
    let stop = |child: &mut std::process::Child| {
        // Stopped as an operator stops it.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        child.wait().unwrap();
    };
    // Started and stopped with no page asked for: the dashboard's own
    // connections are the last to close.
    let (mut child, _) = serve();
    std::thread::sleep(Duration::from_millis(300));
    stop(&mut child);
    assert_eq!(bytes(&db), db_before, "the database file was written");
    assert!(copy.join("app.db-wal").exists(), "the WAL was folded in");

    let (mut child, addr) = serve();
    assert!(http_get(&addr, "/", &addr).contains("200"), "own address");
    let port = addr.rsplit(':').next().unwrap();
    assert!(http_get(&addr, "/", &format!("localhost:{port}")).contains("200"));
    let rebound = http_get(&addr, "/", &format!("evil.example:{port}"));
    assert!(rebound.contains("421"), "{rebound}");
    let refused = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "POST /queues/q/pause HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    stop(&mut child);
    assert_eq!(bytes(&db), db_before, "the database file was written");
    assert_eq!(
        bytes(&copy.join("app.db-wal")),
        wal_before,
        "the WAL was folded in"
    );
}
