//! Many machines, for real: pools in several processes (standing in for
//! machines) on one PostgreSQL database share the work, each job runs
//! once, limits hold across all of them, one scheduler leads, a killed
//! process's jobs come back, a cancel reaches a job running in another
//! process, and a pool lives through a restart of the server.
//!
//! Each test works in a schema of its own on the server `HONKER_PG_URL`
//! names (`.ci/run` starts one). Without it, and outside CI, each test is
//! ignored with the reason.

#![cfg_attr(not(honker_postgres), allow(dead_code, unused_imports))]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, ChildGuard, PARENT_PID_ENV};
use honker_actors::postgres::{PgOptions, PgStore};
use honker_actors::{Batch, Honker};
use honker_postgres::sqlx::{self, Connection, Row};

fn url() -> String {
    std::env::var("HONKER_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("the PostgreSQL tests need HONKER_PG_URL (.ci/run starts a server)")
}

/// A schema of the test's own, dropped at the end.
struct Schema {
    name: String,
}

impl Schema {
    fn new(tag: &str) -> Schema {
        Schema {
            name: format!("p_{tag}_{}_{}", std::process::id(), rand_u32()),
        }
    }

    fn honker(&self) -> Honker {
        let options = PgOptions {
            schema: self.name.clone(),
            ..PgOptions::default()
        };
        Honker::with_store(Arc::new(PgStore::open_with(&url(), options).unwrap()))
    }

    /// Rows of a query on the test server, each row's columns as i64 or
    /// text.
    async fn query_i64(&self, sql: &str) -> Vec<i64> {
        let mut c = sqlx::PgConnection::connect(&url()).await.unwrap();
        let sql = sql.replace("{s}", &format!("\"{}\"", self.name));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<i64, _>(0))
            .collect()
    }

    async fn query_text(&self, sql: &str) -> Vec<String> {
        let mut c = sqlx::PgConnection::connect(&url()).await.unwrap();
        let sql = sql.replace("{s}", &format!("\"{}\"", self.name));
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (url(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                    let drop = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos() ^ (std::process::id() << 8)
}

/// A command running the `honker-pg-child` helper on `schema`.
fn pg_child(cmd: &str, schema: &Schema, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_honker-pg-child"));
    c.arg(cmd)
        .arg(url())
        .arg(&schema.name)
        .args(args)
        .env(PARENT_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    c
}

/// Everything the children said, each line with the index of the child
/// that said it, gathered by a thread per child.
#[derive(Clone, Default)]
struct Said(Arc<Mutex<Vec<(usize, String)>>>);

impl Said {
    fn listen(&self, who: usize, child: &mut ChildGuard) {
        let lines = child.stdout_lines();
        let said = self.0.clone();
        std::thread::spawn(move || {
            while let Ok(Some(line)) =
                std::panic::catch_unwind(|| lines.next_within(Duration::from_secs(3600)))
            {
                said.lock().unwrap().push((who, line));
            }
        });
    }

    /// The lines that are `word` or start with `word `, their rest, and
    /// who said each.
    fn words(&self, word: &str) -> Vec<(usize, String)> {
        let prefix = format!("{word} ");
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(w, l)| match l.strip_prefix(&prefix) {
                Some(rest) => Some((*w, rest.to_string())),
                None => (l == word).then(|| (*w, String::new())),
            })
            .collect()
    }

    fn count(&self, word: &str) -> usize {
        self.words(word).len()
    }
}

/// The server, shared by every test of this binary: the restart test
/// takes it alone (a restart ends every connection, a child's that is
/// opening its store too), the others together.
static SERVER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// `n` worker processes (each with `concurrency` workers and the claim
/// visibility `visibility` s), started: their guards, and each one's
/// pool id.
async fn workers(
    schema: &Schema,
    said: &Said,
    n: usize,
    concurrency: usize,
    visibility: u64,
) -> (Vec<ChildGuard>, Vec<String>) {
    let mut guards = Vec::new();
    for i in 0..n {
        let mut c = ChildGuard::spawn(&mut pg_child(
            "work",
            schema,
            &[&concurrency.to_string(), &visibility.to_string()],
        ));
        said.listen(i, &mut c);
        guards.push(c);
    }
    assert!(
        eventually(Duration::from_secs(60), async || said.count("started") == n).await,
        "every worker process started"
    );
    let mut ids = vec![String::new(); n];
    for (who, id) in said.words("started") {
        ids[who] = id;
    }
    (guards, ids)
}

/// Close each worker's stdin (a graceful shutdown) and wait for it to
/// say `stopped`.
async fn stop(mut guards: Vec<ChildGuard>, said: &Said) {
    let already = said.count("stopped");
    let n = guards.len();
    for g in &mut guards {
        drop(g.stdin.take());
    }
    assert!(
        eventually(Duration::from_secs(60), async || said.count("stopped")
            >= already + n)
        .await,
        "every worker process stopped gracefully"
    );
}

/// 4 worker processes and 4 producer processes of 50 000 jobs each
/// (`HONKER_PG_JOBS` changes it): every job runs exactly once, and every
/// worker process takes part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(honker_postgres),
    ignore = "needs a PostgreSQL server: set HONKER_PG_URL to a database URL (.ci/run starts one)"
)]
async fn four_workers_and_four_producers_run_every_job_exactly_once() {
    let _server = SERVER.read().await;
    let per: u64 = std::env::var("HONKER_PG_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let schema = Schema::new("mp");
    let _h = schema.honker(); // the schema, made once before the children race
    let said = Said::default();
    let (guards, _) = workers(&schema, &said, 4, 16, 300).await;
    let started = Instant::now();
    let producers: Vec<ChildGuard> = (0..4u64)
        .map(|p| {
            let from = (p * per).to_string();
            ChildGuard::spawn(&mut pg_child(
                "produce",
                &schema,
                &[&from, &per.to_string()],
            ))
        })
        .collect();
    for p in producers {
        let out = p.output_async(Duration::from_secs(600)).await;
        assert!(out.status.success(), "a producer failed: {out:?}");
    }
    let total = 4 * per as usize;
    assert!(
        eventually(Duration::from_secs(900), async || said.count("ran")
            >= total)
        .await,
        "ran {} of {total} in {:?}",
        said.count("ran"),
        started.elapsed()
    );
    // Nothing more runs after a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = said.words("ran");
    let mut per_job: BTreeMap<u64, u32> = BTreeMap::new();
    let mut per_worker = [0usize; 4];
    for (who, n) in &runs {
        *per_job.entry(n.parse().unwrap()).or_default() += 1;
        per_worker[*who] += 1;
    }
    let twice: Vec<_> = per_job.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(twice.is_empty(), "jobs that ran twice: {twice:?}");
    assert_eq!(per_job.len(), total, "every job ran");
    assert_eq!(per_job.keys().next_back().copied(), Some(total as u64 - 1));
    assert!(
        per_worker.iter().all(|n| *n > 0),
        "every process took part: {per_worker:?}"
    );
    stop(guards, &said).await;
    let left = schema.query_i64("SELECT COUNT(*) FROM {s}.live").await;
    assert_eq!(left, [0], "nothing left live");
    eprintln!(
        "{total} jobs by 4 processes in {:?} ({per_worker:?} each)",
        started.elapsed()
    );
}

/// A worker process killed (SIGKILL) while it runs a job: the job comes
/// back once its claim lapses and runs in another process, its attempt
/// counted; a cancel from this process reaches it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(honker_postgres),
    ignore = "needs a PostgreSQL server: set HONKER_PG_URL to a database URL (.ci/run starts one)"
)]
async fn a_killed_processs_job_comes_back_and_a_cancel_reaches_it_in_another_process() {
    let _server = SERVER.read().await;
    let schema = Schema::new("kill");
    let h = schema.honker();
    let said = Said::default();
    let (mut first, _) = workers(&schema, &said, 1, 4, 2).await;
    let job = honker_tests::pg::pg_long::enqueue(&h, 1).await.unwrap();
    assert!(
        eventually(Duration::from_secs(20), async || said.count("running") == 1).await,
        "the first process runs the job"
    );
    first[0].kill();
    let killed = Instant::now();
    let said_again = Said::default();
    let (second, _) = workers(&schema, &said_again, 1, 4, 2).await;
    assert!(
        eventually(Duration::from_secs(20), async || said_again
            .count("running")
            == 1)
        .await,
        "the job runs again in the second process"
    );
    let back_after = killed.elapsed();
    assert_eq!(said_again.words("running")[0].1, job.id().to_string());
    let row = h.store().job(job.id()).await.unwrap().expect("live");
    assert_eq!(row.attempts, 2, "the killed run's attempt counts");
    assert!(
        back_after >= Duration::from_secs(1),
        "not before its claim lapsed: {back_after:?}"
    );
    // Cancelled from here, heard there.
    assert!(h.queue("pglong").cancel(job.id()).await.unwrap());
    assert!(
        eventually(Duration::from_secs(5), async || said_again
            .count("cancelled")
            == 1)
        .await,
        "the running job hears of its cancel"
    );
    let dead = h.store().dead_job(job.id()).await.unwrap().expect("dead");
    assert_eq!(dead.last_error.as_deref(), Some("cancelled"));
    stop(second, &said_again).await;
    assert_eq!(said_again.count("running"), 1, "it never ran a third time");
}

