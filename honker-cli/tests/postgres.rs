//! The `honker` command on a PostgreSQL database: the same commands as on
//! a file, given a `postgres://` URL (`honker_schema=` names the schema),
//! and the URL's password never in what it prints.
//!
//! Needs the server `HONKER_PG_URL` names (`.ci/run` starts one); ignored
//! with the reason otherwise, outside CI.

use std::time::Duration;

use serde_json::Value;

fn honker(args: &[&str]) -> (i32, String, String) {
    let out = assert_cmd::Command::new(assert_cmd::cargo::cargo_bin!("honker"))
        .args(args)
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run honker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The test server's URL naming a schema of this test's own.
fn url(tag: &str) -> String {
    let base = std::env::var("HONKER_PG_URL").expect("HONKER_PG_URL (.ci/run sets it)");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}honker_schema=cli_{tag}_{}", std::process::id())
}

fn password() -> String {
    let base = std::env::var("HONKER_PG_URL").unwrap();
    let userinfo = base.split("://").nth(1).unwrap().split('@').next().unwrap();
    userinfo.split(':').nth(1).unwrap_or("").to_string()
}

#[test]
#[cfg_attr(
    not(honker_postgres),
    ignore = "needs a PostgreSQL server: set HONKER_PG_URL to a database URL (.ci/run starts one)"
)]
fn every_command_works_on_a_postgres_url_and_never_prints_its_password() {
    let db = url("all");
    let secret = password();
    let mut said = String::new();
    let mut run = |args: &[&str]| -> String {
        let (code, out, err) = honker(args);
        said.push_str(&out);
        said.push_str(&err);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    };
    let id: i64 = run(&["enqueue", &db, "mail", r#"{"to":"a@b.c"}"#, "--job", "send"])
        .split(' ')
        .nth(2)
        .and_then(|w| w.parse().ok())
        .expect("enqueued job ID ...");
    run(&["enqueue", &db, "mail", "2", "--delay", "1h"]);
    let stats: Value = serde_json::from_str(&run(&["stats", &db, "--json"])).unwrap();
    let mail = &stats["queues"][0];
    assert_eq!(
        (mail["queue"].as_str(), mail["pending"].as_i64()),
        (Some("mail"), Some(1))
    );
    assert_eq!(mail["scheduled"].as_i64(), Some(1));
    let job: Value = serde_json::from_str(&run(&["job", &db, &id.to_string(), "--json"])).unwrap();
    assert_eq!(job["job"]["name"].as_str(), Some("send"), "{job}");
    let jobs = run(&["jobs", &db, "--queue", "mail", "--search", "a@b.c"]);
    assert!(jobs.contains(&id.to_string()), "{jobs}");
    run(&["cancel", &db, &id.to_string()]);
    let dead: Value = serde_json::from_str(&run(&["job", &db, &id.to_string(), "--json"])).unwrap();
    assert_eq!(
        dead["job"]["last_error"].as_str(),
        Some("cancelled"),
        "{dead}"
    );
    run(&["dead", &db, "retry", "--queue", "mail"]);
    let back: Value = serde_json::from_str(&run(&["job", &db, &id.to_string(), "--json"])).unwrap();
    assert_eq!(back["job"]["state"].as_str(), Some("pending"), "{back}");
    run(&["pause", &db, "mail"]);
    let stats: Value = serde_json::from_str(&run(&["stats", &db, "--json"])).unwrap();
    assert_eq!(
        stats["queues"][0]["paused"].as_bool(),
        Some(true),
        "{stats}"
    );
    run(&["resume", &db, "mail"]);
    run(&["doctor", &db]);
    assert!(
        !secret.is_empty() && !said.contains(&secret),
        "the password showed: {said}"
    );
    // A wrong password: refused, by the URL, its password masked.
    let wrong = db.replace(&format!(":{secret}@"), ":wrong-secret@");
    let (code, out, err) = honker(&["stats", &wrong]);
    assert_ne!(code, 0);
    assert!(
        err.contains(":***@") && !err.contains("wrong-secret") && !out.contains("wrong-secret"),
        "{err}"
    );
}
