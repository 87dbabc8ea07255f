//! Wake-ups on PostgreSQL: `LISTEN` on the schema's channel, on a
//! connection of the listener's own.
//!
//! Every write that makes work due notifies the channel, and PostgreSQL
//! delivers one notification per committing transaction. When the
//! connection goes away (the server restarted, the network dropped),
//! notifications sent meanwhile are lost: the listener connects again
//! (waiting longer each time it fails, up to a few seconds), listens,
//! and then calls once as if a commit had come, so the pool looks for
//! the work it may have missed. It calls so after its first `LISTEN`
//! too: a commit between a caller's last look and that `LISTEN` would
//! otherwise go unheard. A pool's own timers (the next due time
//! it read) are the fallback for anything else.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use honker_postgres::sqlx::postgres::PgListener;

use super::{Ctx, PgStore};
use crate::store::{CommitSource, CommitWatch};
use crate::Result;

/// A running `LISTEN`; dropping it stops it.
struct Listening {
    task: tokio::task::JoinHandle<()>,
    error: Arc<Mutex<Option<String>>>,
}

impl CommitWatch for Listening {
    fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CommitSource for PgStore {
    fn watch_commits(
        &self,
        on_commit: Box<dyn Fn() + Send + Sync>,
    ) -> Result<Box<dyn CommitWatch>> {
        let error = Arc::new(Mutex::new(None));
        let ctx = self.ctx().clone();
        let task = self.handle().spawn(listen(ctx, on_commit, error.clone()));
        Ok(Box::new(Listening { task, error }))
    }
}

/// The shortest and longest waits before connecting again.
const RECONNECT_FIRST: Duration = Duration::from_millis(50);
const RECONNECT_MOST: Duration = Duration::from_secs(5);

async fn listen(
    ctx: Ctx,
    on_commit: Box<dyn Fn() + Send + Sync>,
    error: Arc<Mutex<Option<String>>>,
) {
    let set_error = |e: Option<String>| {
        *error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    };
    let mut wait = RECONNECT_FIRST;
    let mut first = true;
    loop {
        let listener = async {
            let mut l = PgListener::connect_with(&ctx.pool).await?;
            l.listen(ctx.st.channel()).await?;
            Ok::<_, honker_postgres::sqlx::Error>(l)
        }
        .await;
        let mut listener = match listener {
            Ok(l) => l,
            Err(e) => {
                let e = ctx.err(e.into());
                tracing::warn!(error = %e, retry_in = ?wait, "could not listen for commits");
                set_error(Some(e.to_string()));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RECONNECT_MOST);
                continue;
            }
        };
        if !first {
            tracing::info!(url = %ctx.url, "listening for commits again");
        }
        set_error(None);
        wait = RECONNECT_FIRST;
        // Whatever committed while nobody listened: before the first
        // LISTEN too, since whoever asked for the watch may have looked
        // just before a commit this connection was not yet there to hear.
        on_commit();
        first = false;
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => on_commit(),
                Ok(None) => break,
                Err(e) => {
                    let e = ctx.err(e.into());
                    tracing::warn!(error = %e, "lost the connection that listens for commits");
                    set_error(Some(e.to_string()));
                    break;
                }
            }
        }
        // The connection went away: connect a new listener (the old one
        // would reconnect, but not tell when).
        drop(listener);
    }
}
