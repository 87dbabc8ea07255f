//! Reliability: crashes, contention, bad input and broken environments lose
//! nothing and explain themselves.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{child, eventually, ChildGuard};
use honker_actors::core::EnqueueOptions;
use honker_actors::store::StoreErrorKind;
use honker_actors::{job, Error, Honker, JobContext, JobError, WorkerPool};

fn count(conn: &rusqlite::Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Silence the deliberate panics whose message starts with `prefix`
/// (thousands would flood the log); every other panic prints as usual.
fn quiet_panics(prefix: &'static str) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !msg.starts_with(prefix) {
            default(info);
        }
    }));
}

// ------------------------------------------------------------------ 1

/// The parent's handler for the `rel` jobs the child was killed running
/// (named `slow`, as the child's job is).
#[job(queue = "rel")]
async fn slow(ctx: JobContext, _n: u32) -> Result<(), JobError> {
    honker_tests::record_run(
        &ctx,
        &[
            "INSERT INTO started (job_id, pid) VALUES (?1, ?2)",
            "INSERT INTO done (job_id, pid) VALUES (?1, ?2)",
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_100_jobs_in_flight_loses_none_and_reruns_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kill.db");
    let h = Honker::open(&db).unwrap();
    h.transaction(|tx| {
        tx.execute_batch(
            "CREATE TABLE started (job_id INTEGER, pid INTEGER);
             CREATE TABLE done (job_id INTEGER, pid INTEGER);",
        )?;
        for n in 0..150 {
            slow::enqueue_tx(tx, n)?;
        }
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    let mut worker = ChildGuard::spawn(child("inflight", &db).stdout(Stdio::null()));
    let check = rusqlite::Connection::open(&db).unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || count(
            &check,
            "SELECT count(*) FROM started"
        ) == 100)
        .await,
        "the child never had 100 jobs running"
    );
    worker.kill(); // SIGKILL, mid-job
    let child_started: HashSet<i64> = {
        let mut s = check.prepare("SELECT job_id FROM started").unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(child_started.len(), 100);

    let pool = WorkerPool::builder(&h)
        .register(slow)
        .concurrency(16)
        .visibility_timeout(Duration::from_secs(1))
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(60), async || count(
            &check,
            "SELECT count(*) FROM done"
        ) >= 150)
        .await
    );
    pool.shutdown().await.unwrap();

    assert_eq!(
        count(&check, "SELECT count(DISTINCT job_id) FROM done"),
        150,
        "no job lost"
    );
    assert_eq!(
        count(&check, "SELECT count(*) FROM done"),
        150,
        "each completed once"
    );
    let mut runs: HashMap<i64, usize> = HashMap::new();
    let mut s = check.prepare("SELECT job_id FROM started").unwrap();
    for id in s.query_map([], |r| r.get::<_, i64>(0)).unwrap() {
        *runs.entry(id.unwrap()).or_default() += 1;
    }
    let twice: HashSet<i64> = runs
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        twice.is_subset(&child_started),
        "only jobs in flight at the kill ran twice"
    );
    assert_eq!(
        twice.len(),
        100,
        "every job in flight at the kill ran again"
    );
    assert_eq!(h.queue("rel").stats().await.unwrap().dead, 0);
}

