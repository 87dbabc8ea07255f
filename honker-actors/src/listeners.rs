//! [`Listeners`]: callbacks registered until their [`Listening`] guard is
//! dropped, called outside the registry's lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// A registry of callbacks of type `F` (a `dyn Fn(..)`). Cheap to clone;
/// clones share the registry.
pub(crate) struct Listeners<F: ?Sized> {
    inner: Arc<Registry<F>>,
}

struct Registry<F: ?Sized> {
    list: Mutex<Vec<(u64, Arc<F>)>>,
    next_id: AtomicU64,
}

impl<F: ?Sized> Default for Listeners<F> {
    fn default() -> Self {
        Listeners {
            inner: Arc::new(Registry {
                list: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }
}

impl<F: ?Sized> Clone for Listeners<F> {
    fn clone(&self) -> Self {
        Listeners {
            inner: self.inner.clone(),
        }
    }
}

impl<F: ?Sized + Send + Sync + 'static> Listeners<F> {
    /// Register `f` until the returned guard is dropped.
    pub fn listen(&self, f: Arc<F>) -> Listening {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.list).push((id, f));
        let registry: Weak<dyn Unregister> = Arc::downgrade(&self.inner) as Weak<dyn Unregister>;
        Listening { registry, id }
    }

    /// The callbacks registered now, to call outside the lock (a callback
    /// may drop a guard).
    pub fn snapshot(&self) -> Vec<Arc<F>> {
        lock(&self.inner.list)
            .iter()
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// How many callbacks are registered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.inner.list).len()
    }

    /// Whether none is.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

trait Unregister: Send + Sync {
    fn unregister(&self, id: u64);
}

impl<F: ?Sized + Send + Sync> Unregister for Registry<F> {
    fn unregister(&self, id: u64) {
        lock(&self.list).retain(|(i, _)| *i != id);
    }
}

/// Keeps a callback registered (as [`Honker::on_commit`](crate::Honker::on_commit)
/// returns it); dropping it unregisters the callback.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::{atomic::{AtomicUsize, Ordering}, Arc};
/// # let dir = tempfile::tempdir().unwrap();
/// let honker = honker_actors::Honker::open(dir.path().join("a.db")).unwrap();
/// let seen = Arc::new(AtomicUsize::new(0));
/// let counter = seen.clone();
/// let listening = honker.on_commit(move || { counter.fetch_add(1, Ordering::Relaxed); });
/// drop(listening);
/// honker.queue("q").enqueue(&1, Default::default()).await.unwrap();
/// assert_eq!(seen.load(Ordering::Relaxed), 0, "no calls after the drop");
/// # }
/// ```
pub struct Listening {
    registry: Weak<dyn Unregister>,
    id: u64,
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening").field("id", &self.id).finish()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(r) = self.registry.upgrade() {
            r.unregister(self.id);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Cb = dyn Fn() -> u32 + Send + Sync;

    fn calls(l: &Listeners<Cb>) -> Vec<u32> {
        l.snapshot().iter().map(|f| f()).collect()
    }

    #[test]
    fn a_guard_keeps_its_own_callback_registered_until_dropped() {
        let l: Listeners<Cb> = Listeners::default();
        assert!(l.is_empty());
        let one = l.listen(Arc::new(|| 1));
        let two = l.listen(Arc::new(|| 2));
        let shared = l.clone();
        assert_eq!((l.len(), shared.len(), l.is_empty()), (2, 2, false));
        assert_eq!(calls(&shared), [1, 2], "a clone is the same registry");
        assert!(format!("{one:?}").starts_with("Listening"));
        drop(one);
        assert_eq!(
            calls(&l),
            [2],
            "dropping one guard removes its callback only"
        );
        drop(two);
        assert!(l.is_empty());
    }

    #[test]
    fn a_guard_outliving_its_registry_drops_quietly() {
        let l: Listeners<Cb> = Listeners::default();
        let guard = l.listen(Arc::new(|| 1));
        drop(l);
        drop(guard);
    }
}
