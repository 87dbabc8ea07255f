//! The pages (`GET`), rendered on the server.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use honker_actors::core::LiveState;
use serde::Deserialize;

use crate::html::{button, esc, page, relative, span, time, url, Base, Nav};
use crate::{Error, State as Shared};

mod detail;
mod tables;

pub(crate) use detail::job;
pub(crate) use tables::Row;
use tables::{job_name_or_dash, job_table, pager, q_param, search_form};

/// Rows a page shows.
const PAGE: usize = 50;

type St = State<Arc<Shared>>;

/// Query parameters pages take.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    state: Option<String>,
    queue: Option<String>,
    page: Option<usize>,
    msg: Option<String>,
    /// Search: jobs whose payload (name or arguments) contains it.
    q: Option<String>,
}

impl Params {
    fn search(&self) -> Option<&str> {
        crate::search::text(self.q.as_deref())
    }
}

pub(super) fn file(s: &Shared) -> String {
    s.honker.store().location()
}

/// A failed read, as a page.
pub(crate) fn failure(base: &str, s: &Shared, e: &Error) -> Response {
    tracing::warn!(error = %e, "dashboard read failed");
    let body = format!(
        "<h1>Cannot read the file</h1><p>{}</p>",
        esc(&e.to_string())
    );
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        page(base, "error", Nav::None, &file(s), None, &body),
    )
        .into_response()
}

pub(super) fn not_found(base: &str, s: &Shared, what: &str) -> Response {
    let body = format!("<h1>Not found</h1><p>{}</p>", esc(what));
    (
        StatusCode::NOT_FOUND,
        page(base, "not found", Nav::None, &file(s), None, &body),
    )
        .into_response()
}

pub(super) fn tag(state: &str) -> String {
    format!("<span class=\"tag {0}\">{0}</span>", esc(state))
}

/// `GET /`: every queue, throughput, schedules in short.
pub(crate) async fn overview(State(s): St, Base(base): Base, Query(p): Query<Params>) -> Response {
    s.live.ensure_sampler(&s.honker);
    let store = s.honker.store();
    let read = async { Ok::<_, Error>((store.now().await?, store.stats().await?)) }.await;
    let (now, queues) = match read {
        Ok(v) => v,
        Err(e) => return failure(&base, &s, &e),
    };
    let mut b = String::from("<h1>Queues</h1>");
    if queues.is_empty() {
        b.push_str("<p class=muted>No queues yet: nothing was ever enqueued in this file.</p>");
    } else {
        b.push_str(
            "<table id=queues><tr><th>Queue</th><th>Pending</th><th>Scheduled</th>\
             <th>Running</th><th>Dead</th><th>Behind</th><th>Next due</th><th>State</th>\
             <th></th></tr>",
        );
        for q in &queues {
            let link = |state: &str, n: i64| {
                format!(
                    "<td class=n data-count=\"{state}\"><a href=\"{}/queues/{}?state={state}\">{n}</a></td>",
                    esc(&base),
                    url(&q.queue)
                )
            };
            let _ = write!(
                b,
                "<tr data-queue=\"{}\"><td><a href=\"{}/queues/{}\">{}</a></td>{}{}{}{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&q.queue),
                esc(&base),
                url(&q.queue),
                esc(&q.queue),
                link("pending", q.pending_due),
                link("scheduled", q.scheduled),
                link("running", q.processing),
                link("dead", q.dead),
                q.oldest_pending_age.map_or("–".into(), span),
                q.next_due_at.map_or("–".into(), |t| relative(t, now)),
                if q.paused { tag("paused") } else { tag("active") },
                if s.read_only || honker_actors::core::validate_queue_name(&q.queue).is_err() {
                    // A name another binding allowed and honker-rs does not
                    // take: it cannot be paused by name.
                    String::new()
                } else if q.paused {
                    button(&base, &format!("/queues/{}/resume", url(&q.queue)), "Resume", "/", "go")
                } else {
                    button(&base, &format!("/queues/{}/pause", url(&q.queue)), "Pause", "/", "")
                },
            );
        }
        b.push_str("</table>");
    }
    let (series, since) = s.live.history(|h| (h.series(now), h.since));
    b.push_str("<h2>Throughput: jobs per minute (all queues)</h2><div class=chart>");
    b.push_str(&crate::live::chart(&series));
    let _ = write!(
        b,
        "<p class=muted>Light: enqueued. Dark: finished (left the file: succeeded, or deleted). \
         Counted since the dashboard started{}.</p></div>",
        since.map_or(String::new(), |t| format!(", {} UTC", time(t)))
    );
    page(
        &base,
        "Queues",
        Nav::Queues,
        &file(&s),
        p.msg.as_deref(),
        &b,
    )
    .into_response()
}

