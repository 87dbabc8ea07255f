//! When you outgrow one machine: the same jobs on PostgreSQL. A typed
//! job, enqueued in the service's own sqlx transaction with its order row
//! (a rolled-back order leaves no job), run by two pools standing in for
//! two machines, with a typed result; the switch is the URL.
//!
//! Needs a PostgreSQL server: `HONKER_PG_URL=postgres://user:pw@host/db
//! cargo run --example outgrow` (`.ci/run` starts a throwaway one, and
//! `source .ci/postgres` does by hand). Without it, it says so and exits.

use std::time::Duration;

use honker_actors::postgres::PgStore;
use honker_actors::{job, Honker, JobError, WorkerPool};
use honker_postgres::sqlx::{self, Connection};

#[job(queue = "order_emails")]
async fn confirm_order(order_id: i64) -> Result<String, JobError> {
    Ok(format!("confirmation for order {order_id} sent"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(url) = std::env::var("HONKER_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        println!("skipped: set HONKER_PG_URL to a PostgreSQL database (.ci/run does)");
        return Ok(());
    };
    // The one line that differs from SQLite: a URL instead of a path (a
    // schema of this example's own, so that it starts empty).
    let schema = format!("outgrow_{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let honker = Honker::open(format!("{url}{sep}honker_schema={schema}"))?;
    let store = honker
        .store()
        .as_any()
        .downcast_ref::<PgStore>()
        .ok_or("a PgStore")?;
    println!("store: {}", honker.store().location());

    // The service's own table and connection.
    let mut app = sqlx::PgConnection::connect(&url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE \"{schema}\".orders (id BIGSERIAL PRIMARY KEY, item TEXT NOT NULL)"
    )))
    .execute(&mut app)
    .await?;
    let insert = format!("INSERT INTO \"{schema}\".orders (item) VALUES ($1) RETURNING id");

    // 1. Committed: the order and its job, atomically.
    let mut tx = app.begin().await?;
    let order: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(insert.clone()))
        .bind("book")
        .fetch_one(&mut *tx)
        .await?;
    let job = confirm_order::enqueue_tx(store.in_tx(&mut tx), order).await?;
    tx.commit().await?;
    println!("order {order} committed with job {job}");

    // 2. Rolled back: neither the order nor its job exists afterwards.
    let mut tx = app.begin().await?;
    let doomed: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(insert))
        .bind("lamp")
        .fetch_one(&mut *tx)
        .await?;
    let doomed_job = confirm_order::enqueue_tx(store.in_tx(&mut tx), doomed).await?;
    tx.rollback().await?;
    println!("order {doomed} rolled back, and job {doomed_job} with it");

    // Two pools, as two machines would run them: each job runs once.
    let a = WorkerPool::builder(&honker)
        .register(confirm_order)
        .start()
        .await?;
    let b = WorkerPool::builder(&honker)
        .register(confirm_order)
        .start()
        .await?;
    let said: String = job.result(&honker, Duration::from_secs(30)).await?;
    println!("job {job}: {said}");
    a.shutdown().await?;
    b.shutdown().await?;
    let stats = honker.queue("order_emails").stats().await?;
    assert_eq!((stats.pending_due, stats.processing, stats.dead), (0, 0, 0));
    assert!(honker.store().job(doomed_job.id()).await?.is_none());
    println!("done: nothing left waiting, the rolled-back job never existed");

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(&mut app)
    .await?;
    Ok(())
}