// ------------------------------------------------------------------ 2

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_and_four_producers_on_one_file_run_50k_jobs_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("many.db");
    let h = Honker::open(&db).unwrap();
    h.transaction(|tx| tx.execute("CREATE TABLE done (job_id INTEGER, pid INTEGER)", []))
        .await
        .unwrap();
    drop(h);
    let total = 50_000;
    let mut procs = Vec::new();
    for _ in 0..4 {
        procs.push(ChildGuard::spawn(
            child("work", &db)
                .arg(total.to_string())
                .stderr(Stdio::piped())
                .stdout(Stdio::null()),
        ));
    }
    for _ in 0..4 {
        procs.push(ChildGuard::spawn(
            child("produce", &db)
                .arg((total / 4).to_string())
                .stderr(Stdio::piped())
                .stdout(Stdio::null()),
        ));
    }
    for p in procs {
        let out = p.output_async(Duration::from_secs(600)).await;
        assert!(
            out.status.success(),
            "a process failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    assert_eq!(
        count(&conn, "SELECT count(*) FROM done"),
        total as i64,
        "each job once"
    );
    assert_eq!(
        count(&conn, "SELECT count(DISTINCT job_id) FROM done"),
        total as i64
    );
    assert_eq!(
        count(&conn, "SELECT count(DISTINCT pid) FROM done"),
        4,
        "all four workers took part"
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM _honker_live"), 0);
    assert_eq!(count(&conn, "SELECT count(*) FROM _honker_dead"), 0);
}

// ------------------------------------------------------------------ 3

/// The argument of each run of `contended`.
static CONTENDED: Mutex<Vec<u32>> = Mutex::new(Vec::new());
#[job(queue = "contended")]
async fn contended(_ctx: JobContext, n: u32) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    CONTENDED.lock().unwrap().push(n);
    Ok(())
}

/// The kind of store failure a runtime error carries, if it carries one.
fn store_kind(e: &Error) -> Option<StoreErrorKind> {
    match e {
        Error::Store(e) => Some(e.kind()),
        Error::NotCommitted(e) => Some(e.kind()),
        _ => None,
    }
}

/// The format's busy timeout: how long a write waits for another
/// connection's write lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write took to fail with the busy error: about the busy
/// timeout, not at once (no waiting) and not much later (a longer timeout,
/// or retries hidden behind one call).
fn assert_busy_after_the_timeout(what: &str, waited: Duration) {
    assert!(
        waited >= BUSY_TIMEOUT - Duration::from_millis(500) && waited <= Duration::from_secs(8),
        "{what}: the busy error came after {waited:?}, expected about {BUSY_TIMEOUT:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_s_write_lock_elsewhere_gives_a_clear_busy_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("lock.db");
    let h = Honker::open(&db).unwrap();
    h.transaction(|tx| {
        tx.execute("CREATE TABLE hold (x)", [])?;
        for n in 0..400u32 {
            contended::enqueue_tx(tx, n)?;
        }
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    let mut enqueued: Vec<u32> = (0..400).collect();
    // The pool is busy (400 jobs of 20 ms, 4 at a time) when the lock comes.
    let pool = WorkerPool::builder(&h)
        .register(contended)
        .concurrency(4)
        .start()
        .await
        .unwrap();
    let check = rusqlite::Connection::open(&db).unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || !CONTENDED
            .lock()
            .unwrap()
            .is_empty())
        .await,
        "the pool never started"
    );
    // Another handle on the file, whose writer is idle, and a plain
    // honker-core connection: each write waits out the busy timeout.
    let other = Honker::open(&db).unwrap();
    let core = honker_core::open_connection(&db).unwrap();

    // Another connection takes the write lock and keeps it for 10 s.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let path = db.clone();
    let holder = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch("BEGIN IMMEDIATE; INSERT INTO hold VALUES (1);")
            .unwrap();
        let locked = Instant::now();
        locked_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(10));
        c.execute_batch("COMMIT").unwrap();
        locked.elapsed()
    });
    locked_rx.recv().unwrap();
    let started = Instant::now();
    let core_write = std::thread::spawn(move || {
        let t = Instant::now();
        let r = honker_core::enqueue(&core, "contended", "998", &Default::default());
        (r, t.elapsed(), core)
    });
    let during = tokio::time::timeout(Duration::from_secs(30), contended::enqueue(&other, 999))
        .await
        .expect("the enqueue must not hang");
    let waited = started.elapsed();
    let e = during.expect_err("an enqueue under another connection's write lock must fail");
    eprintln!("enqueue under a 10 s lock, after {waited:?}: {e}");
    assert!(e.is_transient(), "{e:?}");
    assert!(
        store_kind(&e) == Some(StoreErrorKind::Busy),
        "a typed busy error: {e:?}"
    );
    assert!(e.to_string().contains("busy"), "{e}");
    assert_busy_after_the_timeout("Honker::enqueue", waited);

    let (r, waited, core) = core_write.join().unwrap();
    let e = r.expect_err("a honker-core write under the lock must fail");
    assert!(matches!(e, honker_core::Error::Busy(_)), "{e:?}");
    assert_busy_after_the_timeout("honker_core::enqueue", waited);

    let held = holder.join().unwrap();
    assert!(held >= Duration::from_secs(10));
    assert_eq!(
        count(
            &check,
            "SELECT count(*) FROM _honker_live WHERE payload IN ('998', '999')"
        ),
        0,
        "the failed writes left nothing behind"
    );
    // Afterwards the same writes succeed, and the pool resumes.
    honker_core::enqueue(&core, "contended", "998", &Default::default()).unwrap();
    contended::enqueue(&other, 999).await.unwrap();
    contended::enqueue(&h, 1000).await.unwrap();
    enqueued.extend([998, 999, 1000]);
    assert!(
        eventually(Duration::from_secs(60), async || CONTENDED
            .lock()
            .unwrap()
            .len()
            >= enqueued.len())
        .await,
        "ran {} of {}",
        CONTENDED.lock().unwrap().len(),
        enqueued.len()
    );
    pool.shutdown().await.unwrap();
    let mut ran = CONTENDED.lock().unwrap().clone();
    ran.sort_unstable();
    assert_eq!(ran, enqueued, "every job ran once, none lost");
    let s = h.queue("contended").stats().await.unwrap();
    assert_eq!(
        (s.pending_due, s.scheduled, s.processing, s.dead),
        (0, 0, 0, 0),
        "nothing lost or stuck"
    );
}

