//! Metric names and handles (DESIGN §5). Names `honker_*`, label `queue`.

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

pub(crate) fn enqueued(queue: &str) {
    counter!("honker_jobs_enqueued_total", "queue" => queue.to_string()).increment(1);
}

/// [`enqueued`] for a typed job's queue: a static label, no allocation.
pub(crate) fn enqueued_static(queue: &'static str) {
    counter!("honker_jobs_enqueued_total", "queue" => queue).increment(1);
}

pub(crate) fn lost_claims(queue: &str, n: usize) {
    if n > 0 {
        counter!("honker_jobs_lost_claims_total", "queue" => queue.to_string()).increment(n as u64);
    }
}

/// The handles one pool uses for one queue, registered once.
pub(crate) struct QueueMetrics {
    pub(crate) success: Counter,
    pub(crate) retried: Counter,
    pub(crate) dead: Counter,
    pub(crate) lost: Counter,
    pub(crate) released: Counter,
    pub(crate) lost_claims: Counter,
    pub(crate) restarts: Counter,
    pub(crate) duration: Histogram,
    pub(crate) wait: Histogram,
    pub(crate) in_flight: Gauge,
    pub(crate) depth: Gauge,
}

impl QueueMetrics {
    pub(crate) fn new(queue: &str) -> Self {
        let q = queue.to_string();
        let done = |outcome: &'static str| counter!("honker_jobs_completed_total", "queue" => q.clone(), "outcome" => outcome);
        QueueMetrics {
            success: done("success"),
            retried: done("retried"),
            dead: done("dead"),
            lost: done("lost"),
            released: done("released"),
            lost_claims: counter!("honker_jobs_lost_claims_total", "queue" => q.clone()),
            restarts: counter!("honker_worker_restarts_total", "queue" => q.clone()),
            duration: histogram!("honker_job_duration_seconds", "queue" => q.clone()),
            wait: histogram!("honker_job_wait_seconds", "queue" => q.clone()),
            in_flight: gauge!("honker_jobs_in_flight", "queue" => q.clone()),
            depth: gauge!("honker_queue_depth", "queue" => q),
        }
    }
}
