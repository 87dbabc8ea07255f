//! Transactional enqueue: an order row and its confirmation-email job commit
//! together; a rolled-back order leaves no job behind.
//!
//! Run: `cargo run --example transactional`

use honker_actors::{job, Honker, JobError, WorkerPool};

#[job(queue = "order_emails")]
async fn confirm_order(order_id: i64) -> Result<(), JobError> {
    println!("  worker: confirmation email for order {order_id} sent");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = honker_examples::fresh_db_path("honker-transactional");
    let honker = Honker::open(&path)?;

    // The application's own connection and schema.
    let mut app = honker_core::open(&path)?;
    app.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL)",
        [],
    )?;

    // 1. Committed: the order and its job, atomically.
    let tx = app.transaction()?;
    tx.execute("INSERT INTO orders (item) VALUES ('book')", [])?;
    let order = tx.last_insert_rowid();
    let job = confirm_order::enqueue_tx(&tx, order)?.id();
    tx.commit()?;
    println!("order {order} committed with job {job}");

    // 2. Rolled back (say, the payment failed): neither row exists afterwards.
    let tx = app.transaction()?;
    tx.execute("INSERT INTO orders (item) VALUES ('lamp')", [])?;
    let doomed = tx.last_insert_rowid();
    let doomed_job = confirm_order::enqueue_tx(&tx, doomed)?.id();
    tx.rollback()?;
    println!("order {doomed} rolled back, and job {doomed_job} with it (both ids are free again)");

    // 3. The same through honker's own writer thread.
    let (order3, job3) = honker
        .transaction(|tx| {
            tx.execute("INSERT INTO orders (item) VALUES ('pen')", [])?;
            let id = tx.last_insert_rowid();
            Ok::<_, honker_actors::Error>((id, confirm_order::enqueue_tx(tx, id)?))
        })
        .await?;
    println!("order {order3} committed with job {job3} via honker.transaction");

    let orders: i64 = app.query_row("SELECT count(*) FROM orders", [], |r| r.get(0))?;
    let jobs = honker.queue("order_emails").stats().await?.pending_due;
    println!("now: {orders} orders, {jobs} pending jobs");
    assert_eq!((orders, jobs), (2, 2));

    let pool = WorkerPool::builder(&honker)
        .register(confirm_order)
        .start()
        .await?;
    honker_examples::wait_until_drained(&honker, "order_emails").await?;
    pool.shutdown().await?;
    println!("done: every committed order got exactly one email");
    Ok(())
}
