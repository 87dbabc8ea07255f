//! The scheduler actor: fires the file's schedules while it leads.
//!
//! Leadership is the named lock `honker-scheduler` (held 15 s unrenewed
//! by a pool, 60 s by the Python package's scheduler), so among every
//! scheduler on the file (pools of any process, Python's `Scheduler`)
//! exactly one fires at a time. The
//! leader renews the lock every third of its TTL and stands down when a
//! renewal fails; a follower tries to take it at every tick, so a new
//! leader takes over within the TTL of a leader that died. Boundaries are
//! fired by [`honker_core::fire_due`]: advanced from exactly the value
//! read, in the transaction that enqueues, so even two leaders could not
//! fire one boundary twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::Honker;

/// The lock every honker scheduler elects itself with.
pub const SCHEDULER_LOCK: &str = "honker-scheduler";

/// How long a pool's hold on the scheduler lock lasts unrenewed (renewed
/// every third of it): a follower takes over within this of a leader's
/// death, before the boundaries it missed are older than
/// [`MISFIRE_AFTER`](honker_core::MISFIRE_AFTER) (30 s), so with the
/// defaults no boundary is lost. The Python package's scheduler holds the
/// same lock for 60 s; the TTL is each holder's own.
pub const DEFAULT_SCHEDULER_LOCK_TTL: Duration = Duration::from_secs(15);

/// How often the actor looks (boundaries are whole seconds).
const TICK: Duration = Duration::from_millis(250);

pub(crate) struct Periodic;

pub(crate) enum PeriodicMsg {
    Tick,
}

pub(crate) struct PeriodicArgs {
    pub(crate) honker: Honker,
    pub(crate) owner: Arc<str>,
    pub(crate) lock_ttl: Duration,
}

pub(crate) struct PeriodicState {
    args: PeriodicArgs,
    leading: bool,
    renewed: Instant,
    timer: tokio::task::JoinHandle<()>,
}

impl Actor for Periodic {
    type Msg = PeriodicMsg;
    type State = PeriodicState;
    type Arguments = PeriodicArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: PeriodicArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let timer = myself.send_interval(TICK, || PeriodicMsg::Tick);
        Ok(PeriodicState {
            args,
            leading: false,
            renewed: Instant::now(),
            timer,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.timer.abort();
        if state.leading {
            let released = state
                .args
                .honker
                .store()
                .unlock(SCHEDULER_LOCK, &state.args.owner)
                .await;
            if let Err(e) = released {
                tracing::warn!(error = %e, "could not release the scheduler lock; it runs out by its ttl");
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        PeriodicMsg::Tick: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.tick().await;
        Ok(())
    }
}

impl PeriodicState {
    async fn tick(&mut self) {
        let (owner, ttl) = (&*self.args.owner, self.args.lock_ttl);
        let store = self.args.honker.store();
        if !self.leading {
            match store.try_lock(SCHEDULER_LOCK, owner, ttl).await {
                Ok(true) => {
                    tracing::info!(owner = %self.args.owner, "this pool now fires the file's schedules");
                    self.leading = true;
                    self.renewed = Instant::now();
                }
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "trying to lead the schedules failed");
                    return;
                }
            }
        } else if self.renewed.elapsed() >= ttl / 3 {
            let renewed = store.renew_lock(SCHEDULER_LOCK, owner, ttl).await;
            match renewed {
                Ok(true) => self.renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!("the scheduler lock was lost; standing down");
                    self.leading = false;
                    return;
                }
                // Keep leading while the lock's time lasts.
                Err(e) if self.renewed.elapsed() < ttl => {
                    tracing::warn!(error = %e, "renewing the scheduler lock failed; will try again")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the scheduler lock ran out unrenewed; standing down");
                    self.leading = false;
                    return;
                }
            }
        }
        // A read first: most ticks find nothing due and take no write lock.
        let due = store.schedule_due().await;
        if !matches!(due, Ok(true)) {
            if let Err(e) = due {
                tracing::warn!(error = %e, "reading the next schedule boundary failed");
            }
            return;
        }
        let fired = store.fire_due().await;
        match fired {
            Ok(fired) if !fired.is_empty() => {
                for f in &fired {
                    tracing::info!(schedule = %f.schedule, boundary = f.boundary, job_id = f.job_id, "schedule fired");
                }
                self.args.honker.notify_commit();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "firing schedules failed; will try again"),
        }
    }
}
