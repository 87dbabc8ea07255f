//! Named locks: one holder across handles, renewed past their ttl while
//! held, lost when taken away, released when dropped.

mod common;

use std::time::Duration;

use common::{eventually, honker};
use honker_actors::Honker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_is_renewed_past_its_ttl_and_refused_to_others() {
    let (d, h) = honker();
    // A second handle on the file: another process, as far as locks go.
    let other = Honker::open(d.path().join("app.db")).unwrap();
    let g = h
        .try_lock("nightly", Duration::from_secs(2))
        .await
        .unwrap()
        .expect("free");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert!(g.is_held(), "renewed past its 2 s ttl");
    assert!(other
        .try_lock("nightly", Duration::from_secs(1))
        .await
        .unwrap()
        .is_none());
    assert!(g.release().await.unwrap());
    assert!(other
        .try_lock("nightly", Duration::from_secs(1))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_away_is_reported_lost_and_a_dropped_one_is_released() {
    let (d, h) = honker();
    let path = d.path().join("app.db");
    let g = h
        .try_lock("leader", Duration::from_secs(1))
        .await
        .unwrap()
        .expect("free");
    // An operator (or another binding) deletes the row.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM _honker_locks WHERE name = 'leader'", [])
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), g.lost())
        .await
        .expect("told within a renewal");
    assert!(!g.is_held());
    drop(g);
    let g2 = h
        .try_lock("leader", Duration::from_secs(60))
        .await
        .unwrap()
        .expect("free again");
    drop(g2);
    assert!(
        eventually(Duration::from_secs(5), async || {
            let conn = rusqlite::Connection::open(&path).unwrap();
            honker_actors::core::lock_holder(&conn, "leader")
                .unwrap()
                .is_none()
        })
        .await,
        "a dropped guard gives its lock back"
    );
}

/// A guard names its lock and the owner written in the row; renewals
/// that fail for less than the ttl do not count the lock lost (only a
/// whole ttl unrenewed does); a release after the lock was taken away
/// says it was no longer held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_renewals_within_the_ttl_keep_the_lock_and_a_late_release_says_so() {
    let (d, h) = honker();
    let path = d.path().join("app.db");
    let g = h
        .try_lock("backup", Duration::from_secs(6))
        .await
        .unwrap()
        .expect("free");
    assert_eq!(g.name(), "backup");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let holder = honker_actors::core::lock_holder(&conn, "backup").unwrap();
    assert_eq!(holder.map(|h| h.0).as_deref(), Some(g.owner()));
    let shown = format!("{g:?}");
    assert!(
        shown.contains("backup") && shown.contains(g.owner()),
        "{shown}"
    );
    // Every write of this handle fails for 2.5 s: one renewal (every 2 s)
    // fails; the lock's 6 s have not run out, so it is still held.
    h.inject_writer_faults(Some(std::sync::Arc::new(|_| {
        Some(honker_actors::Fault::Busy)
    })));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    h.inject_writer_faults(None);
    assert!(g.is_held(), "a failed renewal within the ttl is not a loss");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(g.is_held());
    // Taken away (deleted): the release says it was no longer held.
    conn.execute("DELETE FROM _honker_locks WHERE name = 'backup'", [])
        .unwrap();
    assert!(!g.release().await.unwrap());
}
