//! `cargo bench -p honker-actors`: one `name value unit` line per figure,
//! with the raw-SQL floor (the same row writes issued by hand on one
//! rusqlite connection, WAL, synchronous=NORMAL) measured in the same run
//! and each figure's ratio to it.
//!
//! `cargo bench -p honker-actors -- NAME..` runs only the named figures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use honker_actors::core::EnqueueOptions;
use honker_actors::{job, Honker, JobError, WorkerPool};
use tokio::sync::Notify;

const PAYLOAD: &str = r#"{"to":"someone@example.com","n":12345}"#;

fn line(name: &str, value: f64, unit: &str) {
    println!("{name} {value:.3} {unit}");
}

fn ratio(name: &str, value: f64, floor: f64) {
    line(&format!("{name}_vs_floor"), value / floor, "x");
}

fn tmpdb(dir: &tempfile::TempDir, name: &str) -> std::path::PathBuf {
    dir.path().join(format!("{name}.db"))
}

fn process_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch() -> u64 {
    process_epoch().elapsed().as_nanos() as u64
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn percentile(v: &mut [u64], p: f64) -> f64 {
    v.sort_unstable();
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64
}

static LATENCIES: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static DONE: AtomicUsize = AtomicUsize::new(0);
static STARTED: OnceLock<Notify> = OnceLock::new();
static RELEASE: OnceLock<Notify> = OnceLock::new();

#[derive(serde::Serialize, serde::Deserialize)]
struct Email {
    to: String,
    n: u64,
}

#[job(queue = "bench")]
async fn noop(_e: Email) -> Result<(), JobError> {
    DONE.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Records enqueue→start latency: `n` is nanos since this process's epoch.
#[job(queue = "sleepy")]
async fn sleepy(_e: Email) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(1)).await;
    DONE.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

#[job(queue = "timed")]
async fn timed(e: Email) -> Result<(), JobError> {
    let now = nanos_since_epoch();
    LATENCIES.lock().unwrap().push(now.saturating_sub(e.n));
    DONE.fetch_add(1, Ordering::Relaxed);
    STARTED.get_or_init(Notify::new).notify_one();
    Ok(())
}

/// Records cross-process latency: `n` is unix nanos at the enqueue.
#[job(queue = "xproc")]
async fn xproc(e: Email) -> Result<(), JobError> {
    LATENCIES
        .lock()
        .unwrap()
        .push(unix_nanos().saturating_sub(e.n));
    DONE.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Holds its slot until released (for the memory figure).
#[job(queue = "hold")]
async fn hold(_e: Email) -> Result<(), JobError> {
    DONE.fetch_add(1, Ordering::Relaxed);
    RELEASE.get_or_init(Notify::new).notified().await;
    Ok(())
}

fn email(n: u64) -> Email {
    Email {
        to: "someone@example.com".into(),
        n,
    }
}

// ------------------------------------------------------------------ floors

/// One INSERT per commit, by hand.
fn floor_insert_single(path: &std::path::Path, n: usize) -> f64 {
    let conn = honker_core::open(path).unwrap();
    let mut stmt = conn
        .prepare("INSERT INTO _honker_live (queue, payload, priority, max_attempts) VALUES ('floor', ?1, 0, 3)")
        .unwrap();
    let t = Instant::now();
    for _ in 0..n {
        stmt.execute([PAYLOAD]).unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// `batch` INSERTs per commit, by hand.
fn floor_insert_batch(path: &std::path::Path, n: usize, batch: usize) -> f64 {
    let conn = honker_core::open(path).unwrap();
    let t = Instant::now();
    for _ in 0..n / batch {
        conn.execute_batch("BEGIN").unwrap();
        let mut stmt = conn
            .prepare_cached("INSERT INTO _honker_live (queue, payload, priority, max_attempts) VALUES ('floor', ?1, 0, 3)")
            .unwrap();
        for _ in 0..batch {
            stmt.execute([PAYLOAD]).unwrap();
        }
        drop(stmt);
        conn.execute_batch("COMMIT").unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// `n` rows of `queue`, each the payload a typed enqueue of the job named
/// `task` writes.
fn fill(path: &std::path::Path, queue: &str, task: &str, n: usize) {
    let conn = honker_core::open(path).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    let mut stmt = conn
        .prepare("INSERT INTO _honker_live (queue, payload) VALUES (?1, ?2)")
        .unwrap();
    for i in 0..n {
        let args = Email {
            to: "someone@example.com".into(),
            n: i as u64,
        };
        let payload = honker_core::task_payload(task, &args).unwrap();
        stmt.execute((queue, payload)).unwrap();
    }
    drop(stmt);
    conn.execute_batch("COMMIT").unwrap();
}

/// Hand-written drain: claim 128 in one transaction, ack them in another.
fn floor_drain(path: &std::path::Path, n: usize) -> f64 {
    fill(path, "floor", "noop", n);
    let conn = honker_core::open(path).unwrap();
    let t = Instant::now();
    let mut done = 0;
    loop {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let ids: Vec<(i64, i64)> = {
            let mut claim = conn.prepare_cached(honker_core::sql::CLAIM).unwrap();
            claim
                .query_map(rusqlite::params!["floor", "floor-worker", 128, 300], |r| {
                    Ok((r.get(0)?, r.get(7)?))
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        conn.execute_batch("COMMIT").unwrap();
        if ids.is_empty() {
            break;
        }
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        {
            let mut ack = conn.prepare_cached(honker_core::sql::ACK).unwrap();
            for (id, attempts) in &ids {
                done += ack
                    .execute(rusqlite::params![id, "floor-worker", attempts])
                    .unwrap();
            }
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    assert_eq!(done, n);
    n as f64 / t.elapsed().as_secs_f64()
}

// ------------------------------------------------------------------ figures

async fn enqueue_single(dir: &tempfile::TempDir) {
    let n = 5_000;
    let floor = floor_insert_single(&tmpdb(dir, "floor_single"), n);
    let h = Honker::open(tmpdb(dir, "enqueue_single")).unwrap();
    let t = Instant::now();
    for i in 0..n {
        noop::enqueue(&h, email(i as u64)).await.unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    line("floor_insert_per_commit", floor, "rows/s");
    line("enqueue_single", rate, "jobs/s");
    ratio("enqueue_single", rate, floor);
}

async fn enqueue_concurrent(dir: &tempfile::TempDir) {
    let (tasks, per_task) = (64, 500);
    let n = tasks * per_task;
    let floor = floor_insert_single(&tmpdb(dir, "floor_conc"), 5_000);
    let h = Honker::open(tmpdb(dir, "enqueue_concurrent")).unwrap();
    let t = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    noop::enqueue(&h, email(i as u64)).await.unwrap();
                }
            })
        })
        .collect();
    for j in handles {
        j.await.unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    line("enqueue_concurrent", rate, "jobs/s");
    ratio("enqueue_concurrent", rate, floor);
}

async fn enqueue_tx_100(dir: &tempfile::TempDir) {
    let n = 50_000;
    let floor = floor_insert_batch(&tmpdb(dir, "floor_tx100"), n, 100);
    let path = tmpdb(dir, "enqueue_tx_100");
    let _h = Honker::open(&path).unwrap();
    let mut conn = honker_core::open(&path).unwrap();
    let t = Instant::now();
    for b in 0..n / 100 {
        let tx = conn.transaction().unwrap();
        for i in 0..100 {
            noop::enqueue_tx(&tx, email((b * 100 + i) as u64)).unwrap();
        }
        tx.commit().unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    line("floor_insert_100_per_commit", floor, "rows/s");
    line("enqueue_tx_100", rate, "jobs/s");
    ratio("enqueue_tx_100", rate, floor);
}

async fn drain(dir: &tempfile::TempDir) {
    let n = 100_000;
    let floor = floor_drain(&tmpdb(dir, "floor_drain"), n);
    let path = tmpdb(dir, "drain");
    fill(&path, "bench", "noop", n);
    let h = Honker::open(&path).unwrap();
    DONE.store(0, Ordering::SeqCst);
    let t = Instant::now();
    let pool = WorkerPool::builder(&h)
        .register(noop)
        .concurrency(32)
        .start()
        .await
        .unwrap();
    while DONE.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    // Count until the last ack is written, not only run.
    while h.queue("bench").stats().await.unwrap().processing > 0 {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    pool.shutdown().await.unwrap();
    line("floor_drain_claim128_ack", floor, "jobs/s");
    line("drain", rate, "jobs/s");
    ratio("drain", rate, floor);
}

/// 50k jobs whose handler awaits 1 ms, a pool of 256: the pool should
/// reach about concurrency / run time (the run time is the 1 ms sleep plus
/// the timer's granularity, measured alone below).
async fn drain_async_1ms(dir: &tempfile::TempDir) {
    let n = 50_000;
    let path = tmpdb(dir, "drain_async");
    fill(&path, "sleepy", "sleepy", n);
    // What one 1 ms sleep takes on this runtime.
    let t = Instant::now();
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let run = t.elapsed().as_secs_f64() / 200.0;
    let h = Honker::open(&path).unwrap();
    DONE.store(0, Ordering::SeqCst);
    let t = Instant::now();
    let pool = WorkerPool::builder(&h)
        .register(sleepy)
        .concurrency(256)
        .start()
        .await
        .unwrap();
    while DONE.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    pool.shutdown().await.unwrap();
    let ideal = 256.0 / run;
    line("drain_async_1ms_c256", rate, "jobs/s");
    line("drain_async_1ms_ideal", ideal, "jobs/s");
    line("drain_async_1ms_vs_ideal", rate / ideal, "x");
}

/// 100k pre-filled jobs drained by `procs` processes, each a pool of 32:
/// total jobs/s, against the floor in the same run.
async fn drain_processes(dir: &tempfile::TempDir, procs: usize) {
    let n = 100_000;
    let floor = floor_drain(&tmpdb(dir, &format!("floor_drain_p{procs}")), n);
    let path = tmpdb(dir, &format!("drain_p{procs}"));
    fill(&path, "bench", "noop", n);
    let t = Instant::now();
    let children: Vec<_> = (0..procs)
        .map(|_| {
            tokio::process::Command::new(std::env::current_exe().unwrap())
                .args(["--child-drain", path.to_str().unwrap()])
                .status()
        })
        .collect();
    for c in children {
        assert!(c.await.unwrap().success());
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let name = format!("drain_{procs}_processes");
    line(&name, rate, "jobs/s");
    ratio(&name, rate, floor);
}

/// The child of `drain_processes`: a pool of 32 until the queue is empty.
async fn child_drain(path: &str) {
    let h = Honker::open(path).unwrap();
    let pool = WorkerPool::builder(&h)
        .register(noop)
        .concurrency(32)
        .start()
        .await
        .unwrap();
    loop {
        let s = h.queue("bench").stats().await.unwrap();
        if s.pending_due == 0 && s.processing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    pool.shutdown().await.unwrap();
}

async fn e2e(dir: &tempfile::TempDir) {
    let (producers, total) = (8, 50_000usize);
    let h = Honker::open(tmpdb(dir, "e2e")).unwrap();
    LATENCIES.lock().unwrap().clear();
    DONE.store(0, Ordering::SeqCst);
    let pool = WorkerPool::builder(&h)
        .register(timed)
        .concurrency(16)
        .start()
        .await
        .unwrap();
    let t = Instant::now();
    let handles: Vec<_> = (0..producers)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move {
                for _ in 0..total / producers {
                    timed::enqueue(&h, email(nanos_since_epoch()))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for j in handles {
        j.await.unwrap();
    }
    while DONE.load(Ordering::Relaxed) < total {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let rate = total as f64 / t.elapsed().as_secs_f64();
    pool.shutdown().await.unwrap();
    let mut lat = std::mem::take(&mut *LATENCIES.lock().unwrap());
    line("e2e", rate, "jobs/s");
    line("e2e_latency_p50", percentile(&mut lat, 0.50) / 1e6, "ms");
    line("e2e_latency_p99", percentile(&mut lat, 0.99) / 1e6, "ms");
}

async fn wake_idle(dir: &tempfile::TempDir) {
    let h = Honker::open(tmpdb(dir, "wake_idle")).unwrap();
    LATENCIES.lock().unwrap().clear();
    let pool = WorkerPool::builder(&h)
        .register(timed)
        .start()
        .await
        .unwrap();
    let started = STARTED.get_or_init(Notify::new);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..300 {
        let wait = started.notified();
        timed::enqueue(&h, email(nanos_since_epoch()))
            .await
            .unwrap();
        wait.await;
        // Let the pool go idle again.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    pool.shutdown().await.unwrap();
    let mut lat = std::mem::take(&mut *LATENCIES.lock().unwrap());
    line("wake_idle_p50", percentile(&mut lat, 0.50) / 1e6, "ms");
    line("wake_idle_p99", percentile(&mut lat, 0.99) / 1e6, "ms");
}

async fn wake_cross_process(dir: &tempfile::TempDir) {
    let path = tmpdb(dir, "wake_xproc");
    let h = Honker::open(&path).unwrap();
    LATENCIES.lock().unwrap().clear();
    DONE.store(0, Ordering::SeqCst);
    let pool = WorkerPool::builder(&h)
        .register(xproc)
        .start()
        .await
        .unwrap();
    let n = 200;
    let status = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--child-enqueue", path.to_str().unwrap(), &n.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    while DONE.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    pool.shutdown().await.unwrap();
    let mut lat = std::mem::take(&mut *LATENCIES.lock().unwrap());
    line(
        "wake_cross_process_p50",
        percentile(&mut lat, 0.50) / 1e6,
        "ms",
    );
    line(
        "wake_cross_process_p99",
        percentile(&mut lat, 0.99) / 1e6,
        "ms",
    );
}

/// The child of `wake_cross_process`: enqueue `n` jobs, 10 ms apart, each
/// stamped with the unix time of its enqueue.
fn child_enqueue(path: &str, n: usize) {
    let conn = honker_core::open(path).unwrap();
    for _ in 0..n {
        std::thread::sleep(Duration::from_millis(10));
        let payload = format!(r#"{{"to":"x","n":{}}}"#, unix_nanos());
        honker_core::enqueue(&conn, "xproc", &payload, &EnqueueOptions::default()).unwrap();
    }
}

fn claim_rate(path: &std::path::Path, n: usize) -> f64 {
    let conn = honker_core::open(path).unwrap();
    let t = Instant::now();
    let mut claimed = 0;
    while claimed < n {
        let jobs =
            honker_core::claim_batch(&conn, "rows", "w", 32, Duration::from_secs(300)).unwrap();
        assert!(!jobs.is_empty());
        claimed += jobs.len();
        let leases: Vec<_> = jobs.iter().map(|j| j.lease()).collect();
        honker_core::ack_batch(&conn, "w", &leases).unwrap();
    }
    claimed as f64 / t.elapsed().as_secs_f64()
}

async fn dead_rows(dir: &tempfile::TempDir) {
    let n = 20_000;
    let clean = tmpdb(dir, "dead_none");
    fill(&clean, "rows", "noop", n);
    let with_dead = tmpdb(dir, "dead_100k");
    fill(&with_dead, "rows", "noop", n);
    let conn = honker_core::open(&with_dead).unwrap();
    conn.execute_batch(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 100000)
         INSERT INTO _honker_dead (id, queue, payload, last_error) SELECT 1000000 + i, 'rows', '{}', 'x' FROM k;",
    )
    .unwrap();
    // Both files start from a checkpointed WAL: the figure is about the
    // dead rows, not about a WAL holding the 100k inserts.
    for path in [&clean, &with_dead] {
        honker_core::open(path)
            .unwrap()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let base = claim_rate(&clean, n);
    let dead = claim_rate(&with_dead, n);
    line("claim_rate_no_dead", base, "jobs/s");
    line("claim_rate_100k_dead", dead, "jobs/s");
    line("dead_rows", dead / base, "x");
}

/// CPU time this process used, user and system, to the microsecond
/// (`getrusage`; `/proc/self/stat` counts 10 ms ticks, too coarse for an
/// idle process).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage for the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

async fn idle_cpu(dir: &tempfile::TempDir) {
    let h = Honker::open(tmpdb(dir, "idle")).unwrap();
    let pool = WorkerPool::builder(&h)
        .register(noop)
        .concurrency(16)
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (c0, t0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let share = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64();
    pool.shutdown().await.unwrap();
    line("idle_cpu", share * 100.0, "%core");
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The child of `memory`: 1M pending jobs and a pool of 1000 in flight.
async fn child_memory(path: &str) {
    fill(std::path::Path::new(path), "hold", "hold", 1_000_000);
    let h = Honker::open(path).unwrap();
    DONE.store(0, Ordering::SeqCst);
    let pool = WorkerPool::builder(&h)
        .register(hold)
        .concurrency(1000)
        .start()
        .await
        .unwrap();
    while DONE.load(Ordering::Relaxed) < 1000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss = peak_rss_mb();
    RELEASE.get_or_init(Notify::new).notify_waiters();
    drop(pool);
    println!("{rss}");
}

async fn memory(dir: &tempfile::TempDir) {
    let path = tmpdb(dir, "memory");
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--child-memory", path.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rss: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN);
    line("memory_peak_rss_1m_pending_1000_in_flight", rss, "MB");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    process_epoch();
    if let Some(i) = args.iter().position(|a| a == "--child-enqueue") {
        child_enqueue(&args[i + 1], args[i + 2].parse().unwrap());
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--child-drain") {
        rt.block_on(child_drain(&args[i + 1]));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--child-memory") {
        rt.block_on(child_memory(&args[i + 1]));
        return;
    }
    let wanted: Vec<&str> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.contains(&name);
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        if run("enqueue_single") {
            enqueue_single(&dir).await;
        }
        if run("enqueue_concurrent") {
            enqueue_concurrent(&dir).await;
        }
        if run("enqueue_tx_100") {
            enqueue_tx_100(&dir).await;
        }
        if run("drain") {
            drain(&dir).await;
        }
        if run("drain_async_1ms") {
            drain_async_1ms(&dir).await;
        }
        if run("drain_processes") {
            drain_processes(&dir, 2).await;
            drain_processes(&dir, 4).await;
        }
        if run("e2e") {
            e2e(&dir).await;
        }
        if run("wake_idle") {
            wake_idle(&dir).await;
        }
        if run("wake_cross_process") {
            wake_cross_process(&dir).await;
        }
        if run("dead_rows") {
            dead_rows(&dir).await;
        }
        if run("idle_cpu") {
            idle_cpu(&dir).await;
        }
        if run("memory") {
            memory(&dir).await;
        }
    });
}
