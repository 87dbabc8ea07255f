//! Scale without stalls: on a file with a million pending jobs, a pool
//! with a thousand registered queues never holds the write lock for long,
//! so another process's writes do not wait behind it, and a job that other
//! process enqueues starts promptly. Release build only (a debug build is
//! ten times slower and proves nothing about stalls):
//! `cargo test --release -p honker-actors --test scale`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use honker_actors::core::rusqlite;
use honker_actors::{Honker, Job, JobContext, JobError, WorkerPool, WorkerPoolBuilder};

/// When the probe job started (unix microseconds).
static PROBE_STARTED: AtomicU64 = AtomicU64::new(0);

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

macro_rules! names {
    ($($a:literal)*) => { [$(names!(@b $a 0 1 2 3 4 5 6 7 8 9)),*] };
    (@b $a:literal $($b:literal)*) => { [$(names!(@c $a $b 0 1 2 3 4 5 6 7 8 9)),*] };
    (@c $a:literal $b:literal $($c:literal)*) => { [$(concat!("scale_q", $a, $b, $c)),*] };
}

/// A thousand queue names, `scale_q000` .. `scale_q999`.
const NAMES: [[[&str; 10]; 10]; 10] = names!(0 1 2 3 4 5 6 7 8 9);

/// The job of queue `NAMES[A][B][C]`.
struct Q<const A: usize, const B: usize, const C: usize>;
impl<const A: usize, const B: usize, const C: usize> Job for Q<A, B, C> {
    const NAME: &'static str = NAMES[A][B][C];
    const QUEUE: &'static str = NAMES[A][B][C];
    type Args = u64;
    type Output = ();
    async fn run(&self, _ctx: JobContext, n: u64) -> Result<(), JobError> {
        if n == u64::MAX {
            PROBE_STARTED.store(unix_micros(), Ordering::SeqCst);
        }
        Ok(())
    }
}

macro_rules! register {
    ($b:expr; $($a:literal)*) => { { let b = $b; $(let b = register!(@b b; $a; 0 1 2 3 4 5 6 7 8 9);)* b } };
    (@b $b:expr; $a:literal; $($x:literal)*) => { { let b = $b; $(let b = register!(@c b; $a; $x; 0 1 2 3 4 5 6 7 8 9);)* b } };
    (@c $b:expr; $a:literal; $x:literal; $($c:literal)*) => { { let b = $b; $(let b = b.register(Q::<$a, $x, $c>);)* b } };
}

fn register_all(b: WorkerPoolBuilder) -> WorkerPoolBuilder {
    register!(b; 0 1 2 3 4 5 6 7 8 9)
}

/// Fill the file: `rows` pending jobs spread over queues the pool does not
/// run (a backlog others own), plus some in the pool's own queues, due in
/// an hour so the pool holds them but cannot run them yet; a third of all
/// of them expire in two hours.
fn fill(path: &std::path::Path, rows: i64) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("BEGIN").unwrap();
    c.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO _honker_live (queue, payload, run_at, expires_at)
         SELECT CASE WHEN i % 10 = 0 THEN printf('scale_q%03d', i % 1000)
                     ELSE printf('backlog_%d', i % 50) END,
                '1', unixepoch() + CASE WHEN i % 10 = 0 THEN 3600 ELSE 0 END,
                CASE WHEN i % 3 = 0 THEN unixepoch() + 7200 END
         FROM n",
        [rows],
    )
    .unwrap();
    c.execute_batch("COMMIT; ANALYZE").unwrap();
}

/// Another program's connection, as every honker binding opens one
/// (`synchronous = NORMAL`: no `fsync` on each commit, only at its
/// checkpoints). Its write times are then its waits for the write lock
/// and its own checkpoints, not a disk's `fsync` of every commit (a
/// fresh-clone run once saw one write take 91 ms, and a probe 96 ms, on a
/// connection that synced every commit).
fn foreign_connection(path: &std::path::Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute_batch("PRAGMA synchronous = NORMAL").unwrap();
    c
}

#[cfg_attr(
    debug_assertions,
    ignore = "release build only: cargo test --release -p honker-actors --test scale"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_1000_queues_on_a_million_rows_never_stalls_other_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    drop(Honker::open(&path).unwrap());
    fill(&path, 1_000_000);
    let h = Honker::open(&path).unwrap();
    let pool = register_all(WorkerPool::builder(&h).concurrency(16))
        .start()
        .await
        .unwrap();
    // Another program writes all the while: each of its writes waits for
    // the write lock no longer than the pool holds it.
    let longest = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (path, longest, stop) = (path.clone(), longest.clone(), stop.clone());
        std::thread::spawn(move || {
            let c = foreign_connection(&path);
            let mut writes = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                c.execute(
                    "INSERT INTO _honker_live (queue, payload) VALUES ('elsewhere', '1')",
                    [],
                )
                .unwrap();
                let waited = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
                longest.fetch_max(waited, Ordering::SeqCst);
                writes += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            writes
        })
    };
    // Let the pool start, take its first cycles and housekeeping.
    tokio::time::sleep(Duration::from_secs(7)).await;
    // A job enqueued by that other program starts promptly.
    let foreign = foreign_connection(&path);
    let mut starts = Vec::new();
    for _ in 0..5 {
        PROBE_STARTED.store(0, Ordering::SeqCst);
        let enqueued = unix_micros();
        honker_actors::core::enqueue(
            &foreign,
            "scale_q512",
            &u64::MAX.to_string(),
            &Default::default(),
        )
        .unwrap();
        let t = Instant::now();
        while PROBE_STARTED.load(Ordering::SeqCst) == 0 && t.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let started = PROBE_STARTED.load(Ordering::SeqCst);
        assert!(started > 0, "the probe job started");
        starts.push(Duration::from_micros(started.saturating_sub(enqueued)));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    pool.shutdown().await.unwrap();
    let longest = Duration::from_micros(longest.load(Ordering::SeqCst));
    eprintln!("scale: {writes} foreign writes, longest wait {longest:?}; probe starts {starts:?}");
    assert!(
        longest < Duration::from_millis(75),
        "a foreign write waited {longest:?}"
    );
    starts.sort();
    let median = starts[starts.len() / 2];
    assert!(
        median < Duration::from_millis(50),
        "probe starts {starts:?}"
    );
}
