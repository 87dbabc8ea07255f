//! The conformance suite (`conformance/`), run on the PostgreSQL store:
//! each test in a schema of its own on the server `HONKER_PG_URL` names
//! (`.ci/run` starts a throwaway one). Without that variable, and outside
//! CI, the suite is one ignored test that says so.

#[cfg(honker_postgres)]
mod common;
#[cfg(honker_postgres)]
mod conformance;

/// The store under test.
#[cfg(honker_postgres)]
fn fresh() -> common::Fresh {
    common::postgres()
}

#[test]
#[cfg(not(honker_postgres))]
#[ignore = "needs a PostgreSQL server: set HONKER_PG_URL to a database URL (.ci/run starts one; `source .ci/postgres` does by hand)"]
fn postgres_conformance_suite() {}

/// What only the PostgreSQL store has: the service's own sqlx
/// transaction, its schema, and its server's failures.
#[cfg(honker_postgres)]
mod postgres_only {
    use std::time::Duration;

    use honker_actors::postgres::{PgOptions, PgStore};
    use honker_actors::store::StoreErrorKind;
    use honker_actors::{job, Error, Honker, JobError, WorkerPool};
    use honker_postgres::sqlx::{self, Connection};

    use crate::common::{eventually, postgres_url};

    static RAN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

    #[job(queue = "orders")]
    async fn confirm(n: u32) -> Result<(), JobError> {
        RAN.lock().unwrap().push(n);
        Ok(())
    }

