//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use honker_actors::Honker;

/// A database in a fresh temp dir (keep the dir alive with the handle).
pub fn honker() -> (tempfile::TempDir, Honker) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let h = Honker::open(dir.path().join("app.db")).unwrap();
    (dir, h)
}

/// Poll `f` until it is true or `limit` passes; the limit is a safety net
/// for a hung test, not a speed assertion.
pub async fn eventually(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Unix time now, in milliseconds.
pub fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// How many times each argument ran: a job's handler records into it, a
/// test reads it (exactly-once checks).
pub struct RunCounts(std::sync::Mutex<Option<std::collections::HashMap<u32, u32>>>);

impl RunCounts {
    pub const fn new() -> Self {
        RunCounts(std::sync::Mutex::new(None))
    }
    /// One run with argument `n`.
    pub fn record(&self, n: u32) {
        *self
            .0
            .lock()
            .unwrap()
            .get_or_insert_with(Default::default)
            .entry(n)
            .or_default() += 1;
    }
    /// How many distinct arguments ran.
    pub fn distinct(&self) -> usize {
        self.0.lock().unwrap().as_ref().map_or(0, |m| m.len())
    }
    /// Runs per argument so far.
    pub fn all(&self) -> std::collections::HashMap<u32, u32> {
        self.0.lock().unwrap().clone().unwrap_or_default()
    }
}
