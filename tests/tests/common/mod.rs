//! Helpers shared by the integration tests: the child-process binary and
//! the Python `honker` package.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// A command running the `honker-child` helper binary.
pub fn child(cmd: &str, db: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_honker-child"));
    c.arg(cmd).arg(db);
    c
}

/// The Python interpreter that has the `honker` package: `$HONKER_PYTHON`,
/// else the virtualenv `.ci/run` makes at `target/interop-venv`.
///
/// Returns `None` (after printing why) when there is none; under `CI=true`
/// that is a failure instead, so CI never passes by skipping.
pub fn honker_python() -> Option<PathBuf> {
    let candidate = std::env::var_os("HONKER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/interop-venv/bin/python")
        });
    let works = Command::new(&candidate)
        .args(["-c", "import honker"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if works {
        return Some(candidate);
    }
    let msg = format!(
        "the Python `honker` package is not available at {} \
         (set HONKER_PYTHON, or run .ci/run which installs it)",
        candidate.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// Run a Python script with the honker interpreter; returns stdout, panics
/// with stderr on failure.
pub fn run_python(python: &std::path::Path, script: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Poll `f` until it is true or `limit` passes; the limit is a safety net
/// for a hung test, not a speed assertion.
pub async fn eventually(limit: std::time::Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}
