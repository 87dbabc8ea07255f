//! The claim book: every claim a pool holds, from the claim to the outcome.
//! Each claim gets a run id of its own; its [`Fence`] (the lease, job id
//! and attempt, and the worker string its claim wrote) is what it writes
//! with.
//!
//! Pure bookkeeping, no actors and no SQL, so every rule is unit-tested:
//! - a claim is *ready* (prefetched) or *running*; both count against the
//!   pool's room and their queue's limit, and both are heartbeated;
//! - cycles in flight *reserve* the room they may claim, so two cycles
//!   never claim the same room twice;
//! - a finish names its run: the finish of an earlier attempt never
//!   touches a later attempt of the same job, and a finish of a run the
//!   book does not hold is dropped and counted;
//! - no two claims share a fence: a job cancelled, requeued with fresh
//!   attempts and claimed again has the same id and attempt number, but
//!   another cycle's worker string, so neither the old run's outcome nor
//!   its heartbeat can touch the new claim (the heartbeat finds the old
//!   one lost);
//! - ready jobs wait in priority order, first in, first out within one;
//! - a ready job whose `expires_at` passed is given back, never started;
//! - a job of a rate-limited queue waits ahead of the buffer (it was
//!   claimed for a worker free then), and starts only within the window
//!   its claim was counted in: after it, it is given back, never started;
//! - a run whose claim was lost writes nothing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use honker_core::ClaimedJob;

use crate::context::JobSignals;
use crate::heartbeat::SharedLeases;
use crate::messages::RunId;
use crate::store::{ClaimPlan, Fence};

/// A claim and the queue of its job.
pub(crate) type FenceIn = (Fence, &'static str);

/// A claimed job waiting for a worker.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) job: ClaimedJob,
    pub(crate) queue: &'static str,
    /// The registered job that runs it.
    pub(crate) job_name: &'static str,
    pub(crate) run: RunId,
    pub(crate) fence: Fence,
    /// Its queue's rate limit counted it in a window ending then (unix
    /// seconds): it must start before.
    pub(crate) start_before: Option<i64>,
}

/// A job a worker runs.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) fence: Fence,
    pub(crate) start_before: Option<i64>,
    pub(crate) queue: &'static str,
    pub(crate) job_name: &'static str,
    pub(crate) signals: Arc<JobSignals>,
    /// The heartbeat found the claim lost: the outcome is not written.
    pub(crate) lost: bool,
}

/// What the book holds for one pool.
pub(crate) struct ClaimBook {
    concurrency: usize,
    limits: HashMap<&'static str, usize>,
    ready: VecDeque<Ready>,
    running: HashMap<RunId, Running>,
    next_run: u64,
    /// Ready plus running, per queue.
    per_queue: HashMap<&'static str, usize>,
    reserved: usize,
    reserved_per_queue: HashMap<&'static str, usize>,
    held: SharedLeases,
    /// Finishes of runs the book did not hold, dropped.
    stale: u64,
}

/// Why a ready job was not started.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NotStarted {
    /// Its `expires_at` passed while it waited.
    Expired,
    /// The rate-limit window its claim was counted in ended.
    WindowOver,
}

impl ClaimBook {
    pub(crate) fn new(
        concurrency: usize,
        limits: HashMap<&'static str, usize>,
        held: SharedLeases,
    ) -> Self {
        ClaimBook {
            concurrency,
            limits,
            ready: VecDeque::new(),
            running: HashMap::new(),
            next_run: 0,
            per_queue: HashMap::new(),
            reserved: 0,
            reserved_per_queue: HashMap::new(),
            held,
            stale: 0,
        }
    }

    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    pub(crate) fn running_len(&self) -> usize {
        self.running.len()
    }

    /// Finishes dropped because the book did not hold their run.
    pub(crate) fn stale(&self) -> u64 {
        self.stale
    }

    /// Claims held, ready or running, of `queue`.
    pub(crate) fn held_in(&self, queue: &str) -> usize {
        self.per_queue.get(queue).copied().unwrap_or(0)
    }

    /// How many more jobs the pool may claim: the workers plus a prefetch
    /// buffer of `buffer`, minus what it holds and what cycles reserved.
    pub(crate) fn room(&self, buffer: usize) -> usize {
        self.concurrency
            .saturating_add(buffer)
            .saturating_sub(self.ready.len() + self.running.len() + self.reserved)
    }

    /// Workers that no claim held or reserved will occupy.
    pub(crate) fn free(&self) -> usize {
        self.concurrency
            .saturating_sub(self.ready.len() + self.running.len() + self.reserved)
    }

