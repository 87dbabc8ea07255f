//! The dashboard in a real browser (headless Chromium): the overview lists
//! the queues with the right counts, a dead job is retried by clicking its
//! button, a job enqueued by another connection appears through server-sent
//! events without a reload, and a schedule runs now. Screenshots of each
//! page go to `target/dashboard-screenshots/`.

mod cdp;

use std::path::PathBuf;
use std::time::Duration;

use honker_core::{EnqueueOptions, ScheduleSpec};

/// Serve the dashboard of `path`, nested at `/honker`, on a port of its own.
fn serve(path: PathBuf) -> (String, std::sync::mpsc::Sender<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let honker = honker_actors::Honker::open(&path).unwrap();
            let app = axum::Router::new().nest("/honker", honker_web::router(honker));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let stop = tokio::task::spawn_blocking(move || {
                let _ = stop_rx.recv();
            });
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.await;
                })
                .await
                .unwrap();
        });
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    (format!("http://{addr}/honker"), stop_tx)
}

fn dead_job(c: &honker_core::rusqlite::Connection, queue: &str, payload: &str, error: &str) -> i64 {
    let one = EnqueueOptions::default().max_attempts(1);
    let id = honker_core::enqueue(c, queue, payload, &one).unwrap();
    let got = honker_core::claim_batch(c, queue, "w", 1, Duration::from_secs(60)).unwrap();
    assert_eq!(got[0].id, id, "the queue's first job");
    honker_core::fail(c, "w", got[0].lease(), error).unwrap();
    id
}

