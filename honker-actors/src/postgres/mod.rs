//! The PostgreSQL store (feature `postgres`): the same jobs, pools,
//! controls, schedules and locks as on SQLite, in a schema of their own
//! on a PostgreSQL server, for services that outgrow one machine.
//!
//! - `ops`: the store traits, each operation one transaction of
//!   `honker-postgres`'s functions on a pooled connection;
//! - `cycle`: one cycle of a pool (outcomes, claims, sweeps, next times)
//!   in one transaction;
//! - `listen`: wake-ups by `LISTEN`/`NOTIFY` on a connection of its own,
//!   which reconnects after the server goes away and then looks for work
//!   it may have missed.
//!
//! The store runs its database work on a small runtime of its own (two
//! threads), so it serves any caller: a sync `main`, any tokio runtime,
//! the CLI. Every time is the server's clock.
//!
//! A URL's password never leaves the store: errors and logs name the URL
//! with it masked ([`PgStore::url`]).

mod cycle;
mod door;
mod listen;
mod ops;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use honker_postgres::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use honker_postgres::sqlx::PgPool;
use honker_postgres::Statements;

pub use door::{Answer, PgTx};
pub use honker_postgres::DEFAULT_SCHEMA;

use crate::store::{StoreError, StoreErrorKind};
use crate::{Error, Result};

/// Whether `target` names a PostgreSQL server (`postgres://` or
/// `postgresql://`), not a file.
///
/// ```
/// use honker_actors::postgres::is_postgres_url;
/// assert!(is_postgres_url("postgres://u@localhost/app"));
/// assert!(is_postgres_url("postgresql://localhost/app"));
/// assert!(!is_postgres_url("app.db"));
/// ```
pub fn is_postgres_url(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// `url` with its password masked, as errors and logs write it.
///
/// ```
/// use honker_actors::postgres::redact_url;
/// assert_eq!(redact_url("postgres://app:s3cret@db:5432/jobs"), "postgres://app:***@db:5432/jobs");
/// assert_eq!(redact_url("postgres://db/jobs?password=s3cret&x=1"), "postgres://db/jobs?password=***&x=1");
/// assert_eq!(redact_url("postgres://db/jobs"), "postgres://db/jobs");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let mut out = url[..scheme_end].to_string();
    // The user info ends at the last `@`: a password may hold `/`, `?`,
    // `#` or `@` unencoded (then the URL does not parse, and is shown in
    // the error that says so). Masking too much is harmless; too little
    // is not.
    let after = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
            &rest[at + 1..]
        }
        None => rest,
    };
    // A password given as a query parameter.
    match after.find('?') {
        Some(q) => {
            out.push_str(&after[..=q]);
            let params: Vec<String> = after[q + 1..]
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(after),
    }
    out
}

/// `url` without its `honker_schema` query parameter, and that
/// parameter's value: the schema a URL names for the store (so that a
/// URL alone, as the `honker` command takes it, can name any schema).
///
/// ```
/// use honker_actors::postgres::split_schema;
/// assert_eq!(split_schema("postgres://h/db?honker_schema=jobs&sslmode=disable"),
///     ("postgres://h/db?sslmode=disable".to_string(), Some("jobs".to_string())));
/// assert_eq!(split_schema("postgres://h/db"), ("postgres://h/db".to_string(), None));
/// ```
pub fn split_schema(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut schema = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| match p.split_once('=') {
            Some(("honker_schema", v)) => {
                schema = Some(v.to_string());
                false
            }
            _ => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, schema)
}

/// A pooled connection idle this long is pinged before it is used.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_millis(200);

/// How a [`PgStore`] opens.
///
/// ```
/// let o = honker_actors::postgres::PgOptions::default();
/// assert_eq!(o.schema, "honker");
/// ```
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// The schema the tables live in (made and migrated at open).
    pub schema: String,
    /// The most connections the store holds: its pools' cycles,
    /// heartbeats, enqueues and reads share them, and the listener holds
    /// one of them for as long as something listens.
    pub max_connections: u32,
    /// How long an operation waits for a free connection (or for the
    /// server to accept one) before it fails.
    pub acquire_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: DEFAULT_SCHEMA.to_string(),
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// A failure of the PostgreSQL store, naming its server by URL (the
/// password masked): the cause of a [`StoreError`].
#[derive(Debug, thiserror::Error)]
#[error("{url}: {source}")]
pub struct PgError {
    /// The URL, password masked.
    pub url: Arc<str>,
    /// What failed.
    #[source]
    pub source: honker_postgres::Error,
}