    /// Plan a claim of up to `budget` jobs over `queues` (in that order),
    /// each within its limit and within `cap` (the most it may hold, ready,
    /// running and reserved), and reserve it until [`Self::unreserve`].
    pub(crate) fn plan(
        &mut self,
        budget: usize,
        queues: &[&'static str],
        cap: impl Fn(&'static str) -> usize,
    ) -> ClaimPlan {
        let mut plan = ClaimPlan {
            budget,
            queues: Vec::new(),
            // Workers no claim held or reserved will occupy: a queue
            // limited across processes is claimed only for these.
            free: self.free(),
        };
        if budget == 0 {
            return plan;
        }
        for q in queues {
            let used = self.held_in(q) + self.reserved_per_queue.get(q).copied().unwrap_or(0);
            let limit = self.limits.get(q).copied().unwrap_or(usize::MAX);
            let room = budget
                .min(limit.saturating_sub(used))
                .min(cap(q).saturating_sub(used));
            if room > 0 {
                plan.queues.push((q, room));
            }
        }
        if plan.queues.is_empty() {
            plan.budget = 0;
        }
        self.reserved += plan.budget;
        for (q, room) in &plan.queues {
            *self.reserved_per_queue.entry(q).or_default() += room;
        }
        plan
    }

    /// The cycle that carried `plan` came back: free its reservation.
    pub(crate) fn unreserve(&mut self, plan: &ClaimPlan) {
        self.reserved = self.reserved.saturating_sub(plan.budget);
        for (q, room) in &plan.queues {
            if let Some(r) = self.reserved_per_queue.get_mut(q) {
                *r = r.saturating_sub(*room);
            }
        }
    }

    /// A cycle claimed `job` from `queue`, to be run by the registered job
    /// `job_name`: it waits for a worker.
    #[cfg(test)]
    pub(crate) fn claimed(&mut self, job: ClaimedJob, queue: &'static str, job_name: &'static str) {
        let fence = Fence::of(&job);
        self.claimed_until(job, fence, queue, job_name, None);
    }

    /// A cycle claimed `job` (under `fence`) from `queue`, to be run by the
    /// registered job `job_name`: it waits for a worker. With `start_before`
    /// (its queue's rate limit counted it in a window that ends at that
    /// unix second), it waits ahead of the buffer and must start before.
    pub(crate) fn claimed_until(
        &mut self,
        job: ClaimedJob,
        fence: Fence,
        queue: &'static str,
        job_name: &'static str,
        start_before: Option<i64>,
    ) {
        self.lock_held().insert(fence.clone());
        *self.per_queue.entry(queue).or_default() += 1;
        self.next_run += 1;
        let run = RunId(self.next_run);
        // Claims come in claim order, so this is nearly always the back;
        // a job of higher priority claimed later goes ahead of the lower
        // ones waiting (first in, first out within a priority). Jobs with
        // a rate window first, first in, first out.
        let at = if start_before.is_some() {
            self.ready.partition_point(|r| r.start_before.is_some())
        } else {
            self.ready
                .partition_point(|r| r.start_before.is_some() || r.job.priority >= job.priority)
        };
        self.ready.insert(
            at,
            Ready {
                job,
                queue,
                job_name,
                run,
                fence,
                start_before,
            },
        );
    }

    /// The next ready job to start, at unix second `now`. Jobs that
    /// expired while they waited are taken out and returned in `gone`
    /// (their claims must be given back).
    pub(crate) fn next_ready(
        &mut self,
        now: i64,
        gone: &mut Vec<(Ready, NotStarted)>,
    ) -> Option<Ready> {
        self.next_ready_if(now, gone, |_| true)
    }

    /// [`Self::next_ready`], only when the next job satisfies `wanted`
    /// (else it stays first).
    pub(crate) fn next_ready_if(
        &mut self,
        now: i64,
        gone: &mut Vec<(Ready, NotStarted)>,
        wanted: impl Fn(&Ready) -> bool,
    ) -> Option<Ready> {
        while let Some(r) = self.ready.front() {
            let why = if r.job.expires_at.is_some_and(|e| e <= now) {
                Some(NotStarted::Expired)
            } else if r.start_before.is_some_and(|e| e <= now) {
                Some(NotStarted::WindowOver)
            } else {
                None
            };
            if let Some(why) = why {
                let r = self.ready.pop_front()?;
                self.forget(&r.fence, r.queue);
                gone.push((r, why));
                continue;
            }
            if !wanted(r) {
                return None;
            }
            return self.ready.pop_front();
        }
        None
    }

    /// Put a job taken by [`Self::next_ready`] back at the front (no
    /// worker could take it).
    pub(crate) fn unready(&mut self, r: Ready) {
        self.ready.push_front(r);
    }

    /// A worker starts the job; it runs under `signals`.
    pub(crate) fn start(&mut self, r: &Ready, signals: Arc<JobSignals>) {
        self.running.insert(
            r.run,
            Running {
                fence: r.fence.clone(),
                start_before: r.start_before,
                queue: r.queue,
                job_name: r.job_name,
                signals,
                lost: false,
            },
        );
    }

    /// A worker hands `run` back unstarted (it waited behind a slow job of
    /// its batch): it waits in the buffer again, ahead of the jobs of its
    /// priority, its claim kept. Returns its queue and job name; `None` when
    /// the book does not hold the run. A run whose claim was lost meanwhile
    /// is dropped, as a lost ready job is (its queue and job name are returned
    /// all the same).
    pub(crate) fn unstart(
        &mut self,
        run: RunId,
        job: ClaimedJob,
    ) -> Option<(&'static str, &'static str)> {
        let r = self.running.remove(&run)?;
        if r.lost {
            self.uncount(r.queue);
            return Some((r.queue, r.job_name));
        }
        let at = if r.start_before.is_some() {
            0
        } else {
            self.ready
                .partition_point(|w| w.start_before.is_some() || w.job.priority > job.priority)
        };
        self.ready.insert(
            at,
            Ready {
                job,
                queue: r.queue,
                job_name: r.job_name,
                run,
                fence: r.fence,
                start_before: r.start_before,
            },
        );
        Some((r.queue, r.job_name))
    }

    /// `run` ended: take it out of the book. `None` (counted as stale)
    /// when the book does not hold that run.
    pub(crate) fn finish(&mut self, run: RunId) -> Option<Running> {
        let Some(r) = self.running.remove(&run) else {
            self.stale += 1;
            return None;
        };
        if r.lost {
            // Its fence left the heartbeat when it was lost.
            self.uncount(r.queue);
        } else {
            self.forget(&r.fence, r.queue);
        }
        Some(r)
    }

    /// The heartbeat found these claims lost. Ready jobs are dropped
    /// (returned with their queue); running jobs are told to stop, and
    /// their outcome will not be written (returned in the second list).
    pub(crate) fn lost(&mut self, fences: &[Fence]) -> (Vec<FenceIn>, Vec<FenceIn>) {
        let set: HashSet<&Fence> = fences.iter().collect();
        let mut dropped = Vec::new();
        let mut kept = VecDeque::with_capacity(self.ready.len());
        for r in self.ready.drain(..) {
            if set.contains(&r.fence) {
                dropped.push((r.fence, r.queue));
            } else {
                kept.push_back(r);
            }
        }
        self.ready = kept;
        for (fence, queue) in &dropped {
            self.forget(fence, queue);
        }
        let mut stopped = Vec::new();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for run in self.running.values_mut() {
            if !run.lost && set.contains(&run.fence) {
                run.lost = true;
                run.signals
                    .claim_lost
                    .store(true, std::sync::atomic::Ordering::Release);
                run.signals.stop.raise();
                held.remove(&run.fence);
                stopped.push((run.fence.clone(), run.queue));
            }
        }
        drop(held);
        (dropped, stopped)
    }

    /// Take the ready jobs of `queue` out (its queue was paused: they go
    /// back).
    pub(crate) fn drain_ready_of(&mut self, queue: &str) -> Vec<Ready> {
        let (out, kept): (VecDeque<Ready>, VecDeque<Ready>) =
            self.ready.drain(..).partition(|r| r.queue == queue);
        self.ready = kept;
        for r in &out {
            self.forget(&r.fence, r.queue);
        }
        out.into()
    }

    /// Take every ready job out (a shutdown gives them back).
    pub(crate) fn drain_ready(&mut self) -> Vec<Ready> {
        let all: Vec<Ready> = self.ready.drain(..).collect();
        for r in &all {
            self.forget(&r.fence, r.queue);
        }
        all
    }

    /// The running jobs.
    pub(crate) fn running(&self) -> impl Iterator<Item = (&RunId, &Running)> {
        self.running.iter()
    }

    fn forget(&mut self, fence: &Fence, queue: &'static str) {
        self.lock_held().remove(fence);
        self.uncount(queue);
    }

    fn uncount(&mut self, queue: &'static str) {
        if let Some(n) = self.per_queue.get_mut(queue) {
            *n = n.saturating_sub(1);
        }
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashSet<Fence>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests;
