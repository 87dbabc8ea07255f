//! The graceful stop: stop claiming, give back jobs not started, let
//! running jobs finish within the grace period (then abort them), write
//! every outcome, and only then reply; `Err(n)` when `n` outcomes could not
//! be written before giving up.

use std::time::{Duration, Instant};

use ractor::ActorRef;

use super::{ShutdownReply, SupervisorMsg, SupervisorState};
use crate::job::RunResult;
use crate::store::Outcome;

/// After a forced abort at the end of the shutdown grace period, how long a
/// handler that ignores it gets before its claim is released regardless.
pub(crate) const ABORT_GRACE: Duration = Duration::from_secs(1);
/// How long after the jobs' grace (and the abort grace) a shutdown keeps
/// trying to write outcomes before it gives up and reports them.
pub(crate) const WRITE_GRACE: Duration = Duration::from_secs(5);

pub(super) struct ShutdownState {
    replies: Vec<ShutdownReply>,
    /// Past this, failed writes are given up and reported.
    give_up_at: Option<Instant>,
}

impl SupervisorState {
    pub(super) fn begin_shutdown(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        reply: ShutdownReply,
    ) {
        if let Some(s) = &mut self.shutdown {
            s.replies.push(reply);
            return;
        }
        let grace = self.args.shutdown_timeout;
        tracing::info!(
            running = self.book.running_len(),
            grace = ?grace,
            "worker pool shutting down: running jobs get up to {grace:?} to finish, then are stopped"
        );
        self.shutdown = Some(ShutdownState {
            replies: vec![reply],
            give_up_at: Instant::now().checked_add(
                grace
                    .saturating_add(ABORT_GRACE)
                    .saturating_add(WRITE_GRACE),
            ),
        });
        self.wakes.guard = None;
        self.timers.cancel_wake_up();
        self.release_ready();
        for (_, run) in self.book.running() {
            run.signals.stop.raise();
        }
        if std::mem::take(&mut self.hurried) {
            self.shutdown_deadline(myself);
        } else if self.book.running_len() > 0 {
            let me = myself.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let _ = me.cast(SupervisorMsg::ShutdownDeadline);
            });
        }
    }

    /// Jobs claimed but not started go back at once, attempt unburned.
    pub(super) fn release_ready(&mut self) {
        for r in self.book.drain_ready() {
            self.pump.pending.push(Outcome::Release {
                fence: r.fence,
                queue: r.queue,
                job_name: r.job_name,
            });
        }
    }

    /// The grace period ended (or a second ctrl-c cut it short): abort the
    /// runs still going. Cut short before the shutdown began (the second
    /// ctrl-c can come before the pool's stop reaches the supervisor), the
    /// shutdown begins without a grace.
    pub(super) fn shutdown_deadline(&mut self, myself: &ActorRef<SupervisorMsg>) {
        if self.shutdown.is_none() {
            self.hurried = true;
            return;
        }
        tracing::warn!(
            running = self.book.running_len(),
            "shutdown grace period over; stopping the jobs still running"
        );
        for (_, run) in self.book.running() {
            run.signals.abort.raise();
        }
        let me = myself.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ABORT_GRACE).await;
            let _ = me.cast(SupervisorMsg::ShutdownForce);
        });
    }

    /// The abort grace ended: give back the claims of runs that ignored it.
    pub(super) fn shutdown_force(&mut self) {
        let runs: Vec<_> = self
            .book
            .running()
            .map(|(id, r)| (*id, r.fence.lease))
            .collect();
        for (run, lease) in runs {
            tracing::error!(
                job_id = lease.id,
                "handler ignored the abort; releasing its claim anyway"
            );
            for slot in self.workers.slots.values_mut() {
                slot.jobs.retain(|r| *r != run);
            }
            self.record(run, RunResult::Aborted, Duration::ZERO);
        }
    }

    /// A cycle failed during a shutdown: past the give-up time, report the
    /// outcomes still unwritten and finish. Returns whether it gave up.
    pub(super) fn shutdown_gives_up(&mut self) -> bool {
        let Some(s) = &self.shutdown else {
            return false;
        };
        if s.give_up_at.is_some_and(|t| Instant::now() < t) || s.give_up_at.is_none() {
            return false;
        }
        let unwritten = self.pump.pending.len();
        tracing::error!(
            unwritten,
            "shutdown could not write every job outcome; those jobs will run again"
        );
        self.pump.pending.clear();
        self.complete_shutdown(Err(unwritten));
        true
    }

    pub(super) fn complete_shutdown(&mut self, result: Result<(), usize>) {
        if let Some(s) = self.shutdown.as_mut() {
            if s.replies.is_empty() {
                return;
            }
            if let Some(hb) = self.heartbeat.actor.take() {
                hb.stop(None);
            }
            tracing::info!(worker_id = %self.args.worker_id, "worker pool stopped");
            for r in s.replies.drain(..) {
                let _ = r.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::messages::SupervisorMsg;
    use crate::{Honker, Job, JobContext, JobError, WorkerPool};

    /// Runs until it is dropped.
    struct Forever;

    impl Job for Forever {
        const NAME: &'static str = "forever";
        const QUEUE: &'static str = "forever";
        type Args = ();
        type Output = ();
        async fn run(&self, _: JobContext, _: ()) -> Result<(), JobError> {
            std::future::pending::<()>().await;
            Ok(())
        }
    }

    /// A grace cut short before the shutdown reached the supervisor (the
    /// second ctrl-c while the pool's stop is on its way) is kept: the
    /// shutdown then begins without a grace, instead of waiting it out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_grace_cut_short_before_the_shutdown_began_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let h = Honker::open(dir.path().join("a.db")).unwrap();
        let id = h
            .queue("forever")
            .enqueue(&(), Default::default())
            .await
            .unwrap();
        let pool = WorkerPool::builder(&h)
            .register(Forever)
            .shutdown_timeout(Duration::from_secs(60))
            .start()
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.store().job(id).await.unwrap().unwrap().attempts == 0 {
            assert!(Instant::now() < deadline, "the job starts");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        pool.supervisor
            .cast(SupervisorMsg::ShutdownDeadline)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            pool.status().await.unwrap().in_flight,
            1,
            "nothing stopped yet"
        );
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), pool.shutdown())
            .await
            .expect("the shutdown does not wait out its 60 s grace")
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        let job = h.store().job(id).await.unwrap().expect("given back");
        assert_eq!(job.attempts, 0, "attempt unburned");
    }
}
