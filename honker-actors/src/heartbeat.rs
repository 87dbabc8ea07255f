//! The heartbeat actor: extends the claims of all of a pool's running jobs
//! before they lapse (one transaction for all of them), and tells the
//! supervisor which claims were lost.
//!
//! It runs beside the workers, so a long job never blocks its own
//! heartbeat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use honker_core::Lease;
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::supervisor::SupervisorMsg;
use crate::Honker;

/// The leases of the pool's running jobs, shared with the supervisor.
pub(crate) type SharedLeases = Arc<Mutex<HashMap<i64, Lease>>>;

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
            .values()
            .copied()
            .collect();
        if leases.is_empty() {
            return Ok(());
        }
        let (worker, extend, sent) = (a.worker_id.clone(), a.visibility, leases.clone());
        let held = a
            .honker
            .writer()
            .write(move |c| Ok(honker_core::heartbeat_batch(c, &worker, &sent, extend)?))
            .await;
        match held {
            Ok(held) => {
                if held.len() < leases.len() {
                    let held: std::collections::HashSet<i64> = held.into_iter().collect();
                    let lost: Vec<Lease> = leases
                        .into_iter()
                        .filter(|l| !held.contains(&l.id))
                        .collect();
                    // The supervisor checks each against what is still running.
                    let _ = a.supervisor.cast(SupervisorMsg::ClaimsLost(lost));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = leases.len(), "heartbeat failed; will try again")
            }
        }
        Ok(())
    }
}
