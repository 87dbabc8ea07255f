//! A web service with its jobs: an axum server with the honker dashboard
//! mounted at `/honker`, a worker pool in the same process, and one ctrl-c
//! that stops both gracefully (the server finishes its requests, the pool
//! its running jobs).
//!
//! Run: `cargo run --example web_service` (it enqueues a few jobs, reads
//! the dashboard once, and stops itself when they are done), or
//! `cargo run --example web_service -- --serve` to keep serving
//! `http://127.0.0.1:8000/honker` until ctrl-c.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use honker_actors::{job, Honker, JobContext, JobError, WorkerPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

static DONE: AtomicU32 = AtomicU32::new(0);

#[job(queue = "thumbnails")]
async fn thumbnail(_ctx: JobContext, image: String) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    println!("thumbnail of {image} done");
    DONE.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Resolves once the stop flag is set: each part of the service waits on
/// its own copy.
async fn stopped(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve = std::env::args().any(|a| a == "--serve");
    let honker = Honker::open(honker_examples::fresh_db_path("honker-web-service"))?;

    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "the service" }))
        .nest_service("/honker", honker_web::router(honker.clone()));
    let addr = if serve {
        "127.0.0.1:8000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let port = listener.local_addr()?.port();
    println!("dashboard: http://127.0.0.1:{port}/honker (ctrl-c stops the service)");

    let pool = WorkerPool::builder(&honker)
        .register(thumbnail)
        .start()
        .await?;

    // One ctrl-c stops everything: the server and the pool each wait on
    // the same flag.
    let (stop, flag) = watch::channel(false);
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            println!("ctrl-c: stopping the server and the pool");
            let _ = on_ctrl_c.send(true);
        }
    });
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped(flag.clone()))
            .into_future(),
    );
    let jobs = tokio::spawn(pool.shutdown_on(stopped(flag)));

    for image in ["cat.png", "dog.png", "owl.png"] {
        thumbnail::enqueue(&honker, image.to_string()).await?;
    }
    if !serve {
        // The demo: read the dashboard once, then stop as ctrl-c would.
        let page = get(port, "/honker").await?;
        assert!(page.contains("thumbnails"), "the dashboard lists the queue");
        println!("the dashboard answers: {} bytes", page.len());
        while DONE.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop.send(true);
    }
    server.await??;
    jobs.await??;
    println!(
        "server and pool stopped; {} jobs done",
        DONE.load(Ordering::SeqCst)
    );
    Ok(())
}

/// A plain HTTP/1.1 GET on the local server.
async fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}
