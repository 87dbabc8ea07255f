//! The reading commands: they open the file read-only, never create it,
//! and never write.

use std::path::Path;

use honker_actors::core::{DeadFilter, LiveState};
use serde::Serialize;

use crate::cli::{Output, StateArg};
use crate::file::File;
use crate::view::{clip, print_json, span, table, when, JobView, QueueView, ScheduleView};
use crate::CliError;

fn open(db: &Path) -> Result<(File, i64), CliError> {
    let file = File::look(db)?;
    let now = file.wait(file.store().now())?;
    Ok((file, now))
}

/// `honker stats DB`.
pub fn stats(db: &Path, out: Output) -> Result<(), CliError> {
    let (f, now) = open(db)?;
    let queues: Vec<QueueView> = f
        .wait(f.store().stats())?
        .into_iter()
        .map(QueueView::from)
        .collect();
    if out.json {
        #[derive(Serialize)]
        struct Doc {
            now: i64,
            queues: Vec<QueueView>,
        }
        return print_json(&Doc { now, queues });
    }
    if queues.is_empty() {
        println!("no queues in {}", crate::file::shown(db));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            vec![
                q.queue.clone(),
                q.pending.to_string(),
                q.scheduled.to_string(),
                q.running.to_string(),
                q.dead.to_string(),
                if q.paused { "yes" } else { "no" }.into(),
                q.oldest_pending_age_s.map_or("-".into(), span),
                q.next_due_at.map_or("-".into(), |t| when(t, now)),
            ]
        })
        .collect();
    let headers = [
        "QUEUE",
        "PENDING",
        "SCHEDULED",
        "RUNNING",
        "DEAD",
        "PAUSED",
        "BEHIND",
        "NEXT DUE",
    ];
    print!("{}", table(&headers, &rows));
    Ok(())
}

/// `honker jobs DB --queue Q --state S`.
/// Which of a queue's jobs `honker jobs` lists.
pub struct Page<'a> {
    pub limit: usize,
    pub offset: usize,
    /// Only jobs whose payload contains it.
    pub search: Option<&'a str>,
}

pub fn jobs(
    db: &Path,
    queue: &str,
    state: StateArg,
    page: Page<'_>,
    out: Output,
) -> Result<(), CliError> {
    let Page {
        limit,
        offset,
        search,
    } = page;
    let (f, now) = open(db)?;
    let jobs: Vec<JobView> = match state {
        StateArg::Dead => {
            let mut filter = DeadFilter::default().queue(queue);
            if let Some(text) = search {
                filter = filter.payload_contains(text);
            }
            f.wait(f.store().list_dead_where(filter, limit, offset))?
                .into_iter()
                .map(JobView::dead)
                .collect()
        }
        live => {
            let s = match live {
                StateArg::Pending => LiveState::Pending,
                StateArg::Scheduled => LiveState::Scheduled,
                _ => LiveState::Running,
            };
            let rows = match search {
                Some(text) => f.wait(f.store().find_jobs(queue, s, text, limit, offset))?,
                None => f.wait(f.store().list_jobs(queue, s, limit, offset))?,
            };
            rows.into_iter().map(|j| JobView::live(j, now)).collect()
        }
    };
    let state_name = format!("{state:?}").to_lowercase();
    if out.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            queue: &'a str,
            state: &'a str,
            limit: usize,
            offset: usize,
            jobs: Vec<JobView>,
        }
        return print_json(&Doc {
            queue,
            state: &state_name,
            limit,
            offset,
            jobs,
        });
    }
    if jobs.is_empty() {
        println!(
            "no {state_name} jobs on queue {}",
            crate::view::term(queue, false)
        );
        return Ok(());
    }
    let (time_header, rows): (&str, Vec<Vec<String>>) = match state {
        StateArg::Dead => (
            "DIED",
            jobs.iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        j.name.clone().unwrap_or_else(|| "-".into()),
                        format!("{}/{}", j.attempts, j.max_attempts),
                        j.died_at.map_or("-".into(), |t| when(t, now)),
                        clip(j.last_error.as_deref().unwrap_or("-"), 50),
                        clip(&j.payload, 40),
                    ]
                })
                .collect(),
        ),
        _ => (
            if state == StateArg::Running {
                "CLAIM EXPIRES"
            } else {
                "RUN AT"
            },
            jobs.iter()
                .map(|j| {
                    let t = match state {
                        StateArg::Running => j.claim_expires_at.unwrap_or(j.run_at),
                        _ => j.run_at,
                    };
                    vec![
                        j.id.to_string(),
                        j.name.clone().unwrap_or_else(|| "-".into()),
                        format!("{}/{}", j.attempts, j.max_attempts),
                        when(t, now),
                        j.worker_id.clone().unwrap_or_else(|| "-".into()),
                        clip(&j.payload, 50),
                    ]
                })
                .collect(),
        ),
    };
    let last = if state == StateArg::Dead {
        ["LAST ERROR", "PAYLOAD"]
    } else {
        ["WORKER", "PAYLOAD"]
    };
    let headers = ["ID", "JOB", "ATTEMPTS", time_header, last[0], last[1]];
    print!("{}", table(&headers, &rows));
    Ok(())
}

