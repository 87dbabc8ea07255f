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

/// The PostgreSQL server the tests use (`HONKER_PG_URL`); under CI its
/// absence fails the test that asks.
pub fn postgres_url() -> String {
    match std::env::var("HONKER_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "the PostgreSQL tests need a server: set HONKER_PG_URL (.ci/run starts one; \
             `source .ci/postgres` does by hand)"
        ),
    }
}

/// A fresh PostgreSQL store: a schema of its own on the test server,
/// dropped with the guard.
pub fn postgres() -> Fresh {
    use honker_actors::postgres::{PgOptions, PgStore};
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let url = postgres_url();
    let schema = format!(
        "t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let open = {
        let (url, schema) = (url.clone(), schema.clone());
        move || {
            let options = PgOptions {
                schema: schema.clone(),
                ..PgOptions::default()
            };
            Honker::with_store(std::sync::Arc::new(
                PgStore::open_with(&url, options).expect("open the PostgreSQL store"),
            ))
        }
    };
    let h = open();
    let guard = StoreGuard {
        _keep: Box::new(DropSchema { url, schema }),
        another: Box::new(open),
    };
    (guard, h)
}

/// Drops a test's schema when the test is done with it.
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // A thread of its own: the test's runtime may be the one dropping.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                use honker_postgres::sqlx::{AssertSqlSafe, Connection};
                if let Ok(mut c) = honker_postgres::sqlx::PgConnection::connect(&url).await {
                    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                    let _ = honker_postgres::sqlx::raw_sql(AssertSqlSafe(drop))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}