    /// A URL like the test server's, with another password or database.
    fn url_with(password: Option<&str>, database: Option<&str>) -> String {
        let url = postgres_url();
        let (head, db) = url.rsplit_once('/').unwrap();
        let head = match password {
            Some(p) => {
                let (scheme, rest) = head.split_once("://").unwrap();
                let (userinfo, host) = rest.rsplit_once('@').unwrap();
                let user = userinfo.split(':').next().unwrap();
                format!("{scheme}://{user}:{p}@{host}")
            }
            None => head.to_string(),
        };
        format!("{head}/{}", database.unwrap_or(db))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_enqueued_in_the_services_own_transaction_commits_or_rolls_back_with_it() {
        let (_g, h) = crate::fresh();
        let store = h.store().as_any().downcast_ref::<PgStore>().unwrap();
        let pool = WorkerPool::builder(&h)
            .register(confirm)
            .start()
            .await
            .unwrap();
        let mut conn = sqlx::PgConnection::connect(&postgres_url()).await.unwrap();
        // Rolled back: never runs.
        let mut tx = conn.begin().await.unwrap();
        let gone = confirm::enqueue_tx(store.in_tx(&mut tx), 1).await.unwrap();
        tx.rollback().await.unwrap();
        // Committed: the pool wakes at the commit and runs it.
        let mut tx = conn.begin().await.unwrap();
        let kept = confirm::enqueue_tx(store.in_tx(&mut tx), 2).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            h.store().job(kept.id()).await.unwrap().is_none(),
            "invisible to others before the commit"
        );
        assert!(!RAN.lock().unwrap().contains(&2));
        tx.commit().await.unwrap();
        assert!(
            eventually(Duration::from_secs(5), async || RAN
                .lock()
                .unwrap()
                .contains(&2))
            .await,
            "the committed job runs"
        );
        pool.shutdown().await.unwrap();
        assert!(
            !RAN.lock().unwrap().contains(&1),
            "the rolled-back job never ran"
        );
        assert!(h.store().job(gone.id()).await.unwrap().is_none());
        assert!(h.store().dead_job(gone.id()).await.unwrap().is_none());
        // A refused enqueue refuses in the transaction, changing nothing.
        let mut tx = conn.begin().await.unwrap();
        let bad = confirm::builder(3)
            .max_attempts(0)
            .enqueue_tx(store.in_tx(&mut tx))
            .await;
        assert!(matches!(bad, Err(Error::InvalidOption(_))), "{bad:?}");
        tx.commit().await.unwrap();
        assert_eq!(h.queue("orders").stats().await.unwrap().pending_due, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_default_schema_takes_a_plain_sqlx_transaction() {
        // The default schema, `honker`, shared by every test that uses it:
        // this test's jobs are found by id.
        let h = Honker::open(postgres_url()).unwrap();
        let mut conn = sqlx::PgConnection::connect(&postgres_url()).await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        let job = confirm::enqueue_tx(&mut tx, 7).await.unwrap();
        tx.commit().await.unwrap();
        let row = h
            .store()
            .job(job.id())
            .await
            .unwrap()
            .expect("in schema honker");
        assert_eq!(
            (row.queue.as_str(), row.payload.contains('7')),
            ("orders", true)
        );
        assert!(h.queue("orders").cancel(job.id()).await.unwrap());
    }

    #[test]
    fn a_wrong_password_or_a_missing_database_is_a_typed_error_that_never_shows_the_password() {
        let cases = [
            (
                url_with(Some("not-the-password"), None),
                StoreErrorKind::Open,
                "not-the-password",
            ),
            (
                url_with(None, Some("no_such_db")),
                StoreErrorKind::NotFound,
                "honker-test-secret",
            ),
        ];
        for (url, kind, secret) in cases {
            let err = Honker::open(&url).unwrap_err();
            let (text, debug) = (err.to_string(), format!("{err:?}"));
            assert!(
                !text.contains(secret) && !debug.contains(secret),
                "{text} / {debug}"
            );
            assert!(
                text.contains(":***@"),
                "names the URL, password masked: {text}"
            );
            match err {
                Error::Store(e) => assert_eq!(e.kind(), kind, "{e}"),
                e => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn opening_at_once_from_many_handles_migrates_once() {
        let schema = format!("m_{}_{}", std::process::id(), rand::random::<u32>());
        let url = postgres_url();
        let opened: Vec<_> = (0..6)
            .map(|_| {
                let (url, schema) = (url.clone(), schema.clone());
                std::thread::spawn(move || {
                    PgStore::open_with(
                        &url,
                        PgOptions {
                            schema,
                            ..PgOptions::default()
                        },
                    )
                })
            })
            .collect();
        let stores: Vec<PgStore> = opened
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let q = format!("SELECT COUNT(*) FROM \"{schema}\".migrations");
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(q))
                .fetch_one(&mut c)
                .await
                .unwrap();
            assert_eq!(
                n,
                i64::from(honker_postgres::SCHEMA_VERSION),
                "each migration once"
            );
            // A schema a newer honker migrated is refused, not written.
            let q = format!("INSERT INTO \"{schema}\".migrations (version) VALUES (9999)");
            sqlx::raw_sql(sqlx::AssertSqlSafe(q))
                .execute(&mut c)
                .await
                .unwrap();
            drop(stores);
            let err = PgStore::open_with(
                &url,
                PgOptions {
                    schema: schema.clone(),
                    ..PgOptions::default()
                },
            )
            .unwrap_err();
            assert!(err.to_string().contains("version 9999"), "{err}");
            let q = format!("DROP SCHEMA \"{schema}\" CASCADE");
            sqlx::raw_sql(sqlx::AssertSqlSafe(q))
                .execute(&mut c)
                .await
                .unwrap();
        });
    }

    static UPGRADED: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

    #[job(queue = "upgraded")]
    async fn upgraded(n: u32) -> Result<(), JobError> {
        UPGRADED.lock().unwrap().push(n);
        Ok(())
    }

    fn open_schema(url: &str, schema: &str) -> Honker {
        Honker::with_store(std::sync::Arc::new(
            PgStore::open_with(
                url,
                PgOptions {
                    schema: schema.to_string(),
                    ..PgOptions::default()
                },
            )
            .unwrap(),
        ))
    }

    async fn drop_schema(c: &mut sqlx::PgConnection, schema: &str) {
        let q = format!("DROP SCHEMA \"{schema}\" CASCADE");
        sqlx::raw_sql(sqlx::AssertSqlSafe(q))
            .execute(c)
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_schema_of_the_first_version_is_migrated_at_open_and_keeps_its_jobs() {
        let schema = format!("v1_{}_{}", std::process::id(), rand::random::<u32>());
        let url = postgres_url();
        let st = honker_postgres::Statements::new(&schema).unwrap();
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        // The schema as the first release made it, with a job waiting.
        for sql in [
            honker_postgres::sql::CREATE_SCHEMA,
            honker_postgres::sql::CREATE_LEDGER,
            honker_postgres::sql::MIGRATIONS[0].1,
        ] {
            sqlx::raw_sql(st.get(sql)).execute(&mut c).await.unwrap();
        }
        let q = format!(
            "INSERT INTO \"{schema}\".migrations (version) VALUES (1);
             INSERT INTO \"{schema}\".live (queue, payload) VALUES ('upgraded', '7')"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(q))
            .execute(&mut c)
            .await
            .unwrap();
        let h = open_schema(&url, &schema);
        let q = format!("SELECT version FROM \"{schema}\".migrations ORDER BY version");
        let versions: Vec<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(q))
            .fetch_all(&mut c)
            .await
            .unwrap();
        let all: Vec<i32> = (1..=honker_postgres::SCHEMA_VERSION).collect();
        assert_eq!(versions, all, "each later migration applied once");
        let missing: Vec<String> = h
            .store()
            .schema_objects()
            .await
            .unwrap()
            .into_iter()
            .filter(|o| !o.present)
            .map(|o| o.name)
            .collect();
        assert!(missing.is_empty(), "missing after the upgrade: {missing:?}");
        let pool = WorkerPool::builder(&h)
            .register(upgraded)
            .start()
            .await
            .unwrap();
        assert!(
            eventually(Duration::from_secs(10), async || {
                UPGRADED.lock().unwrap().contains(&7)
            })
            .await,
            "the job enqueued before the upgrade never ran"
        );
        pool.shutdown().await.unwrap();
        drop(h);
        drop_schema(&mut c, &schema).await;
    }

    #[job(queue = "waited")]
    async fn waited(ms: u64) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_result_wait_is_told_to_the_server_while_it_lasts_and_only_then() {
        let schema = format!("w_{}_{}", std::process::id(), rand::random::<u32>());
        let url = postgres_url();
        let h = open_schema(&url, &schema);
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        let waits_sql = format!("SELECT job_id FROM \"{schema}\".result_waits");
        let waits = async |c: &mut sqlx::PgConnection| -> Vec<i64> {
            sqlx::query_scalar(sqlx::AssertSqlSafe(waits_sql.clone()))
                .fetch_all(c)
                .await
                .unwrap()
        };
        let job = waited::enqueue(&h, 600).await.unwrap();
        assert!(waits(&mut c).await.is_empty(), "nobody waits yet");
        let waiter = {
            let h = h.clone();
            tokio::spawn(async move { job.result(&h, Duration::from_secs(30)).await })
        };
        let id = job.id();
        let mut seen = false;
        for _ in 0..200 {
            if waits(&mut c).await == vec![id] {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(seen, "the wait for job {id} was never told to the server");
        let pool = WorkerPool::builder(&h)
            .register(waited)
            .start()
            .await
            .unwrap();
        waiter.await.unwrap().unwrap();
        // Ended in the background, at once.
        let mut left = waits(&mut c).await;
        for _ in 0..200 {
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            left = waits(&mut c).await;
        }
        assert!(
            left.is_empty(),
            "waits left after the result came: {left:?}"
        );
        pool.shutdown().await.unwrap();
        drop(h);
        drop_schema(&mut c, &schema).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pools_sweep_removes_the_waits_of_waiters_gone_a_minute_for_jobs_no_longer_live() {
        let schema = format!("s_{}_{}", std::process::id(), rand::random::<u32>());
        let url = postgres_url();
        let h = open_schema(&url, &schema);
        let live = waited::enqueue(&h, 0).await.unwrap().id();
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        // Job 999999 is gone; `live` waits in the queue.
        let now = format!("\"{schema}\".now_s()");
        let q = format!(
            "INSERT INTO \"{schema}\".result_waits (job_id, since) VALUES
               (999999, {now} - 61), (999999, {now} - 5), ({live}, {now} - 3600)"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(q))
            .execute(&mut c)
            .await
            .unwrap();
        // A pool sweeps at its start; it serves another queue, so `live`
        // stays live.
        let pool = WorkerPool::builder(&h)
            .register(upgraded)
            .start()
            .await
            .unwrap();
        let left_sql = format!(
            "SELECT job_id, {now} - since FROM \"{schema}\".result_waits ORDER BY job_id, since"
        );
        let mut left: Vec<(i64, i64)> = Vec::new();
        for _ in 0..500 {
            left = sqlx::query_as(sqlx::AssertSqlSafe(left_sql.clone()))
                .fetch_all(&mut c)
                .await
                .unwrap();
            if left.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        pool.shutdown().await.unwrap();
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!(
            left[0].0, live,
            "an old wait for a live job stays: {left:?}"
        );
        assert_eq!(left[1].0, 999_999, "{left:?}");
        assert!(
            left[1].1 < 60,
            "only the recent wait for a gone job stays: {left:?}"
        );
        drop(h);
        drop_schema(&mut c, &schema).await;
    }
}
