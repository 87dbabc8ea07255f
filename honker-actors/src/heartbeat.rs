//! The heartbeat actor: extends the claims of all of a pool's running jobs
//! before they lapse (one transaction for all of them), and tells the
//! supervisor which claims were lost.
//!
//! It runs beside the workers, so a long job never blocks its own
//! heartbeat.

use std::sync::Arc;
use std::time::Duration;

use honker_core::Lease;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::supervisor::{SharedLeases, SupervisorMsg};
use crate::Honker;

pub(crate) struct Heartbeat;

pub(crate) enum HeartbeatMsg {
    /// Extend every running job's claim now.
    Beat,
}

pub(crate) struct HeartbeatArgs {
    pub(crate) honker: Honker,
    pub(crate) worker_id: Arc<str>,
    pub(crate) visibility: Duration,
    pub(crate) leases: SharedLeases,
    pub(crate) supervisor: ActorRef<SupervisorMsg>,
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
        HeartbeatMsg::Beat: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let a = &state.args;
        let leases: Vec<Lease> = a
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        if leases.is_empty() {
            return Ok(());
        }
        let (worker, extend) = (a.worker_id.clone(), a.visibility);
        // Each lease on its own: two attempts of one job (an earlier one
        // whose claim lapsed) must not pass for each other.
        let lost = a
            .honker
            .writer()
            .write(move |c| {
                let mut lost = Vec::new();
                for l in leases {
                    if honker_core::heartbeat(c, &worker, l, extend)?.is_none() {
                        lost.push(l);
                    }
                }
                Ok(lost)
            })
            .await;
        match lost {
            Ok(lost) => {
                if !lost.is_empty() {
                    // The supervisor checks each against what it still holds.
                    let _ = a.supervisor.cast(SupervisorMsg::ClaimsLost(lost));
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed; will try again"),
        }
        Ok(())
    }
}
