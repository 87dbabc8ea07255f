//! A web dashboard for a honker job file: an axum [`Router`] to mount in
//! your own service, also served by `honker web DB`.
//!
//! Server-rendered HTML, readable without JavaScript; a few lines of script
//! refresh the page in place over server-sent events, driven by the commit
//! watcher, so a newly enqueued job appears without a reload. Pages: queues
//! (counts, throughput over the last minutes, pause and resume), jobs by
//! queue and state with paging, a job's detail (payload, attempts, error,
//! times, result), dead jobs (retry or delete, one or all), running jobs
//! with their elapsed time, and schedules (pause, resume, run now). Every
//! action goes through honker's admin API and is logged with `tracing`.
//!
//! Reads go through the runtime's store boundary, as an operator's looks:
//! on SQLite a reader connection of the store's own, on a blocking thread,
//! so looking never waits for, or holds up, your service's writer.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let dir = tempfile::tempdir().unwrap();
//! let honker = honker_actors::Honker::open(dir.path().join("app.db")).unwrap();
//! let app: axum::Router = axum::Router::new()
//!     .nest_service("/honker", honker_web::router(honker));
//! # drop(app);
//! # }
//! ```
//!
//! # Behind your authentication
//!
//! The router is a plain `Router`: wrap it in the tower layer your service
//! already checks users with. For example, a bearer token:
//!
//! ```
//! use axum::{extract::Request, http::StatusCode, middleware::{self, Next}, response::Response};
//!
//! async fn operators_only(req: Request, next: Next) -> Result<Response, StatusCode> {
//!     let token = req.headers().get("authorization").and_then(|v| v.to_str().ok());
//!     if token == Some("Bearer s3cret") {
//!         Ok(next.run(req).await)
//!     } else {
//!         Err(StatusCode::UNAUTHORIZED)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! # let dir = tempfile::tempdir().unwrap();
//! let honker = honker_actors::Honker::open(dir.path().join("app.db")).unwrap();
//! let dashboard = honker_web::router(honker).layer(middleware::from_fn(operators_only));
//! let app: axum::Router = axum::Router::new().nest_service("/honker", dashboard);
//! # drop(app);
//! # }
//! ```
//!
//! Actions are `POST` forms; the dashboard refuses a `POST` sent from
//! another site (by its `Origin` and `Sec-Fetch-Site` headers), so a page
//! elsewhere cannot make an operator's browser act.

mod actions;
mod html;
mod live;
mod pages;
mod search;

use std::path::Path;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use honker_actors::sqlite::SqliteStore;
use honker_actors::Honker;

/// Why the dashboard could not start or answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the store (the file is missing, not a database, not a honker
    /// file, ...) or the runtime's admin API.
    #[error(transparent)]
    Actors(#[from] honker_actors::Error),
}

/// The dashboard over one honker file: build with [`Dashboard::new`] (with
/// actions) or [`Dashboard::open_read_only`], then take its
/// [`router`](Dashboard::router).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// # let dir = tempfile::tempdir().unwrap();
/// let honker = honker_actors::Honker::open(dir.path().join("app.db")).unwrap();
/// let router: axum::Router = honker_web::Dashboard::new(honker).read_only(true).router();
/// # drop(router);
/// # }
/// ```
#[derive(Clone)]
pub struct Dashboard {
    honker: Honker,
    read_only: bool,
    live: live::Live,
    hosts: Vec<String>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("path", &self.honker.path())
            .field("read_only", &self.read_only)
            .finish()
    }
}

pub(crate) struct State {
    /// Looks, and acts unless `read_only`, through this.
    pub(crate) honker: Honker,
    pub(crate) read_only: bool,
    pub(crate) live: live::Live,
}

impl Dashboard {
    /// The dashboard of `honker`'s file, with actions.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let honker = honker_actors::Honker::open(dir.path().join("app.db")).unwrap();
    /// let dashboard = honker_web::Dashboard::new(honker);
    /// # drop(dashboard);
    /// ```
    pub fn new(honker: Honker) -> Dashboard {
        let live = live::Live::new();
        live.follow_commits(&honker);
        Dashboard {
            honker,
            read_only: false,
            live,
            hosts: Vec::new(),
        }
    }

