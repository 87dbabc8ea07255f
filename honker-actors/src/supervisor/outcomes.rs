//! Outcomes: what a run reports, the outcome it becomes, how that is
//! recorded for the next cycle, and how it is counted once written.
//!
//! A worker reports each run (done, retry, failed, timed out, not
//! started); [`outcome_of`] turns it into the outcome to write (ack,
//! retry, fail, release), or none when the claim was lost; the outcome
//! waits in the supervisor's pending list for the next cycle, which
//! writes it by its own fence; the cycle's answer says what writing it
//! did, counted and logged here.

use std::time::Duration;

use super::book::Running;
use super::SupervisorState;
use crate::job::{JobOptions, RunResult};
use crate::messages::RunId;
use crate::store::{Applied, Outcome};
use crate::telemetry::JobMetrics;

impl SupervisorState {
    /// The metric handles of `job_name` on `queue`.
    pub(super) fn job_metrics(
        &mut self,
        queue: &'static str,
        job_name: &'static str,
    ) -> &JobMetrics {
        self.counters
            .jobs
            .entry((queue, job_name))
            .or_insert_with(|| JobMetrics::new(queue, job_name))
    }

    /// A worker died (a handler panicked) while running `run`.
    pub(super) fn worker_failed(&mut self, run: RunId, why: &str) {
        let error = if why.starts_with("panicked: ") {
            why.to_string()
        } else {
            format!("worker failed: {why}")
        };
        let site = self
            .book
            .running()
            .find(|(r, _)| **r == run)
            .map(|(_, r)| (r.queue, r.job_name));
        if let Some((queue, job_name)) = site {
            self.job_metrics(queue, job_name).restarts.increment(1);
        }
        self.record(run, RunResult::Retry { after: None, error }, Duration::ZERO);
    }

    /// Turn a finished run into an outcome to write.
    pub(super) fn record(&mut self, id: RunId, result: RunResult, elapsed: Duration) {
        let Some(run) = self.book.finish(id) else {
            tracing::warn!(
                run = ?id,
                "a run finished whose claim the pool no longer holds; outcome dropped"
            );
            return;
        };
        let lease = run.fence.lease;
        let m = self.job_metrics(run.queue, run.job_name);
        m.in_flight.decrement(1.0);
        if !elapsed.is_zero() {
            m.duration.record(elapsed.as_secs_f64());
        }
        self.run_times.measured(run.queue, run.job_name, elapsed);
        let shutting_down = self.shutdown.is_some();
        let default_opts;
        let opts = match self.args.routes.job(run.job_name) {
            Some(j) => j.options(),
            None => {
                default_opts = JobOptions::default();
                &default_opts
            }
        };
        match outcome_of(&run, result, opts, shutting_down) {
            // Logged once written (`count_applied`): what happened, not
            // what was meant to.
            Some(o) => self.pump.pending.push(o),
            None => match unwritten(&run) {
                Unwritten::Cancelled => tracing::info!(
                    job_id = lease.id,
                    queue = run.queue,
                    job = run.job_name,
                    attempt = lease.attempts,
                    "run ended after its job was cancelled; nothing written"
                ),
                Unwritten::ClaimLost => tracing::warn!(
                    job_id = lease.id,
                    queue = run.queue,
                    job = run.job_name,
                    attempt = lease.attempts,
                    "run ended after its claim was lost; nothing written"
                ),
            },
        }
    }