// ------------------------------------------------------------------ 4

#[derive(serde::Serialize, serde::Deserialize)]
struct Named {
    name: String,
}
static NAMED_OK: Mutex<Vec<usize>> = Mutex::new(Vec::new());
#[job(queue = "typed")]
async fn typed(_ctx: JobContext, a: Named) -> Result<(), JobError> {
    NAMED_OK.lock().unwrap().push(a.name.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_from_foreign_writers_end_in_dead_with_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bad.db");
    let h = Honker::open(&db).unwrap();
    let foreign = rusqlite::Connection::open(&db).unwrap();
    let insert = |payload: &dyn rusqlite::ToSql, queue: &str| -> i64 {
        foreign
            .execute(
                "INSERT INTO _honker_live (queue, payload) VALUES (?1, ?2)",
                (queue, payload),
            )
            .unwrap();
        foreign.last_insert_rowid()
    };
    let invalid_json = insert(&"{name: oops", "typed");
    let wrong_shape = insert(&r#"{"title":"no name"}"#, "typed");
    let huge = insert(
        &format!(r#"{{"name":"{}"}}"#, "x".repeat(10 * 1024 * 1024)),
        "typed",
    );
    let blob = insert(&vec![0u8, 159, 146, 150], "typed");
    foreign
        .execute(
            "INSERT INTO _honker_live (queue, payload) VALUES ('typed', CAST(x'ff00fe' AS TEXT))",
            [],
        )
        .unwrap();
    let not_utf8 = foreign.last_insert_rowid();
    let orphan = insert(&r#"{"name":"nobody handles me"}"#, "nobody");
    let good = insert(&r#"{"name":"fine"}"#, "typed");

    let pool = WorkerPool::builder(&h)
        .register(typed)
        .start()
        .await
        .unwrap();
    let q = h.queue("typed");
    assert!(
        eventually(Duration::from_secs(60), async || {
            let s = q.stats().await.unwrap();
            s.pending_due + s.processing == 0
        })
        .await
    );
    // The pool keeps working afterwards.
    typed::enqueue(
        &h,
        Named {
            name: "after".into(),
        },
    )
    .await
    .unwrap();
    assert!(
        eventually(Duration::from_secs(30), async || NAMED_OK
            .lock()
            .unwrap()
            .len()
            == 3)
        .await
    );
    pool.shutdown().await.unwrap();

    let dead: HashMap<i64, String> = q
        .list_dead(100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.last_error.unwrap_or_default()))
        .collect();
    assert_eq!(dead.len(), 4, "{dead:?}");
    assert!(
        dead[&invalid_json].contains("payload is not JSON")
            && dead[&invalid_json].contains("key must be a string"),
        "{}",
        dead[&invalid_json]
    );
    assert!(
        dead[&wrong_shape].contains("missing field `name`"),
        "{}",
        dead[&wrong_shape]
    );
    assert!(dead[&blob].contains("BLOB of 4 bytes"), "{}", dead[&blob]);
    assert!(
        dead[&not_utf8].contains("not valid UTF-8"),
        "{}",
        dead[&not_utf8]
    );
    assert!(!dead.contains_key(&huge) && !dead.contains_key(&good));
    assert!(
        NAMED_OK.lock().unwrap().contains(&(10 * 1024 * 1024)),
        "the 10 MB payload ran"
    );
    let untouched = h.queue("nobody").get_job(orphan).await.unwrap().unwrap();
    assert_eq!(
        (untouched.attempts, untouched.state),
        (0, honker_core::JobState::Pending)
    );
}

// ------------------------------------------------------------------ 5

/// CPU time (user + system) of this process so far. Panics when it cannot
/// be read: a reading of zero would make every CPU check pass.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // The fields after the command name: state is field 3, utime 14, stime 15.
    let after = stat.rsplit(')').next().expect("a /proc/self/stat line");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> f64 {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("field {} of /proc/self/stat: {stat}", i + 3))
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    assert!(hz > 0.0, "clock ticks per second");
    (ticks(11) + ticks(12)) / hz
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_give_typed_errors_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let e = Honker::open(dir.path().join("missing/app.db")).unwrap_err();
    assert!(
        matches!(&e, Error::Store(s) if s.kind() == StoreErrorKind::NotFound),
        "{e:?}"
    );
    let not_db = dir.path().join("notes.txt");
    std::fs::write(&not_db, "plain text, not SQLite ".repeat(200)).unwrap();
    let e = Honker::open(&not_db).unwrap_err();
    assert!(
        e.to_string().contains("not a SQLite database") && e.to_string().contains("notes.txt"),
        "{e}"
    );
    // (Read-only files and directories: core_processes.rs, run as an unprivileged user.)
}

#[job(queue = "quick")]
async fn quick(_ctx: JobContext, _n: u32) -> Result<(), JobError> {
    Ok(())
}

/// A database that cannot grow: SQLite's `max_page_count` on the connection
/// every write of the `Honker` goes through makes SQLite answer
/// `SQLITE_FULL` exactly as it does on a full file system, without needing
/// a small file system to fill.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_typed_error_with_no_partial_write() {
    let dir = tempfile::tempdir().unwrap();
    let h = Honker::open(dir.path().join("app.db")).unwrap();
    let pool = WorkerPool::builder(&h)
        .register(quick)
        .start()
        .await
        .unwrap();
    let limit_pages = |extra: Option<i64>| {
        h.transaction(move |c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let max = extra.map_or(1 << 30, |n| pages + n);
            c.query_row(&format!("PRAGMA max_page_count = {max}"), [], |r| {
                r.get::<_, i64>(0)
            })
        })
    };
    // Room for a few hundred KiB more.
    let max = limit_pages(Some(64)).await.unwrap();
    assert!(max < 1000, "the limit took: max_page_count = {max}");
    let q = h.queue("full");
    let payload = serde_json::json!({ "blob": "y".repeat(8 * 1024) });
    let mut ok = 0i64;
    let err = loop {
        match q.enqueue(&payload, EnqueueOptions::default()).await {
            Ok(_) => ok += 1,
            Err(e) => break e,
        }
        assert!(ok < 10_000, "64 pages must fill up");
    };
    eprintln!("database full after {ok} enqueues: {err}");
    assert!(ok > 0, "the first enqueues fit");
    assert!(
        store_kind(&err) == Some(StoreErrorKind::DiskFull),
        "a typed disk-full error: {err:?}"
    );
    assert!(err.to_string().contains("full"), "{err}");
    assert!(!err.is_transient());
    // Everything that was acknowledged is there; the failed one is not.
    let s = q.stats().await.unwrap();
    assert_eq!(s.pending_due, ok, "no partial write");
    let check = rusqlite::Connection::open(h.path().unwrap()).unwrap();
    assert_eq!(
        count(
            &check,
            "SELECT count(*) FROM _honker_live WHERE queue = 'full'"
        ),
        ok
    );
    let integrity: String = check
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    // Still healthy: once there is room again, writes work and the pool
    // runs jobs.
    limit_pages(None).await.unwrap();
    q.enqueue(&payload, EnqueueOptions::default())
        .await
        .unwrap();
    assert_eq!(q.stats().await.unwrap().pending_due, ok + 1);
    let id = quick::enqueue(&h, 1).await.unwrap().id();
    assert!(
        eventually(Duration::from_secs(30), async || h
            .queue("quick")
            .get_job(id)
            .await
            .unwrap()
            .is_none())
        .await,
        "the pool runs jobs after the disk-full error"
    );
    assert!(pool.status().await.unwrap().workers > 0);
    pool.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_deleted_or_replaced_under_a_running_pool_is_reported_and_refused() {
    for what in ["deleted", "replaced"] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gone.db");
        let h = Honker::open(&db).unwrap();
        let pool = WorkerPool::builder(&h)
            .register(quick)
            .start()
            .await
            .unwrap();
        quick::enqueue(&h, 1).await.unwrap();
        std::fs::remove_file(&db).unwrap();
        for suffix in ["-wal", "-shm"] {
            match std::fs::remove_file(format!("{}{suffix}", db.display())) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{suffix}: {e}"),
                _ => {}
            }
        }
        if what == "replaced" {
            honker_core::open(&db).unwrap();
        }
        // Let the watcher notice; meanwhile there is no busy loop.
        let (c0, t0) = (cpu_seconds(), Instant::now());
        assert!(
            eventually(Duration::from_secs(5), async || h
                .watcher_error()
                .is_some_and(|e| e.contains(what)))
            .await,
            "{what}: {:?}",
            h.watcher_error()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The process's CPU counts the other tests of this binary, running
        // beside this one: a busy loop of this pool burns in every window,
        // another test's burst in some. The quietest of up to three
        // windows is this pool's.
        let mut cpu = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64();
        for _ in 0..2 {
            if cpu < 0.5 {
                break;
            }
            let (c0, t0) = (cpu_seconds(), Instant::now());
            tokio::time::sleep(Duration::from_millis(500)).await;
            cpu = cpu.min((cpu_seconds() - c0) / t0.elapsed().as_secs_f64());
        }
        assert!(
            cpu < 0.5,
            "{what}: the process burns {:.0} % of a core",
            cpu * 100.0
        );
        // Writes are refused with the cause, instead of going to a file no one sees.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let e = quick::enqueue(&h, 2).await.unwrap_err();
        eprintln!("enqueue after the file was {what}: {e}");
        assert!(matches!(e, Error::FileGone { .. }), "{what}: {e:?}");
        assert!(e.to_string().contains(what), "{e}");
        // Job 1 may have been claimed before the file went: its outcome
        // cannot be written anywhere, and the shutdown says so.
        match pool.shutdown().await {
            Ok(()) | Err(Error::ShutdownIncomplete { .. }) => {}
            Err(e) => panic!("{what}: shutdown {e:?}"),
        }
    }
}

// ------------------------------------------------------------------ 6

static VOLUME_OK: AtomicUsize = AtomicUsize::new(0);
#[job(queue = "volatile", max_attempts = 1, timeout = "100ms")]
async fn volatile(_ctx: JobContext, n: u32) -> Result<(), JobError> {
    match n % 10 {
        0..=2 => panic!("volatile {n}"),
        3 => tokio::time::sleep(Duration::from_secs(30)).await,
        _ => {}
    }
    VOLUME_OK.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Resident memory of this process in MiB. Panics when it cannot be read:
/// a reading of zero would make every memory check pass.
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/self/status:\n{status}"));
    assert!(kb > 0.0, "VmRSS {kb} kB");
    kb / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_with_30pct_panics_and_10pct_timeouts_all_end_right() {
    quiet_panics("volatile ");
    let dir = tempfile::tempdir().unwrap();
    let h = Honker::open(dir.path().join("volume.db")).unwrap();
    h.transaction(|tx| {
        for n in 0..10_000u32 {
            volatile::enqueue_tx(tx, n)?;
        }
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    let baseline = rss_mb();
    let pool = WorkerPool::builder(&h)
        .register(volatile)
        .concurrency(64)
        .start()
        .await
        .unwrap();
    let q = h.queue("volatile");
    assert!(
        eventually(Duration::from_secs(120), async || {
            let s = q.stats().await.unwrap();
            s.pending_due + s.processing == 0
        })
        .await
    );
    let status = pool.status().await.unwrap();
    assert_eq!(status.workers, 64, "every panicked worker was replaced");
    assert_eq!(status.restarts, 3000);
    pool.shutdown().await.unwrap();
    assert_eq!(
        VOLUME_OK.load(Ordering::SeqCst),
        6000,
        "the rest were acked"
    );
    let dead = q.list_dead(10_000, 0).await.unwrap();
    assert_eq!(dead.len(), 4000);
    for d in &dead {
        let honker_core::Payload::Task(call) = honker_core::read_payload(&d.payload).unwrap()
        else {
            panic!("a typed enqueue writes the envelope: {}", d.payload)
        };
        let n: u32 = call.decode().unwrap();
        let e = d.last_error.as_deref().unwrap_or_default();
        match n % 10 {
            0..=2 => assert_eq!(e, format!("panicked: volatile {n}")),
            3 => assert_eq!(e, "timed out after 100ms"),
            _ => panic!("job {n} should have succeeded: {e}"),
        }
    }
    let grown = rss_mb() - baseline;
    assert!(grown < 64.0, "memory grew by {grown:.0} MB and stayed");
}

// ------------------------------------------------------------------ 7

static FLOWING: Mutex<Option<HashMap<u32, u32>>> = Mutex::new(None);
#[job(queue = "flowing")]
async fn flowing(_ctx: JobContext, n: u32) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_micros(300)).await;
    *FLOWING
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(n)
        .or_default() += 1;
    Ok(())
}

fn flowing_done() -> usize {
    FLOWING.lock().unwrap().as_ref().map_or(0, |m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_10k_jobs_flow_then_restart_runs_each_once_and_burns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let h = Honker::open(dir.path().join("flow.db")).unwrap();
    let total = 10_000u32;
    let producers: Vec<_> = (0..2u32)
        .map(|p| {
            let h = h.clone();
            tokio::spawn(async move {
                for i in 0..total / 2 {
                    flowing::enqueue(&h, p * (total / 2) + i).await.unwrap();
                    if i % 500 == 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();
    let pool = WorkerPool::builder(&h)
        .register(flowing)
        .concurrency(16)
        .start()
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(60), async || flowing_done() >= 2000).await);
    pool.shutdown().await.unwrap();
    let at_shutdown = flowing_done();
    for p in producers {
        p.await.unwrap();
    }
    let conn = rusqlite::Connection::open(h.path().unwrap()).unwrap();
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM _honker_live WHERE state = 'processing'"
        ),
        0
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM _honker_live WHERE attempts > 0"
        ),
        0,
        "no attempt burned"
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM _honker_live") as usize + at_shutdown,
        total as usize
    );
    let pool = WorkerPool::builder(&h)
        .register(flowing)
        .concurrency(16)
        .start()
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(120), async || flowing_done()
            == total as usize)
        .await
    );
    pool.shutdown().await.unwrap();
    let done = FLOWING.lock().unwrap().clone().unwrap();
    assert!(done.values().all(|&n| n == 1), "a job ran twice");
    assert_eq!(count(&conn, "SELECT count(*) FROM _honker_live"), 0);
    assert_eq!(count(&conn, "SELECT count(*) FROM _honker_dead"), 0);
}