/// `honker job DB ID`.
pub fn job(db: &Path, id: i64, out: Output) -> Result<(), CliError> {
    let (f, now) = open(db)?;
    let job = match f.wait(f.store().job(id))? {
        Some(j) => Some(JobView::live(j, now)),
        None => f.wait(f.store().dead_job(id))?.map(JobView::dead),
    };
    let result = f.wait(f.store().result(id))?;
    let schedule = f.wait(f.store().fired_for(id))?;
    if job.is_none() && result.is_none() {
        return Err(CliError::NotFound(format!(
            "no job {id} in {} (a job that succeeded is deleted; it may have left no result)",
            crate::file::shown(db)
        )));
    }
    if out.json {
        #[derive(Serialize)]
        struct Fired {
            schedule: String,
            boundary: i64,
        }
        #[derive(Serialize)]
        struct Doc {
            id: i64,
            job: Option<JobView>,
            result: Option<String>,
            fired_by: Option<Fired>,
        }
        return print_json(&Doc {
            id,
            job,
            result,
            fired_by: schedule.map(|(schedule, boundary)| Fired { schedule, boundary }),
        });
    }
    let mut lines: Vec<(&str, String)> = Vec::new();
    match &job {
        Some(j) => {
            println!(
                "job {id}: {} on queue {}",
                crate::view::term(&j.state, false),
                crate::view::term(&j.queue, false)
            );
            if let Some(t) = &j.name {
                lines.push(("job", t.clone()));
            }
            lines.push(("payload", pretty(&j.payload)));
            lines.push(("attempts", format!("{} of {}", j.attempts, j.max_attempts)));
            lines.push(("priority", j.priority.to_string()));
            lines.push(("created", when(j.created_at, now)));
            lines.push(("run at", when(j.run_at, now)));
            if let Some(w) = &j.worker_id {
                lines.push(("worker", w.clone()));
            }
            if let Some(t) = j.claim_expires_at {
                lines.push(("claim expires", when(t, now)));
            }
            if let Some(t) = j.expires_at {
                lines.push(("expires", when(t, now)));
            }
            if let Some(t) = j.died_at {
                lines.push(("died", when(t, now)));
            }
            if let Some(e) = &j.last_error {
                lines.push(("last error", e.clone()));
            }
        }
        None => println!("job {id}: finished (its row is gone; its result remains)"),
    }
    if let Some(r) = &result {
        lines.push(("result", pretty(r)));
    }
    if let Some((name, boundary)) = &schedule {
        lines.push((
            "fired by",
            format!("schedule {name} for {}", when(*boundary, now)),
        ));
    }
    for (k, v) in lines {
        let v = crate::view::term(&v, true).replace('\n', "\n                ");
        println!("  {:<14}{v}", format!("{k}:"));
    }
    Ok(())
}

/// JSON text indented, or the text itself when it is not JSON.
fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string())
}

/// `honker cron DB list`.
pub fn cron_list(db: &Path, out: Output) -> Result<(), CliError> {
    let (f, now) = open(db)?;
    let schedules: Vec<ScheduleView> = f
        .wait(f.store().list_schedules())?
        .into_iter()
        .map(ScheduleView::from)
        .collect();
    if out.json {
        #[derive(Serialize)]
        struct Doc {
            now: i64,
            schedules: Vec<ScheduleView>,
        }
        return print_json(&Doc { now, schedules });
    }
    if schedules.is_empty() {
        println!("no schedules in {}", crate::file::shown(db));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = schedules
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.queue.clone(),
                s.expr.clone(),
                s.zone.clone().unwrap_or_else(|| "UTC".into()),
                if s.enabled { "on" } else { "paused" }.into(),
                s.misfire.clone(),
                when(s.next_fire_at, now),
            ]
        })
        .collect();
    let headers = [
        "NAME",
        "QUEUE",
        "EXPR",
        "ZONE",
        "STATE",
        "MISFIRE",
        "NEXT FIRE",
    ];
    print!("{}", table(&headers, &rows));
    Ok(())
}

/// `honker cron next EXPR --after UNIX --count N`.
pub fn cron_next(
    expr: &str,
    after: Option<i64>,
    count: u32,
    zone: Option<&str>,
    out: Output,
) -> Result<(), CliError> {
    let start = match after {
        Some(t) => t,
        None => chrono::Utc::now().timestamp(),
    };
    let mut at = start;
    let mut boundaries = Vec::new();
    for _ in 0..count {
        at = honker_actors::core::next_boundary(expr, at, zone)?;
        boundaries.push(at);
    }
    if out.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            expr: &'a str,
            zone: Option<&'a str>,
            after: i64,
            next: Vec<i64>,
        }
        return print_json(&Doc {
            expr,
            zone,
            after: start,
            next: boundaries,
        });
    }
    for t in boundaries {
        let utc = chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        println!("{t}  {utc}");
    }
    Ok(())
}
