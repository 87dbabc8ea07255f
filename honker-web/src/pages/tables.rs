//! The tables the job pages share: a queue's or the file's jobs (with
//! their actions and the dead jobs' checkboxes), the pager, and the search
//! box.

use std::fmt::Write as _;

use honker_actors::core::{DeadJob, JobRow, JobState};

use crate::html::{button, clip, esc, relative, url};
use crate::State as Shared;

/// A search box over a list: a GET form to `action` keeping `keep`.
pub(super) fn search_form(
    base: &str,
    action: &str,
    keep: &[(&str, &str)],
    q: Option<&str>,
) -> String {
    let mut b = format!(
        "<form method=get action=\"{}{}\" class=search>",
        esc(base),
        esc(action)
    );
    for (k, v) in keep {
        let _ = write!(b, "<input type=hidden name={k} value=\"{}\">", esc(v));
    }
    let _ = write!(
        b,
        "<input type=search name=q value=\"{}\" placeholder=\"job name or argument text\" \
         aria-label=\"search jobs\"><button type=submit>Search</button></form>",
        esc(q.unwrap_or(""))
    );
    b
}

/// `&q=..` for links that keep a search.
pub(super) fn q_param(q: Option<&str>) -> String {
    q.map_or(String::new(), |q| format!("&q={}", url(q)))
}

/// A live or dead row, for one table.
pub(crate) enum Row {
    Live(JobRow),
    Dead(DeadJob),
}

pub(super) fn job_name_or_dash(payload: &str) -> String {
    honker_actors::core::task_name(payload)
        .ok()
        .flatten()
        .map_or("–".into(), |n| esc(&n))
}

/// What a job is called with: a task call's arguments (keywords as an
/// object, positional ones as an array), or a raw payload as it is.
pub(super) fn arguments(payload: &str) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(payload) else {
        return payload.to_string();
    };
    let Some(serde_json::Value::Object(call)) = map.remove(honker_actors::core::TASK_ENVELOPE)
    else {
        return payload.to_string();
    };
    let args = call
        .get("args")
        .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()));
    let kwargs = call
        .get("kwargs")
        .filter(|k| k.as_object().is_some_and(|k| !k.is_empty()));
    match (args, kwargs) {
        (Some(a), Some(k)) => format!("{a} {k}"),
        (Some(a), None) => a.to_string(),
        (None, Some(k)) => k.to_string(),
        (None, None) => "()".into(),
    }
}

pub(super) fn job_table(base: &str, s: &Shared, rows: &[Row], now: i64, here: &str) -> String {
    if rows.is_empty() {
        return "<p class=muted>No jobs here.</p>".into();
    }
    let dead = matches!(rows.first(), Some(Row::Dead(_)));
    let select = dead && !s.read_only;
    let mut b = String::new();
    if select {
        // The rows' checkboxes belong to this form (`form=bulk`).
        let _ = write!(
            b,
            "<form id=bulk method=post action=\"{0}/dead-selected/retry\" class=actions>\
             <input type=hidden name=back value=\"{1}\">\
             <button type=submit class=go>Retry selected</button> \
             <button type=submit class=danger formaction=\"{0}/dead-selected/delete\">Delete selected</button></form>",
            esc(base),
            esc(here)
        );
    }
    let _ = write!(
        b,
        "<table class=jobs><tr><th>Id</th><th>Job</th><th>Attempts</th><th>When</th>\
         <th>Arguments</th>{}<th></th></tr>",
        if dead { "<th>Last error</th>" } else { "" }
    );
    for row in rows {
        let (id, payload, attempts, when, error, actions) = match row {
            Row::Live(j) => {
                let when = match j.state {
                    JobState::Processing => format!(
                        "claim ends {}",
                        relative(j.claim_expires_at.unwrap_or(now), now)
                    ),
                    _ => format!("due {}", relative(j.run_at, now)),
                };
                let act = if s.read_only {
                    String::new()
                } else {
                    button(
                        base,
                        &format!("/jobs/{}/cancel", j.id),
                        "Cancel",
                        here,
                        "danger",
                    )
                };
                (
                    j.id,
                    &j.payload,
                    (j.attempts, j.max_attempts),
                    when,
                    None,
                    act,
                )
            }
            Row::Dead(d) => {
                let act = if s.read_only {
                    String::new()
                } else {
                    format!(
                        "{} {}",
                        button(base, &format!("/dead/{}/retry", d.id), "Retry", here, "go"),
                        button(
                            base,
                            &format!("/dead/{}/delete", d.id),
                            "Delete",
                            here,
                            "danger"
                        )
                    )
                };
                (
                    d.id,
                    &d.payload,
                    (d.attempts, d.max_attempts),
                    format!("died {}", relative(d.died_at, now)),
                    d.last_error.as_deref(),
                    act,
                )
            }
        };
        let _ = write!(
            b,
            "<tr data-job=\"{id}\"><td>{}<a href=\"{}/jobs/{id}\">{id}</a></td><td>{}</td>\
             <td class=n>{}/{}</td><td>{}</td><td><code>{}</code></td>{}<td>{actions}</td></tr>",
            if select {
                format!("<input type=checkbox name=id value={id} form=bulk aria-label=\"select job {id}\"> ")
            } else {
                String::new()
            },
            esc(base),
            job_name_or_dash(payload),
            attempts.0,
            attempts.1,
            esc(&when),
            esc(&clip(&arguments(payload), 80)),
            if dead {
                format!("<td>{}</td>", esc(&clip(error.unwrap_or(""), 80)))
            } else {
                String::new()
            },
        );
    }
    b.push_str("</table>");
    b
}

pub(super) fn pager(base: &str, path: &str, pg: usize, more: bool) -> String {
    let mut b = String::from("<div class=pager>");
    let href = |to: usize| esc(&format!("{base}{path}&page={to}"));
    if pg > 0 {
        let _ = write!(b, "<a href=\"{}\">← newer page</a>", href(pg - 1));
    }
    if more {
        let _ = write!(b, "<a href=\"{}\" rel=next>next page →</a>", href(pg + 1));
    }
    b.push_str("</div>");
    b
}

#[cfg(test)]
mod tests {
    use super::arguments;

    #[test]
    fn a_calls_arguments_read_as_written_and_a_raw_payload_as_it_is() {
        let call = |args: &str, kwargs: &str| {
            format!(r#"{{"__honker_task__":{{"task":"t","args":{args},"kwargs":{kwargs}}}}}"#)
        };
        assert_eq!(arguments(&call("[1,2]", "{}")), "[1,2]");
        assert_eq!(arguments(&call("[]", r#"{"to":"a@b"}"#)), r#"{"to":"a@b"}"#);
        assert_eq!(arguments(&call("[1]", r#"{"k":2}"#)), r#"[1] {"k":2}"#);
        assert_eq!(arguments(&call("[]", "{}")), "()");
        assert_eq!(
            arguments(r#"{"to":"a@b"}"#),
            r#"{"to":"a@b"}"#,
            "no envelope"
        );
        assert_eq!(arguments("2"), "2");
    }
}
