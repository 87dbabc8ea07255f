//! The operator's view: list a queue's jobs by state, and requeue or purge
//! dead jobs one by one, by filter, or all.

use rusqlite::Connection;

use crate::{atomically, sql, DeadJob, JobRow, Result};

/// Which live jobs to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveState {
    /// Pending and due now, in claim order (priority, then due time).
    Pending,
    /// Pending with a future due time, soonest first.
    Scheduled,
    /// Claimed by a worker, by claim deadline.
    Running,
}

/// Live jobs of `queue` in `state`, `limit` from `offset`. Read leniently
/// (see [`get_job`](crate::get_job)).
///
/// ```
/// use honker_core::{list_jobs, LiveState};
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// assert_eq!(list_jobs(&conn, "q", LiveState::Pending, 10, 0).unwrap().len(), 1);
/// assert!(list_jobs(&conn, "q", LiveState::Running, 10, 0).unwrap().is_empty());
/// ```
pub fn list_jobs(
    conn: &Connection,
    queue: &str,
    state: LiveState,
    limit: usize,
    offset: usize,
) -> Result<Vec<JobRow>> {
    find_jobs(conn, queue, state, None, limit, offset)
}

/// [`list_jobs`], only those whose payload contains `text` when given: a
/// job's name, or a piece of its arguments as the JSON is written.
///
/// ```
/// use honker_core::{find_jobs, task_payload, LiveState};
/// let conn = honker_core::open_in_memory().unwrap();
/// let call = task_payload("send_email", &serde_json::json!({"to": "ann@example.com"})).unwrap();
/// honker_core::enqueue(&conn, "q", &call, &Default::default()).unwrap();
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// let by_name = find_jobs(&conn, "q", LiveState::Pending, Some("send_email"), 10, 0).unwrap();
/// assert_eq!(by_name.len(), 1);
/// let by_args = find_jobs(&conn, "q", LiveState::Pending, Some("ann@"), 10, 0).unwrap();
/// assert_eq!(by_args[0].id, by_name[0].id);
/// ```
pub fn find_jobs(
    conn: &Connection,
    queue: &str,
    state: LiveState,
    text: Option<&str>,
    limit: usize,
    offset: usize,
) -> Result<Vec<JobRow>> {
    let sql = match state {
        LiveState::Pending => sql::LIST_PENDING,
        LiveState::Scheduled => sql::LIST_SCHEDULED,
        LiveState::Running => sql::LIST_RUNNING,
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(
        rusqlite::params![queue, limit, offset, text],
        JobRow::from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Which dead jobs an operation takes: every field that is set must
/// match (the default matches every dead job of the file).
///
/// ```
/// let only = honker_core::DeadFilter::default().queue("emails").error_contains("timeout");
/// assert_eq!(only.queue.as_deref(), Some("emails"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadFilter {
    /// Of this queue.
    pub queue: Option<String>,
    /// Whose `last_error` contains this text.
    pub error_contains: Option<String>,
    /// That died before this unix second.
    pub died_before: Option<i64>,
    /// Whose payload contains this text: a job's name or a piece of its
    /// arguments (as the JSON is written).
    pub payload_contains: Option<String>,
}

impl DeadFilter {
    /// Of `queue` only.
    pub fn queue(mut self, queue: &str) -> Self {
        self.queue = Some(queue.to_string());
        self
    }
    /// Whose `last_error` contains `text`.
    pub fn error_contains(mut self, text: &str) -> Self {
        self.error_contains = Some(text.to_string());
        self
    }
    /// That died before unix second `t`.
    pub fn died_before(mut self, t: i64) -> Self {
        self.died_before = Some(t);
        self
    }
    /// Whose payload contains `text` (a job's name, or a piece of its
    /// arguments as the JSON is written).
    pub fn payload_contains(mut self, text: &str) -> Self {
        self.payload_contains = Some(text.to_string());
        self
    }

    fn params(&self) -> [Option<&dyn rusqlite::ToSql>; 4] {
        [
            self.queue.as_ref().map(|q| q as &dyn rusqlite::ToSql),
            self.error_contains
                .as_ref()
                .map(|e| e as &dyn rusqlite::ToSql),
            self.died_before.as_ref().map(|t| t as &dyn rusqlite::ToSql),
            self.payload_contains
                .as_ref()
                .map(|p| p as &dyn rusqlite::ToSql),
        ]
    }
}

/// Dead jobs matching `filter`, the newest death first, `limit` from `offset`.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// honker_core::cancel(&conn, id).unwrap();
/// let all = honker_core::list_dead_where(&conn, &Default::default(), 10, 0).unwrap();
/// assert_eq!(all[0].id, id);
/// ```
pub fn list_dead_where(
    conn: &Connection,
    filter: &DeadFilter,
    limit: usize,
    offset: usize,
) -> Result<Vec<DeadJob>> {
    let [q, e, t, p] = filter.params();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(sql::LIST_DEAD_WHERE)?;
    let rows = stmt.query_map(
        rusqlite::params![q, e, t, p, limit, offset],
        DeadJob::from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Move every dead job matching `filter` back to live with fresh
/// attempts, due now, in one transaction; returns how many. A unique job
/// whose key another job holds now stays dead.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// honker_core::cancel(&conn, id).unwrap();
/// let f = honker_core::DeadFilter::default().queue("q");
/// assert_eq!(honker_core::requeue_dead_where(&conn, &f).unwrap(), 1);
/// assert!(honker_core::get_job(&conn, id).unwrap().is_some());
/// ```
pub fn requeue_dead_where(conn: &Connection, filter: &DeadFilter) -> Result<usize> {
    let [q, e, t, p] = filter.params();
    atomically(conn, |c| {
        let ids: Vec<i64> = c
            .prepare_cached(sql::DEAD_IDS_WHERE)?
            .query_map(rusqlite::params![q, e, t, p], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut n = 0;
        for id in ids {
            match crate::requeue_dead(c, id) {
                Ok(done) => n += usize::from(done),
                // Another job holds its unique key: it stays dead.
                Err(crate::Error::UniqueConflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    })
}

/// Delete every dead job matching `filter` for good; returns how many.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// honker_core::cancel(&conn, id).unwrap();
/// assert_eq!(honker_core::purge_dead_where(&conn, &Default::default()).unwrap(), 1);
/// assert!(honker_core::get_dead(&conn, id).unwrap().is_none());
/// ```
pub fn purge_dead_where(conn: &Connection, filter: &DeadFilter) -> Result<usize> {
    let [q, e, t, p] = filter.params();
    Ok(conn
        .prepare_cached(sql::PURGE_DEAD_WHERE)?
        .execute(rusqlite::params![q, e, t, p])?)
}

/// Delete dead job `id` of `queue` for good (`false`: no such dead job
/// of that queue).
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// let id = honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// honker_core::cancel(&conn, id).unwrap();
/// assert!(!honker_core::purge_dead_in(&conn, "other", id).unwrap());
/// assert!(honker_core::purge_dead_in(&conn, "q", id).unwrap());
/// ```
pub fn purge_dead_in(conn: &Connection, queue: &str, id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(sql::PURGE_DEAD_IN)?
        .execute(rusqlite::params![id, queue])?
        == 1)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{cancel, claim_batch, enqueue, fail, open_in_memory, EnqueueOptions};

    #[test]
    fn jobs_are_listed_by_state_with_paging() {
        let conn = open_in_memory().unwrap();
        let o = EnqueueOptions::default();
        let low = enqueue(&conn, "q", "1", &o).unwrap();
        let high = enqueue(&conn, "q", "2", &o.clone().priority(5)).unwrap();
        let later = enqueue(&conn, "q", "3", &o.clone().delay(Duration::from_secs(600))).unwrap();
        let soon = enqueue(&conn, "q", "4", &o.clone().delay(Duration::from_secs(60))).unwrap();
        enqueue(&conn, "other", "5", &o).unwrap();
        let ids = |s, l, off| -> Vec<i64> {
            list_jobs(&conn, "q", s, l, off)
                .unwrap()
                .iter()
                .map(|j| j.id)
                .collect()
        };
        assert_eq!(ids(LiveState::Pending, 10, 0), [high, low]);
        assert_eq!(ids(LiveState::Pending, 1, 1), [low]);
        assert_eq!(ids(LiveState::Scheduled, 10, 0), [soon, later]);
        let claimed = claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap();
        assert_eq!(ids(LiveState::Running, 10, 0), [claimed[0].id]);
        assert_eq!(ids(LiveState::Pending, 10, 0), [low]);
    }

    #[test]
    fn dead_jobs_are_requeued_or_purged_by_filter() {
        let conn = open_in_memory().unwrap();
        let o = EnqueueOptions::default().max_attempts(1);
        let mut dead = Vec::new();
        for (q, why) in [("a", "timeout"), ("a", "bad input"), ("b", "timeout")] {
            let id = enqueue(&conn, q, "1", &o).unwrap();
            let j = claim_batch(&conn, q, "w", 1, Duration::from_secs(60)).unwrap();
            fail(&conn, "w", j[0].lease(), why).unwrap();
            dead.push(id);
        }
        let cancelled = enqueue(&conn, "a", "1", &o).unwrap();
        cancel(&conn, cancelled).unwrap();
        let timeouts = DeadFilter::default().error_contains("timeout");
        let listed: Vec<i64> = list_dead_where(&conn, &timeouts, 10, 0)
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(listed, [dead[2], dead[0]], "the newest death first");
        let a_timeouts = timeouts.clone().queue("a");
        assert_eq!(requeue_dead_where(&conn, &a_timeouts).unwrap(), 1);
        assert!(crate::get_job(&conn, dead[0]).unwrap().is_some());
        assert!(crate::get_dead(&conn, dead[0]).unwrap().is_none());
        assert_eq!(
            purge_dead_where(&conn, &DeadFilter::default().queue("a")).unwrap(),
            2
        );
        // A filter no row matches touches nothing; "all" takes the rest.
        assert_eq!(
            purge_dead_where(&conn, &DeadFilter::default().died_before(0)).unwrap(),
            0
        );
        assert_eq!(purge_dead_where(&conn, &DeadFilter::default()).unwrap(), 1);
        assert!(list_dead_where(&conn, &DeadFilter::default(), 10, 0)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn requeue_by_filter_skips_an_id_already_live_and_keeps_its_dead_record() {
        let conn = open_in_memory().unwrap();
        let id = enqueue(&conn, "q", "1", &EnqueueOptions::default()).unwrap();
        cancel(&conn, id).unwrap();
        // A peer requeued the id without deleting the dead copy.
        conn.execute(
            "INSERT INTO _honker_live (id, queue, payload) VALUES (?1, 'q', '1')",
            [id],
        )
        .unwrap();
        assert_eq!(
            requeue_dead_where(&conn, &DeadFilter::default()).unwrap(),
            0
        );
        assert!(
            crate::get_dead(&conn, id).unwrap().is_some(),
            "nothing lost"
        );
    }

    #[test]
    fn a_search_finds_jobs_by_name_or_argument_text_live_and_dead() {
        let conn = open_in_memory().unwrap();
        let call = |name: &str, to: &str| {
            crate::task_payload(name, &serde_json::json!({ "to": to })).unwrap()
        };
        let o = EnqueueOptions::default();
        let ann = enqueue(&conn, "q", &call("send_email", "ann@example.com"), &o).unwrap();
        let bob = enqueue(&conn, "q", &call("send_email", "bob@example.com"), &o).unwrap();
        let rep = enqueue(&conn, "q", &call("report", "ann@example.com"), &o).unwrap();
        let later = EnqueueOptions::default().delay(Duration::from_secs(60));
        let sched = enqueue(&conn, "q", &call("send_email", "cy@example.com"), &later).unwrap();
        let ids = |state, text| -> Vec<i64> {
            find_jobs(&conn, "q", state, text, 10, 0)
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect()
        };
        assert_eq!(ids(LiveState::Pending, Some("send_email")), [ann, bob]);
        assert_eq!(ids(LiveState::Pending, Some("ann@")), [ann, rep]);
        assert_eq!(ids(LiveState::Pending, None), [ann, bob, rep]);
        assert_eq!(ids(LiveState::Pending, Some("nobody")), Vec::<i64>::new());
        assert_eq!(ids(LiveState::Scheduled, Some("cy@")), [sched]);
        assert_eq!(
            find_jobs(&conn, "other", LiveState::Pending, Some("ann"), 10, 0)
                .unwrap()
                .len(),
            0
        );
        let j = claim_batch(&conn, "q", "w", 1, Duration::from_secs(60)).unwrap();
        assert_eq!(j[0].id, ann);
        assert_eq!(ids(LiveState::Running, Some("ann@")), [ann]);
        assert_eq!(ids(LiveState::Running, Some("bob@")), Vec::<i64>::new());
        fail(&conn, "w", j[0].lease(), "smtp refused").unwrap();
        cancel(&conn, rep).unwrap();
        let dead = |f: DeadFilter| -> Vec<i64> {
            list_dead_where(&conn, &f, 10, 0)
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect()
        };
        let mut both = dead(DeadFilter::default().payload_contains("ann@"));
        both.sort_unstable();
        assert_eq!(both, [ann, rep]);
        assert_eq!(
            dead(DeadFilter::default().payload_contains("send_email")),
            [ann]
        );
        let f = DeadFilter::default().payload_contains("report");
        assert_eq!(
            requeue_dead_where(&conn, &f).unwrap(),
            1,
            "acts on its matches only"
        );
        assert!(crate::get_job(&conn, rep).unwrap().is_some());
        assert!(crate::get_dead(&conn, ann).unwrap().is_some());
    }
}