#[test]
#[cfg_attr(
    not(honker_browser),
    ignore = "needs Chromium: set HONKER_CHROMIUM to the browser (.ci/run installs Debian's chromium)"
)]
fn the_dashboard_works_in_a_real_browser() {
    let exe = cdp::chromium().expect(
        "no Chromium: set HONKER_CHROMIUM, or `apt-get install -y chromium` (.ci/run does)",
    );
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let c = honker_core::open(&path).unwrap();
    let email =
        |to: &str| honker_core::task_payload("send_email", &serde_json::json!({"to": to})).unwrap();
    let d1 = dead_job(
        &c,
        "emails",
        &email("dan@example.com"),
        "smtp: 550 mailbox unavailable",
    );
    let d2 = dead_job(
        &c,
        "emails",
        &email("eve@example.com"),
        "smtp: connection timed out",
    );
    for to in ["ada@example.com", "bob@example.com", "cy@example.com"] {
        honker_core::enqueue(&c, "emails", &email(to), &Default::default()).unwrap();
    }
    let later = EnqueueOptions::default().delay(Duration::from_secs(3600));
    honker_core::enqueue(&c, "reports", r#"{"report":"weekly"}"#, &later).unwrap();
    honker_core::enqueue(&c, "reports", r#"{"report":"daily"}"#, &Default::default()).unwrap();
    honker_core::claim_batch(&c, "reports", "worker-7", 1, Duration::from_secs(300)).unwrap();
    honker_core::pause_queue(&c, "reports").unwrap();
    let nightly = ScheduleSpec::new(
        "nightly-digest",
        "emails",
        "0 3 * * *",
        r#"{"digest":true}"#,
    );
    honker_core::register_schedule(&c, &nightly).unwrap();

    let (base, stop) = serve(path.clone());
    let mut b = cdp::Browser::launch(&exe);

    // The overview: every queue with its counts.
    b.goto(&base);
    b.wait_for("document.querySelector('#queues')", 10, "the queue table");
    let count = |b: &mut cdp::Browser, q: &str, state: &str| -> String {
        b.eval(&format!(
            "document.querySelector('tr[data-queue=\"{q}\"] td[data-count=\"{state}\"]').innerText"
        ))
        .as_str()
        .unwrap()
        .trim()
        .to_string()
    };
    assert_eq!(count(&mut b, "emails", "pending"), "3");
    assert_eq!(count(&mut b, "emails", "dead"), "2");
    assert_eq!(count(&mut b, "reports", "scheduled"), "1");
    assert_eq!(count(&mut b, "reports", "running"), "1");
    let reports = b.eval("document.querySelector('tr[data-queue=\"reports\"]').innerText");
    assert!(reports.as_str().unwrap().contains("paused"), "{reports}");
    b.screenshot(&shots.join("overview.png"));

    // Dead jobs: retry one by clicking its button.
    b.goto(&format!("{base}/dead"));
    b.wait_for(
        &format!("document.querySelector('tr[data-job=\"{d1}\"]')"),
        10,
        "the dead job",
    );
    b.screenshot(&shots.join("dead.png"));
    b.click(&format!(
        "tr[data-job=\"{d1}\"] form[action$=\"/retry\"] button"
    ));
    b.wait_for(
        "document.querySelector('.notice') && document.querySelector('.notice').innerText.includes('requeued')",
        10,
        "the retry notice",
    );
    let back = honker_core::get_job(&c, d1)
        .unwrap()
        .expect("retried job is live again");
    assert_eq!(back.state, honker_core::JobState::Pending);
    assert!(
        honker_core::get_dead(&c, d2).unwrap().is_some(),
        "only the clicked one"
    );

    // A job enqueued by another connection appears without a reload.
    b.goto(&format!("{base}/queues/emails?state=pending"));
    b.wait_for(
        "document.body.getAttribute('data-live') === '1'",
        10,
        "the event stream",
    );
    b.eval("window.__notReloaded = 42");
    let new =
        honker_core::enqueue(&c, "emails", &email("zed@example.com"), &Default::default()).unwrap();
    b.wait_for(
        &format!("document.querySelector('tr[data-job=\"{new}\"]')"),
        10,
        "the new job",
    );
    assert_eq!(
        b.eval("window.__notReloaded"),
        serde_json::json!(42),
        "the page was reloaded"
    );
    b.screenshot(&shots.join("queue.png"));

    // A job's detail.
    b.goto(&format!("{base}/jobs/{d2}"));
    b.wait_for("document.querySelector('#payload')", 10, "the payload");
    let text = b.eval("document.querySelector('main').innerText");
    assert!(
        text.as_str().unwrap().contains("connection timed out"),
        "{text}"
    );
    b.screenshot(&shots.join("job.png"));

    // Running jobs.
    b.goto(&format!("{base}/running"));
    b.wait_for(
        "document.querySelector('#running')",
        10,
        "the running table",
    );
    let text = b.eval("document.querySelector('#running').innerText");
    assert!(text.as_str().unwrap().contains("worker-7"), "{text}");
    b.screenshot(&shots.join("running.png"));

    // Schedules: run one now.
    b.goto(&format!("{base}/schedules"));
    b.wait_for("document.querySelector('#schedules')", 10, "the schedules");
    b.screenshot(&shots.join("schedules.png"));
    b.click("tr[data-schedule=\"nightly-digest\"] form[action$=\"/run-now\"] button");
    b.wait_for(
        "document.querySelector('.notice') && document.querySelector('.notice').innerText.includes('enqueued job')",
        10,
        "the run-now notice",
    );
    let digests: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM _honker_live WHERE payload = '{\"digest\":true}'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(digests, 1);

    // Work done shows in the throughput chart (sampled every second).
    let done = honker_core::claim_batch(&c, "emails", "w", 3, Duration::from_secs(60)).unwrap();
    assert_eq!(done.len(), 3);
    for j in &done {
        honker_core::ack(&c, "w", j.lease()).unwrap();
    }
    b.goto(&base);
    b.wait_for(
        "Array.from(document.querySelectorAll('svg title'))\
           .map(t => Number((t.textContent.match(/(\\d+) finished/) || [0, 0])[1]))\
           .reduce((a, n) => a + n, 0) >= 3",
        15,
        "three finished jobs in the chart",
    );
    b.screenshot(&shots.join("overview-live.png"));

    drop(b);
    let _ = stop.send(());
}
