//! Nothing that runs after COMMIT can change an answer: with a tracing
//! subscriber that panics on every event of the writer, committed writes
//! are still reported committed (never `WriterStopped`, which would make a
//! retrying caller enqueue twice) and the handle keeps working. Its own
//! binary: the subscriber is global.

use honker_actors::core::EnqueueOptions;
use honker_actors::Honker;
use tracing::subscriber::Subscriber;
use tracing::{Event, Metadata};

struct Panicking;

impl Subscriber for Panicking {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &Event<'_>) {
        if event
            .metadata()
            .target()
            .starts_with("honker_actors::writer")
        {
            panic!("a subscriber that panics");
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_subscriber_never_turns_a_commit_into_an_error() {
    tracing::subscriber::set_global_default(Panicking).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let h = Honker::open(dir.path().join("app.db")).unwrap();
    let q = h.queue("q");
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(q.enqueue(&i, EnqueueOptions::default()).await.unwrap());
    }
    // A failing request and a refused one log too; still no harm.
    let failed = h.transaction(|tx| tx.execute_batch("ROLLBACK")).await;
    assert!(failed.is_err());
    ids.push(q.enqueue(&"last", EnqueueOptions::default()).await.unwrap());
    let stats = q.stats().await.unwrap();
    assert_eq!(stats.pending_due, 51);
    for id in ids {
        assert!(q.get_job(id).await.unwrap().is_some());
    }
}
