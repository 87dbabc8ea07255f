//! `honker doctor DB`: what is wrong with a honker file, if anything.

use std::path::Path;

use serde::Serialize;

use crate::cli::Output;
use crate::file::File;
use crate::view::{print_json, span};
use crate::CliError;

/// A WAL this large means checkpoints cannot keep up (a reader that never
/// lets go, or writes faster than the checkpointer).
const WAL_WARN_BYTES: u64 = 256 * 1024 * 1024;

/// A clock this far ahead or behind is more than ordinary drift.
const CLOCK_WARN_S: i64 = 5;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

fn check(name: &'static str, status: Status, detail: String) -> Check {
    Check {
        name,
        status,
        detail,
    }
}

/// The journal mode the file's header records: bytes 18 and 19 are 2 for
/// WAL (read from the file: a look at a file at rest does not open its WAL).
fn journal_mode(db: &Path) -> Result<String, CliError> {
    use std::io::Read as _;
    let mut header = [0u8; 20];
    std::fs::File::open(db)?.read_exact(&mut header)?;
    Ok(match (header[18], header[19]) {
        (2, 2) => "wal".into(),
        (1, 1) => "rollback journal (delete, truncate or persist)".into(),
        (r, w) => format!("unknown (header bytes 18-19 are {r}, {w})"),
    })
}

/// Run every check; exits non-zero (through the error) when one fails.
pub fn doctor(db: &Path, out: Output) -> Result<(), CliError> {
    let f = File::look(db)?;
    let mut checks = Vec::new();
    if crate::file::server_url(db).is_none() {
        file_checks(db, &mut checks)?;
    }
    store_checks(&f, out, checks)
}

/// The checks of a SQLite file itself: its journal mode and its WAL.
fn file_checks(db: &Path, checks: &mut Vec<Check>) -> Result<(), CliError> {
    let mode = journal_mode(db)?;
    checks.push(if mode.eq_ignore_ascii_case("wal") {
        check("journal_mode", Status::Ok, "wal".into())
    } else {
        check(
            "journal_mode",
            Status::Fail,
            format!("{mode}: honker needs WAL (opening the file with a honker binding sets it)"),
        )
    });

    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal_size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    checks.push(check(
        "wal_size",
        if wal_size > WAL_WARN_BYTES {
            Status::Warn
        } else {
            Status::Ok
        },
        if wal_size > WAL_WARN_BYTES {
            format!(
                "{} MiB: checkpoints are not keeping up (a long-lived reader, \
                 or writes outpacing the checkpoint)",
                wal_size / (1024 * 1024)
            )
        } else {
            format!("{} KiB", wal_size / 1024)
        },
    ));
    Ok(())
}

/// The checks every store answers: its schema, claims, rows and clock.
fn store_checks(f: &File, out: Output, mut checks: Vec<Check>) -> Result<(), CliError> {
    let objects = f.wait(f.store().schema_objects())?;
    let missing_shared: Vec<&str> = objects
        .iter()
        .filter(|o| o.shared && !o.present)
        .map(|o| o.name.as_str())
        .collect();
    let missing_own: Vec<&str> = objects
        .iter()
        .filter(|o| !o.shared && !o.present)
        .map(|o| o.name.as_str())
        .collect();
    checks.push(if missing_shared.is_empty() {
        check(
            "format",
            Status::Ok,
            format!(
                "{} tables and indexes of the format present",
                objects.len() - missing_own.len()
            ),
        )
    } else {
        check(
            "format",
            Status::Fail,
            format!(
                "missing: {} (claims and sweeps need them; \
                 opening the file with a honker binding creates them)",
                missing_shared.join(", ")
            ),
        )
    });
    checks.push(if missing_own.is_empty() {
        check("honker_rs_tables", Status::Ok, "present".into())
    } else {
        check(
            "honker_rs_tables",
            Status::Ok,
            format!(
                "not yet created: {} (honker-rs adds them when it first opens the file; \
                 until then they read as empty)",
                missing_own.join(", ")
            ),
        )
    });

    let health = f.wait(f.store().health(10))?;
    let now = f.wait(f.store().now())?;
    checks.push(if health.expired_claims == 0 {
        check(
            "claims",
            Status::Ok,
            "no job is running past its claim".into(),
        )
    } else {
        let sample: Vec<String> = health
            .expired_sample
            .iter()
            .map(|j| {
                let over = now.saturating_sub(j.claim_expires_at.unwrap_or(now));
                format!(
                    "{} on {} by {} ({} over)",
                    j.id,
                    j.queue,
                    j.worker_id.as_deref().unwrap_or("?"),
                    span(over)
                )
            })
            .collect();
        check(
            "claims",
            Status::Warn,
            format!(
                "{} job(s) still running past their claim (their worker died or stalled; \
                 the next claim on the queue takes them back): {}",
                health.expired_claims,
                sample.join("; ")
            ),
        )
    });
    checks.push(if health.exhausted == 0 {
        check(
            "attempts",
            Status::Ok,
            "no pending job is out of attempts".into(),
        )
    } else {
        check(
            "attempts",
            Status::Warn,
            format!(
                "{} pending job(s) have no attempt left: the next claim moves them to dead",
                health.exhausted
            ),
        )
    });

    let system = chrono::Utc::now().timestamp();
    let drift = system.saturating_sub(now);
    let ahead = health.created_ahead.unwrap_or(i64::MIN);
    checks.push(if drift.abs() > CLOCK_WARN_S {
        check(
            "clock",
            Status::Fail,
            format!("SQLite's clock and the system clock differ by {drift}s"),
        )
    } else if ahead > CLOCK_WARN_S {
        check(
            "clock",
            Status::Warn,
            format!(
                "a job was created {ahead}s in the future: a writer's clock runs ahead of \
                 this machine's (due times and claim deadlines compare clocks)"
            ),
        )
    } else {
        check("clock", Status::Ok, "no job from the future".into())
    });

    let failed = checks.iter().any(|c| c.status == Status::Fail);
    if out.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            ok: bool,
            checks: &'a [Check],
        }
        print_json(&Doc {
            ok: !failed,
            checks: &checks,
        })?;
    } else {
        for c in &checks {
            let mark = match c.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            println!(
                "{mark}  {:<17} {}",
                c.name,
                crate::view::term(&c.detail, false)
            );
        }
    }
    if failed {
        Err(CliError::Failed("a check failed".into()))
    } else {
        Ok(())
    }
}