/// Four processes enqueue one unique job per order, ten times each, all
/// at once: one job per order in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(honker_postgres),
    ignore = "needs a PostgreSQL server: set HONKER_PG_URL to a database URL (.ci/run starts one)"
)]
async fn unique_jobs_racing_across_processes_are_one_per_key() {
    let _server = SERVER.read().await;
    let schema = Schema::new("uniq");
    let h = schema.honker();
    let said = Said::default();
    let mut racers: Vec<ChildGuard> = (0..4)
        .map(|i| {
            let mut c = ChildGuard::spawn(&mut pg_child("uniq", &schema, &[]));
            said.listen(i, &mut c);
            c
        })
        .collect();
    // Each opens its store first; then all go at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for r in &mut racers {
        use std::io::Write;
        let mut stdin = r.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }
    assert!(
        eventually(Duration::from_secs(60), async || {
            said.0.lock().unwrap().len() == 4
        })
        .await
    );
    let new: u32 = said
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|(_, l)| l.parse::<u32>().unwrap())
        .sum();
    assert_eq!(new, 20, "one new job per order across the processes");
    assert_eq!(h.queue("pgcharge").stats().await.unwrap().pending_due, 20);
}

/// A running limit of 2 on a queue that 4 processes of 8 workers serve:
/// never more than 2 of its jobs run at once, and 2 do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(honker_postgres),
    ignore = "needs a PostgreSQL server: set HONKER_PG_URL to a database URL (.ci/run starts one)"
)]
async fn a_running_limit_holds_over_four_processes() {
    let _server = SERVER.read().await;
    let schema = Schema::new("limit");
    let h = schema.honker();
    h.queue("pglimited").set_max_running(Some(2)).await.unwrap();
    let said = Said::default();
    let (guards, _) = workers(&schema, &said, 4, 8, 300).await;
    let mut batch = Batch::new();
    for n in 0..60 {
        batch
            .push(honker_tests::pg::pg_limited::builder(n))
            .unwrap();
    }
    h.enqueue_batch(batch).await.unwrap();
    assert!(
        eventually(Duration::from_secs(120), async || said.count("end") == 60).await,
        "all 60 ran: {}",
        said.count("end")
    );
    let times = |word: &str| -> BTreeMap<u64, i64> {
        said.words(word)
            .iter()
            .map(|(_, r)| {
                let (n, t) = r.split_once(' ').unwrap();
                (n.parse().unwrap(), t.parse().unwrap())
            })
            .collect()
    };
    let (starts, ends) = (times("start"), times("end"));
    assert_eq!(starts.len(), 60, "each ran once");
    let mut most = 0;
    for (n, s) in &starts {
        let e = ends[n];
        // Jobs whose run overlaps this one's start.
        let at_once = starts
            .iter()
            .filter(|(m, s2)| **s2 <= *s && ends[*m] > *s && *m != n)
            .count()
            + 1;
        most = most.max(at_once);
        assert!(e >= *s);
    }
    assert!(most <= 2, "{most} ran at once under a limit of 2");
    assert_eq!(most, 2, "the limit, not something else, held them back");
    let who: BTreeSet<usize> = said.words("start").iter().map(|(w, _)| *w).collect();
    assert!(who.len() >= 2, "several processes ran them: {who:?}");
    stop(guards, &said).await;
}

