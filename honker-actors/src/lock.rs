//! [`LockGuard`]: a named lock held by this process, renewed while held.

use std::sync::Arc;
use std::time::Duration;

use crate::context::Signal;
use crate::{Honker, Result};

impl Honker {
    /// Take the named lock `name` for `ttl` (whole seconds, at least 1), in
    /// the rows and with the rules of the Python package's `db.lock`: one
    /// holder per name across every process and binding on the file.
    /// `None` when another holder has it. The guard renews it every third
    /// of `ttl` while it lives, says when it was lost ([`LockGuard::lost`]),
    /// and releases it when dropped (or by [`LockGuard::release`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), honker_actors::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// let honker = honker_actors::Honker::open(dir.path().join("a.db"))?;
    /// let Some(guard) = honker.try_lock("nightly-backup", Duration::from_secs(60)).await? else {
    ///     return Ok(()); // another process runs it
    /// };
    /// assert!(honker.try_lock("nightly-backup", Duration::from_secs(60)).await?.is_none());
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<LockGuard>> {
        let owner: Arc<str> = Arc::from(format!(
            "{}:{}:{:016x}",
            crate::pool::hostname(),
            std::process::id(),
            rand::random::<u64>()
        ));
        let held = self.store().try_lock(name, &owner, ttl).await?;
        if !held {
            return Ok(None);
        }
        let lost = Arc::new(Signal::default());
        let name: Arc<str> = Arc::from(name);
        let renewer = tokio::spawn(renew(
            self.clone(),
            name.clone(),
            owner.clone(),
            ttl,
            lost.clone(),
        ));
        Ok(Some(LockGuard {
            honker: self.clone(),
            name,
            owner,
            lost,
            renewer,
            released: false,
        }))
    }
}

/// Renew every third of `ttl`; raise `lost` once the lock is not ours, or
/// once no renewal has succeeded for a whole `ttl`.
async fn renew(honker: Honker, name: Arc<str>, owner: Arc<str>, ttl: Duration, lost: Arc<Signal>) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let renewed = honker.store().renew_lock(&name, &owner, ttl).await;
        match renewed {
            Ok(true) => last_ok = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::warn!(lock = %name, "named lock lost: another holder has it, or it ran out");
                lost.raise();
                return;
            }
            Err(e) => {
                tracing::warn!(lock = %name, error = %e, "renewing a named lock failed; will try again");
                if last_ok.elapsed() >= ttl {
                    tracing::warn!(lock = %name, "named lock not renewed for its whole ttl: counted lost");
                    lost.raise();
                    return;
                }
            }
        }
    }
}

/// A named lock this process holds; see [`Honker::try_lock`].
pub struct LockGuard {
    honker: Honker,
    name: Arc<str>,
    owner: Arc<str>,
    lost: Arc<Signal>,
    renewer: tokio::task::JoinHandle<()>,
    released: bool,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("held", &self.is_held())
            .finish()
    }
}

impl LockGuard {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The owner written in the lock's row (host, pid and a random part).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Whether the lock is still this guard's (as far as the last renewal
    /// knows).
    pub fn is_held(&self) -> bool {
        !self.lost.is_raised()
    }

    /// Resolves when the lock is lost: another holder took it after its
    /// time ran out, or it was deleted, or renewals failed for a whole ttl.
    /// Work that needs the lock should stop then.
    pub async fn lost(&self) {
        self.lost.raised().await;
    }

    /// Release the lock now: `Ok(false)` when it was no longer this
    /// guard's.
    pub async fn release(mut self) -> Result<bool> {
        self.released = true;
        self.renewer.abort();
        self.honker.store().unlock(&self.name, &self.owner).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released {
            return;
        }
        // Best effort: a dropped guard gives the lock back at once when a
        // runtime is there; otherwise its time runs out.
        let (honker, n, o) = (self.honker.clone(), self.name.clone(), self.owner.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let released = honker.store().unlock(&n, &o).await;
                if let Err(e) = released {
                    tracing::warn!(error = %e, "releasing a dropped named lock failed; it runs out by its ttl");
                }
            });
        }
    }
}
