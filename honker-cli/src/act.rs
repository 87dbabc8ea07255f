//! The writing commands: they open an existing honker file (never create
//! one), act through the runtime's store, and say what changed.

use std::path::Path;
use std::time::Duration;

use honker_actors::core::{DeadFilter, EnqueueOptions};
use honker_actors::store::Store;
use serde::Serialize;

use crate::cli::{DeadAction, Output};
use crate::file::File;
use crate::view::{print_json, span, term};
use crate::CliError;

/// A job a writing command would not act on, and why.
#[derive(Debug, Serialize)]
pub struct Refused {
    pub id: i64,
    pub error: String,
}

/// What a writing command did, as `--json` prints it.
#[derive(Debug, Default, Serialize)]
pub struct Done {
    /// The command: `retry`, `purge`, `cancel`, `pause`, `resume`,
    /// `enqueue`, `cron-pause`, `cron-resume`, `cron-run-now`.
    pub action: &'static str,
    /// Nothing was written (`--dry-run`).
    pub dry_run: bool,
    /// How many jobs, queues or schedules changed (or would).
    pub count: usize,
    /// The job ids changed (or that would be), when known.
    pub ids: Vec<i64>,
    /// Asked-for ids that were not there to act on.
    pub missing: Vec<i64>,
    /// Ids refused, with the reason.
    pub refused: Vec<Refused>,
    /// What was done, in words.
    pub message: String,
}

impl Done {
    fn print(self, out: Output) -> Result<(), CliError> {
        let failed = !self.missing.is_empty() || !self.refused.is_empty();
        if out.json {
            print_json(&self)?;
        } else {
            println!("{}", term(&self.message, true));
            for r in &self.refused {
                eprintln!("job {} refused: {}", r.id, term(&r.error, true));
            }
        }
        if failed {
            Err(CliError::Partial)
        } else {
            Ok(())
        }
    }
}

