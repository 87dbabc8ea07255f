//! The actions (`POST` forms): each goes through honker's admin API, is
//! logged, and redirects back to the page it came from with what it did.

use std::sync::Arc;

use axum::extract::{Path, Query, RawForm, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use honker_actors::Honker;
use serde::Deserialize;

use crate::html::{url, Base};
use crate::State as Shared;

type St = State<Arc<Shared>>;

/// Every action form carries the page to go back to.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Back {
    back: Option<String>,
}

/// A queue scope for the bulk dead-job actions.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Scope {
    queue: Option<String>,
    /// A search: only the dead jobs whose payload contains it.
    q: Option<String>,
}

/// Whether a `POST` came from the dashboard's own pages: a browser names
/// the site that sent it, and another site's page must not act.
fn same_site(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site"))
        && site != "same-origin"
        && site != "none"
    {
        return false;
    }
    match text(header::ORIGIN) {
        Some(origin) => {
            let host = text(header::HOST);
            let origin_host = origin.split_once("://").map(|(_, h)| h);
            origin_host.is_some() && origin_host == host
        }
        None => true,
    }
}

/// Why an action is refused.
type Refused = (StatusCode, &'static str);

/// The handle an action acts through; extracting it refuses (403) an
/// action sent from another site or to a read-only dashboard.
pub(crate) struct Acting(Honker);

impl axum::extract::FromRequestParts<Arc<Shared>> for Acting {
    type Rejection = Refused;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        s: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        actor(s, &parts.headers).map(|h| Acting(h.clone()))
    }
}

/// The acting handle, or the refusal.
fn actor<'a>(s: &'a Shared, headers: &HeaderMap) -> Result<&'a Honker, Refused> {
    if !same_site(headers) {
        tracing::warn!("dashboard action refused: sent from another site");
        return Err((
            StatusCode::FORBIDDEN,
            "refused: this action came from another site",
        ));
    }
    match s.read_only {
        false => Ok(&s.honker),
        true => Err((
            StatusCode::FORBIDDEN,
            "refused: this dashboard is read-only",
        )),
    }
}

/// Back to `back` (a path within the dashboard) with `msg` shown.
fn done(base: &str, back: Option<&str>, msg: &str) -> Response {
    // A path within the dashboard, in plain URL characters only: no
    // scheme, no `//host`, no whitespace or control bytes a browser
    // would strip to find one.
    let safe = |b: &&str| {
        let lower = b.to_ascii_lowercase();
        b.starts_with('/')
            && !b.starts_with("//")
            // No `..` segment (nor its encoding): a dashboard mounted under
            // a prefix would be left for another page of the site.
            && !lower.contains("/..")
            && !lower.contains("%2e")
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"/-_.~?=&%+".contains(&c))
    };
    let back = back.filter(safe).unwrap_or("/");
    let sep = if back.contains('?') { '&' } else { '?' };
    let to = crate::html::href(base, &format!("{back}{sep}msg={}", url(msg)));
    Redirect::to(&to).into_response()
}

fn failed(base: &str, back: Option<&str>, what: &str, e: &dyn std::fmt::Display) -> Response {
    tracing::warn!(action = what, error = %e, "dashboard action failed");
    done(base, back, &format!("{what} failed: {e}"))
}

