//! The store traits on SQLite: each operation a call of `honker-core`'s
//! functions on the writer's connection, writes inside the group
//! transaction, reads outside any.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use honker_core::rusqlite::Connection;
use honker_core::{
    ClaimGone, ClaimedJob, DeadFilter, DeadJob, EnqueueOptions, Enqueued, Fired, Health, JobFate,
    JobRow, Lease, LiveState, QueueControls, QueueStats, RateLimit, RetryOutcome, RowTotals,
    ScheduleRow, ScheduleSpec, SchemaObject,
};

use super::cycle::{next_times, run_cycle};
use super::writer::{refuse_on_writer_thread, Writer};
use super::SqliteStore;
use crate::store::{
    BatchJob, ClaimsSeen, ControlStore, CycleDone, CycleRequest, Fence, InspectStore, JobStore,
    LockStore, NextTimes, PoolStore, ScheduleStore,
};
use crate::{Error, Result};

#[async_trait]
impl PoolStore for SqliteStore {
    fn run_cycle(&self, request: CycleRequest, done: CycleDone) {
        // The writer's closure reads the request; `done` gets it back.
        let request = Arc::new(request);
        let for_writer = request.clone();
        let writer = match self.writer() {
            Ok(w) => w,
            Err(e) => return done(Arc::unwrap_or_clone(request), Err(e)),
        };
        writer.write_then(
            move |c| run_cycle(c, &for_writer),
            move |output| {
                let request = Arc::try_unwrap(request).unwrap_or_else(|a| (*a).clone());
                done(request, output);
            },
        );
    }

