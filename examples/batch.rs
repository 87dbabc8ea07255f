//! The untyped layer: a hand-written loop that claims and acks in batches.
//!
//! Run: `cargo run --example batch`

use std::time::Instant;

use honker_actors::core::EnqueueOptions;
use honker_actors::Honker;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = honker_examples::fresh_db_path("honker-batch");
    let honker = Honker::open(&path)?;
    let q = honker.queue("events");
    let total = 5_000;
    let started = Instant::now();
    honker
        .transaction(move |tx| {
            for n in 0..total {
                honker_core::enqueue(
                    tx,
                    "events",
                    &format!(r#"{{"n":{n}}}"#),
                    &EnqueueOptions::default(),
                )?;
            }
            Ok::<_, honker_core::Error>(())
        })
        .await?;
    println!(
        "enqueued {total} events in one transaction in {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let (mut done, mut sum) = (0, 0u64);
    loop {
        let jobs = q.claim_batch("batch-worker", 128).await?;
        if jobs.is_empty() {
            break;
        }
        for j in &jobs {
            let v: serde_json::Value = serde_json::from_str(&j.payload)?;
            sum += v["n"].as_u64().unwrap_or(0);
        }
        let leases: Vec<_> = jobs.iter().map(|j| j.lease()).collect();
        done += q.ack_batch("batch-worker", &leases).await?.len();
    }
    println!(
        "claimed and acked {done} events in batches of 128 in {:?} (sum of n = {sum})",
        started.elapsed()
    );
    assert_eq!(done, total as usize);
    Ok(())
}
