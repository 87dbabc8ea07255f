//! Wake-ups inside one process: who to tell when something may be claimable.

use std::sync::Arc;

use crate::listeners::{Listeners, Listening};

/// Why a listener is woken.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wake<'a> {
    /// This process committed an enqueue to the queue.
    Enqueued(&'a str),
    /// Something committed (another connection, another process, or a
    /// transaction of ours whose queues we do not know).
    Commit,
}

/// The listeners of one `Honker`.
#[derive(Default)]
pub(crate) struct WakeHub {
    listeners: Listeners<dyn Fn(&Wake<'_>) + Send + Sync>,
}

/// Unregisters its listener when dropped.
pub(crate) type WakeGuard = Listening;

impl WakeHub {
    pub(crate) fn fire(&self, wake: &Wake<'_>) {
        for l in self.listeners.snapshot() {
            l(wake);
        }
    }

    pub(crate) fn listen(&self, f: impl Fn(&Wake<'_>) + Send + Sync + 'static) -> WakeGuard {
        self.listeners.listen(Arc::new(f))
    }
}
