//! What the commands print: the JSON documents (stable field names) and
//! their text renderings.

use honker_actors::core::{DeadJob, JobRow, JobState, QueueStats, ScheduleRow};
use serde::Serialize;

/// One queue's counts.
#[derive(Debug, Serialize)]
pub struct QueueView {
    pub queue: String,
    pub pending: i64,
    pub scheduled: i64,
    pub running: i64,
    pub dead: i64,
    pub paused: bool,
    /// Seconds since the oldest due job fell due.
    pub oldest_pending_age_s: Option<i64>,
    /// Unix second the soonest scheduled job falls due.
    pub next_due_at: Option<i64>,
}

impl From<QueueStats> for QueueView {
    fn from(s: QueueStats) -> Self {
        QueueView {
            queue: s.queue,
            pending: s.pending_due,
            scheduled: s.scheduled,
            running: s.processing,
            dead: s.dead,
            paused: s.paused,
            oldest_pending_age_s: s.oldest_pending_age,
            next_due_at: s.next_due_at,
        }
    }
}

/// One job, live or dead.
#[derive(Debug, Serialize)]
pub struct JobView {
    pub id: i64,
    pub queue: String,
    /// `pending`, `scheduled`, `running`, `dead`, or what another writer put.
    pub state: String,
    /// The name of the job the payload calls, if it is a task envelope
    /// (the format's word; a `#[job]`'s name or a Python `@task`'s).
    pub name: Option<String>,
    pub payload: String,
    pub priority: i64,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub created_at: i64,
    pub worker_id: Option<String>,
    pub claim_expires_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub last_error: Option<String>,
    pub died_at: Option<i64>,
}

fn job_name_of(payload: &str) -> Option<String> {
    honker_actors::core::task_name(payload)
        .ok()
        .flatten()
        .map(|n| n.into_owned())
}

impl JobView {
    pub fn live(j: JobRow, now: i64) -> Self {
        let state = match &j.state {
            JobState::Pending if j.run_at > now => "scheduled".to_string(),
            JobState::Pending => "pending".to_string(),
            JobState::Processing => "running".to_string(),
            JobState::Other(s) => s.clone(),
        };
        JobView {
            name: job_name_of(&j.payload),
            id: j.id,
            queue: j.queue,
            state,
            payload: j.payload,
            priority: j.priority,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
            created_at: j.created_at,
            worker_id: j.worker_id,
            claim_expires_at: j.claim_expires_at,
            expires_at: j.expires_at,
            last_error: None,
            died_at: None,
        }
    }

    pub fn dead(d: DeadJob) -> Self {
        JobView {
            name: job_name_of(&d.payload),
            id: d.id,
            queue: d.queue,
            state: "dead".into(),
            payload: d.payload,
            priority: d.priority,
            attempts: d.attempts,
            max_attempts: d.max_attempts,
            run_at: d.run_at,
            created_at: d.created_at,
            worker_id: None,
            claim_expires_at: None,
            expires_at: None,
            last_error: d.last_error,
            died_at: Some(d.died_at),
        }
    }
}

/// One schedule.
#[derive(Debug, Serialize)]
pub struct ScheduleView {
    pub name: String,
    pub queue: String,
    pub expr: String,
    pub zone: Option<String>,
    pub payload: String,
    pub priority: i64,
    pub max_attempts: u32,
    pub misfire: String,
    pub enabled: bool,
    pub next_fire_at: i64,
}

impl From<ScheduleRow> for ScheduleView {
    fn from(r: ScheduleRow) -> Self {
        ScheduleView {
            misfire: format!("{:?}", r.spec.misfire).to_lowercase(),
            name: r.spec.name,
            queue: r.spec.queue,
            expr: r.spec.expr,
            zone: r.spec.zone,
            payload: r.spec.payload,
            priority: r.spec.priority,
            max_attempts: r.spec.max_attempts,
            enabled: r.enabled,
            next_fire_at: r.next_fire_at,
        }
    }
}

/// A unix second as UTC, with how long ago or ahead of `now` it is.
pub fn when(t: i64, now: i64) -> String {
    let at = chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string());
    let d = t.saturating_sub(now);
    match d {
        0 => format!("{at} (now)"),
        d if d > 0 => format!("{at} (in {})", span(d)),
        d => format!("{at} ({} ago)", span(d.saturating_neg())),
    }
}

/// A count of seconds, shortly: `45s`, `12m`, `3h`, `2d`.
pub fn span(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// At most `n` characters of `s`, marked when cut.
pub fn clip(s: &str, n: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= n {
        flat
    } else {
        let mut out: String = flat.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// `s` safe to print on a terminal: control characters (escape sequences
/// hidden in names and errors another writer put in the file) are shown
/// as `\x1b`-style escapes; newlines are kept when `lines` is set.
pub fn term(s: &str, lines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\n' && lines {
            out.push(c);
        } else if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Rows under headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| term(c, false)).collect())
        .collect();
    let rows = &rows[..];
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Print `value` as one JSON document.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), crate::CliError> {
    let text = serde_json::to_string_pretty(value).map_err(crate::CliError::Json)?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_both_ways() {
        assert_eq!(when(90, 0), "1970-01-01 00:01:30Z (in 90s)");
        assert_eq!(when(0, 7_200), "1970-01-01 00:00:00Z (2h ago)");
        assert!(when(i64::MAX, 0).starts_with(&i64::MAX.to_string()));
        assert!(when(i64::MIN, i64::MAX).contains("ago"));
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        assert_eq!(term("a\u{1b}[2Jb\nc", false), "a\\u{1b}[2Jb\\nc");
        assert_eq!(term("x\ny\u{7}", true), "x\ny\\u{7}");
        let t = table(&["Q"], &[vec!["\u{1b}]0;PWNED\u{7}q".into()]]);
        assert!(!t.contains('\u{1b}') && !t.contains('\u{7}'), "{t:?}");
    }

    #[test]
    fn tables_line_up_and_clips_mark_the_cut() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y\n");
        assert_eq!(clip("héllo wörld", 6), "héllo…");
        assert_eq!(clip("a\nb", 5), "a b");
    }
}