    async fn claimable(&self, queues: &[&'static str]) -> Result<(bool, NextTimes)> {
        let queues = queues.to_vec();
        self.read(move |c| {
            let mut claimable = false;
            for q in &queues {
                claimable |= honker_core::has_claimable(c, q)?;
            }
            Ok((claimable, next_times(c, &queues)?))
        })
        .await
    }

    async fn depths(&self, queues: &[&'static str]) -> Result<Vec<(&'static str, i64)>> {
        let queues = queues.to_vec();
        self.read(move |c| {
            let mut d = Vec::with_capacity(queues.len());
            for q in queues {
                d.push((q, honker_core::pending_due_count(c, q)?));
            }
            Ok(d)
        })
        .await
    }

    async fn extend_claims(
        &self,
        fences: Vec<Fence>,
        by: Duration,
    ) -> Result<Vec<(Fence, ClaimGone)>> {
        // Each claim on its own, by its own fence: two claims of one job
        // (an earlier one whose claim lapsed, or one requeued since) must
        // not pass for each other.
        self.write(move |c| {
            let mut lost = Vec::new();
            for f in fences {
                if honker_core::heartbeat(c, &f.worker, f.lease, by)?.is_none() {
                    lost.push(f);
                }
            }
            Ok(gone_of(c, lost)?)
        })
        .await
    }

    async fn look_at_claims(&self, fences: Vec<Fence>) -> Result<ClaimsSeen> {
        self.read(move |c| {
            Ok(ClaimsSeen {
                gone: gone_of(c, fences)?,
                paused: honker_core::paused_queues(c)?,
            })
        })
        .await
    }

    async fn extend_claim(&self, fence: Fence, by: Duration) -> Result<Option<ClaimGone>> {
        self.write(move |c| {
            let Fence { worker, lease } = &fence;
            if honker_core::heartbeat(c, worker, *lease, by)?.is_some() {
                return Ok(None);
            }
            let why = honker_core::lost_claims(c, worker, &[*lease])?;
            Ok(Some(why.first().map_or(ClaimGone::Lost, |g| g.1)))
        })
        .await
    }
}

/// Which of `fences` are gone, and why: one look per claiming cycle's
/// worker string.
fn gone_of(c: &Connection, fences: Vec<Fence>) -> honker_core::Result<Vec<(Fence, ClaimGone)>> {
    let mut by_worker: HashMap<Arc<str>, Vec<Lease>> = HashMap::new();
    for f in fences {
        by_worker.entry(f.worker).or_default().push(f.lease);
    }
    let mut gone = Vec::new();
    for (worker, leases) in by_worker {
        for (lease, why) in honker_core::lost_claims(c, &worker, &leases)? {
            let worker = worker.clone();
            gone.push((Fence { worker, lease }, why));
        }
    }
    Ok(gone)
}

/// Whether live job `id` belongs to `queue`: a queue handle acts only on
/// its own queue's jobs (the fenced operations themselves match id, worker
/// and attempt, not the queue).
fn in_queue(c: &Connection, queue: &str, id: i64) -> Result<bool> {
    Ok(honker_core::get_job_in(c, queue, id)?.is_some())
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue(
        &self,
        queue: &str,
        payload: String,
        opts: EnqueueOptions,
    ) -> Result<Enqueued> {
        let q = queue.to_string();
        self.write(move |c| Ok(honker_core::enqueue_outcome(c, &q, &payload, &opts)?))
            .await
    }

    async fn enqueue_batch(&self, jobs: Vec<BatchJob>) -> Result<Vec<Enqueued>> {
        self.write(move |c| {
            Ok(honker_core::atomically(c, |c| {
                jobs.iter()
                    .map(|j| honker_core::enqueue_outcome(c, &j.queue, &j.payload, &j.opts))
                    .collect::<honker_core::Result<Vec<_>>>()
            })?)
        })
        .await
    }

    async fn claim(
        &self,
        queue: &str,
        worker: &str,
        n: usize,
        visibility: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        refuse_on_writer_thread()?;
        let (q, w) = (queue.to_string(), worker.to_string());
        let (reply, rx) = tokio::sync::oneshot::channel();
        let writer = self.writer()?.clone();
        let back = writer.clone();
        writer.write_then(
            move |c| Ok(honker_core::claim_batch(c, &q, &w, n, visibility)?),
            move |result: Result<Vec<ClaimedJob>>| {
                if let Err(Ok(jobs)) = reply.send(result) {
                    give_back(&back, jobs);
                }
            },
        );
        let mut pending = PendingClaim {
            rx: Some(rx),
            writer: writer.clone(),
        };
        let rx = pending.rx.as_mut().ok_or(Error::WriterStopped)?;
        let out = rx.await.map_err(|_| Error::WriterStopped)?;
        pending.rx = None;
        out
    }

    async fn ack_in(&self, queue: &str, worker: &str, leases: Vec<Lease>) -> Result<Vec<i64>> {
        let (w, q) = (worker.to_string(), queue.to_string());
        self.write(move |c| {
            let ours: Vec<Lease> = leases
                .into_iter()
                .filter(|l| in_queue(c, &q, l.id).unwrap_or(false))
                .collect();
            Ok(honker_core::ack_batch(c, &w, &ours)?)
        })
        .await
    }

    async fn retry_in(
        &self,
        queue: &str,
        worker: &str,
        lease: Lease,
        delay: Duration,
        error: String,
    ) -> Result<RetryOutcome> {
        let (w, q) = (worker.to_string(), queue.to_string());
        self.write(move |c| {
            if !in_queue(c, &q, lease.id)? {
                return Ok(RetryOutcome::Lost);
            }
            Ok(honker_core::retry(c, &w, lease, delay, &error)?)
        })
        .await
    }

    async fn fail_in(
        &self,
        queue: &str,
        worker: &str,
        lease: Lease,
        error: String,
    ) -> Result<bool> {
        let (w, q) = (worker.to_string(), queue.to_string());
        self.write(move |c| {
            Ok(in_queue(c, &q, lease.id)? && honker_core::fail(c, &w, lease, &error)?)
        })
        .await
    }

    async fn heartbeat_in(
        &self,
        queue: &str,
        worker: &str,
        lease: Lease,
        extend: Duration,
    ) -> Result<Option<i64>> {
        let (w, q) = (worker.to_string(), queue.to_string());
        self.write(move |c| {
            if !in_queue(c, &q, lease.id)? {
                return Ok(None);
            }
            Ok(honker_core::heartbeat(c, &w, lease, extend)?)
        })
        .await
    }

    async fn cancel_in(&self, queue: &str, id: i64) -> Result<bool> {
        let q = queue.to_string();
        self.write(move |c| Ok(honker_core::cancel_in(c, &q, id)?))
            .await
    }

    async fn job_in(&self, queue: &str, id: i64) -> Result<Option<JobRow>> {
        let q = queue.to_string();
        self.look(move |c| Ok(honker_core::get_job_in(c, &q, id)?))
            .await
    }

    async fn list_jobs(
        &self,
        queue: &str,
        state: LiveState,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<JobRow>> {
        let q = queue.to_string();
        self.look(move |c| Ok(honker_core::list_jobs(c, &q, state, limit, offset)?))
            .await
    }

    async fn find_jobs(
        &self,
        queue: &str,
        state: LiveState,
        text: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<JobRow>> {
        let (q, t) = (queue.to_string(), text.to_string());
        self.look(move |c| {
            Ok(honker_core::find_jobs(
                c,
                &q,
                state,
                Some(&t),
                limit,
                offset,
            )?)
        })
        .await
    }

    async fn queue_stats(&self, queue: &str) -> Result<QueueStats> {
        let q = queue.to_string();
        self.look(move |c| Ok(honker_core::queue_stats(c, &q)?))
            .await
    }

    async fn stats(&self) -> Result<Vec<QueueStats>> {
        self.look(|c| Ok(honker_core::stats(c)?)).await
    }

    async fn dead_in(&self, queue: &str, limit: usize, offset: usize) -> Result<Vec<DeadJob>> {
        let q = queue.to_string();
        self.look(move |c| Ok(honker_core::list_dead(c, &q, limit, offset)?))
            .await
    }

    async fn list_dead_where(
        &self,
        filter: DeadFilter,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<DeadJob>> {
        self.look(move |c| Ok(honker_core::list_dead_where(c, &filter, limit, offset)?))
            .await
    }

    async fn requeue_dead_in(&self, queue: &str, id: i64) -> Result<bool> {
        let q = queue.to_string();
        self.write(move |c| Ok(honker_core::requeue_dead_in(c, &q, id)?))
            .await
    }

    async fn requeue_dead_where(&self, filter: DeadFilter) -> Result<usize> {
        self.write(move |c| Ok(honker_core::requeue_dead_where(c, &filter)?))
            .await
    }

    async fn purge_dead_in(&self, queue: &str, id: i64) -> Result<bool> {
        let q = queue.to_string();
        self.write(move |c| Ok(honker_core::purge_dead_in(c, &q, id)?))
            .await
    }

    async fn purge_dead_where(&self, filter: DeadFilter) -> Result<usize> {
        self.write(move |c| Ok(honker_core::purge_dead_where(c, &filter)?))
            .await
    }

    async fn sweep_expired(&self, queue: &str) -> Result<usize> {
        let q = queue.to_string();
        self.write(move |c| Ok(honker_core::sweep_expired(c, Some(&q))?))
            .await
    }

    async fn result_or_fate(&self, id: i64) -> Result<(Option<String>, Option<JobFate>)> {
        self.read(move |c| {
            if let Some(raw) = honker_core::get_result(c, id)? {
                return Ok((Some(raw), None));
            }
            let fate = honker_core::job_fate(c, id)?;
            // The ack and the result commit together: a job gone
            // from the tables may have saved its result meanwhile.
            let raw = match fate {
                JobFate::Gone => honker_core::get_result(c, id)?,
                _ => None,
            };
            Ok((raw, Some(fate)))
        })
        .await
    }

    async fn waiting_payloads(&self, queue: &str) -> Result<Vec<String>> {
        let q = queue.to_string();
        self.read(move |c| Ok(honker_core::waiting_payloads(c, &q)?))
            .await
    }

    async fn claim_outlook(&self, queue: &str) -> Result<(bool, Option<i64>)> {
        let q = queue.to_string();
        self.read(move |c| {
            Ok((
                honker_core::has_claimable(c, &q)?,
                honker_core::next_claim_at(c, &q)?,
            ))
        })
        .await
    }

    async fn fired_for(&self, id: i64) -> Result<Option<(String, i64)>> {
        self.look(move |c| Ok(honker_core::fired_for(c, id)?)).await
    }
}

#[async_trait]
impl ControlStore for SqliteStore {
    async fn queue_controls(&self, queue: &str) -> Result<QueueControls> {
        let q = queue.to_string();
        self.read(move |c| Ok(honker_core::queue_controls(c, &q)?))
            .await
    }

    async fn pause_queue(&self, queue: &str) -> Result<bool> {
        let q = queue.to_string();
        self.write(move |c| Ok(honker_core::pause_queue(c, &q)?))
            .await
    }

    async fn resume_queue(&self, queue: &str) -> Result<bool> {
        let q = queue.to_string();
        self.write(move |c| Ok(honker_core::resume_queue(c, &q)?))
            .await
    }

    async fn set_max_running(&self, queue: &str, n: Option<u32>) -> Result<()> {
        let q = queue.to_string();
        self.write(move |c| Ok(honker_core::set_max_running(c, &q, n)?))
            .await
    }

    async fn set_rate_limit(&self, queue: &str, rate: Option<RateLimit>) -> Result<()> {
        let q = queue.to_string();
        self.write(move |c| Ok(honker_core::set_rate_limit(c, &q, rate)?))
            .await
    }
}

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn register_schedules(&self, specs: Vec<ScheduleSpec>) -> Result<()> {
        self.write(move |c| {
            for s in &specs {
                honker_core::register_schedule(c, s)?;
            }
            Ok(())
        })
        .await
    }

    async fn remove_schedule(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.write(move |c| Ok(honker_core::remove_schedule(c, &name)?))
            .await
    }

    async fn set_schedule_enabled(&self, name: &str, enabled: bool) -> Result<bool> {
        let name = name.to_string();
        self.write(move |c| Ok(honker_core::set_schedule_enabled(c, &name, enabled)?))
            .await
    }

    async fn run_schedule_now(&self, name: &str) -> Result<Option<i64>> {
        let name = name.to_string();
        self.write(move |c| Ok(honker_core::run_schedule_now(c, &name)?))
            .await
    }

    async fn get_schedule(&self, name: &str) -> Result<Option<ScheduleRow>> {
        let name = name.to_string();
        self.look(move |c| Ok(honker_core::get_schedule(c, &name)?))
            .await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRow>> {
        self.look(|c| Ok(honker_core::list_schedules(c)?)).await
    }

    async fn schedule_due(&self) -> Result<bool> {
        self.read(|c| {
            let now = honker_core::now(c)?;
            Ok(honker_core::next_fire_at(c)?.is_some_and(|t| t <= now))
        })
        .await
    }

    async fn fire_due(&self) -> Result<Vec<Fired>> {
        self.write(|c| {
            let now = honker_core::now(c)?;
            Ok(honker_core::fire_due(c, now)?)
        })
        .await
    }
}

#[async_trait]
impl LockStore for SqliteStore {
    async fn try_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let (n, o) = (name.to_string(), owner.to_string());
        self.write(move |c| Ok(honker_core::try_lock(c, &n, &o, ttl)?))
            .await
    }

    async fn renew_lock(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let (n, o) = (name.to_string(), owner.to_string());
        self.write(move |c| Ok(honker_core::renew_lock(c, &n, &o, ttl)?))
            .await
    }

    async fn unlock(&self, name: &str, owner: &str) -> Result<bool> {
        let (n, o) = (name.to_string(), owner.to_string());
        self.write(move |c| Ok(honker_core::unlock(c, &n, &o)?))
            .await
    }
}

#[async_trait]
impl InspectStore for SqliteStore {
    async fn now(&self) -> Result<i64> {
        self.look(|c| Ok(honker_core::now(c)?)).await
    }

    async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        self.look(move |c| Ok(honker_core::get_job(c, id)?)).await
    }

    async fn dead_job(&self, id: i64) -> Result<Option<DeadJob>> {
        self.look(move |c| Ok(honker_core::get_dead(c, id)?)).await
    }

    async fn result(&self, id: i64) -> Result<Option<String>> {
        self.look(move |c| Ok(honker_core::get_result(c, id)?))
            .await
    }

    async fn row_totals(&self) -> Result<RowTotals> {
        self.look(|c| Ok(honker_core::row_totals(c)?)).await
    }

    async fn running_ids(&self, limit: usize) -> Result<Vec<i64>> {
        self.look(move |c| Ok(honker_core::running_ids(c, limit)?))
            .await
    }

    async fn health(&self, sample: usize) -> Result<Health> {
        self.look(move |c| Ok(honker_core::health(c, sample)?))
            .await
    }

    async fn schema_objects(&self) -> Result<Vec<SchemaObject>> {
        self.look(|c| Ok(honker_core::schema_objects(c)?)).await
    }
}

/// A claim's reply not yet taken. Dropped before it is taken (the caller
/// stopped waiting), it gives back whatever the claim returned; a claim
/// that returns after the drop is given back by the writer side.
struct PendingClaim {
    rx: Option<tokio::sync::oneshot::Receiver<Result<Vec<ClaimedJob>>>>,
    writer: Writer,
}

impl Drop for PendingClaim {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if let Ok(Ok(jobs)) = rx.try_recv() {
                give_back(&self.writer, jobs);
            }
        }
    }
}

/// Release claims whose caller stopped waiting for them.
fn give_back(writer: &Writer, jobs: Vec<ClaimedJob>) {
    let Some(first) = jobs.first() else {
        return;
    };
    let worker = first.worker_id.clone();
    let leases: Vec<Lease> = jobs.iter().map(ClaimedJob::lease).collect();
    writer.write_then(
        move |c| Ok(honker_core::release(c, &worker, &leases)?),
        |released: Result<usize>| {
            if let Err(e) = released {
                tracing::warn!(error = %e,
                    "could not give back claims nobody waited for; they run again once they lapse");
            }
        },
    );
}