/// A rate limit of 5 starts a second on a queue that 3 processes serve:
/// no second sees more than 5 starts, in whichever process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(honker_postgres),
    ignore = "needs a PostgreSQL server: set HONKER_PG_URL to a database URL (.ci/run starts one)"
)]
async fn a_rate_limit_holds_over_three_processes() {
    let _server = SERVER.read().await;
    let schema = Schema::new("rate");
    let h = schema.honker();
    let rate = honker_actors::core::RateLimit {
        limit: 5,
        per: Duration::from_secs(1),
    };
    h.queue("pglimited")
        .set_rate_limit(Some(rate))
        .await
        .unwrap();
    let said = Said::default();
    let (guards, _) = workers(&schema, &said, 3, 8, 300).await;
    let mut batch = Batch::new();
    for n in 0..30 {
        batch
            .push(honker_tests::pg::pg_limited::builder(n))
            .unwrap();
    }
    h.enqueue_batch(batch).await.unwrap();
    assert!(
        eventually(Duration::from_secs(60), async || said.count("end") == 30).await,
        "all 30 ran: {}",
        said.count("end")
    );
    let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
    for (_, r) in said.words("start") {
        let ms: i64 = r.split_once(' ').unwrap().1.parse().unwrap();
        *per_second.entry(ms.div_euclid(1000)).or_default() += 1;
    }
    assert_eq!(per_second.values().sum::<usize>(), 30, "each ran once");
    assert!(
        per_second.values().all(|n| *n <= 5),
        "more than 5 starts in a second: {per_second:?}"
    );
    assert!(
        per_second.values().any(|n| *n == 5),
        "the limit, not something else, held them back: {per_second:?}"
    );
    let who: BTreeSet<usize> = said.words("start").iter().map(|(w, _)| *w).collect();
    assert!(who.len() >= 2, "several processes ran them: {who:?}");
    stop(guards, &said).await;
}