fn state_of(p: &Params) -> &str {
    match p.state.as_deref() {
        Some(s @ ("pending" | "scheduled" | "running" | "dead")) => s,
        _ => "pending",
    }
}

/// `GET /queues/{queue}?state=..&page=..`: a queue's jobs in one state.
pub(crate) async fn queue_jobs(
    State(s): St,
    Base(base): Base,
    Path(queue): Path<String>,
    Query(p): Query<Params>,
) -> Response {
    let state = state_of(&p).to_string();
    let search = p.search();
    let pg = p.page.unwrap_or(0);
    let offset = pg.saturating_mul(PAGE);
    let store = s.honker.store();
    let read = async {
        let now = store.now().await?;
        let stats = store.queue_stats(&queue).await?;
        let rows: Vec<Row> = match state.as_str() {
            "dead" => {
                let f = crate::search::dead_jobs(Some(&queue), search);
                store
                    .list_dead_where(f, PAGE + 1, offset)
                    .await?
                    .into_iter()
                    .map(Row::Dead)
                    .collect()
            }
            other => {
                let ls = match other {
                    "scheduled" => LiveState::Scheduled,
                    "running" => LiveState::Running,
                    _ => LiveState::Pending,
                };
                match search {
                    Some(q) => store.find_jobs(&queue, ls, q, PAGE + 1, offset).await?,
                    None => store.list_jobs(&queue, ls, PAGE + 1, offset).await?,
                }
                .into_iter()
                .map(Row::Live)
                .collect()
            }
        };
        Ok::<_, Error>((now, stats, rows))
    }
    .await;
    let (now, stats, mut rows) = match read {
        Ok(v) => v,
        Err(e) => return failure(&base, &s, &e),
    };
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    let here = format!(
        "/queues/{}?state={state}&page={pg}{}",
        url(&queue),
        q_param(search)
    );
    let control = if s.read_only || honker_actors::core::validate_queue_name(&queue).is_err() {
        String::new()
    } else if stats.paused {
        let to = format!("/queues/{}/resume", url(&queue));
        button(&base, &to, "Resume", &here, "go")
    } else {
        let to = format!("/queues/{}/pause", url(&queue));
        button(&base, &to, "Pause", &here, "")
    };
    let mut b = format!(
        "<h1>Queue {} {} {control}</h1>",
        esc(&queue),
        if stats.paused {
            tag("paused")
        } else {
            String::new()
        }
    );
    b.push_str("<nav class=tabs>");
    for (name, n) in [
        ("pending", stats.pending_due),
        ("scheduled", stats.scheduled),
        ("running", stats.processing),
        ("dead", stats.dead),
    ] {
        let _ = write!(
            b,
            "<a href=\"{}/queues/{}?state={name}\"{}>{name} ({n})</a>",
            esc(&base),
            url(&queue),
            if name == state { " class=on" } else { "" }
        );
    }
    b.push_str("</nav>");
    b.push_str(&search_form(
        &base,
        &format!("/queues/{}", url(&queue)),
        &[("state", &state)],
        search,
    ));
    b.push_str(&job_table(&base, &s, &rows, now, &here));
    b.push_str(&pager(
        &base,
        &format!("/queues/{}?state={state}{}", url(&queue), q_param(search)),
        pg,
        more,
    ));
    page(
        &base,
        &format!("Queue {queue}"),
        Nav::Queues,
        &file(&s),
        p.msg.as_deref(),
        &b,
    )
    .into_response()
}