    /// Count what writing `o` did, and log it: one line per retry, death
    /// or lost claim, with the job's error as written.
    pub(super) fn count_applied(&mut self, o: &Outcome, applied: Applied) {
        let (lease, queue, job) = (o.lease(), o.queue(), o.job_name());
        let m = self.job_metrics(queue, job);
        let error = match o {
            Outcome::Retry { error, .. } | Outcome::Fail { error, .. } => error.as_str(),
            _ => "",
        };
        let message = match applied {
            Applied::Acked => return m.success.increment(1),
            Applied::Released => return m.released.increment(1),
            Applied::Retried => {
                m.retried.increment(1);
                let delay = match o {
                    Outcome::Retry { delay, .. } => delay.as_secs(),
                    _ => 0,
                };
                format!("job failed; retrying in {delay} s: {error}")
            }
            Applied::Dead => {
                m.dead.increment(1);
                format!("job moved to _honker_dead: {error}")
            }
            Applied::Lost => {
                m.lost.increment(1);
                "claim was lost before the outcome was recorded; nothing written".to_string()
            }
        };
        let (job_id, attempt) = (lease.id, lease.attempts);
        if applied == Applied::Retried {
            tracing::info!(queue, job, job_id, attempt, "{message}");
        } else {
            tracing::warn!(queue, job, job_id, attempt, "{message}");
        }
    }
}

/// The outcome to write for `run`, which ended with `result`. `None` when
/// nothing may be written: the claim was lost.
///
/// A retryable error (or a timeout) returned while the pool shuts down,
/// by a handler that was asked to stop, gives the claim back without
/// burning the attempt: that is the cooperative stop the docs describe.
/// Why a finished run's outcome is not written: an operator's cancel
/// (said at INFO), or a claim lost otherwise (lapsed, taken over: WARN).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unwritten {
    Cancelled,
    ClaimLost,
}

pub(crate) fn unwritten(run: &Running) -> Unwritten {
    if run
        .signals
        .cancelled
        .load(std::sync::atomic::Ordering::Acquire)
    {
        Unwritten::Cancelled
    } else {
        Unwritten::ClaimLost
    }
}

pub(crate) fn outcome_of(
    run: &Running,
    result: RunResult,
    opts: &JobOptions,
    shutting_down: bool,
) -> Option<Outcome> {
    if run.lost {
        return None;
    }
    let (fence, queue, job_name) = (run.fence.clone(), run.queue, run.job_name);
    let attempt = u32::try_from(fence.lease.attempts).unwrap_or(u32::MAX);
    let asked_to_stop = shutting_down && run.signals.stop.is_raised();
    Some(match result {
        RunResult::Done(result) => Outcome::Ack {
            fence,
            queue,
            job_name,
            result: result.map(|r| (r, opts.result_ttl)),
        },
        RunResult::Retry { .. } | RunResult::TimedOut(_) if asked_to_stop => Outcome::Release {
            fence,
            queue,
            job_name,
        },
        RunResult::Retry { after, error } => Outcome::Retry {
            fence,
            queue,
            job_name,
            delay: after.unwrap_or_else(|| opts.backoff.delay(attempt)),
            error,
        },
        RunResult::TimedOut(d) => Outcome::Retry {
            fence,
            queue,
            job_name,
            delay: opts.backoff.delay(attempt),
            error: format!("timed out after {}", humantime(d)),
        },
        RunResult::Fail(error) => Outcome::Fail {
            fence,
            queue,
            job_name,
            error,
        },
        RunResult::Aborted => Outcome::Release {
            fence,
            queue,
            job_name,
        },
    })
}

