//! The supervisor's timers: a wake-up at the next due time (a `run_at`, a
//! claim's expiry, an `expires_at`), and the back-off after a failed cycle
//! or check. Each fires a callback (the supervisor sends itself a
//! message); dropping or stopping them cancels what is pending.

use std::time::Duration;

use crate::doubling::DoublingDelay;
use tokio::task::JoinHandle;

use crate::clock::until_due;

/// The first back-off after a failure.
const MIN_RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// The longest back-off, however many failures in a row.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

/// The due-time wake-up and the retry back-off of one pool.
pub(super) struct Timers {
    /// The pending wake-up and its time (unix seconds).
    due: Option<(i64, JoinHandle<()>)>,
    /// The pending end of a back-off.
    retry: Option<JoinHandle<()>>,
    backoff: DoublingDelay,
}

impl Timers {
    pub(super) fn new() -> Timers {
        Timers {
            due: None,
            retry: None,
            backoff: DoublingDelay::new(MIN_RETRY_BACKOFF, MAX_RETRY_BACKOFF),
        }
    }

    /// Call `fire` at unix second `at` (a few milliseconds past it, so the
    /// store's clock reads `at`), unless a wake-up at or before `at` is
    /// still pending: one wake-up, the earliest, is kept. `false` when
    /// the pending one stays.
    pub(super) fn wake_at(&mut self, at: i64, fire: impl FnOnce() + Send + 'static) -> bool {
        if let Some((current, handle)) = &self.due {
            if *current <= at && !handle.is_finished() {
                return false;
            }
            handle.abort();
        }
        let delay = until_due(at);
        let handle = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            fire();
        });
        self.due = Some((at, handle));
        true
    }

    /// When the pending wake-up fires, if one is pending.
    #[cfg(test)]
    pub(super) fn due_at(&self) -> Option<i64> {
        self.due
            .as_ref()
            .filter(|(_, h)| !h.is_finished())
            .map(|(at, _)| *at)
    }

    /// After a failure: call `fire` once the next pause (doubling from
    /// 50 ms up to 5 s) is over, unless a back-off is under way. The pause
    /// taken, or `None` when one was under way.
    pub(super) fn retry_later(&mut self, fire: impl FnOnce() + Send + 'static) -> Option<Duration> {
        if self.retry.is_some() {
            return None;
        }
        let delay = self.backoff.take();
        self.retry = Some(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            fire();
        }));
        Some(delay)
    }

    /// Whether a back-off is under way (nothing should start meanwhile).
    pub(super) fn backing_off(&self) -> bool {
        self.retry.is_some()
    }

    /// The back-off ended (its callback fired).
    pub(super) fn back_off_over(&mut self) {
        self.retry = None;
    }

    /// A cycle or check succeeded: the next failure waits the least.
    pub(super) fn succeeded(&mut self) {
        self.backoff.reset();
    }

    /// Cancel the pending wake-up (a stopping pool claims nothing more);
    /// a back-off goes on.
    pub(super) fn cancel_wake_up(&mut self) {
        if let Some((_, t)) = self.due.take() {
            t.abort();
        }
    }

    /// Cancel the pending wake-up and back-off; nothing fires.
    pub(super) fn stop(&mut self) {
        self.cancel_wake_up();
        if let Some(t) = self.retry.take() {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::clock::unix_now;

    fn counter() -> (Arc<AtomicUsize>, impl Fn() -> Box<dyn FnOnce() + Send>) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        let make = move || -> Box<dyn FnOnce() + Send> {
            let m = m.clone();
            Box::new(move || {
                m.fetch_add(1, Ordering::SeqCst);
            })
        };
        (n, make)
    }

    #[tokio::test]
    async fn the_earliest_wake_up_is_kept_and_a_due_one_fires_once() {
        let (fired, fire) = counter();
        let mut t = Timers::new();
        let later = unix_now() + 3600;
        assert!(t.wake_at(later, fire()));
        assert!(!t.wake_at(later + 1, fire()), "a later time leaves it");
        assert!(!t.wake_at(later, fire()), "so does the same time");
        assert_eq!(t.due_at(), Some(later));
        assert!(t.wake_at(later - 60, fire()), "an earlier time replaces it");
        assert_eq!(t.due_at(), Some(later - 60));
        // A time already past fires within milliseconds, once.
        assert!(t.wake_at(0, fire()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            fired.load(Ordering::SeqCst),
            1,
            "only the replacing one fired"
        );
        assert_eq!(t.due_at(), None, "fired: nothing pending");
        assert!(
            t.wake_at(later, fire()),
            "after it fired, a later time is set"
        );
        t.retry_later(fire());
        t.cancel_wake_up();
        assert_eq!(t.due_at(), None);
        assert!(t.backing_off(), "a back-off outlives the wake-up");
        t.stop();
        assert!(!t.backing_off());
        assert_eq!(t.due_at(), None);
    }

    #[tokio::test]
    async fn the_back_off_doubles_to_five_seconds_and_starts_over_after_a_success() {
        let (fired, fire) = counter();
        let mut t = Timers::new();
        let mut pauses = Vec::new();
        for _ in 0..9 {
            pauses.push(t.retry_later(fire()).unwrap().as_millis());
            assert!(t.backing_off());
            assert_eq!(t.retry_later(fire()), None, "one back-off at a time");
            t.stop();
            t.back_off_over();
        }
        assert_eq!(pauses, [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        t.succeeded();
        assert_eq!(t.retry_later(fire()), Some(MIN_RETRY_BACKOFF));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            fired.load(Ordering::SeqCst),
            1,
            "the last one fired; stopped ones did not"
        );
        assert!(t.backing_off(), "until the supervisor hears of it");
        t.back_off_over();
        assert!(!t.backing_off());
    }
}