    /// A dashboard that only looks: the file is opened read-only (never
    /// created, never written, nothing left beside it) and actions are
    /// refused. Fails when `path` is not an existing honker file.
    ///
    /// ```
    /// let err = honker_web::Dashboard::open_read_only("/no/such/app.db").unwrap_err();
    /// assert!(err.to_string().contains("/no/such/app.db"));
    /// ```
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Dashboard, Error> {
        let store = SqliteStore::open_read_only(path, live::WATCH_EVERY)?;
        let honker = Honker::with_store(Arc::new(store));
        let live = live::Live::new();
        live.follow_commits(&honker);
        Ok(Dashboard {
            honker,
            read_only: true,
            live,
            hosts: Vec::new(),
        })
    }

    /// Show, never act: no buttons, and every action is refused (403).
    /// A dashboard opened with [`Dashboard::open_read_only`] stays
    /// read-only.
    pub fn read_only(mut self, yes: bool) -> Dashboard {
        self.read_only = yes || self.honker.sqlite().is_some_and(SqliteStore::is_read_only);
        self
    }

    /// Answer only requests whose `Host` header is one of `hosts`
    /// (`"localhost:8080"`, ...; compared without case); others get 421.
    /// A dashboard served on its own, with no login in front, needs this
    /// against DNS rebinding: a page on another domain that resolves to
    /// 127.0.0.1 would otherwise be same-site with it. `honker web` sets it.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("app.db");
    /// # honker_actors::core::open(&path).unwrap();
    /// let d = honker_web::Dashboard::open_read_only(&path).unwrap()
    ///     .allow_hosts(["localhost:8080", "127.0.0.1:8080"]);
    /// # drop(d);
    /// ```
    pub fn allow_hosts<S: Into<String>>(mut self, hosts: impl IntoIterator<Item = S>) -> Self {
        self.hosts = hosts
            .into_iter()
            .map(|h| h.into().to_ascii_lowercase())
            .collect();
        self
    }

    /// The routes, to mount where you like (`Router::nest`); links follow
    /// the mount point.
    pub fn router(self) -> Router {
        let hosts = Arc::new(self.hosts);
        let router = Router::new()
            .route("/", get(pages::overview))
            .route("/queues/{queue}", get(pages::queue_jobs))
            .route("/jobs/{id}", get(pages::job))
            .route("/dead", get(pages::dead))
            .route("/running", get(pages::running))
            .route("/schedules", get(pages::schedules))
            .route("/events", get(live::events))
            .route("/queues/{queue}/{action}", post(actions::queue))
            .route("/dead/{id}/{action}", post(actions::dead_one))
            .route("/dead-all/{action}", post(actions::dead_all))
            .route("/dead-selected/{action}", post(actions::dead_selected))
            .route("/jobs/{id}/cancel", post(actions::cancel))
            .route("/schedules/{name}/{action}", post(actions::schedule))
            .with_state(Arc::new(State {
                honker: self.honker,
                read_only: self.read_only,
                live: self.live,
            }));
        if hosts.is_empty() {
            router
        } else {
            router.layer(axum::middleware::from_fn_with_state(hosts, only_hosts))
        }
    }
}

/// Refuse a request whose `Host` is not one of `hosts`.
async fn only_hosts(
    axum::extract::State(hosts): axum::extract::State<Arc<Vec<String>>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    // Exactly one Host header (two are a malformed request).
    let mut all = req.headers().get_all(axum::http::header::HOST).iter();
    let host = match (all.next(), all.next()) {
        (Some(h), None) => h.to_str().ok().map(str::to_ascii_lowercase),
        _ => None,
    };
    match host {
        Some(h) if hosts.contains(&h) => next.run(req).await,
        _ => {
            tracing::warn!(host = ?host, "dashboard request for another host refused");
            (
                axum::http::StatusCode::MISDIRECTED_REQUEST,
                "this dashboard does not answer for that host name",
            )
                .into_response()
        }
    }
}

/// [`Dashboard::new`]`(honker).`[`router`](Dashboard::router)`()`: the
/// dashboard with actions, to mount in your service.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let honker = honker_actors::Honker::open(dir.path().join("app.db")).unwrap();
/// let app: axum::Router = axum::Router::new().nest_service("/honker", honker_web::router(honker));
/// # drop(app);
/// ```
pub fn router(honker: Honker) -> Router {
    Dashboard::new(honker).router()
}
