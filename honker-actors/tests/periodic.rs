//! Pools fire the file's schedules: one leader at a time, each boundary
//! once, and a follower takes over when the leader goes.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{eventually, honker};
use honker_actors::core::{rusqlite, ScheduleSpec};
use honker_actors::{job, Honker, JobError, WorkerPool};

#[job(queue = "ticks", raw)]
async fn tick(_v: serde_json::Value) -> Result<(), JobError> {
    Ok(())
}

fn every_second(conn: &rusqlite::Connection) {
    let mut s = ScheduleSpec::new("heartbeat", "ticks", "@every 1s", r#"{"tick":true}"#);
    s.zone = Some("UTC".into());
    honker_actors::core::register_schedule(conn, &s).unwrap();
}

/// The boundaries fired so far, in order.
fn boundaries(conn: &rusqlite::Connection) -> Vec<i64> {
    let mut stmt = conn
        .prepare("SELECT boundary FROM _honker_schedule_runs ORDER BY boundary")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

fn assert_each_once_in_a_row(b: &[i64]) {
    let distinct: BTreeSet<_> = b.iter().collect();
    assert_eq!(distinct.len(), b.len(), "a boundary fired twice: {b:?}");
    assert!(
        b.windows(2).all(|w| w[1] == w[0] + 1),
        "a boundary skipped: {b:?}"
    );
}

async fn pool(h: &Honker, ttl: Duration) -> WorkerPool {
    WorkerPool::builder(h)
        .register(tick)
        .scheduler_lock_ttl(ttl)
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_fire_each_boundary_once_and_a_follower_takes_over() {
    let (d, h) = honker();
    let path = d.path().join("app.db");
    let other = Honker::open(&path).unwrap();
    let watch = rusqlite::Connection::open(&path).unwrap();
    every_second(&watch);
    let ttl = Duration::from_secs(3);
    let a = pool(&h, ttl).await;
    let b = pool(&other, ttl).await;
    assert!(
        eventually(Duration::from_secs(30), async || boundaries(&watch).len()
            >= 4)
        .await,
        "fired every second"
    );
    let fired = boundaries(&watch);
    assert_each_once_in_a_row(&fired);
    // The leader goes away without a word (killed): the follower takes
    // over within the lock's ttl, and the boundaries go on, once each.
    let (leader, follower) =
        match honker_actors::core::lock_holder(&watch, "honker-scheduler").unwrap() {
            Some((owner, _)) if owner == a.worker_id() => (a, b),
            Some(_) => (b, a),
            None => panic!("no leader"),
        };
    let gone_at = Instant::now();
    let before = boundaries(&watch).len();
    drop(leader);
    assert!(
        eventually(Duration::from_secs(30), async || boundaries(&watch).len()
            >= before + 3)
        .await,
        "the follower fires"
    );
    let took = gone_at.elapsed();
    eprintln!("the follower fired 3 boundaries {took:?} after the leader was killed");
    assert!(
        took < ttl + Duration::from_secs(5),
        "took over after {took:?}"
    );
    // None lost either: the boundaries of the takeover (under 30 s late)
    // are fired by the new leader.
    assert_each_once_in_a_row(&boundaries(&watch));
    let holder = honker_actors::core::lock_holder(&watch, "honker-scheduler")
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(holder, follower.worker_id());
    follower.shutdown().await.unwrap();
    assert_eq!(
        honker_actors::core::lock_holder(&watch, "honker-scheduler").unwrap(),
        None,
        "a shutdown gives the lock back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_without_the_scheduler_fires_nothing() {
    let (d, h) = honker();
    let watch = rusqlite::Connection::open(d.path().join("app.db")).unwrap();
    every_second(&watch);
    let p = WorkerPool::builder(&h)
        .register(tick)
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(boundaries(&watch).is_empty());
    p.shutdown().await.unwrap();
    let e = WorkerPool::builder(&h)
        .register(tick)
        .scheduler_lock_ttl(Duration::from_secs(1))
        .start()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("3 s"), "{e}");
}

static SEEN: std::sync::Mutex<Vec<(String, i64)>> = std::sync::Mutex::new(Vec::new());

/// Every second; knows the boundary it was fired for.
#[job(queue = "beats", cron = "* * * * * *")]
async fn beat(ctx: honker_actors::JobContext, _none: ()) -> Result<(), JobError> {
    let at = ctx.scheduled_at().await?.expect("fired by a schedule");
    SEEN.lock().unwrap().push(at);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_job_is_registered_by_its_pool_and_knows_its_boundary() {
    let (d, h) = honker();
    let watch = rusqlite::Connection::open(d.path().join("app.db")).unwrap();
    let p = WorkerPool::builder(&h)
        .register(beat)
        .start()
        .await
        .unwrap();
    let row = honker_actors::core::get_schedule(&watch, "beat")
        .unwrap()
        .expect("registered by the pool");
    assert_eq!(
        (row.spec.queue.as_str(), row.spec.expr.as_str()),
        ("beats", "* * * * * *")
    );
    assert!(
        eventually(Duration::from_secs(30), async || SEEN.lock().unwrap().len()
            >= 3)
        .await,
        "ran every second"
    );
    p.shutdown().await.unwrap();
    let seen = SEEN.lock().unwrap().clone();
    assert!(seen.iter().all(|(s, _)| s == "beat"));
    let mut at: Vec<i64> = seen.iter().map(|(_, b)| *b).collect();
    at.sort();
    assert_each_once_in_a_row(&at);
    // A restart (a deploy) registers it again without moving its next boundary.
    let next = honker_actors::core::get_schedule(&watch, "beat")
        .unwrap()
        .unwrap()
        .next_fire_at;
    let p = WorkerPool::builder(&h)
        .register(beat)
        .scheduler(false)
        .start()
        .await
        .unwrap();
    p.shutdown().await.unwrap();
    assert_eq!(
        honker_actors::core::get_schedule(&watch, "beat")
            .unwrap()
            .unwrap()
            .next_fire_at,
        next
    );
}
