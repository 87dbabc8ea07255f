//! Quickstart over the format layer: enqueue jobs, claim them in priority
//! order, ack, retry and dead-letter one, and print what happened.
//!
//! Run: `cargo run --example quickstart`

use std::time::Duration;

use honker_core::{EnqueueOptions, RetryOutcome};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Email {
    to: String,
    subject: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = honker_examples::fresh_db_path("honker-quickstart");
    let conn = honker_core::open(&path)?;
    println!("opened {}", path.display());

    // Enqueue: three emails, one urgent, one delayed.
    let mut ids = Vec::new();
    for (to, priority) in [
        ("ada@example.com", 0),
        ("bob@example.com", 10),
        ("cy@example.com", 0),
    ] {
        let email = Email {
            to: to.into(),
            subject: "hello".into(),
        };
        let opts = EnqueueOptions::default().priority(priority);
        let id = honker_core::enqueue(&conn, "emails", &serde_json::to_string(&email)?, &opts)?;
        println!("enqueued job {id} to {to} (priority {priority})");
        ids.push(id);
    }
    let later = EnqueueOptions::default().delay(Duration::from_secs(3600));
    let delayed = honker_core::enqueue(
        &conn,
        "emails",
        r#"{"to":"later@example.com","subject":"later"}"#,
        &later,
    )?;
    println!("enqueued job {delayed}, due in an hour");

    // Claim everything that is due, in priority order.
    let jobs = honker_core::claim_batch(
        &conn,
        "emails",
        "quickstart-worker",
        10,
        Duration::from_secs(60),
    )?;
    println!("claimed {} due jobs (the delayed one waits)", jobs.len());
    let mut done = Vec::new();
    for job in &jobs {
        let email: Email = serde_json::from_str(&job.payload)?;
        if email.to.starts_with("cy") {
            // Pretend this one failed: retry it in 30 s.
            let out = honker_core::retry(
                &conn,
                "quickstart-worker",
                job.lease(),
                Duration::from_secs(30),
                "smtp timeout",
            )?;
            assert_eq!(out, RetryOutcome::Retried);
            println!(
                "job {} to {} failed, retry scheduled (attempt {}/{})",
                job.id, email.to, job.attempts, job.max_attempts
            );
        } else {
            println!(
                "job {} sent to {} (priority {})",
                job.id, email.to, job.priority
            );
            done.push(job.lease());
        }
    }
    let acked = honker_core::ack_batch(&conn, "quickstart-worker", &done)?;
    println!("acked {} jobs in one transaction", acked.len());

    // A malformed job goes straight to the dead-letter table.
    let bad = honker_core::enqueue(
        &conn,
        "emails",
        r#"{"oops":true}"#,
        &EnqueueOptions::default().priority(99),
    )?;
    let job = honker_core::claim_batch(
        &conn,
        "emails",
        "quickstart-worker",
        1,
        Duration::from_secs(60),
    )?
    .remove(0);
    assert_eq!(job.id, bad);
    if let Err(e) = serde_json::from_str::<Email>(&job.payload) {
        honker_core::fail(
            &conn,
            "quickstart-worker",
            job.lease(),
            &format!("bad payload: {e}"),
        )?;
        println!("job {} has a bad payload: moved to _honker_dead", job.id);
    }

    let s = honker_core::queue_stats(&conn, "emails")?;
    println!(
        "summary for queue 'emails': {} due, {} scheduled, {} processing, {} dead",
        s.pending_due, s.scheduled, s.processing, s.dead
    );
    for d in honker_core::list_dead(&conn, "emails", 10, 0)? {
        println!("dead job {}: {}", d.id, d.last_error.unwrap_or_default());
    }
    Ok(())
}
