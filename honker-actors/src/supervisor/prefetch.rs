//! Prefetch sizing: the jobs' measured run times, and the buffer sizes and
//! batches they allow.
//!
//! A cycle claims jobs beyond the idle workers into a local buffer, so a
//! worker that finishes takes the next job at once. The buffer holds
//! about [`PREFETCH_TIME`] of work: sixteen times the concurrency for jobs
//! of a quarter of a millisecond or less, a quarter of it for slow jobs,
//! the concurrency itself until the first runs are measured. Kinds whose
//! runs take at most [`BATCH_JOB_SECS`] may be handed to a worker several at
//! a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How much work, in run time, the prefetch buffer holds: the most a job
/// claimed behind a full buffer of equal priority waits for it.
const PREFETCH_TIME: f64 = 0.004;
/// The largest prefetch buffer, in multiples of the concurrency (for jobs
/// of a quarter of a millisecond or less).
const MAX_PREFETCH_FACTOR: usize = 16;
/// Weight of the newest run in the moving average of run time.
const RUN_TIME_WEIGHT: f64 = 0.05;
/// A job_name whose runs take at most this long on average may be handed out
/// in batches (seconds).
pub(super) const BATCH_JOB_SECS: f64 = 0.000_1;

/// A pool's measured run times, per queue (the buffer) and per job name
/// (batches), and the pool's buffer: the largest of its queues'.
pub(super) struct RunTimes {
    concurrency: usize,
    /// The store's [`second_cycle_divisor`](crate::store::PoolStore::second_cycle_divisor).
    second_cycle_divisor: usize,
    queues: Arc<[&'static str]>,
    /// Moving average of run time per queue, seconds.
    queue_run: HashMap<&'static str, f64>,
    /// The largest queue buffer, kept as runs are measured.
    pool_buffer: usize,
    /// Moving average of run time per job name, seconds.
    job_run_secs: HashMap<&'static str, f64>,
}

impl RunTimes {
    /// Nothing measured yet: every buffer is the concurrency. A second
    /// cycle is worthwhile at `1 / second_cycle_divisor` of the buffer.
    pub(super) fn new(
        concurrency: usize,
        queues: Arc<[&'static str]>,
        second_cycle_divisor: usize,
    ) -> RunTimes {
        RunTimes {
            concurrency,
            second_cycle_divisor: second_cycle_divisor.max(1),
            queues,
            queue_run: HashMap::new(),
            pool_buffer: concurrency,
            job_run_secs: HashMap::new(),
        }
    }

    /// A run of `job_name` on `queue` took `elapsed` (a run not started,
    /// zero, measures nothing).
    pub(super) fn measured(
        &mut self,
        queue: &'static str,
        job_name: &'static str,
        elapsed: Duration,
    ) {
        if elapsed.is_zero() {
            return;
        }
        let t = elapsed.as_secs_f64();
        let before = self.queue_buffer(queue);
        let avg = self.queue_run.get(queue).copied();
        self.queue_run.insert(queue, moving_average(avg, t));
        let after = self.queue_buffer(queue);
        if after >= self.pool_buffer {
            self.pool_buffer = after;
        } else if before == self.pool_buffer && after < before {
            // The largest shrank: recount.
            self.pool_buffer = self
                .queues
                .iter()
                .map(|q| self.queue_buffer(q))
                .max()
                .unwrap_or(self.concurrency);
        }
        let avg = self.job_run_secs.get(job_name).copied();
        self.job_run_secs.insert(job_name, moving_average(avg, t));
    }

    /// The prefetch buffer of `queue`, for its jobs' measured run time.
    pub(super) fn queue_buffer(&self, queue: &str) -> usize {
        prefetch_buffer(self.concurrency, self.queue_run.get(queue).copied())
    }

    /// The pool's prefetch buffer: the largest of its queues' (each queue
    /// holds at most the concurrency plus its own).
    pub(super) fn buffer(&self) -> usize {
        self.pool_buffer
    }

    /// The fewest jobs or outcomes for which a second cycle starts while
    /// one runs: a cycle costs about the same for ten jobs as for a
    /// hundred, so while the store is busy the next cycle waits to carry
    /// a worthwhile batch (the store says how large).
    pub(super) fn worthwhile(&self) -> usize {
        (self.concurrency / 2)
            .max(self.buffer() / self.second_cycle_divisor)
            .max(1)
    }

    /// The measured run time of `job_name`, when it is fast enough to batch.
    pub(super) fn batch_cost(&self, job_name: &str) -> Option<f64> {
        self.job_run_secs
            .get(job_name)
            .copied()
            .filter(|t| *t <= BATCH_JOB_SECS)
    }
}

/// The prefetch buffer of a pool of `concurrency` whose jobs run
/// `avg_run` seconds on average: about [`PREFETCH_TIME`] of work, at least
/// a quarter of the concurrency, at most [`MAX_PREFETCH_FACTOR`] times
/// it; the concurrency itself until a run is measured.
fn prefetch_buffer(concurrency: usize, avg_run: Option<f64>) -> usize {
    let least = (concurrency / 4).max(1);
    let most = concurrency.saturating_mul(MAX_PREFETCH_FACTOR).max(least);
    let Some(t) = avg_run else {
        return concurrency;
    };
    if !t.is_finite() || t <= 0.0 {
        return most;
    }
    // Work the buffer may hold: PREFETCH_TIME on each worker.
    let fit = concurrency as f64 * PREFETCH_TIME / t;
    if fit >= most as f64 {
        most
    } else {
        (fit as usize).clamp(least, most)
    }
}

/// `avg` moved toward `t` by [`RUN_TIME_WEIGHT`]; `t` itself at first.
fn moving_average(avg: Option<f64>, t: f64) -> f64 {
    match avg {
        None => t,
        Some(avg) => avg + RUN_TIME_WEIGHT * (t - avg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_prefetch_buffer_holds_about_four_ms_of_work() {
        // Unmeasured: the concurrency.
        assert_eq!(prefetch_buffer(32, None), 32);
        // No-op jobs: the cap, sixteen times the concurrency.
        assert_eq!(prefetch_buffer(32, Some(0.000_002)), 512);
        assert_eq!(prefetch_buffer(32, Some(0.0)), 512);
        // 1 ms jobs: four per worker.
        assert_eq!(prefetch_buffer(32, Some(0.001)), 128);
        // 2 ms jobs on 256 workers: two per worker.
        assert_eq!(prefetch_buffer(256, Some(0.002)), 512);
        // Slow jobs: a quarter of the concurrency, and at least one.
        assert_eq!(prefetch_buffer(32, Some(0.5)), 8);
        assert_eq!(prefetch_buffer(1, Some(0.5)), 1);
        assert_eq!(prefetch_buffer(1, Some(0.000_001)), 16);
        // Nothing a clock can produce overflows it.
        assert_eq!(prefetch_buffer(usize::MAX, Some(f64::NAN)), usize::MAX);
        assert_eq!(prefetch_buffer(usize::MAX, Some(1e-300)), usize::MAX);
    }

    #[test]
    fn the_average_starts_at_the_first_run_and_moves_a_twentieth_of_the_way() {
        assert_eq!(moving_average(None, 0.5), 0.5);
        assert!((moving_average(Some(1.0), 3.0) - 1.1).abs() < 1e-12);
        assert!((moving_average(Some(1.0), 0.0) - 0.95).abs() < 1e-12);
    }

    #[test]
    fn a_store_that_asks_for_larger_second_cycles_gets_them() {
        let mut t = RunTimes::new(8, vec!["fast"].into(), 2);
        assert_eq!(t.worthwhile(), 4, "unmeasured: half the concurrency");
        t.measured("fast", "f", Duration::from_micros(2));
        assert_eq!((t.buffer(), t.worthwhile()), (128, 64), "half the buffer");
        // A divisor of 0 is read as 1, never divided by.
        let mut t = RunTimes::new(8, vec!["fast"].into(), 0);
        t.measured("fast", "f", Duration::from_micros(2));
        assert_eq!(t.worthwhile(), 128, "the whole buffer");
    }

    #[test]
    fn the_pool_buffer_is_the_largest_queues_and_follows_it_down() {
        let mut t = RunTimes::new(8, vec!["fast", "slow"].into(), 8);
        assert_eq!((t.buffer(), t.worthwhile()), (8, 4), "unmeasured");
        t.measured("fast", "f", Duration::from_micros(2));
        assert_eq!(t.queue_buffer("fast"), 128);
        assert_eq!(t.buffer(), 128, "the largest queue's");
        assert_eq!(t.worthwhile(), 16, "an eighth of the buffer");
        t.measured("slow", "s", Duration::from_secs(1));
        assert_eq!(t.queue_buffer("slow"), 2);
        assert_eq!(t.buffer(), 128, "a smaller queue leaves it");
        // The fast queue slows down: its buffer shrinks, and the pool's
        // is recounted as the largest left.
        for _ in 0..200 {
            t.measured("fast", "f", Duration::from_secs(1));
        }
        assert_eq!(t.queue_buffer("fast"), 2);
        assert_eq!(t.buffer(), 2, "recounted: both queues are slow now");
        assert_eq!(t.worthwhile(), 4, "half the concurrency at least");
        t.measured("fast", "f", Duration::ZERO);
        assert_eq!(
            t.queue_buffer("fast"),
            2,
            "a run not started measures nothing"
        );
    }

    #[test]
    fn only_jobs_measured_fast_are_batched() {
        let mut t = RunTimes::new(4, vec!["q"].into(), 8);
        assert_eq!(t.batch_cost("a"), None, "unmeasured");
        t.measured("q", "a", Duration::from_micros(50));
        t.measured("q", "b", MS);
        assert_eq!(t.batch_cost("a"), Some(0.000_05));
        assert_eq!(t.batch_cost("b"), None);
        t.measured("q", "c", Duration::from_micros(100));
        assert_eq!(
            t.batch_cost("c"),
            Some(BATCH_JOB_SECS),
            "the bound itself batches"
        );
    }
}
