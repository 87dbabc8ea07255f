//! The watcher's own promises: one signal per commit and none without,
//! kernel wake-ups only for fast watchers, a stop that ends the thread,
//! and a replaced file reported.

use super::*;

fn file() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = crate::open(&path).unwrap();
    (dir, path, conn)
}

/// Wait until `f` holds, for at most 5 s.
fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn commit(conn: &Connection) {
    crate::enqueue(conn, "q", "1", &Default::default()).unwrap();
}

#[test]
fn each_commit_is_one_change_and_no_commit_is_none() {
    // A fast watcher (kernel wake-ups) and a slow one (polling).
    for interval in [
        Duration::from_millis(1),
        SAFETY_NET + Duration::from_millis(10),
    ] {
        let (_dir, path, conn) = file();
        let w = Watcher::with_interval(&path, interval).unwrap();
        std::thread::sleep(interval * 3);
        assert_eq!(w.changes(), 0, "{interval:?}: nothing committed");
        for n in 1..=3 {
            commit(&conn);
            until("the commit is seen", || w.changes() >= n);
            std::thread::sleep(interval * 3);
            assert_eq!(w.changes(), n, "{interval:?}: one change per commit");
        }
        assert_eq!(w.error(), None);
    }
}

#[test]
fn only_a_fast_watcher_sleeps_on_kernel_wake_ups() {
    let (_dir, path, _conn) = file();
    let linux = cfg!(target_os = "linux") && std::env::var_os("HONKER_NO_KERNEL_WAKE").is_none();
    assert_eq!(
        Watcher::with_interval(&path, SAFETY_NET)
            .unwrap()
            .kernel_notified(),
        linux
    );
    let slow = SAFETY_NET + Duration::from_millis(1);
    assert!(!Watcher::with_interval(&path, slow)
        .unwrap()
        .kernel_notified());
    assert!(!Watcher::read_only(&path, slow).unwrap().kernel_notified());
    assert!(matches!(
        Watcher::with_interval(&path, Duration::ZERO),
        Err(Error::InvalidOption(_))
    ));
}

#[test]
fn a_stopped_or_dropped_watcher_calls_nobody_again() {
    for drop_it in [false, true] {
        let (_dir, path, conn) = file();
        let w = Watcher::start(&path).unwrap();
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let _sub = w.on_change(move || {
            c.fetch_add(1, Ordering::Relaxed);
        });
        commit(&conn);
        until("the first commit is seen", || {
            calls.load(Ordering::Relaxed) == 1
        });
        if drop_it {
            drop(w);
        } else {
            w.stop();
        }
        commit(&conn);
        std::thread::sleep(SAFETY_NET * 3);
        assert_eq!(calls.load(Ordering::Relaxed), 1, "dropped: {drop_it}");
    }
}

#[test]
fn a_replaced_file_is_reported_by_both_kinds_of_watcher() {
    for read_only in [false, true] {
        let (dir, path, conn) = file();
        let w = if read_only {
            Watcher::read_only(&path, Duration::from_millis(1)).unwrap()
        } else {
            Watcher::start(&path).unwrap()
        };
        assert!(format!("{w:?}").contains("error: None"), "{w:?}");
        let other = dir.path().join("other.db");
        drop(crate::open(&other).unwrap());
        std::fs::rename(&other, &path).unwrap();
        until("the replacement is reported", || w.error().is_some());
        let e = w.error().unwrap();
        assert!(e.contains("was replaced") && e.contains("app.db"), "{e}");
        assert!(format!("{w:?}").contains("was replaced"), "{w:?}");
        drop(conn);
    }
}

#[test]
fn a_read_only_watcher_signals_a_commit_and_is_quiet_at_rest() {
    let (_dir, path, conn) = file();
    let w = Watcher::read_only(&path, Duration::from_millis(1)).unwrap();
    let sub = w.subscribe();
    assert!(
        !sub.wait_timeout(Duration::from_millis(20)),
        "nothing written"
    );
    assert!(!sub.try_take());
    commit(&conn);
    assert!(sub.wait_timeout(Duration::from_secs(5)));
    commit(&conn);
    until("the second commit is signalled", || sub.try_take());
    // The look after a change signals once more; then quiet.
    std::thread::sleep(SAFETY_NET * 3);
    sub.try_take();
    std::thread::sleep(SAFETY_NET * 3);
    assert!(!sub.try_take(), "quiet at rest");
    assert_eq!(w.subscriber_count(), 1);
    drop(sub);
    assert_eq!(w.subscriber_count(), 0);
}
