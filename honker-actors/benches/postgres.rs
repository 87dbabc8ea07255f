//! `cargo bench -p honker-actors --bench postgres`: the PostgreSQL store's
//! figures, one `name value unit` line each, with a hand-written floor on
//! the same server in the same run and each figure's ratio to it. Needs
//! `HONKER_PG_URL` (`source .ci/postgres` starts a throwaway server);
//! without it, it says so and measures nothing.
//!
//! `cargo bench -p honker-actors --bench postgres -- NAME..` runs only the
//! named figures: enqueue_single, enqueue_concurrent, enqueue_tx_100,
//! drain, drain_processes, e2e, wake_idle, wake_cross_process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use honker_actors::postgres::{PgOptions, PgStore};
use honker_actors::{job, Honker, JobError, WorkerPool};
use honker_postgres::sqlx::{self, Connection, PgConnection};
use tokio::sync::Notify;

const PAYLOAD: &str = r#"{"to":"someone@example.com","n":12345}"#;

fn line(name: &str, value: f64, unit: &str) {
    println!("pg_{name} {value:.3} {unit}");
}

fn ratio(name: &str, value: f64, floor: f64) {
    line(&format!("{name}_vs_floor"), value / floor, "x");
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

#[derive(serde::Serialize, serde::Deserialize)]
struct Email {
    to: String,
    n: u64,
}

fn email(n: u64) -> Email {
    Email {
        to: "someone@example.com".into(),
        n,
    }
}

#[job(queue = "bench")]
async fn noop(_e: Email) -> Result<(), JobError> {
    DONE.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Records enqueue→start latency: `n` is unix nanos at the enqueue.
#[job(queue = "timed")]
async fn timed(e: Email) -> Result<(), JobError> {
    LATENCIES
        .lock()
        .unwrap()
        .push(unix_nanos().saturating_sub(e.n));
    DONE.fetch_add(1, Ordering::Relaxed);
    STARTED.get_or_init(Notify::new).notify_one();
    Ok(())
}

fn url() -> Option<String> {
    std::env::var("HONKER_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A fresh schema for one figure.
fn schema(name: &str) -> String {
    format!("bench_{name}_{}", std::process::id())
}

fn store(url: &str, schema: &str) -> Honker {
    let options = PgOptions {
        schema: schema.to_string(),
        ..PgOptions::default()
    };
    Honker::with_store(Arc::new(PgStore::open_with(url, options).unwrap()))
}

async fn conn(url: &str) -> PgConnection {
    PgConnection::connect(url).await.unwrap()
}

async fn sql(c: &mut PgConnection, schema: &str, text: &str) {
    let text = text.replace("{s}", &format!("\"{schema}\""));
    sqlx::raw_sql(sqlx::AssertSqlSafe(text))
        .execute(c)
        .await
        .unwrap();
}

async fn drop_schema(url: &str, schema: &str) {
    sql(
        &mut conn(url).await,
        schema,
        "DROP SCHEMA IF EXISTS {s} CASCADE",
    )
    .await;
}

/// `n` rows of `queue`, each the payload a typed enqueue of the job named
/// `task` writes, in one statement.
async fn fill(url: &str, schema: &str, queue: &str, task: &str, n: usize) {
    let payload = honker_actors::core::task_payload(task, &email(7)).unwrap();
    let mut c = conn(url).await;
    let text = format!(
        "INSERT INTO \"{schema}\".live (queue, payload) SELECT $1, $2 FROM generate_series(1, $3)"
    );
    sqlx::query(sqlx::AssertSqlSafe(text))
        .bind(queue)
        .bind(payload)
        .bind(n as i64)
        .execute(&mut c)
        .await
        .unwrap();
    sql(&mut c, schema, "ANALYZE {s}.live").await;
}

// ------------------------------------------------------------------ floors

/// One INSERT per commit, by hand, on one connection.
async fn floor_insert(url: &str, schema: &str, n: usize, per_commit: usize) -> f64 {
    let mut c = conn(url).await;
    let text = format!(
        "INSERT INTO \"{schema}\".live (queue, payload, priority, max_attempts) VALUES ('floor', $1, 0, 3)"
    );
    let t = Instant::now();
    for _ in 0..n / per_commit {
        let mut tx = c.begin().await.unwrap();
        for _ in 0..per_commit {
            sqlx::query(sqlx::AssertSqlSafe(text.clone()))
                .bind(PAYLOAD)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Hand-written drain on one connection: a SKIP LOCKED claim of 128 in
/// one transaction, a delete of the claimed rows in another.
async fn floor_drain(url: &str, n: usize) -> f64 {
    let s = schema("floor_drain");
    let _h = store(url, &s);
    fill(url, &s, "floor", "noop", n).await;
    let mut c = conn(url).await;
    let claim = format!(
        "WITH picked AS (SELECT id FROM \"{s}\".live WHERE queue = 'floor' AND state = 'pending'
           AND run_at <= \"{s}\".now_s() ORDER BY priority DESC, run_at, id LIMIT 128
           FOR UPDATE SKIP LOCKED)
         UPDATE \"{s}\".live l SET state = 'processing', worker_id = 'w',
           claim_expires_at = \"{s}\".now_s() + 300, attempts = l.attempts + 1
         FROM picked WHERE l.id = picked.id RETURNING l.id, l.attempts"
    );
    let ack = format!(
        "DELETE FROM \"{s}\".live WHERE id = ANY($1) AND worker_id = 'w' AND state = 'processing'"
    );
    let t = Instant::now();
    let mut done = 0u64;
    loop {
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(claim.clone()))
            .fetch_all(&mut c)
            .await
            .unwrap();
        if ids.is_empty() {
            break;
        }
        done += sqlx::query(sqlx::AssertSqlSafe(ack.clone()))
            .bind(&ids)
            .execute(&mut c)
            .await
            .unwrap()
            .rows_affected();
    }
    assert_eq!(done as usize, n);
    let rate = n as f64 / t.elapsed().as_secs_f64();
    drop_schema(url, &s).await;
    rate
}

// ------------------------------------------------------------------ figures

async fn enqueue_single(url: &str) {
    let n = 3_000;
    let s = schema("single");
    let h = store(url, &s);
    let floor = floor_insert(url, &s, n, 1).await;
    let t = Instant::now();
    for i in 0..n {
        noop::enqueue(&h, email(i as u64)).await.unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    line("floor_insert_per_commit", floor, "rows/s");
    line("enqueue_single", rate, "jobs/s");
    ratio("enqueue_single", rate, floor);
    drop_schema(url, &s).await;
}

async fn enqueue_concurrent(url: &str) {
    let (tasks, per_task) = (64, 200);
    let n = tasks * per_task;
    let s = schema("conc");
    let h = store(url, &s);
    let floor = floor_insert(url, &s, 3_000, 1).await;
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
    drop_schema(url, &s).await;
}

async fn enqueue_tx_100(url: &str) {
    let n = 20_000;
    let s = schema("tx100");
    let h = store(url, &s);
    let floor = floor_insert(url, &s, n, 100).await;
    let pg = h.store().as_any().downcast_ref::<PgStore>().unwrap();
    let mut c = conn(url).await;
    let t = Instant::now();
    for b in 0..n / 100 {
        let mut tx = c.begin().await.unwrap();
        for i in 0..100 {
            noop::enqueue_tx(pg.in_tx(&mut tx), email((b * 100 + i) as u64))
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    line("floor_insert_100_per_commit", floor, "rows/s");
    line("enqueue_tx_100", rate, "jobs/s");
    ratio("enqueue_tx_100", rate, floor);
    drop_schema(url, &s).await;
}

async fn drain(url: &str) {
    let n = 50_000;
    let floor = floor_drain(url, n).await;
    let s = schema("drain");
    let h = store(url, &s);
    fill(url, &s, "bench", "noop", n).await;
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
    while h.queue("bench").stats().await.unwrap().processing > 0 {
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    pool.shutdown().await.unwrap();
    line("floor_drain_claim128_delete", floor, "jobs/s");
    line("drain", rate, "jobs/s");
    ratio("drain", rate, floor);
    drop_schema(url, &s).await;
}

/// 50k pre-filled jobs drained by `procs` processes, each a pool of 32:
/// timed until the table is empty, as this process sees with one cheap
/// look every 2 ms (the children poll nothing: a poll per child would
/// load the server in proportion to the processes measured).
async fn drain_processes(url: &str, procs: usize, floor: f64) {
    let n = 50_000;
    let s = schema(&format!("drain_p{procs}"));
    let _h = store(url, &s);
    fill(url, &s, "bench", "noop", n).await;
    let mut c = conn(url).await;
    let left = format!("SELECT EXISTS (SELECT 1 FROM \"{s}\".live ORDER BY id LIMIT 1)");
    let t = Instant::now();
    let mut children: Vec<_> = (0..procs)
        .map(|_| {
            tokio::process::Command::new(std::env::current_exe().unwrap())
                .args(["--child-drain", url, &s])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    loop {
        let any: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(left.clone()))
            .fetch_one(&mut c)
            .await
            .unwrap();
        if !any {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    for child in &mut children {
        // Closing its input tells the child to stop.
        drop(child.stdin.take());
    }
    for mut child in children {
        assert!(child.wait().await.unwrap().success());
    }
    let name = format!("drain_{procs}_processes");
    line(&name, rate, "jobs/s");
    ratio(&name, rate, floor);
    drop_schema(url, &s).await;
}

/// The child of `drain_processes`: a pool of 32 until its input closes.
async fn child_drain(url: &str, schema: &str) {
    let h = store(url, schema);
    let pool = WorkerPool::builder(&h)
        .register(noop)
        .concurrency(32)
        .start()
        .await
        .unwrap();
    let _ = tokio::task::spawn_blocking(|| {
        use std::io::Read;
        std::io::stdin().read_to_end(&mut Vec::new())
    })
    .await;
    pool.shutdown().await.unwrap();
}

async fn e2e(url: &str) {
    let (producers, total) = (8, 20_000usize);
    let s = schema("e2e");
    let h = store(url, &s);
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
                    timed::enqueue(&h, email(unix_nanos())).await.unwrap();
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
    drop_schema(url, &s).await;
}

async fn wake_idle(url: &str) {
    let s = schema("wake_idle");
    let h = store(url, &s);
    LATENCIES.lock().unwrap().clear();
    let pool = WorkerPool::builder(&h)
        .register(timed)
        .start()
        .await
        .unwrap();
    let started = STARTED.get_or_init(Notify::new);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..300 {
        let wait = started.notified();
        timed::enqueue(&h, email(unix_nanos())).await.unwrap();
        wait.await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    pool.shutdown().await.unwrap();
    let mut lat = std::mem::take(&mut *LATENCIES.lock().unwrap());
    line("wake_idle_p50", percentile(&mut lat, 0.50) / 1e6, "ms");
    line("wake_idle_p99", percentile(&mut lat, 0.99) / 1e6, "ms");
    drop_schema(url, &s).await;
}

async fn wake_cross_process(url: &str) {
    let s = schema("wake_xproc");
    let h = store(url, &s);
    LATENCIES.lock().unwrap().clear();
    DONE.store(0, Ordering::SeqCst);
    let pool = WorkerPool::builder(&h)
        .register(timed)
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let n = 200;
    let status = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--child-enqueue", url, &s, &n.to_string()])
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
    drop_schema(url, &s).await;
}

/// The child of `wake_cross_process`: enqueue `n` jobs on a connection of
/// its own, 10 ms apart, each stamped with the unix time of its enqueue.
async fn child_enqueue(url: &str, schema: &str, n: usize) {
    let st = honker_postgres::Statements::new(schema).unwrap();
    let mut c = conn(url).await;
    for _ in 0..n {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let payload = honker_actors::core::task_payload("timed", &email(unix_nanos())).unwrap();
        let mut tx = c.begin().await.unwrap();
        honker_postgres::enqueue(&mut tx, &st, "timed", &payload, &Default::default())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(i) = args.iter().position(|a| a == "--child-enqueue") {
        rt.block_on(child_enqueue(
            &args[i + 1],
            &args[i + 2],
            args[i + 3].parse().unwrap(),
        ));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--child-drain") {
        rt.block_on(child_drain(&args[i + 1], &args[i + 2]));
        return;
    }
    let Some(url) = url() else {
        println!("pg_skipped 0 (set HONKER_PG_URL to a PostgreSQL database; `source .ci/postgres` starts one)");
        return;
    };
    let wanted: Vec<&str> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let run = |name: &str| wanted.is_empty() || wanted.contains(&name);
    rt.block_on(async {
        if run("enqueue_single") {
            enqueue_single(&url).await;
        }
        if run("enqueue_concurrent") {
            enqueue_concurrent(&url).await;
        }
        if run("enqueue_tx_100") {
            enqueue_tx_100(&url).await;
        }
        if run("drain") {
            drain(&url).await;
        }
        if run("drain_processes") {
            let floor = floor_drain(&url, 50_000).await;
            drain_processes(&url, 1, floor).await;
            drain_processes(&url, 2, floor).await;
            drain_processes(&url, 4, floor).await;
        }
        if run("e2e") {
            e2e(&url).await;
        }
        if run("wake_idle") {
            wake_idle(&url).await;
        }
        if run("wake_cross_process") {
            wake_cross_process(&url).await;
        }
    });
}
