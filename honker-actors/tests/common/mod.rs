//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use honker_actors::Honker;

/// A `Honker` on a fresh store, and the store's guard: what keeps the
/// store alive (a temp dir, a schema) until dropped, and how to open
/// another handle on it (another service instance, another process).
pub type Fresh = (StoreGuard, Honker);

/// Keeps a store under test alive; opens more handles on it.
pub struct StoreGuard {
    _keep: Box<dyn std::any::Any + Send>,
    another: Box<dyn Fn() -> Honker + Send + Sync>,
}

impl StoreGuard {
    /// Another handle on the same store, with its own connections: its
    /// commits are another program's to the first handle.
    pub fn another(&self) -> Honker {
        (self.another)()
    }
}

/// Log to the test's output, as `RUST_LOG` says.
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A fresh SQLite store: a database in a temp dir of its own.
pub fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let h = Honker::open(&path).unwrap();
    let guard = StoreGuard {
        _keep: Box::new(dir),
        another: Box::new(move || Honker::open(&path).unwrap()),
    };
    (guard, h)
}

/// A database in a fresh temp dir (keep the dir alive with the handle),
/// for the tests that look at the SQLite file itself.
pub fn honker() -> (tempfile::TempDir, Honker) {
    trace();
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