/// `1.5s`, `250ms`: a duration for a message a person reads.
fn humantime(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use honker_core::Lease;

    use super::*;
    use crate::context::JobSignals;
    use crate::job::Backoff;
    use crate::store::Fence;

    fn opts() -> JobOptions {
        JobOptions::default().backoff(Backoff::fixed(Duration::from_secs(7)))
    }

    /// A run of job 1, attempt 1, on queue `q`.
    fn run() -> Running {
        Running {
            fence: Fence {
                worker: "w#1".into(),
                lease: Lease { id: 1, attempts: 1 },
            },
            start_before: None,
            queue: "q",
            job_name: "k",
            signals: Arc::new(JobSignals::default()),
            lost: false,
        }
    }

    #[test]
    fn a_cancelled_run_is_told_apart_from_a_lost_claim() {
        let r = run();
        assert_eq!(unwritten(&r), Unwritten::ClaimLost);
        r.signals
            .cancelled
            .store(true, std::sync::atomic::Ordering::Release);
        assert_eq!(unwritten(&r), Unwritten::Cancelled);
    }

    #[test]
    fn each_report_becomes_its_outcome_by_the_runs_own_fence() {
        let r = run();
        let ttl = Some(Duration::from_secs(60));
        let o = opts().result_ttl(ttl);
        match outcome_of(&r, RunResult::Done(Some("[1]".into())), &o, false) {
            Some(Outcome::Ack {
                fence,
                queue,
                job_name,
                result,
            }) => {
                assert_eq!((fence, queue, job_name), (r.fence.clone(), "q", "k"));
                assert_eq!(result, Some(("[1]".to_string(), ttl)));
            }
            other => panic!("{other:?}"),
        }
        let after = Some(Duration::from_secs(2));
        let retry = RunResult::Retry {
            after,
            error: "again".into(),
        };
        match outcome_of(&r, retry, &o, false) {
            Some(Outcome::Retry { delay, error, .. }) => {
                assert_eq!((delay, error.as_str()), (Duration::from_secs(2), "again"));
            }
            other => panic!("{other:?}"),
        }
        let retry = RunResult::Retry {
            after: None,
            error: "again".into(),
        };
        assert!(
            matches!(
                outcome_of(&r, retry, &o, false),
                Some(Outcome::Retry { delay, .. }) if delay == Duration::from_secs(7)
            ),
            "no delay asked: the job's backoff"
        );
        assert!(matches!(
            outcome_of(&r, RunResult::Fail("bad".into()), &o, false),
            Some(Outcome::Fail { error, .. }) if error == "bad"
        ));
        assert!(
            matches!(
                outcome_of(&r, RunResult::Aborted, &o, false),
                Some(Outcome::Release { .. })
            ),
            "not started: given back"
        );
        let mut lost = run();
        lost.lost = true;
        assert!(
            outcome_of(&lost, RunResult::Done(None), &o, false).is_none(),
            "claim lost"
        );
    }

    #[test]
    fn a_cooperative_stop_on_shutdown_gives_the_claim_back() {
        let r = run();
        let retry = || RunResult::Retry {
            after: None,
            error: "stopping".into(),
        };
        let timed_out = || RunResult::TimedOut(Duration::from_millis(5));
        // Shutting down, but this run was not asked to stop: a retry.
        assert!(matches!(
            outcome_of(&r, retry(), &opts(), true),
            Some(Outcome::Retry { .. })
        ));
        r.signals.stop.raise();
        for result in [retry(), timed_out()] {
            let out = outcome_of(&r, result, &opts(), true);
            assert!(matches!(out, Some(Outcome::Release { .. })), "{out:?}");
        }
        // Without a shutdown the same error is a retry with the backoff.
        let out = outcome_of(&r, retry(), &opts(), false);
        assert!(
            matches!(out, Some(Outcome::Retry { delay, .. }) if delay == Duration::from_secs(7)),
            "{out:?}"
        );
        // A permanent failure stays a failure.
        let out = outcome_of(&r, RunResult::Fail("bad".into()), &opts(), true);
        assert!(matches!(out, Some(Outcome::Fail { .. })));
    }

    #[test]
    fn a_timeout_is_a_retry_with_the_backoff_and_says_so() {
        let timed_out = RunResult::TimedOut(Duration::from_millis(250));
        match outcome_of(&run(), timed_out, &opts(), false) {
            Some(Outcome::Retry { delay, error, .. }) => {
                assert_eq!(delay, Duration::from_secs(7));
                assert_eq!(error, "timed out after 250ms");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn durations_read_as_a_person_writes_them() {
        assert_eq!(humantime(Duration::from_millis(999)), "999ms");
        assert_eq!(humantime(Duration::from_millis(1000)), "1s");
        assert_eq!(humantime(Duration::from_millis(1500)), "1.5s");
    }
}
