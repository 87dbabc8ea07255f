//! Observability: a Prometheus exporter on 127.0.0.1 and a `tracing`
//! subscriber, while a pool runs some jobs (one fails, one retries).
//!
//! Run: `cargo run --example metrics`

use std::io::{Read, Write};

use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};

#[job(queue = "thumbnails", max_attempts = 2, backoff = "0s")]
async fn thumbnail(ctx: JobContext, n: u32) -> Result<(), JobError> {
    match n {
        3 => Err(JobError::fail("corrupt image")),
        5 if ctx.attempt() == 1 => Err(JobError::retry("storage busy")),
        _ => Ok(()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ractor::=warn".into()),
        )
        .init();
    // A free port on loopback.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(([127, 0, 0, 1], port))
        .install()?;

    let honker = Honker::open(honker_examples::fresh_db_path("honker-metrics"))?;
    for n in 0..10 {
        thumbnail::enqueue(&honker, n).await?;
    }
    let pool = WorkerPool::builder(&honker)
        .register(thumbnail)
        .start()
        .await?;
    honker_examples::wait_until_drained(&honker, "thumbnails").await?;
    pool.shutdown().await?;

    // Scrape our own endpoint, as Prometheus would.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    stream.read_to_string(&mut body)?;
    println!("\nscraped http://127.0.0.1:{port}/metrics:");
    for line in body
        .lines()
        .filter(|l| l.starts_with("honker_") && !l.contains("quantile"))
    {
        println!("  {line}");
    }
    assert!(body.contains("honker_jobs_completed_total"));
    Ok(())
}
