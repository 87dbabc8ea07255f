//! Enqueueing in the application's own PostgreSQL transaction: jobs
//! commit or roll back with the service's own writes.
//!
//! `name::enqueue_tx(&mut tx, args).await` takes the service's own sqlx
//! transaction (or connection) and writes to the default schema
//! (`honker`); [`PgStore::in_tx`] names the store's own schema when it is
//! another. The enqueue notifies the schema's channel, which PostgreSQL
//! delivers at the commit: the pools wake then, not before.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use honker_core::Enqueued;
use honker_postgres::sqlx::{PgConnection, Postgres, Transaction};
use honker_postgres::Statements;

use super::{PgError, PgStore};
use crate::store::{BatchJob, EnqueueTx, StoreError};
use crate::{Error, Result};

/// A future an enqueue in a PostgreSQL transaction answers.
pub type Answer<'t, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 't>>;

/// The statements of the default schema, for transactions that name no
/// store.
static DEFAULT: LazyLock<Statements> = LazyLock::new(|| {
    Statements::new(super::DEFAULT_SCHEMA).unwrap_or_else(|_| unreachable!("a valid name"))
});

/// The application's own transaction (or connection) with the schema its
/// jobs go to: what [`PgStore::in_tx`] makes.
pub struct PgTx<'t> {
    conn: &'t mut PgConnection,
    st: Arc<Statements>,
}

impl PgStore {
    /// The application's own transaction `conn` (a `&mut
    /// sqlx::Transaction` derefs to it), enqueueing into this store's
    /// schema: for a store opened with a schema other than the default.
    pub fn in_tx<'t>(&self, conn: &'t mut PgConnection) -> PgTx<'t> {
        PgTx {
            conn,
            st: self.ctx().st.clone(),
        }
    }
}

fn enqueue_in<'t, T: Send + 'static>(
    conn: &'t mut PgConnection,
    st: impl std::ops::Deref<Target = Statements> + Send + 't,
    job: Result<BatchJob>,
    then: impl FnOnce(Enqueued) -> T + Send + 'static,
) -> Answer<'t, T> {
    Box::pin(async move {
        let job = job?;
        let done = honker_postgres::enqueue(conn, &st, &job.queue, &job.payload, &job.opts)
            .await
            .map_err(|e| match e {
                honker_postgres::Error::Format(f) => Error::from(f),
                e => Error::Store(StoreError::new(
                    super::kind_of(&e),
                    PgError {
                        url: Arc::from("the application's transaction"),
                        source: e,
                    },
                )),
            })?;
        Ok(then(done))
    })
}

/// The application's own connection or transaction, into the default
/// schema.
impl<'t> EnqueueTx for &'t mut PgConnection {
    type Answer<T: Send + 'static> = Answer<'t, T>;

    fn enqueue_then<T: Send + 'static>(
        self,
        job: Result<BatchJob>,
        then: impl FnOnce(Enqueued) -> T + Send + 'static,
    ) -> Answer<'t, T> {
        enqueue_in(self, &*DEFAULT, job, then)
    }
}

/// The application's own sqlx transaction, into the default schema.
impl<'t> EnqueueTx for &'t mut Transaction<'_, Postgres> {
    type Answer<T: Send + 'static> = Answer<'t, T>;

    fn enqueue_then<T: Send + 'static>(
        self,
        job: Result<BatchJob>,
        then: impl FnOnce(Enqueued) -> T + Send + 'static,
    ) -> Answer<'t, T> {
        enqueue_in(self, &*DEFAULT, job, then)
    }
}

/// The application's own transaction, into the store's schema.
impl<'t> EnqueueTx for PgTx<'t> {
    type Answer<T: Send + 'static> = Answer<'t, T>;

    fn enqueue_then<T: Send + 'static>(
        self,
        job: Result<BatchJob>,
        then: impl FnOnce(Enqueued) -> T + Send + 'static,
    ) -> Answer<'t, T> {
        enqueue_in(self.conn, self.st, job, then)
    }
}
