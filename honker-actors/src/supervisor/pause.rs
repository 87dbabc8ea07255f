//! Pause handling: which of the store's queues are paused as this pool
//! last saw them, and what a pause does to jobs claimed but not started.
//! A pause stops starts, not only claims: jobs of a paused queue waiting
//! in the buffer go back (attempt unburned), and those waiting in a
//! worker's batch are held back there.

use std::sync::atomic::Ordering;

use super::book::ClaimBook;
use crate::store::Outcome;

/// The paused queues, as the last cycle or heartbeat saw them.
#[derive(Debug, Default)]
pub(super) struct PausedQueues {
    queues: Vec<String>,
}

impl PausedQueues {
    /// A cycle saw every paused queue of the store (`all`), or the
    /// heartbeat saw these queues paused (one more, after a commit).
    pub(super) fn seen(&mut self, queues: Vec<String>, all: bool) {
        if all {
            self.queues = queues;
        } else {
            for q in queues {
                if !self.queues.contains(&q) {
                    self.queues.push(q);
                }
            }
        }
    }

    /// The queues paused now.
    pub(super) fn list(&self) -> &[String] {
        &self.queues
    }
}

/// Stop the jobs of `paused` that this pool (`ours`: its queues) claimed
/// and did not start: those in the buffer leave `book`, each as a release
/// to write; those waiting in a worker's batch are told to stay unstarted.
pub(super) fn hold_back(
    book: &mut ClaimBook,
    ours: &[&'static str],
    paused: &[String],
) -> Vec<Outcome> {
    let mut back = Vec::new();
    for q in paused {
        let Some(queue) = ours.iter().copied().find(|name| name == q) else {
            continue;
        };
        for (_, run) in book.running() {
            if run.queue == queue {
                run.signals.held_back.store(true, Ordering::Release);
            }
        }
        let ready = book.drain_ready_of(queue);
        if !ready.is_empty() {
            tracing::info!(
                queue,
                jobs = ready.len(),
                "queue paused; giving back jobs not started"
            );
        }
        back.extend(ready.into_iter().map(|r| Outcome::Release {
            fence: r.fence,
            queue: r.queue,
            job_name: r.job_name,
        }));
    }
    back
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use honker_core::ClaimedJob;

    use super::*;
    use crate::context::JobSignals;

    fn job(id: i64, queue: &str) -> ClaimedJob {
        ClaimedJob {
            id,
            queue: queue.to_string(),
            payload: "{}".into(),
            priority: 0,
            run_at: 0,
            worker_id: "w#1".into(),
            claim_expires_at: 100,
            attempts: 1,
            max_attempts: 3,
            created_at: 0,
            expires_at: None,
        }
    }

    #[test]
    fn a_cycle_says_every_paused_queue_and_the_heartbeat_adds_one() {
        let mut p = PausedQueues::default();
        p.seen(vec!["a".into(), "b".into()], true);
        p.seen(vec!["b".into(), "c".into()], false);
        assert_eq!(p.list(), ["a", "b", "c"], "added, not doubled");
        p.seen(vec!["c".into()], true);
        assert_eq!(p.list(), ["c"], "a cycle's look replaces the list");
        p.seen(Vec::new(), true);
        assert!(p.list().is_empty(), "resumed everywhere");
    }

    #[test]
    fn a_pause_gives_back_its_queues_jobs_not_started_and_holds_back_its_batched_ones() {
        let mut book = ClaimBook::new(4, Default::default(), Default::default());
        book.claimed(job(1, "paused"), "paused", "k");
        book.claimed(job(2, "other"), "other", "k");
        // Job 1 is handed to a worker (in a batch, not yet started by it).
        let r = book.next_ready(0, &mut Vec::new()).unwrap();
        assert_eq!(r.job.id, 1);
        let handed = Arc::new(JobSignals::default());
        book.start(&r, handed.clone());
        book.claimed(job(3, "paused"), "paused", "k");
        book.claimed(job(4, "paused"), "paused", "k");

        let ours = ["paused", "other"];
        let back = hold_back(&mut book, &ours, &["paused".into(), "elsewhere".into()]);
        let ids: Vec<i64> = back
            .iter()
            .map(|o| match o {
                Outcome::Release { fence, queue, .. } => {
                    assert_eq!(*queue, "paused");
                    fence.lease.id
                }
                other => panic!("not a release: {other:?}"),
            })
            .collect();
        assert_eq!(ids, [3, 4], "the paused queue's ready jobs, in order");
        assert_eq!(book.ready_len(), 1, "the other queue's job stays");
        assert!(
            handed.held_back.load(Ordering::Acquire),
            "the batched one is held back"
        );
        assert_eq!(book.running_len(), 1, "and stays the worker's to report");
        assert!(
            hold_back(&mut book, &ours, &[]).is_empty(),
            "nothing paused"
        );
    }
}
