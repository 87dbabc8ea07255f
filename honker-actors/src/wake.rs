//! Wake-ups inside one process: who to tell when something may be claimable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Why a listener is woken.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wake<'a> {
    /// This process committed an enqueue to the queue.
    Enqueued(&'a str),
    /// Something committed (another connection, another process, or a
    /// transaction of ours whose queues we do not know).
    Commit,
}

type Listener = Arc<dyn Fn(&Wake<'_>) + Send + Sync>;

#[derive(Default)]
pub(crate) struct WakeHub {
    listeners: Mutex<Vec<(u64, Listener)>>,
    next_id: AtomicU64,
}

impl WakeHub {
    pub(crate) fn fire(&self, wake: &Wake<'_>) {
        let listeners: Vec<Listener> = self
            .listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(_, l)| l.clone())
            .collect();
        for l in listeners {
            l(wake);
        }
    }

    pub(crate) fn listen(
        self: &Arc<Self>,
        f: impl Fn(&Wake<'_>) + Send + Sync + 'static,
    ) -> WakeGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, Arc::new(f)));
        WakeGuard {
            hub: Arc::downgrade(self),
            id,
        }
    }
}

/// Unregisters its listener when dropped.
pub(crate) struct WakeGuard {
    hub: Weak<WakeHub>,
    id: u64,
}

impl Drop for WakeGuard {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.listeners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(id, _)| *id != self.id);
        }
    }
}
