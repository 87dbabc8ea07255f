//! The SQLite store's ways of opening a file, and where its reads run.

use std::sync::mpsc;
use std::time::Duration;

use super::SqliteStore;
use crate::store::{
    CommitSource, ControlStore, InspectStore, JobStore, ScheduleStore, StoreErrorKind,
};
use crate::Honker;

const EVERY: Duration = Duration::from_millis(5);

fn beside(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_store_that_only_looks_reads_everything_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = honker_core::open(&path).unwrap();
    let id = honker_core::enqueue(&conn, "q", "[7]", &Default::default()).unwrap();
    drop(conn); // at rest: no -wal, no -shm
    assert_eq!(beside(dir.path()), ["app.db"]);

    let store = SqliteStore::open_read_only(&path, EVERY).unwrap();
    assert!(store.is_read_only());
    assert_eq!(store.stats().await.unwrap()[0].pending_due, 1);
    assert_eq!(store.job(id).await.unwrap().unwrap().payload, "[7]");
    assert_eq!(store.row_totals().await.unwrap().live, 1);
    assert!(store.now().await.unwrap() > 1_700_000_000);

    let refused = |r: crate::Result<()>| match r {
        Err(crate::Error::Store(e)) if e.kind() == StoreErrorKind::ReadOnly => {
            match e.get_ref().downcast_ref::<honker_core::Error>() {
                Some(honker_core::Error::ReadOnly { path: p, .. }) => assert_eq!(p, &path),
                other => panic!("the cause names the file: {other:?}"),
            }
        }
        other => panic!("not refused as read-only: {other:?}"),
    };
    refused(
        store
            .enqueue("q", "1".into(), Default::default())
            .await
            .map(drop),
    );
    refused(store.pause_queue("q").await.map(drop));
    refused(store.cancel_in("q", id).await.map(drop));
    refused(store.run_schedule_now("s").await.map(drop));
    refused(
        store
            .claim("q", "w", 1, Duration::from_secs(9))
            .await
            .map(drop),
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    crate::store::PoolStore::run_cycle(
        &store,
        crate::store::CycleRequest {
            worker: "w#1".into(),
            outcomes: Vec::new(),
            plan: crate::store::ClaimPlan {
                budget: 1,
                queues: vec![("q", 1)],
                free: 1,
            },
            visibility: Duration::from_secs(9),
            queues: vec!["q"].into(),
            sweep: false,
        },
        Box::new(move |_, out| {
            let _ = tx.send(out.is_err());
        }),
    );
    assert!(rx.await.unwrap(), "a cycle is refused too");

    let watch = store.watch_commits(Box::new(|| {})).unwrap();
    assert_eq!(watch.error(), None);
    drop(watch);
    drop(store);
    assert_eq!(beside(dir.path()), ["app.db"], "nothing made, nothing left");
    let conn = honker_core::open(&path).unwrap();
    assert_eq!(
        honker_core::stats(&conn).unwrap()[0].pending_due,
        1,
        "nothing changed"
    );
}

#[test]
fn an_existing_file_is_required_to_act_on_and_none_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let missing = SqliteStore::open_existing(&path, EVERY).unwrap_err();
    assert!(
        matches!(&missing, crate::Error::Store(e) if e.kind() == StoreErrorKind::NotFound),
        "{missing:?}"
    );
    assert!(matches!(
        SqliteStore::open_read_only(&path, EVERY),
        Err(crate::Error::Store(e)) if e.kind() == StoreErrorKind::NotFound
    ));
    assert!(beside(dir.path()).is_empty());
    std::fs::write(&path, b"not a database, not at all, no").unwrap();
    assert!(SqliteStore::open_existing(&path, EVERY).is_err());
    assert_eq!(beside(dir.path()), ["app.db"]);
    assert!(matches!(
        SqliteStore::open_existing(&path, Duration::ZERO),
        Err(crate::Error::Config(_))
    ));
}

/// An operator's look (a list, a count) runs off the writer thread: it
/// answers while the writer is busy inside a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_answers_while_the_writer_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let h = Honker::open(dir.path().join("app.db")).unwrap();
    h.queue("q").enqueue("1", Default::default()).await.unwrap();
    let (looked, wait) = mpsc::channel::<()>();
    let busy = tokio::spawn({
        let h = h.clone();
        async move {
            h.transaction(move |_| {
                // Held until the look has answered (or 10 s pass).
                let answered = wait.recv_timeout(Duration::from_secs(10)).is_ok();
                Ok::<_, std::convert::Infallible>(answered)
            })
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stats = tokio::time::timeout(Duration::from_secs(5), h.store().stats())
        .await
        .expect("the look waited for the writer")
        .unwrap();
    assert_eq!(stats[0].pending_due, 1);
    looked.send(()).unwrap();
    assert!(
        busy.await.unwrap().unwrap(),
        "the writer was still busy when the look answered"
    );
}

#[test]
fn a_store_says_its_file_and_whether_it_only_looks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let store = SqliteStore::open(&path, EVERY).unwrap();
    assert!(!store.is_read_only());
    assert_eq!(crate::store::Store::file(&store), Some(path.as_path()));
    let shown = format!("{store:?}");
    assert!(
        shown.contains("app.db") && shown.contains("read_only: false"),
        "{shown}"
    );
    let looking = SqliteStore::open_read_only(&path, EVERY).unwrap();
    assert!(format!("{looking:?}").contains("read_only: true"));
    let h = Honker::with_store(std::sync::Arc::new(store));
    assert_eq!(h.path(), Some(path.as_path()));
}

#[test]
fn a_commit_watch_reports_the_file_replaced_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let store = SqliteStore::open(&path, EVERY).unwrap();
    let watch = store.watch_commits(Box::new(|| {})).unwrap();
    assert_eq!(watch.error(), None);
    let other = dir.path().join("other.db");
    drop(honker_core::open(&other).unwrap());
    std::fs::rename(&other, &path).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while watch.error().is_none() {
        assert!(std::time::Instant::now() < deadline, "never reported");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(watch.error().unwrap().contains("replaced"));
}
