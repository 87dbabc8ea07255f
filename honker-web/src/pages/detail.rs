//! `GET /jobs/{id}`: one job's detail page.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use honker_actors::core::JobState;

use super::{failure, file, not_found, pretty, queue_link, stamp, tag, Params};
use crate::html::{button, esc, page, Base, Nav};
use crate::{Error, State as Shared};

/// `GET /jobs/{id}`: one job, live or dead, and its result.
pub(crate) async fn job(
    State(s): State<Arc<Shared>>,
    Base(base): Base,
    Path(id): Path<i64>,
    Query(p): Query<Params>,
) -> Response {
    let store = s.honker.store();
    let read = async {
        Ok::<_, Error>((
            store.now().await?,
            store.job(id).await?,
            store.dead_job(id).await?,
            store.result(id).await?,
            store.fired_for(id).await?,
        ))
    }
    .await;
    let (now, live, dead, result, fired) = match read {
        Ok(v) => v,
        Err(e) => return failure(&base, &s, &e),
    };
    let here = format!("/jobs/{id}");
    let mut fields: Vec<(&str, String)> = Vec::new();
    let (title, payload) = match (&live, &dead) {
        (Some(j), _) => {
            let state = match j.state {
                JobState::Processing => "running".to_string(),
                JobState::Pending if j.run_at > now => "scheduled".into(),
                JobState::Pending => "pending".into(),
                JobState::Other(ref o) => o.clone(),
            };
            fields.push(("Queue", queue_link(&base, &j.queue)));
            fields.push(("State", tag(&state)));
            fields.push(("Attempts", format!("{} of {}", j.attempts, j.max_attempts)));
            fields.push(("Priority", j.priority.to_string()));
            fields.push(("Created", stamp(j.created_at, now)));
            fields.push(("Run at", stamp(j.run_at, now)));
            if let Some(w) = &j.worker_id {
                fields.push(("Worker", esc(w)));
            }
            if let Some(t) = j.claim_expires_at {
                fields.push(("Claim expires", stamp(t, now)));
            }
            if let Some(t) = j.expires_at {
                fields.push(("Expires", stamp(t, now)));
            }
            (format!("Job {id}"), Some(j.payload.clone()))
        }
        (None, Some(d)) => {
            fields.push(("Queue", queue_link(&base, &d.queue)));
            fields.push(("State", tag("dead")));
            fields.push(("Attempts", format!("{} of {}", d.attempts, d.max_attempts)));
            fields.push(("Priority", d.priority.to_string()));
            fields.push(("Created", stamp(d.created_at, now)));
            fields.push(("Died", stamp(d.died_at, now)));
            fields.push((
                "Last error",
                format!(
                    "<pre>{}</pre>",
                    esc(d.last_error.as_deref().unwrap_or("(none recorded)"))
                ),
            ));
            (format!("Job {id}"), Some(d.payload.clone()))
        }
        (None, None) if result.is_some() => (format!("Job {id} (finished)"), None),
        (None, None) => {
            return not_found(
                &base,
                &s,
                &format!(
                    "No job {id}: a job that succeeded is deleted, and this one left no result."
                ),
            )
        }
    };
    if let Some(p) = &payload {
        if let Some(task) = honker_actors::core::task_name(p).ok().flatten() {
            fields.insert(1, ("Job", esc(&task)));
        }
        fields.push((
            "Payload",
            format!("<pre id=payload>{}</pre>", esc(&pretty(p))),
        ));
    }
    if let Some(r) = &result {
        fields.push((
            "Result",
            format!("<pre id=result>{}</pre>", esc(&pretty(r))),
        ));
    }
    if let Some((name, boundary)) = &fired {
        fields.push((
            "Fired by",
            format!("schedule {} for {}", esc(name), stamp(*boundary, now)),
        ));
    }
    let mut b = format!("<h1>{}</h1>", esc(&title));
    if !s.read_only {
        b.push_str("<div class=actions>");
        if live.is_some() {
            b.push_str(&button(
                &base,
                &format!("/jobs/{id}/cancel"),
                "Cancel",
                &here,
                "danger",
            ));
        } else if dead.is_some() {
            b.push_str(&button(
                &base,
                &format!("/dead/{id}/retry"),
                "Retry",
                &here,
                "go",
            ));
            b.push_str(&button(
                &base,
                &format!("/dead/{id}/delete"),
                "Delete",
                "/dead",
                "danger",
            ));
        }
        b.push_str("</div>");
    }
    b.push_str("<dl>");
    for (k, v) in fields {
        let _ = write!(b, "<dt>{k}</dt><dd>{v}</dd>");
    }
    b.push_str("</dl>");
    page(&base, &title, Nav::None, &file(&s), p.msg.as_deref(), &b).into_response()
}
