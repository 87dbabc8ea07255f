//! The watcher's own promises: one signal per commit and none without,
//! kernel wake-ups only for fast watchers, a stop that ends the thread,
//! and a replaced file reported.

use std::sync::Condvar;

use super::*;

fn start(path: &Path) -> Watcher {
    Watcher::with_interval(path, DEFAULT_WATCH_INTERVAL).unwrap()
}

/// A subscription a test thread waits on.
struct Waiter {
    _sub: Subscription,
    signal: Arc<(Mutex<bool>, Condvar)>,
}

fn subscribe(w: &Watcher) -> Waiter {
    let signal = Arc::new((Mutex::new(false), Condvar::new()));
    let s = signal.clone();
    let sub = w.on_change(move || {
        *lock(&s.0) = true;
        s.1.notify_all();
    });
    Waiter { _sub: sub, signal }
}

impl Waiter {
    /// Wait up to `timeout` for a change, and take it.
    fn wait_timeout(&self, timeout: Duration) -> bool {
        let (raised, cv) = &*self.signal;
        let guard = lock(raised);
        let (mut guard, _) = cv
            .wait_timeout_while(guard, timeout, |r| !*r)
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *guard)
    }

    /// Take a pending change without waiting.
    fn try_take(&self) -> bool {
        std::mem::take(&mut *lock(&self.signal.0))
    }
}

fn file() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = honker_core::open(&path).unwrap();
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
    honker_core::enqueue(conn, "q", "1", &Default::default()).unwrap();
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
fn a_dropped_watcher_calls_nobody_again() {
    let (_dir, path, conn) = file();
    let w = start(&path);
    let calls = Arc::new(AtomicU64::new(0));
    let c = calls.clone();
    let _sub = w.on_change(move || {
        c.fetch_add(1, Ordering::Relaxed);
    });
    commit(&conn);
    until("the first commit is seen", || {
        calls.load(Ordering::Relaxed) == 1
    });
    drop(w);
    commit(&conn);
    std::thread::sleep(SAFETY_NET * 3);
    assert_eq!(calls.load(Ordering::Relaxed), 1, "called after the drop");
}

#[test]
fn a_replaced_file_is_reported_by_both_kinds_of_watcher() {
    for read_only in [false, true] {
        let (dir, path, conn) = file();
        let w = if read_only {
            Watcher::read_only(&path, Duration::from_millis(1)).unwrap()
        } else {
            start(&path)
        };
        assert!(format!("{w:?}").contains("error: None"), "{w:?}");
        let other = dir.path().join("other.db");
        drop(honker_core::open(&other).unwrap());
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
    let sub = subscribe(&w);
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

#[test]
fn every_subscriber_is_signalled_across_checkpoints_and_a_dropped_one_is_removed() {
    let (_dir, path, conn) = file();
    let w = start(&path);
    let a = subscribe(&w);
    let b = subscribe(&w);
    assert_eq!(w.subscriber_count(), 2);
    for round in 0..3 {
        commit(&conn);
        assert!(a.wait_timeout(Duration::from_secs(5)), "round {round}");
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        // A checkpoint may or may not count as a change.
        std::thread::sleep(Duration::from_millis(20));
        a.try_take();
    }
    assert!(b.try_take(), "every subscriber is signalled");
    drop(b);
    assert_eq!(w.subscriber_count(), 1);
    drop(w);
    assert!(
        !a.wait_timeout(Duration::from_millis(10)),
        "a outlives the watcher"
    );
}

/// A read-only watcher makes nothing beside a file at rest, sees a commit
/// by another connection, and does not keep that connection's last close
/// from removing the `-wal` and `-shm` (a read-only connection did all
/// three wrong).
#[test]
fn a_read_only_watcher_leaves_no_files_and_sees_commits() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.db");
    drop(honker_core::open(&p).unwrap());
    let side = |s: &str| dir.path().join(format!("w.db{s}")).exists();
    assert!(!side("-wal") && !side("-shm"), "at rest");
    let w = Watcher::read_only(&p, Duration::from_millis(5)).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    assert!(!side("-wal") && !side("-shm"), "watching made a file");
    let sub = subscribe(&w);
    let c = honker_core::open(&p).unwrap();
    commit(&c);
    assert!(
        sub.wait_timeout(Duration::from_secs(5)),
        "the commit is seen"
    );
    drop(c);
    assert!(
        !side("-wal") && !side("-shm"),
        "the writer's close cleaned up"
    );
    drop(w);
    assert!(!side("-wal") && !side("-shm"));
}
