//! Soak: mixed enqueue / claim / retry at a steady rate for a long time,
//! sampling RSS, WAL size, open file descriptors and threads.
//!
//! `cargo bench -p honker-actors --bench soak` runs 10 minutes;
//! `HONKER_SOAK_SECS=60` runs less. Prints a `soak_sample` line every 10 s
//! and `name value unit` lines at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use honker_actors::core::EnqueueOptions;
use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};

static RAN: AtomicU64 = AtomicU64::new(0);
static RETRIED: AtomicU64 = AtomicU64::new(0);

/// One run in ten asks for a retry; a few take a millisecond.
#[job(queue = "soak", max_attempts = 3, backoff = "1s")]
async fn soak_job(ctx: JobContext, n: u64) -> Result<(), JobError> {
    RAN.fetch_add(1, Ordering::Relaxed);
    if n % 10 == 0 && ctx.attempt() == 1 {
        RETRIED.fetch_add(1, Ordering::Relaxed);
        return Err(JobError::retry("transient"));
    }
    if n % 7 == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

fn status_field(name: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[derive(Clone, Copy)]
struct Sample {
    rss_mb: f64,
    wal_mb: f64,
    fds: usize,
    threads: f64,
}

fn sample(db: &std::path::Path) -> Sample {
    let wal = std::fs::metadata(format!("{}-wal", db.display())).map_or(0, |m| m.len());
    Sample {
        rss_mb: status_field("VmRSS:") / 1024.0,
        wal_mb: wal as f64 / (1024.0 * 1024.0),
        fds: fds(),
        threads: status_field("Threads:"),
    }
}

fn main() {
    let secs: u64 = std::env::var("HONKER_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("soak.db");
    rt.block_on(async {
        let h = Honker::open(&db).unwrap();
        let pool = WorkerPool::builder(&h)
            .register(soak_job)
            .concurrency(16)
            .start()
            .await
            .unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Typed producers: 2 000 jobs/s in all, some delayed.
        let mut tasks = Vec::new();
        for p in 0..4u64 {
            let (h, stop) = (h.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(2));
                let mut n = p;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let b = soak_job::builder(n);
                    let b = if n % 13 == 0 {
                        b.delay(Duration::from_secs(1))
                    } else {
                        b
                    };
                    b.enqueue(&h).await.unwrap();
                    n += 4;
                }
            }));
        }
        // An untyped claim_batch / ack_batch consumer with its own producer.
        {
            let (h, stop) = (h.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let q = h.queue("raw");
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..20 {
                        q.enqueue(&serde_json::json!({ "i": i }), EnqueueOptions::default())
                            .await
                            .unwrap();
                    }
                    // Room for the retries too (each ninth job runs three
                    // times), so the queue holds a steady state, not a backlog.
                    let jobs = q.claim_batch("soak-raw", 40).await.unwrap();
                    // Each ninth job is retried once, then acked: a steady state
                    // (a retry until dead would grow `_honker_dead`, which is
                    // never pruned, and the page cache with it).
                    let (retry, ack): (Vec<_>, Vec<_>) =
                        jobs.iter().partition(|j| j.id % 9 == 0 && j.attempts == 1);
                    for j in retry {
                        q.retry("soak-raw", j.lease(), Duration::ZERO, "again")
                            .await
                            .unwrap();
                    }
                    let leases: Vec<_> = ack.iter().map(|j| j.lease()).collect();
                    q.ack_batch("soak-raw", &leases).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(10.min(secs))).await;
        let warm = sample(&db);
        let mut max = warm;
        let mut last = warm;
        while started.elapsed() < Duration::from_secs(secs) {
            tokio::time::sleep(Duration::from_secs(10)).await;
            last = sample(&db);
            max.rss_mb = max.rss_mb.max(last.rss_mb);
            max.wal_mb = max.wal_mb.max(last.wal_mb);
            max.fds = max.fds.max(last.fds);
            max.threads = max.threads.max(last.threads);
            let backlog = h.queue("raw").stats().await.map_or(-1, |s| s.pending_due);
            println!(
                "soak_sample t={}s ran={} retried={} raw_backlog={backlog} rss={:.1}MB wal={:.1}MB fds={} threads={}",
                started.elapsed().as_secs(),
                RAN.load(Ordering::Relaxed),
                RETRIED.load(Ordering::Relaxed),
                last.rss_mb,
                last.wal_mb,
                last.fds,
                last.threads
            );
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        pool.shutdown().await.unwrap();
        let live = h.queue("soak").stats().await.unwrap();
        let raw = h.queue("raw").stats().await.unwrap();
        println!("soak_seconds {secs} s");
        println!("soak_job_runs {} runs", RAN.load(Ordering::Relaxed));
        println!("soak_rss_after_warmup {:.1} MB", warm.rss_mb);
        println!("soak_rss_end {:.1} MB", last.rss_mb);
        println!("soak_rss_max {:.1} MB", max.rss_mb);
        println!("soak_wal_max {:.1} MB", max.wal_mb);
        println!("soak_fds_after_warmup {} fds", warm.fds);
        println!("soak_fds_max {} fds", max.fds);
        println!("soak_threads_after_warmup {} threads", warm.threads);
        println!("soak_threads_max {} threads", max.threads);
        println!("soak_dead_at_end {} jobs", live.dead + raw.dead);
        println!("soak_raw_backlog_at_end {} jobs", raw.pending_due + raw.scheduled);
    });
}