/// What every operation of the store needs: the connection pool, the
/// statements of its schema, and its URL (masked) for errors. Cheap to
/// clone into the tasks of the store's runtime.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) pool: PgPool,
    pub(crate) st: Arc<Statements>,
    pub(crate) url: Arc<str>,
}

impl Ctx {
    /// `e` as the runtime's error: a refusal of input as the format's own
    /// variants, a database failure as a [`StoreError`] of its kind.
    pub(crate) fn err(&self, e: honker_postgres::Error) -> Error {
        match e {
            honker_postgres::Error::Format(f) => Error::from(f),
            e => Error::Store(StoreError::new(
                kind_of(&e),
                PgError {
                    url: self.url.clone(),
                    source: e,
                },
            )),
        }
    }
}

/// The store-neutral kind of a PostgreSQL failure.
fn kind_of(e: &honker_postgres::Error) -> StoreErrorKind {
    use honker_postgres::sqlx::Error as Sqlx;
    match e {
        honker_postgres::Error::Db(Sqlx::Database(d)) => {
            let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                // serialization failure, deadlock, lock not available,
                // the server shutting down or starting, too many clients
                "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300" => {
                    StoreErrorKind::Busy
                }
                "53100" => StoreErrorKind::DiskFull,
                "25006" => StoreErrorKind::ReadOnly,
                "3D000" => StoreErrorKind::NotFound,
                // bad password, no such role, not allowed
                "28P01" | "28000" => StoreErrorKind::Open,
                _ => StoreErrorKind::Other,
            }
        }
        // The connection went away or none was to be had: a server
        // restarting, a network blip. Worth trying again.
        honker_postgres::Error::Db(
            Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::WorkerCrashed | Sqlx::Protocol(_),
        ) => StoreErrorKind::Busy,
        honker_postgres::Error::Db(Sqlx::Tls(_) | Sqlx::Configuration(_)) => StoreErrorKind::Open,
        honker_postgres::Error::SchemaName(_) => StoreErrorKind::Open,
        honker_postgres::Error::TooNew { .. } => StoreErrorKind::NotAStore,
        _ => StoreErrorKind::Other,
    }
}

/// The PostgreSQL store of one schema on one server: a connection pool,
/// the statements of the schema, and the runtime its database work runs
/// on. [`Honker::open`](crate::Honker::open) makes one for a
/// `postgres://` URL.
pub struct PgStore {
    ctx: Ctx,
    rt: StoreRuntime,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.ctx.url)
            .field("schema", &self.ctx.st.schema())
            .finish()
    }
}

/// The store's own runtime: shut down (without waiting) when the store
/// goes, from any context.
struct StoreRuntime(Option<tokio::runtime::Runtime>);