/// `POST /queues/{queue}/pause|resume`.
pub(crate) async fn queue(
    Base(base): Base,
    Acting(h): Acting,
    Path((queue, action)): Path<(String, String)>,
    Form(f): Form<Back>,
) -> Response {
    let q = h.queue(&queue);
    let r = match action.as_str() {
        "pause" => q.pause().await,
        "resume" => q.resume().await,
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match r {
        Ok(changed) => {
            tracing::info!(queue = %queue, action = %action, changed, "dashboard: queue {action}");
            let word = if action == "pause" {
                "paused"
            } else {
                "resumed"
            };
            done(&base, f.back.as_deref(), &format!("Queue {queue} {word}."))
        }
        Err(e) => failed(&base, f.back.as_deref(), &format!("{action} {queue}"), &e),
    }
}

/// `POST /dead/{id}/retry|delete`.
pub(crate) async fn dead_one(
    State(s): St,
    Base(base): Base,
    Acting(h): Acting,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<Back>,
) -> Response {
    let back = f.back.as_deref();
    let queue = match s.honker.store().dead_job(id).await {
        Ok(Some(d)) => d.queue,
        Ok(None) => return done(&base, back, &format!("Job {id} is not dead; nothing done.")),
        Err(e) => return failed(&base, back, &format!("{action} job {id}"), &e),
    };
    let q = h.queue(&queue);
    let (r, word) = match action.as_str() {
        "retry" => (q.requeue_dead(id).await, "requeued"),
        "delete" => (q.purge_dead(id).await, "deleted"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match r {
        Ok(true) => {
            tracing::info!(job = id, queue = %queue, action = %action, "dashboard: dead job {word}");
            done(&base, back, &format!("Job {id} {word}."))
        }
        Ok(false) => done(
            &base,
            back,
            &format!("Job {id} is no longer dead; nothing done."),
        ),
        Err(e) => failed(&base, back, &format!("{action} job {id}"), &e),
    }
}

/// `POST /dead-all/retry|delete[?queue=Q][&q=TEXT]`: every dead job (of
/// the queue, matching the search).
pub(crate) async fn dead_all(
    Base(base): Base,
    Acting(h): Acting,
    Path(action): Path<String>,
    Query(scope): Query<Scope>,
    Form(f): Form<Back>,
) -> Response {
    let queue = scope.queue.filter(|q| !q.is_empty());
    let search = crate::search::text(scope.q.as_deref());
    let filter = crate::search::dead_jobs(queue.as_deref(), search);
    let (r, word) = match action.as_str() {
        "retry" => (h.requeue_dead_where(filter).await, "requeued"),
        "delete" => (h.purge_dead_where(filter).await, "deleted"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let back = f.back.as_deref();
    match r {
        Ok(n) => {
            tracing::info!(queue = ?queue, action = %action, count = n, "dashboard: every dead job {word}");
            done(&base, back, &format!("{n} dead job(s) {word}."))
        }
        Err(e) => failed(&base, back, &format!("{action} all"), &e),
    }
}

/// `POST /dead-selected/retry|delete` with `id=..` for each selected dead
/// job (the dead tables' checkboxes).
pub(crate) async fn dead_selected(
    State(s): St,
    Base(base): Base,
    Acting(h): Acting,
    Path(action): Path<String>,
    RawForm(body): RawForm,
) -> Response {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let back = fields
        .iter()
        .find(|(k, _)| k == "back")
        .map(|(_, v)| v.as_str());
    let word = match action.as_str() {
        "retry" => "requeued",
        "delete" => "deleted",
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let ids: Vec<i64> = fields
        .iter()
        .filter(|(k, _)| k == "id")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    if ids.is_empty() {
        return done(&base, back, "No job selected; nothing done.");
    }
    let (mut acted, mut not_dead) = (Vec::new(), Vec::new());
    for id in ids {
        let queue = match s.honker.store().dead_job(id).await {
            Ok(Some(d)) => d.queue,
            Ok(None) => {
                not_dead.push(id);
                continue;
            }
            Err(e) => return failed(&base, back, &format!("{action} job {id}"), &e),
        };
        let q = h.queue(&queue);
        let r = match action.as_str() {
            "retry" => q.requeue_dead(id).await,
            _ => q.purge_dead(id).await,
        };
        match r {
            Ok(true) => acted.push(id),
            Ok(false) => not_dead.push(id),
            Err(e) => return failed(&base, back, &format!("{action} job {id}"), &e),
        }
    }
    tracing::info!(action = %action, jobs = ?acted, "dashboard: selected dead jobs {word}");
    let list = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let mut msg = format!("{} dead job(s) {word}", acted.len());
    if !acted.is_empty() {
        msg.push_str(&format!(": {}", list(&acted)));
    }
    msg.push('.');
    if !not_dead.is_empty() {
        msg.push_str(&format!(" Not dead (nothing done): {}.", list(&not_dead)));
    }
    done(&base, back, &msg)
}

/// `POST /jobs/{id}/cancel`.
pub(crate) async fn cancel(
    State(s): St,
    Base(base): Base,
    Acting(h): Acting,
    Path(id): Path<i64>,
    Form(f): Form<Back>,
) -> Response {
    let back = f.back.as_deref();
    let queue = match s.honker.store().job(id).await {
        Ok(Some(j)) => j.queue,
        Ok(None) => return done(&base, back, &format!("Job {id} is not pending or running.")),
        Err(e) => return failed(&base, back, &format!("cancel job {id}"), &e),
    };
    match h.queue(&queue).cancel(id).await {
        Ok(true) => {
            tracing::info!(job = id, queue = %queue, "dashboard: job cancelled");
            done(&base, back, &format!("Job {id} cancelled."))
        }
        Ok(false) => done(&base, back, &format!("Job {id} had already finished.")),
        Err(e) => failed(&base, back, &format!("cancel job {id}"), &e),
    }
}

/// `POST /schedules/{name}/pause|resume|run-now`.
pub(crate) async fn schedule(
    Base(base): Base,
    Acting(h): Acting,
    Path((name, action)): Path<(String, String)>,
    Form(f): Form<Back>,
) -> Response {
    let back = f.back.as_deref();
    let schedules = h.schedules();
    match schedules.get(&name).await {
        Ok(Some(_)) => {}
        Ok(None) => return done(&base, back, &format!("No schedule {name}; nothing done.")),
        Err(e) => return failed(&base, back, &format!("{action} {name}"), &e),
    }
    let msg = match action.as_str() {
        "pause" => schedules
            .pause(&name)
            .await
            .map(|_| format!("Schedule {name} paused.")),
        "resume" => schedules
            .resume(&name)
            .await
            .map(|_| format!("Schedule {name} resumed.")),
        "run-now" => schedules.run_now(&name).await.map(|id| match id {
            Some(id) => format!("Schedule {name} enqueued job {id}."),
            None => format!("No schedule {name}."),
        }),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match msg {
        Ok(m) => {
            tracing::info!(schedule = %name, action = %action, "dashboard: schedule {action}");
            done(&base, back, &m)
        }
        Err(e) => failed(&base, back, &format!("{action} {name}"), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_from_other_sites_are_told_apart() {
        let mut h = HeaderMap::new();
        assert!(same_site(&h), "a non-browser client");
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_site(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_site(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_site(&h));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_site(&h));
    }
}
