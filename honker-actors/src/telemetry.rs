//! Metric names and handles (the README lists them). Names `honker_*`,
//! labels `queue`, and `job` for what a job's runs did.

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

/// The most distinct queue labels untyped enqueues create; the rest are
/// counted under [`OTHER_QUEUES`], so arbitrary names cannot grow the
/// number of series without bound.
pub(crate) const MAX_QUEUE_LABELS: usize = 256;
/// The label of queues beyond [`MAX_QUEUE_LABELS`].
pub(crate) const OTHER_QUEUES: &str = "_other";

static LABELS: std::sync::Mutex<Option<std::collections::HashSet<String>>> =
    std::sync::Mutex::new(None);

/// The label for `queue`: the name itself (queue names are validated at
/// enqueue, so they are safe label values) while the process has seen
/// fewer than [`MAX_QUEUE_LABELS`] names, else [`OTHER_QUEUES`].
pub(crate) fn queue_label(queue: &str) -> String {
    let mut labels = LABELS.lock().unwrap_or_else(|p| p.into_inner());
    let labels = labels.get_or_insert_with(Default::default);
    if labels.contains(queue) {
        return queue.to_string();
    }
    if labels.len() < MAX_QUEUE_LABELS {
        labels.insert(queue.to_string());
        return queue.to_string();
    }
    OTHER_QUEUES.to_string()
}

pub(crate) fn enqueued(queue: &str) {
    counter!("honker_jobs_enqueued_total", "queue" => queue_label(queue)).increment(1);
}

/// [`enqueued`] for a typed job: static labels, no allocation.
pub(crate) fn enqueued_job(queue: &'static str, job: &'static str) {
    counter!("honker_jobs_enqueued_total", "queue" => queue, "job" => job).increment(1);
}

/// A unique enqueue that found its job already there.
pub(crate) fn duplicate_job(queue: &'static str, job: &'static str) {
    counter!("honker_jobs_duplicate_total", "queue" => queue, "job" => job).increment(1);
}

pub(crate) fn lost_claims(queue: &str, n: usize) {
    if n > 0 {
        counter!("honker_jobs_lost_claims_total", "queue" => queue_label(queue))
            .increment(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

/// The handles one pool uses for one queue, registered once.
pub(crate) struct QueueMetrics {
    pub(crate) lost_claims: Counter,
    pub(crate) depth: Gauge,
}

impl QueueMetrics {
    pub(crate) fn new(queue: &str) -> Self {
        let q = queue_label(queue);
        QueueMetrics {
            lost_claims: counter!("honker_jobs_lost_claims_total", "queue" => q.clone()),
            depth: gauge!("honker_queue_depth", "queue" => q),
        }
    }
}

/// The handles one pool uses for one job on one queue, registered
/// on first use. The `job` label is a registered job's name, or
/// `_unrouted` for rows no registered job runs (their names come from the
/// file, so they are not labels).
pub(crate) struct JobMetrics {
    pub(crate) success: Counter,
    pub(crate) retried: Counter,
    pub(crate) dead: Counter,
    pub(crate) lost: Counter,
    pub(crate) released: Counter,
    pub(crate) restarts: Counter,
    pub(crate) duration: Histogram,
    pub(crate) wait: Histogram,
    pub(crate) in_flight: Gauge,
}

impl JobMetrics {
    pub(crate) fn new(queue: &str, job: &'static str) -> Self {
        let q = queue_label(queue);
        let done = |outcome: &'static str| {
            counter!("honker_jobs_completed_total",
                "queue" => q.clone(), "job" => job, "outcome" => outcome)
        };
        JobMetrics {
            success: done("success"),
            retried: done("retried"),
            dead: done("dead"),
            lost: done("lost"),
            released: done("released"),
            restarts: counter!("honker_worker_restarts_total", "queue" => q.clone(), "job" => job),
            duration: histogram!("honker_job_duration_seconds", "queue" => q.clone(), "job" => job),
            wait: histogram!("honker_job_wait_seconds", "queue" => q.clone(), "job" => job),
            in_flight: gauge!("honker_jobs_in_flight", "queue" => q, "job" => job),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        for i in 0..MAX_QUEUE_LABELS + 10 {
            queue_label(&format!("label-test-{i}"));
        }
        assert_eq!(queue_label("label-test-never-seen"), OTHER_QUEUES);
        assert_eq!(queue_label("label-test-0"), "label-test-0");
    }
}
