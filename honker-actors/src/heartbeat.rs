//! The heartbeat actor: extends the claims of all of a pool's running jobs
//! before they lapse (one transaction for all of them), looks after each
//! commit whether a held claim is gone (a job cancelled by any process),
//! and tells the supervisor which claims were lost and why.
//!
//! It runs beside the workers, so a long job never blocks its own
//! heartbeat.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use honker_core::ClaimGone;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::messages::{HeartbeatMsg, SupervisorMsg};
use crate::store::{ClaimsSeen, Fence};
use crate::Honker;

pub(crate) struct Heartbeat;

/// The claims the heartbeat extends: every claim held and not lost.
pub(crate) type SharedLeases = Arc<Mutex<HashSet<Fence>>>;

/// The least time between two checks: commits can come thousands of
/// times a second, a check reads every held claim.
const CHECK_SPACING: Duration = Duration::from_millis(5);

pub(crate) struct HeartbeatArgs {
    pub(crate) honker: Honker,
    pub(crate) visibility: Duration,
    pub(crate) leases: SharedLeases,
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
    /// Set by the supervisor when it asks for a check; cleared here as the
    /// check starts (one waits in the mailbox at most).
    pub(crate) check_wanted: Arc<AtomicBool>,
}

pub(crate) struct HeartbeatState {
    args: HeartbeatArgs,
    timer: tokio::task::JoinHandle<()>,
}

/// Beat three times per visibility timeout, so two beats can be late or
/// fail before a claim lapses.
pub(crate) fn beat_interval(visibility: Duration) -> Duration {
    (visibility / 3).max(Duration::from_millis(50))
}

impl Actor for Heartbeat {
    type Msg = HeartbeatMsg;
    type State = HeartbeatState;
    type Arguments = HeartbeatArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: HeartbeatArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let timer = myself.send_interval(beat_interval(args.visibility), || HeartbeatMsg::Beat);
        Ok(HeartbeatState { args, timer })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.timer.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HeartbeatMsg::Beat => beat(&state.args).await,
            HeartbeatMsg::Check => check(&state.args).await,
        }
        Ok(())
    }
}

fn held(a: &HeartbeatArgs) -> Vec<Fence> {
    a.leases
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// Extend every held claim; tell the supervisor which were lost, and why.
async fn beat(a: &HeartbeatArgs) {
    let leases = held(a);
    if leases.is_empty() {
        return;
    }
    let lost = a.honker.store().extend_claims(leases, a.visibility).await;
    report(a, lost);
}

/// Look whether a held claim is gone, and which queues are paused (a
/// read), at most once per [`CHECK_SPACING`]: a cancel is heard, and a
/// pause stops the start of jobs claimed before it, within milliseconds.
async fn check(a: &HeartbeatArgs) {
    a.check_wanted.store(false, Ordering::Release);
    let leases = held(a);
    if !leases.is_empty() {
        match a.honker.store().look_at_claims(leases).await {
            Ok(ClaimsSeen { gone, paused }) => {
                report(a, Ok(gone));
                if !paused.is_empty() {
                    let _ = a.supervisor.cast(SupervisorMsg::Paused(paused));
                }
            }
            Err(e) => report(a, Err(e)),
        }
    }
    tokio::time::sleep(CHECK_SPACING).await;
}

fn report(a: &HeartbeatArgs, gone: crate::Result<Vec<(Fence, ClaimGone)>>) {
    match gone {
        // The supervisor checks each against what it still holds.
        Ok(gone) if !gone.is_empty() => {
            let _ = a.supervisor.cast(SupervisorMsg::ClaimsLost(gone));
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "checking the pool's claims failed; will try again"),
    }
}