pub(super) fn queue_link(base: &str, q: &str) -> String {
    format!("<a href=\"{}/queues/{}\">{}</a>", esc(base), url(q), esc(q))
}

pub(super) fn stamp(t: i64, now: i64) -> String {
    format!(
        "{} UTC <span class=muted>({})</span>",
        time(t),
        relative(t, now)
    )
}

pub(super) fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string())
}

/// `GET /dead?queue=..&page=..`: dead jobs, newest first, with actions.
pub(crate) async fn dead(State(s): St, Base(base): Base, Query(p): Query<Params>) -> Response {
    let pg = p.page.unwrap_or(0);
    let offset = pg.saturating_mul(PAGE);
    let queue = p.queue.clone().filter(|q| !q.is_empty());
    let search = p.search();
    let filter = crate::search::dead_jobs(queue.as_deref(), search);
    let store = s.honker.store();
    let read = async {
        Ok::<_, Error>((
            store.now().await?,
            store.list_dead_where(filter, PAGE + 1, offset).await?,
        ))
    }
    .await;
    let (now, mut rows) = match read {
        Ok(v) => v,
        Err(e) => return failure(&base, &s, &e),
    };
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    let scope = {
        let mut parts = Vec::new();
        if let Some(q) = queue.as_deref() {
            parts.push(format!("queue={}", url(q)));
        }
        if let Some(q) = search {
            parts.push(format!("q={}", url(q)));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    };
    let here = format!("/dead{scope}");
    let mut b = format!(
        "<h1>Dead jobs{}</h1>",
        queue
            .as_deref()
            .map_or(String::new(), |q| format!(" of {}", esc(q)))
    );
    if !s.read_only && !rows.is_empty() {
        b.push_str("<div class=actions>");
        b.push_str(&button(
            &base,
            &format!("/dead-all/retry{scope}"),
            if search.is_some() {
                "Retry all found"
            } else {
                "Retry all"
            },
            &here,
            "go",
        ));
        b.push_str(&button(
            &base,
            &format!("/dead-all/delete{scope}"),
            if search.is_some() {
                "Delete all found"
            } else {
                "Delete all"
            },
            &here,
            "danger",
        ));
        b.push_str("</div>");
    }
    let keep: Vec<(&str, &str)> = queue.as_deref().map(|q| ("queue", q)).into_iter().collect();
    b.push_str(&search_form(&base, "/dead", &keep, search));
    let rows: Vec<Row> = rows.into_iter().map(Row::Dead).collect();
    b.push_str(&job_table(&base, &s, &rows, now, &here));
    let path = if scope.is_empty() {
        "/dead?".to_string()
    } else {
        format!("/dead{scope}")
    };
    b.push_str(&pager(&base, &path, pg, more));
    page(
        &base,
        "Dead jobs",
        Nav::Dead,
        &file(&s),
        p.msg.as_deref(),
        &b,
    )
    .into_response()
}

/// `GET /running`: every running job, with how long it has run.
pub(crate) async fn running(State(s): St, Base(base): Base, Query(p): Query<Params>) -> Response {
    s.live.ensure_sampler(&s.honker);
    let store = s.honker.store();
    let read = async {
        let now = store.now().await?;
        let mut jobs = Vec::new();
        for q in store
            .stats()
            .await?
            .into_iter()
            .filter(|q| q.processing > 0)
        {
            jobs.extend(
                store
                    .list_jobs(&q.queue, LiveState::Running, PAGE, 0)
                    .await?,
            );
        }
        Ok::<_, Error>((now, jobs))
    }
    .await;
    let (now, jobs) = match read {
        Ok(v) => v,
        Err(e) => return failure(&base, &s, &e),
    };
    let mut b = String::from("<h1>Running jobs</h1>");
    if jobs.is_empty() {
        b.push_str("<p class=muted>Nothing is running.</p>");
    } else {
        b.push_str(
            "<table id=running><tr><th>Id</th><th>Queue</th><th>Job</th><th>Worker</th>\
             <th>Running for</th><th>Attempt</th><th>Claim ends</th><th></th></tr>",
        );
        let seen = s.live.history(|h| h.running_since.clone());
        for j in &jobs {
            let elapsed = match seen.get(&j.id) {
                Some((ms, exact)) => {
                    let secs = (now.saturating_mul(1000) - ms).max(0) / 1000;
                    format!("{}{}", if *exact { "" } else { "≥ " }, span(secs))
                }
                None => "just started".into(),
            };
            let _ =
                write!(
                b,
                "<tr data-job=\"{}\"><td><a href=\"{}/jobs/{}\">{}</a></td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td class=n>{}/{}</td><td>{}</td><td>{}</td></tr>",
                j.id,
                esc(&base),
                j.id,
                j.id,
                queue_link(&base, &j.queue),
                job_name_or_dash(&j.payload),
                esc(j.worker_id.as_deref().unwrap_or("–")),
                esc(&elapsed),
                j.attempts,
                j.max_attempts,
                relative(j.claim_expires_at.unwrap_or(now), now),
                if s.read_only {
                    String::new()
                } else {
                    button(&base, &format!("/jobs/{}/cancel", j.id), "Cancel", "/running", "danger")
                }
            );
        }
        b.push_str("</table><p class=muted>Running time is measured from when the dashboard first saw the job running (≥: it was running when the dashboard started).</p>");
    }
    page(
        &base,
        "Running",
        Nav::Running,
        &file(&s),
        p.msg.as_deref(),
        &b,
    )
    .into_response()
}

/// `GET /schedules`: every schedule with its next fire time.
pub(crate) async fn schedules(State(s): St, Base(base): Base, Query(p): Query<Params>) -> Response {
    let store = s.honker.store();
    let read = async { Ok::<_, Error>((store.now().await?, store.list_schedules().await?)) }.await;
    let (now, rows) = match read {
        Ok(v) => v,
        Err(e) => return failure(&base, &s, &e),
    };
    let mut b = String::from("<h1>Schedules</h1>");
    if rows.is_empty() {
        b.push_str("<p class=muted>No schedules in this file.</p>");
    } else {
        b.push_str(
            "<table id=schedules><tr><th>Name</th><th>Queue</th><th>Cron</th><th>Zone</th>\
             <th>Next fire</th><th>State</th><th></th></tr>",
        );
        for r in &rows {
            let n = url(&r.spec.name);
            let acts = if s.read_only {
                String::new()
            } else {
                format!(
                    "{} {}",
                    if r.enabled {
                        button(
                            &base,
                            &format!("/schedules/{n}/pause"),
                            "Pause",
                            "/schedules",
                            "",
                        )
                    } else {
                        button(
                            &base,
                            &format!("/schedules/{n}/resume"),
                            "Resume",
                            "/schedules",
                            "go",
                        )
                    },
                    button(
                        &base,
                        &format!("/schedules/{n}/run-now"),
                        "Run now",
                        "/schedules",
                        "go"
                    )
                )
            };
            let _ = write!(
                b,
                "<tr data-schedule=\"{}\"><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{acts}</td></tr>",
                esc(&r.spec.name),
                esc(&r.spec.name),
                queue_link(&base, &r.spec.queue),
                esc(&r.spec.expr),
                esc(r.spec.zone.as_deref().unwrap_or("UTC")),
                stamp(r.next_fire_at, now),
                if r.enabled { tag("active") } else { tag("paused") },
            );
        }
        b.push_str("</table>");
    }
    page(
        &base,
        "Schedules",
        Nav::Schedules,
        &file(&s),
        p.msg.as_deref(),
        &b,
    )
    .into_response()
}
