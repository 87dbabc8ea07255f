//! Routing: many jobs on one queue, routed by the task name each row
//! carries; raw payloads; typed job handles.

use std::sync::Mutex;
use std::time::Duration;

use super::honker;
use crate::common::eventually;
use honker_actors::testing::wait_until_drained;
use honker_actors::{job, ConfigError, Error, Honker, JobError, WorkerPool};
use serde::{Deserialize, Serialize};

/// Which handler ran, with what.
static RUNS: Mutex<Vec<(&'static str, String)>> = Mutex::new(Vec::new());

fn ran(tag: &'static str, what: impl Into<String>) {
    RUNS.lock().unwrap().push((tag, what.into()));
}

fn runs_of(prefix: &str) -> Vec<(&'static str, String)> {
    let mut v: Vec<_> = RUNS
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, w)| w.starts_with(prefix))
        .cloned()
        .collect();
    v.sort();
    v
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Welcome {
    to: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Newsletter {
    to: String,
    issue: u32,
}

#[job(queue = "emails")]
async fn send_welcome(w: Welcome) -> Result<(), JobError> {
    ran("welcome", w.to);
    Ok(())
}

#[job(queue = "emails")]
async fn send_newsletter(n: Newsletter) -> Result<(), JobError> {
    ran("newsletter", format!("{}#{}", n.to, n.issue));
    Ok(())
}

async fn start(
    h: &Honker,
    build: impl FnOnce(honker_actors::WorkerPoolBuilder) -> honker_actors::WorkerPoolBuilder,
) -> WorkerPool {
    build(WorkerPool::builder(h).concurrency(4))
        .start()
        .await
        .unwrap()
}

async fn dead_error(h: &Honker, queue: &str, id: i64) -> Option<String> {
    h.queue(queue)
        .list_dead(1000, 0)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.id == id)
        .and_then(|d| d.last_error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_on_one_queue_each_run_by_their_own_handler() {
    let (_d, h) = honker();
    for i in 0..20 {
        send_welcome::enqueue(
            &h,
            Welcome {
                to: format!("both-w{i}"),
            },
        )
        .await
        .unwrap();
        send_newsletter::enqueue(
            &h,
            Newsletter {
                to: format!("both-n{i}"),
                issue: i,
            },
        )
        .await
        .unwrap();
    }
    let pool = start(&h, |b| b.register(send_welcome).register(send_newsletter)).await;
    wait_until_drained(&h, "emails", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    let runs = runs_of("both-");
    assert_eq!(runs.len(), 40, "{runs:?}");
    for (tag, what) in runs {
        let expect = if what.starts_with("both-w") {
            "welcome"
        } else {
            "newsletter"
        };
        assert_eq!(tag, expect, "{what} ran by {tag}");
    }
    assert_eq!(h.queue("emails").stats().await.unwrap().dead, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_pool_does_not_register_goes_to_dead_never_to_the_wrong_handler() {
    let (_d, h) = honker();
    let welcome = send_welcome::enqueue(
        &h,
        Welcome {
            to: "only-w".into(),
        },
    )
    .await
    .unwrap();
    // Same shape as a Welcome plus a field: decoding it as one would
    // "work" and drop `issue`. It must not.
    let letter = send_newsletter::enqueue(
        &h,
        Newsletter {
            to: "only-n".into(),
            issue: 7,
        },
    )
    .await
    .unwrap();
    let pool = start(&h, |b| b.register(send_welcome)).await;
    wait_until_drained(&h, "emails", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    assert_eq!(runs_of("only-"), [("welcome", "only-w".to_string())]);
    assert_eq!(
        dead_error(&h, "emails", letter.id()).await.as_deref(),
        Some("unknown task: 'send_newsletter'. Registered tasks: ['send_welcome']")
    );
    // The handle answers at once, naming why.
    match letter.result(&h, Duration::from_secs(60)).await {
        Err(Error::JobDead { last_error, .. }) => {
            assert!(last_error.unwrap().starts_with("unknown task"))
        }
        other => panic!("{other:?}"),
    }
    welcome.result(&h, Duration::from_secs(1)).await.unwrap();
    // Requeued once a pool knows the job, it runs.
    h.queue("emails").requeue_dead(letter.id()).await.unwrap();
    let pool = start(&h, |b| b.register(send_newsletter)).await;
    wait_until_drained(&h, "emails", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    assert_eq!(runs_of("only-n"), [("newsletter", "only-n#7".to_string())]);
}

#[job(queue = "legacy")]
async fn legacy(w: Welcome) -> Result<(), JobError> {
    ran("legacy", w.to);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_written_before_envelopes_still_run_on_a_queue_with_one_job() {
    let (_d, h) = honker();
    // What this crate wrote before several jobs shared a queue, and what Python's
    // `q.enqueue({...})` writes: the argument itself.
    let id = h
        .queue("legacy")
        .enqueue(&Welcome { to: "old-1".into() }, Default::default())
        .await
        .unwrap();
    let pool = start(&h, |b| b.register(legacy)).await;
    wait_until_drained(&h, "legacy", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    assert_eq!(runs_of("old-"), [("legacy", "old-1".to_string())]);
    assert_eq!(dead_error(&h, "legacy", id).await, None);
    assert_eq!(h.queue("legacy").stats().await.unwrap().dead, 0);
}

#[job(queue = "inbox", raw)]
async fn inbound(v: serde_json::Value) -> Result<(), JobError> {
    ran("inbound", v["tag"].as_str().unwrap_or("?").to_string());
    Ok(())
}

#[job(queue = "inbox")]
async fn triage(w: Welcome) -> Result<(), JobError> {
    ran("triage", w.to);
    Ok(())
}

#[job(queue = "inbox")]
async fn archive(w: Welcome) -> Result<(), JobError> {
    ran("archive", w.to);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_payloads_go_to_the_raw_job_of_a_shared_queue() {
    let (_d, h) = honker();
    let q = h.queue("inbox");
    q.enqueue(&serde_json::json!({"tag": "raw-1"}), Default::default())
        .await
        .unwrap();
    // A raw job's own enqueues name it, like any typed enqueue.
    let written = inbound::enqueue(&h, serde_json::json!({"tag": "raw-2"}))
        .await
        .unwrap();
    let row = q.get_job(written.id()).await.unwrap().unwrap();
    assert_eq!(
        honker_actors::core::task_name(&row.payload)
            .unwrap()
            .as_deref(),
        Some("inbound")
    );
    triage::enqueue(&h, Welcome { to: "raw-t".into() })
        .await
        .unwrap();
    let pool = start(&h, |b| b.register(inbound).register(triage)).await;
    wait_until_drained(&h, "inbox", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    assert_eq!(
        runs_of("raw-"),
        [
            ("inbound", "raw-1".to_string()),
            ("inbound", "raw-2".to_string()),
            ("triage", "raw-t".to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_payload_on_a_shared_queue_without_a_raw_job_goes_to_dead_naming_why() {
    let (_d, h) = honker();
    let id = h
        .queue("inbox")
        .enqueue(&Welcome { to: "noraw".into() }, Default::default())
        .await
        .unwrap();
    let pool = start(&h, |b| b.register(triage).register(archive)).await;
    wait_until_drained(&h, "inbox", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    assert!(runs_of("noraw").is_empty());
    let why = dead_error(&h, "inbox", id).await.unwrap();
    assert!(
        why.contains("raw") && why.contains("'archive', 'triage'") && why.contains("#[job(raw)]"),
        "{why}"
    );
}

#[job(queue = "calls")]
async fn greet(g: Welcome) -> Result<String, JobError> {
    Ok(format!("hello {}", g.to))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_that_cannot_map_onto_the_argument_go_to_dead_naming_why() {
    let (_d, h) = honker();
    let q = h.queue("calls");
    let call = |args: serde_json::Value, kwargs: serde_json::Value| serde_json::json!({"__honker_task__": {"task": "greet", "args": args, "kwargs": kwargs}});
    let mixed = q
        .enqueue(
            &call(serde_json::json!(["ada"]), serde_json::json!({"x": 1})),
            Default::default(),
        )
        .await
        .unwrap();
    let wrong = q
        .enqueue(
            &call(serde_json::json!([]), serde_json::json!({"name": "ada"})),
            Default::default(),
        )
        .await
        .unwrap();
    let positional = q
        .enqueue(
            &call(serde_json::json!(["bob"]), serde_json::json!({})),
            Default::default(),
        )
        .await
        .unwrap();
    let broken = q
        .enqueue(
            &serde_json::json!({"__honker_task__": {"args": []}}),
            Default::default(),
        )
        .await
        .unwrap();
    let pool = start(&h, |b| b.register(greet)).await;
    wait_until_drained(&h, "calls", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    let why = dead_error(&h, "calls", mixed).await.unwrap();
    assert!(
        why.contains("1 positional") && why.contains("\"x\""),
        "{why}"
    );
    let why = dead_error(&h, "calls", wrong).await.unwrap();
    assert!(why.contains("Welcome") && why.contains("`to`"), "{why}");
    let why = dead_error(&h, "calls", broken).await.unwrap();
    assert!(why.starts_with("malformed task envelope"), "{why}");
    // One positional argument fills a struct by field order.
    assert_eq!(
        h.result::<String>(positional, Duration::from_secs(5))
            .await
            .unwrap(),
        "hello bob"
    );
}

#[job(queue = "typed")]
async fn square(n: u64) -> Result<u64, JobError> {
    Ok(n * n)
}

#[job(queue = "typed")]
async fn note(_n: u64) -> Result<(), JobError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_handles_give_typed_results_and_answer_at_once_for_dead_or_cancelled_jobs() {
    let (_d, h) = honker();
    let sq = square::enqueue(&h, 12).await.unwrap();
    let done = note::enqueue(&h, 1).await.unwrap();
    let cancelled = square::enqueue(&h, 3).await.unwrap();
    h.queue("typed").cancel(cancelled.id()).await.unwrap();
    let pool = start(&h, |b| b.register(square).register(note)).await;
    let n: u64 = sq.result(&h, Duration::from_secs(10)).await.unwrap();
    assert_eq!(n, 144);
    // A job whose output is () answers Ok(()) once it has succeeded.
    done.result(&h, Duration::from_secs(10)).await.unwrap();
    assert!(matches!(
        cancelled.result(&h, Duration::from_secs(60)).await,
        Err(Error::JobCancelled { .. })
    ));
    pool.shutdown().await.unwrap();
    // Not yet run: waits, then times out (no pool now).
    let later = note::enqueue(&h, 2).await.unwrap();
    assert!(matches!(
        later.result(&h, Duration::from_millis(50)).await,
        Err(Error::ResultTimeout { .. })
    ));
    assert_eq!(i64::from(later), later.id());
    // Run by another binding whose task returned a value: still Ok(()).
    let other = note::enqueue(&h, 3).await.unwrap();
    let id = other.id();
    // Its claim and an ack with that result, through the store itself
    // as another binding writes them.
    let s = h.store();
    let jobs = s
        .claim("typed", "py", 10, Duration::from_secs(60))
        .await
        .unwrap();
    let job = jobs.iter().find(|j| j.id == id).expect("claimed");
    let (tx, rx) = tokio::sync::oneshot::channel();
    s.run_cycle(
        honker_actors::store::CycleRequest {
            worker: "py".into(),
            outcomes: vec![honker_actors::store::Outcome::Ack {
                fence: honker_actors::store::Fence {
                    worker: "py".into(),
                    lease: job.lease(),
                },
                queue: "typed",
                job_name: "note",
                result: Some((r#"{"count": 4}"#.into(), None)),
            }],
            plan: Default::default(),
            visibility: Duration::from_secs(60),
            queues: vec!["typed"].into(),
            sweep: false,
        },
        Box::new(move |_, out| {
            let _ = tx.send(out);
        }),
    );
    let out = rx.await.unwrap().unwrap();
    assert_eq!(out.applied, [Ok(honker_actors::store::Applied::Acked)]);
    other.result(&h, Duration::from_secs(5)).await.unwrap();
}

#[job(queue = "a", name = "shared_name")]
async fn first_of_a_name(_n: u32) -> Result<(), JobError> {
    Ok(())
}

#[job(queue = "b", name = "shared_name")]
async fn second_of_a_name(_n: u32) -> Result<(), JobError> {
    Ok(())
}

#[job(queue = "inbox", raw)]
async fn also_raw(_v: serde_json::Value) -> Result<(), JobError> {
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_a_pool_cannot_route_are_refused_at_start() {
    let (_d, h) = honker();
    let e = WorkerPool::builder(&h)
        .register(first_of_a_name)
        .register(second_of_a_name)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Config(ConfigError::DuplicateJobName {
                name: "shared_name",
                ..
            })
        ),
        "{e}"
    );
    let e = WorkerPool::builder(&h)
        .register(inbound)
        .register(also_raw)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Config(ConfigError::SeveralRawJobs { queue: "inbox", .. })
        ),
        "{e}"
    );
    // Registering the same job twice is told as that.
    let e = WorkerPool::builder(&h)
        .register(triage)
        .register(triage)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Config(ConfigError::RegisteredTwice { name: "triage" })
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        r#"invalid configuration: job "triage" is registered twice; register it once"#
    );
}

#[job(queue = "renamed_q", name = "billing.charge")]
async fn charge(cents: u64) -> Result<u64, JobError> {
    Ok(cents)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_found_by_its_task_name_even_on_another_queue() {
    // As in Python, a worker routes by name: a call enqueued (by another
    // producer) on a queue the job does not name still runs.
    let (_d, h) = honker();
    let payload = honker_actors::core::task_payload("billing.charge", &250).unwrap();
    let stray = h
        .queue("renamed_q_side")
        .enqueue_json(payload, Default::default())
        .await
        .unwrap();
    // A second job so the pool claims from that queue.
    #[job(queue = "renamed_q_side")]
    async fn side(_n: u32) -> Result<(), JobError> {
        Ok(())
    }
    let pool = start(&h, |b| b.register(charge).register(side)).await;
    assert_eq!(
        h.result::<u64>(stray, Duration::from_secs(10))
            .await
            .unwrap(),
        250
    );
    pool.shutdown().await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), async || h
            .queue("renamed_q_side")
            .stats()
            .await
            .unwrap()
            .dead
            == 0)
        .await
    );
}

// Cases an outside review found.

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Refund {
    account: String,
    cents: u64,
}

#[job(queue = "hooks")]
async fn issue_refund(r: Refund) -> Result<(), JobError> {
    ran("issue_refund", format!("hook-{}:{}", r.account, r.cents));
    Ok(())
}

/// Stores whatever JSON a webhook sent: untrusted data.
#[job(queue = "hooks", raw)]
async fn store_webhook(body: serde_json::Value) -> Result<(), JobError> {
    ran("store_webhook", format!("hook-{body}"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argument_holding_the_envelope_key_is_data_never_a_call() {
    let (_d, h) = honker();
    let forged = serde_json::json!({
        "event": "e1",
        "__honker_task__": {"task": "issue_refund", "args": [], "kwargs": {"account": "x", "cents": 100000}}
    });
    let odd = serde_json::json!({"__honker_task__": "a string", "event": "e2"});
    store_webhook::enqueue(&h, forged.clone()).await.unwrap();
    store_webhook::enqueue(&h, odd.clone()).await.unwrap();
    let pool = start(&h, |b| b.register(issue_refund).register(store_webhook)).await;
    wait_until_drained(&h, "hooks", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    let mut expect = vec![
        ("store_webhook", format!("hook-{forged}")),
        ("store_webhook", format!("hook-{odd}")),
    ];
    expect.sort();
    assert_eq!(runs_of("hook-"), expect, "stored whole, nothing refunded");
    assert_eq!(h.queue("hooks").stats().await.unwrap().dead, 0);
}

#[job(queue = "mail")]
async fn send_receipt(w: Welcome) -> Result<(), JobError> {
    ran("send_receipt", w.to);
    Ok(())
}

#[job(queue = "mail", raw)]
async fn bounce(w: Welcome) -> Result<(), JobError> {
    ran("bounce", w.to);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_jobs_rows_are_never_run_by_a_pool_that_lacks_it() {
    let (_d, h) = honker();
    let id = bounce::enqueue(
        &h,
        Welcome {
            to: "mail-b".into(),
        },
    )
    .await
    .unwrap();
    // This process serves only send_receipt on "mail".
    let pool = start(&h, |b| b.register(send_receipt)).await;
    wait_until_drained(&h, "mail", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    assert!(runs_of("mail-").is_empty());
    let why = dead_error(&h, "mail", id.id()).await.unwrap();
    assert!(why.starts_with("unknown task: 'bounce'"), "{why}");
}

#[job(queue = "trees")]
async fn save_tree(v: serde_json::Value) -> Result<(), JobError> {
    ran("save_tree", format!("tree-{}", v["id"]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_argument_serde_json_cannot_read_back_goes_to_dead_never_runs_as_empty() {
    let (_d, h) = honker();
    let mut deep = serde_json::json!(1);
    for _ in 0..130 {
        deep = serde_json::json!([deep]);
    }
    let handle = save_tree::enqueue(&h, serde_json::json!({"id": "t1", "tree": deep}))
        .await
        .unwrap();
    let pool = start(&h, |b| b.register(save_tree)).await;
    wait_until_drained(&h, "trees", Duration::from_secs(30))
        .await
        .unwrap();
    pool.shutdown().await.unwrap();
    assert!(runs_of("tree-").is_empty());
    let why = dead_error(&h, "trees", handle.id()).await.unwrap();
    assert!(why.contains("recursion limit"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueued_reports_a_waiting_row_of_the_job_that_would_not_decode() {
    let (_d, h) = honker();
    save_tree::enqueue(&h, serde_json::json!({"id": 1}))
        .await
        .unwrap();
    let seen = honker_actors::testing::enqueued::<save_tree>(&h)
        .await
        .unwrap();
    assert_eq!(seen, [serde_json::json!({"id": 1})]);
    // Positional and keyword arguments at once: the pool would dead-letter it.
    let bad = r#"{"__honker_task__": {"task": "save_tree", "args": [2], "kwargs": {"x": 1}}}"#;
    h.queue("trees")
        .enqueue_json(bad.to_string(), Default::default())
        .await
        .unwrap();
    let e = honker_actors::testing::enqueued::<save_tree>(&h)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::PayloadDecode {
                job: "save_tree",
                ..
            }
        ),
        "{e}"
    );
}