fn ids_text(ids: &[i64]) -> String {
    let shown: Vec<String> = ids.iter().take(20).map(i64::to_string).collect();
    let more = ids.len().saturating_sub(20);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Which dead jobs `honker dead` acts on.
pub enum Pick {
    Ids(Vec<i64>),
    Where(DeadFilter),
}

/// `honker dead DB retry|purge ...`.
pub fn dead(
    db: &Path,
    action: DeadAction,
    pick: Pick,
    dry_run: bool,
    out: Output,
) -> Result<(), CliError> {
    let verb = match action {
        DeadAction::Retry => "retry",
        DeadAction::Purge => "purge",
    };
    let mut done = Done {
        action: verb,
        dry_run,
        ..Done::default()
    };
    if dry_run {
        let f = File::look(db)?;
        match &pick {
            Pick::Ids(ids) => {
                for &id in ids {
                    match f.wait(f.store().dead_job(id))? {
                        Some(_) => done.ids.push(id),
                        None => done.missing.push(id),
                    }
                }
            }
            Pick::Where(filter) => {
                done.ids = f
                    .wait(f.store().list_dead_where(filter.clone(), usize::MAX, 0))?
                    .into_iter()
                    .map(|d| d.id)
                    .collect();
            }
        }
        done.count = done.ids.len();
        done.message = format!(
            "dry run: would {verb} {} dead job(s){}{}",
            done.count,
            if done.ids.is_empty() { "" } else { ": " },
            ids_text(&done.ids)
        );
        if !done.missing.is_empty() {
            done.message += &format!("; not dead: {}", ids_text(&done.missing));
        }
        return done.print(out);
    }
    let f = File::act(db)?;
    match pick {
        Pick::Ids(ids) => {
            for id in ids {
                match f.wait(act_on_dead(f.store(), action, id)) {
                    Ok(true) => done.ids.push(id),
                    Ok(false) => done.missing.push(id),
                    Err(CliError::Store(e @ honker_actors::Error::UniqueConflict { .. })) => {
                        done.refused.push(Refused {
                            id,
                            error: e.to_string(),
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
            done.count = done.ids.len();
        }
        Pick::Where(filter) => {
            done.count = match action {
                DeadAction::Retry => f.wait(f.store().requeue_dead_where(filter))?,
                DeadAction::Purge => f.wait(f.store().purge_dead_where(filter))?,
            };
        }
    }
    let past = match action {
        DeadAction::Retry => "requeued",
        DeadAction::Purge => "purged",
    };
    done.message = format!("{past} {} dead job(s)", done.count);
    if !done.ids.is_empty() {
        done.message += &format!(": {}", ids_text(&done.ids));
    }
    if !done.missing.is_empty() {
        done.message += &format!("; not dead (nothing done): {}", ids_text(&done.missing));
    }
    tracing::info!(action = verb, count = done.count, "dead jobs changed");
    done.print(out)
}

async fn act_on_dead(
    store: &dyn Store,
    action: DeadAction,
    id: i64,
) -> honker_actors::Result<bool> {
    let Some(dead) = store.dead_job(id).await? else {
        return Ok(false);
    };
    match action {
        DeadAction::Retry => store.requeue_dead_in(&dead.queue, id).await,
        DeadAction::Purge => store.purge_dead_in(&dead.queue, id).await,
    }
}

/// `honker cancel DB ID`.
pub fn cancel(db: &Path, id: i64, out: Output) -> Result<(), CliError> {
    let f = File::act(db)?;
    let before = f.wait(f.store().job(id))?;
    let cancelled = match &before {
        Some(j) => f.wait(f.store().cancel_in(&j.queue, id))?,
        None => false,
    };
    if !cancelled {
        return Err(CliError::NotFound(format!(
            "job {id} is not pending or running in {}; nothing cancelled",
            crate::file::shown(db)
        )));
    }
    let was = match before.as_ref().map(|j| &j.state) {
        Some(honker_actors::core::JobState::Processing) => {
            "running; its worker is told to stop".to_string()
        }
        _ => "pending".to_string(),
    };
    let queue = before.map(|j| j.queue).unwrap_or_default();
    Done {
        action: "cancel",
        count: 1,
        ids: vec![id],
        message: format!("cancelled job {id} on queue {queue} (was {was})"),
        ..Done::default()
    }
    .print(out)
}

/// `honker pause|resume DB QUEUE`.
pub fn pause(db: &Path, queue: &str, paused: bool, out: Output) -> Result<(), CliError> {
    honker_actors::core::validate_queue_name(queue)?;
    let f = File::act(db)?;
    let changed = if paused {
        f.wait(f.store().pause_queue(queue))?
    } else {
        f.wait(f.store().resume_queue(queue))?
    };
    let word = if paused { "paused" } else { "resumed" };
    let message = if changed {
        format!("{word} queue {queue}")
    } else {
        format!("queue {queue} was already {word}; nothing changed")
    };
    tracing::info!(queue, paused, changed, "queue pause set");
    Done {
        action: if paused { "pause" } else { "resume" },
        count: usize::from(changed),
        message,
        ..Done::default()
    }
    .print(out)
}

/// What `honker enqueue` writes.
pub struct NewJob<'a> {
    pub queue: &'a str,
    pub json: &'a str,
    /// The job to call (in a task envelope), or `None` for a raw payload.
    pub job: Option<&'a str>,
    pub delay: Option<Duration>,
    pub priority: i64,
    pub max_attempts: Option<u32>,
    pub expires: Option<Duration>,
}

/// `honker enqueue DB QUEUE JSON`.
pub fn enqueue(db: &Path, job: NewJob<'_>, out: Output) -> Result<(), CliError> {
    honker_actors::core::validate_queue_name(job.queue)?;
    // Kept as written (numbers beyond f64, key order): checked, not re-encoded.
    let value: Box<serde_json::value::RawValue> = serde_json::from_str(job.json).map_err(|e| {
        CliError::Usage(format!(
            "the payload is not JSON ({e}): {}",
            crate::view::clip(job.json, 200)
        ))
    })?;
    let payload = match job.job {
        Some("") => return Err(CliError::Usage("--job needs a name".into())),
        Some(name) => honker_actors::core::task_payload(name, &value).map_err(CliError::Json)?,
        None => value.get().to_string(),
    };
    let mut opts = EnqueueOptions::default().priority(job.priority);
    if let Some(d) = job.delay {
        opts = opts.delay(d);
    }
    if let Some(n) = job.max_attempts {
        opts = opts.max_attempts(n);
    }
    if let Some(e) = job.expires {
        opts = opts.expires(e);
    }
    let f = File::act(db)?;
    let id = f.wait(f.store().enqueue(job.queue, payload, opts))?.id;
    let what = job.job.map_or(String::new(), |t| format!(" (job {t})"));
    let due = job
        .delay
        .filter(|d| !d.is_zero())
        .map_or("due now".to_string(), |d| {
            format!(
                "due in {}",
                span(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            )
        });
    tracing::info!(queue = job.queue, id, "job enqueued");
    Done {
        action: "enqueue",
        count: 1,
        ids: vec![id],
        message: format!("enqueued job {id} on queue {}{what}, {due}", job.queue),
        ..Done::default()
    }
    .print(out)
}

/// `honker cron DB pause|resume|run-now NAME`.
pub fn cron(db: &Path, name: &str, action: CronWrite, out: Output) -> Result<(), CliError> {
    let f = File::act(db)?;
    let exists = f.wait(f.store().get_schedule(name))?.is_some();
    if !exists {
        return Err(CliError::NotFound(format!(
            "no schedule named {name:?} in {}",
            crate::file::shown(db)
        )));
    }
    let (tag, count, ids, message) = match action {
        CronWrite::Pause | CronWrite::Resume => {
            let on = matches!(action, CronWrite::Resume);
            let changed = f.wait(f.store().set_schedule_enabled(name, on))?;
            let word = if on { "resumed" } else { "paused" };
            let message = if changed {
                format!("{word} schedule {name}")
            } else {
                format!("schedule {name} was already {word}; nothing changed")
            };
            let tag = if on { "cron-resume" } else { "cron-pause" };
            (tag, usize::from(changed), Vec::new(), message)
        }
        CronWrite::RunNow => {
            let id = f.wait(f.store().run_schedule_now(name))?.ok_or_else(|| {
                CliError::NotFound(format!("schedule {name:?} was removed meanwhile"))
            })?;
            let message = format!("enqueued job {id} for schedule {name} (run now)");
            ("cron-run-now", 1, vec![id], message)
        }
    };
    tracing::info!(schedule = name, action = tag, "schedule changed");
    Done {
        action: tag,
        count,
        ids,
        message,
        ..Done::default()
    }
    .print(out)
}

/// The writing `honker cron` actions.
#[derive(Debug, Clone, Copy)]
pub enum CronWrite {
    Pause,
    Resume,
    RunNow,
}