/// Two processes with schedulers: one leads; killed, the other leads
/// within the lock's time to live and fires every boundary of the gap,
/// each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(honker_postgres),
    ignore = "needs a PostgreSQL server: set HONKER_PG_URL to a database URL (.ci/run starts one)"
)]
async fn periodic_jobs_with_two_leaders_and_the_leader_killed_fire_each_boundary_once() {
    let _server = SERVER.read().await;
    let schema = Schema::new("lead");
    let h = schema.honker();
    let said = Said::default();
    let (mut guards, ids) = workers(&schema, &said, 2, 4, 300).await;
    let leader_id = || async {
        schema
            .query_text("SELECT owner FROM {s}.locks WHERE name = 'honker-scheduler'")
            .await
    };
    assert!(
        eventually(Duration::from_secs(20), async || !leader_id()
            .await
            .is_empty())
        .await
    );
    let leader = leader_id().await.remove(0);
    let who = ids
        .iter()
        .position(|i| *i == leader)
        .expect("a child leads");
    let boundaries = || async {
        schema
            .query_i64("SELECT boundary FROM {s}.schedule_runs ORDER BY boundary")
            .await
    };
    assert!(
        eventually(Duration::from_secs(20), async || boundaries().await.len()
            >= 2)
        .await
    );
    guards[who].kill();
    let killed_at = h.store().now().await.unwrap();
    assert!(
        eventually(Duration::from_secs(60), async || {
            boundaries()
                .await
                .last()
                .is_some_and(|b| *b >= killed_at + 20)
        })
        .await,
        "the other process fires after the leader died: {:?}",
        boundaries().await
    );
    assert_eq!(
        leader_id().await,
        [ids[1 - who].clone()],
        "the survivor leads"
    );
    let b = boundaries().await;
    let distinct: BTreeSet<_> = b.iter().collect();
    assert_eq!(distinct.len(), b.len(), "a boundary fired twice: {b:?}");
    assert!(
        b.windows(2).all(|w| w[1] == w[0] + 1),
        "a boundary was lost across the takeover: {b:?}"
    );
    let survivor = guards.remove(1 - who);
    stop(vec![survivor], &said).await;
}

/// The server restarted under a running pool (`HONKER_PG_RESTART` says
/// how; `.ci/postgres` sets it): nothing is lost or run twice, and the
/// pool takes up the work enqueued after the restart by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(honker_postgres),
    ignore = "needs a PostgreSQL server: set HONKER_PG_URL to a database URL (.ci/run starts one)"
)]
async fn a_pool_lives_through_a_server_restart_losing_and_doubling_nothing() {
    let _server = SERVER.write().await;
    let restart = std::env::var("HONKER_PG_RESTART").expect(
        "HONKER_PG_RESTART: the command that restarts the test server (.ci/postgres sets it)",
    );
    let schema = Schema::new("restart");
    let h = schema.honker();
    let said = Said::default();
    let (guards, _) = workers(&schema, &said, 1, 8, 300).await;
    let enqueue = |from: u64| {
        let h = h.clone();
        async move {
            let mut batch = Batch::new();
            for n in from..from + 2000 {
                batch.push(honker_tests::pg::pg_work::builder(n)).unwrap();
            }
            h.enqueue_batch(batch).await.unwrap();
        }
    };
    enqueue(0).await;
    assert!(eventually(Duration::from_secs(30), async || said.count("ran") > 0).await);
    let out = Command::new("sh").arg("-c").arg(&restart).output().unwrap();
    assert!(out.status.success(), "restart: {out:?}");
    // This handle's own connections went too, idle meanwhile: its next
    // call finds them dead before using them, and connects anew.
    h.store()
        .now()
        .await
        .expect("the first call of an idle handle after the restart");
    enqueue(2000).await;
    assert!(
        eventually(Duration::from_secs(120), async || said.count("ran") >= 4000).await,
        "ran {} of 4000 after the restart",
        said.count("ran")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs: Vec<u64> = said
        .words("ran")
        .iter()
        .map(|(_, n)| n.parse().unwrap())
        .collect();
    let distinct: BTreeSet<_> = runs.iter().collect();
    assert_eq!(runs.len(), 4000, "nothing ran twice");
    assert_eq!(distinct.len(), 4000, "every job ran");
    stop(guards, &said).await;
}

#[test]
#[cfg(not(honker_postgres))]
#[ignore = "needs a PostgreSQL server: set HONKER_PG_URL to a database URL (.ci/run starts one)"]
fn postgres_processes() {}