impl StoreRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle(),
            None => unreachable!("the runtime lives as long as the store"),
        }
    }
}

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// Open the store at `url` with the default [`PgOptions`]: connect,
    /// make and migrate the schema. A server that is down, refuses the
    /// login or lacks the database fails here, with an error naming the
    /// URL (password masked).
    pub fn open(url: &str) -> Result<PgStore> {
        Self::open_with(url, PgOptions::default())
    }

    /// [`open`](Self::open) with `options`. A `honker_schema=NAME` query
    /// parameter of `url` names the schema, over `options.schema`.
    pub fn open_with(url: &str, mut options: PgOptions) -> Result<PgStore> {
        let (url, schema) = split_schema(url);
        let url = url.as_str();
        if let Some(schema) = schema {
            options.schema = schema;
        }
        let masked: Arc<str> = redact_url(url).into();
        let st = Statements::new(&options.schema).map_err(|e| open_error(&masked, e))?;
        let connect: PgConnectOptions = url
            .parse()
            .map_err(|e| open_error(&masked, honker_postgres::Error::Db(e)))?;
        // The store's transactions count on read committed (a fresh
        // snapshot per statement, after an advisory lock's wait), whatever
        // the server's or the role's default.
        let connect = connect.options([("default_transaction_isolation", "read committed")]);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("honker-pg")
            .enable_all()
            .build()
            .map_err(|source| Error::Spawn {
                what: "the PostgreSQL store's runtime",
                source,
            })?;
        let rt = StoreRuntime(Some(rt));
        // The pool's own tasks run on the store's runtime, whatever
        // runtime (if any) the caller is on.
        let entered = rt.handle().enter();
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.acquire_timeout)
            // A connection hot from use is handed out as it is (a ping
            // per operation would cost a round trip each); one idle for a
            // while is pinged first, so one the server dropped meanwhile
            // (a restart, a failover, an idle timeout) is replaced, not
            // handed out to fail.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < PING_WHEN_IDLE_FOR {
                        return Ok(true);
                    }
                    Ok(honker_postgres::sqlx::Connection::ping(conn).await.is_ok())
                })
            })
            .connect_lazy_with(connect);
        drop(entered);
        let ctx = Ctx {
            pool,
            st: Arc::new(st),
            url: masked,
        };
        let store = PgStore { ctx, rt };
        store.block_on(|ctx| async move {
            let mut conn = ctx
                .pool
                .acquire()
                .await
                .map_err(|e| open_error(&ctx.url, e.into()))?;
            honker_postgres::migrate(&mut conn, &ctx.st)
                .await
                .map_err(|e| open_error(&ctx.url, e))?;
            Ok(())
        })?;
        Ok(store)
    }

    /// The server's URL, password masked.
    pub fn url(&self) -> &str {
        &self.ctx.url
    }

    /// The schema the tables live in.
    pub fn schema(&self) -> &str {
        self.ctx.st.schema()
    }

    /// Run `f` on the store's runtime and wait for it here (for `open`,
    /// which is sync; never from the store's own threads).
    fn block_on<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let fut = f(self.ctx.clone());
        self.rt.handle().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| Error::WriterStopped)?
    }

    /// Run `f` on the store's runtime; its answer here.
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Ctx) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let fut = f(self.ctx.clone());
        match self.rt.handle().spawn(fut).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => Err(Error::Panicked(crate::sqlite::panic_message(
                &*e.into_panic(),
            ))),
            Err(_) => Err(Error::WriterStopped),
        }
    }

    /// Spawn `fut` on the store's runtime.
    pub(crate) fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.rt.handle().spawn(fut);
    }

    /// A handle on the store's runtime.
    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        self.rt.handle().clone()
    }

    pub(crate) fn ctx(&self) -> &Ctx {
        &self.ctx
    }
}

/// A failure to open: a server that cannot be reached at open is an
/// `Open` failure, not a passing one.
fn open_error(url: &Arc<str>, e: honker_postgres::Error) -> Error {
    let kind = match kind_of(&e) {
        StoreErrorKind::Busy => StoreErrorKind::Open,
        kind => kind,
    };
    Error::Store(StoreError::new(
        kind,
        PgError {
            url: url.clone(),
            source: e,
        },
    ))
}

impl crate::store::Store for PgStore {
    fn file(&self) -> Option<&std::path::Path> {
        None
    }

    fn location(&self) -> String {
        format!("{} (schema {})", self.ctx.url, self.ctx.st.schema())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows_in_the_url_written() {
        for (url, shown) in [
            ("postgres://u:pw@h/db", "postgres://u:***@h/db"),
            (
                "postgresql://u:p%40ss@h:1/db?sslmode=disable",
                "postgresql://u:***@h:1/db?sslmode=disable",
            ),
            (
                "postgres://u@h/db?password=pw",
                "postgres://u@h/db?password=***",
            ),
            ("postgres://u:pw@h", "postgres://u:***@h"),
            (
                "postgres://h/db?PASSWORD=pw&user=u",
                "postgres://h/db?PASSWORD=***&user=u",
            ),
        ] {
            assert_eq!(redact_url(url), shown);
            assert!(!redact_url(url).contains("pw"));
        }
    }

    #[test]
    fn an_unreachable_server_is_a_typed_error_naming_the_url_without_its_password() {
        // Nothing listens on port 1.
        let options = PgOptions {
            acquire_timeout: Duration::from_secs(2),
            ..PgOptions::default()
        };
        let err =
            PgStore::open_with("postgres://app:s3cret@127.0.0.1:1/jobs", options).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("postgres://app:***@127.0.0.1:1/jobs"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!format!("{err:?}").contains("s3cret"));
        match err {
            Error::Store(e) => assert_eq!(e.kind(), StoreErrorKind::Open, "{e}"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_bad_schema_name_is_refused_before_connecting() {
        let options = PgOptions {
            schema: "Bad-Name".into(),
            ..PgOptions::default()
        };
        let err = PgStore::open_with("postgres://u:pw@127.0.0.1:1/db", options).unwrap_err();
        assert!(
            err.to_string().contains("invalid PostgreSQL schema name"),
            "{err}"
        );
        assert!(!err.to_string().contains(":pw@"));
    }
}
