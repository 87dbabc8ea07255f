//! Periodic jobs in the format's `_honker_scheduler_tasks`, with the
//! column meanings the Python package's `Scheduler` gives them: a row per
//! schedule, its expression, the payload each boundary enqueues into its
//! queue, and `next_fire_at`, the next boundary to fire.
//!
//! Two things are this crate's own, in a side table Python ignores
//! (`_honker_schedule_extras`): a schedule's IANA time zone and its misfire
//! policy. And two rules are stricter than upstream's: registering an
//! unchanged schedule again (every deploy does) keeps its `next_fire_at`,
//! so a boundary that falls during a restart is not lost; and a boundary is
//! fired by advancing `next_fire_at` from exactly the value read, in the
//! transaction that enqueues its job, so two schedulers (of any binding)
//! never fire one boundary twice.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use crate::{atomically, enqueue_outcome, sql, EnqueueOptions, Error, Result, Schedule};

/// What to do with boundaries that fell while no scheduler ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Misfire {
    /// Fire every missed boundary (as the Python package does).
    All,
    /// Fire the latest missed boundary once. The default.
    #[default]
    Latest,
    /// Fire none of them; go on from the next one.
    Skip,
}

impl Misfire {
    /// The policy as the format writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Misfire::All => "all",
            Misfire::Latest => "latest",
            Misfire::Skip => "skip",
        }
    }
    /// The policy written as `s` (anything unknown is `Latest`).
    pub fn parse(s: &str) -> Misfire {
        match s {
            "all" => Misfire::All,
            "skip" => Misfire::Skip,
            _ => Misfire::Latest,
        }
    }
}

/// A boundary older than this when a scheduler looks is missed: its
/// misfire policy decides.
pub const MISFIRE_AFTER: Duration = Duration::from_secs(30);

/// The most boundaries one look fires for one schedule (catching up
/// `Misfire::All` a little at a time).
const MAX_FIRES_PER_TICK: usize = 1000;

/// A schedule, as registered.
///
/// ```
/// let s = honker_core::ScheduleSpec::new("nightly-report", "reports", "0 3 * * *", r#"{"kind":"daily"}"#);
/// assert_eq!(s.max_attempts, 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleSpec {
    /// Unique name.
    pub name: String,
    /// The queue its jobs go to.
    pub queue: String,
    /// A [`Schedule`] expression.
    pub expr: String,
    /// The JSON payload each boundary enqueues.
    pub payload: String,
    /// Priority of its jobs.
    pub priority: i64,
    /// Its jobs expire this long after they are enqueued.
    pub expires: Option<Duration>,
    /// Claims allowed for each of its jobs.
    pub max_attempts: u32,
    /// The IANA zone of its wall clock; `None`: the host's, as upstream.
    pub zone: Option<String>,
    /// What to do with missed boundaries.
    pub misfire: Misfire,
}

impl ScheduleSpec {
    /// A schedule with default options.
    pub fn new(name: &str, queue: &str, expr: &str, payload: &str) -> ScheduleSpec {
        ScheduleSpec {
            name: name.to_string(),
            queue: queue.to_string(),
            expr: expr.to_string(),
            payload: payload.to_string(),
            priority: 0,
            expires: None,
            max_attempts: crate::DEFAULT_MAX_ATTEMPTS,
            zone: None,
            misfire: Misfire::Latest,
        }
    }

    fn next_after(&self, t: i64) -> Result<i64> {
        crate::next_boundary(&self.expr, t, self.zone.as_deref())
    }
}

/// A stored schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleRow {
    /// What was registered.
    pub spec: ScheduleSpec,
    /// The next boundary to fire (unix seconds).
    pub next_fire_at: i64,
    /// Paused when false.
    pub enabled: bool,
}

/// A boundary fired: the job it enqueued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The schedule.
    pub schedule: String,
    /// The boundary (unix seconds).
    pub boundary: i64,
    /// The job enqueued for it.
    pub job_id: i64,
}

/// Register (or update) a schedule. An unchanged schedule keeps its
/// `next_fire_at`; a new or changed one fires next at its first boundary
/// after now. Bad expressions, zones, queue names or payloads are refused,
/// writing nothing.
///
/// ```
/// use honker_core::{register_schedule, list_schedules, ScheduleSpec};
/// let conn = honker_core::open_in_memory().unwrap();
/// let spec = ScheduleSpec::new("tick", "q", "@every 60s", "{}");
/// register_schedule(&conn, &spec).unwrap();
/// let before = list_schedules(&conn).unwrap()[0].next_fire_at;
/// register_schedule(&conn, &spec).unwrap(); // a deploy: unchanged
/// assert_eq!(list_schedules(&conn).unwrap()[0].next_fire_at, before);
/// ```
pub fn register_schedule(conn: &Connection, spec: &ScheduleSpec) -> Result<()> {
    check_schedule(spec)?;
    let now = crate::now(conn)?;
    let first = spec.next_after(now)?;
    atomically(conn, |c| {
        if get_schedule(c, &spec.name)?.is_some_and(|old| old.spec == *spec) {
            return Ok(());
        }
        c.prepare_cached(sql::SCHEDULE_UPSERT)?
            .execute(rusqlite::params![
                spec.name,
                spec.queue,
                spec.expr,
                spec.payload,
                spec.priority,
                spec.expires.map(crate::durations::ceil_secs),
                first,
                spec.max_attempts,
            ])?;
        c.prepare_cached(sql::SCHEDULE_EXTRAS_UPSERT)?
            .execute(rusqlite::params![
                spec.name,
                spec.zone,
                spec.misfire.as_str()
            ])?;
        c.prepare_cached(sql::SCHEDULER_WAKE)?.execute([])?;
        Ok(())
    })
}

/// Check a schedule as every store does before it registers one: its
/// queue's name, its expression, a name, attempts, expiry and a JSON
/// payload.
///
/// ```
/// use honker_core::{check_schedule, ScheduleSpec};
/// assert!(check_schedule(&ScheduleSpec::new("s", "q", "@every 60s", "{}")).is_ok());
/// assert!(check_schedule(&ScheduleSpec::new("s", "q", "not cron", "{}")).is_err());
/// ```
pub fn check_schedule(spec: &ScheduleSpec) -> Result<()> {
    crate::validate_queue_name(&spec.queue)?;
    Schedule::parse(&spec.expr)?;
    if spec.name.is_empty() {
        return Err(Error::InvalidOption("a schedule needs a name".into()));
    }
    if spec.max_attempts == 0 {
        return Err(Error::InvalidOption(
            "max_attempts must be at least 1".into(),
        ));
    }
    if spec.expires.is_some_and(|e| e > crate::MAX_DURATION) {
        return Err(Error::InvalidOption(
            "expires must be at most 200 years".into(),
        ));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(&spec.payload).map_err(Error::InvalidPayload)?;
    Ok(())
}

/// The boundaries of `row` that fall at or before `now` and are to fire
/// by its misfire policy (oldest first, at most 1000 a call), and the
/// schedule's next boundary after now: what a store fires and where it
/// moves `next_fire_at`.
///
/// ```
/// use honker_core::{boundaries_to_fire, ScheduleRow, ScheduleSpec};
/// let row = ScheduleRow {
///     spec: ScheduleSpec::new("s", "q", "@every 60s", "{}"),
///     next_fire_at: 1_800_000_000,
///     enabled: true,
/// };
/// let (fire, next) = boundaries_to_fire(&row, 1_800_000_000).unwrap();
/// assert_eq!((fire, next), (vec![1_800_000_000], 1_800_000_060));
/// ```
pub fn boundaries_to_fire(row: &ScheduleRow, now: i64) -> Result<(Vec<i64>, i64)> {
    let spec = &row.spec;
    // The boundaries that fell, oldest first, and the first one after now.
    let mut boundaries = Vec::new();
    let mut next = row.next_fire_at;
    while next <= now && boundaries.len() < MAX_FIRES_PER_TICK {
        boundaries.push(next);
        next = spec.next_after(next)?;
    }
    let late = now - i64::try_from(MISFIRE_AFTER.as_secs()).unwrap_or(30);
    let (missed, on_time): (Vec<i64>, Vec<i64>) = boundaries.into_iter().partition(|b| *b < late);
    let to_fire: Vec<i64> = match spec.misfire {
        Misfire::All => missed.into_iter().chain(on_time).collect(),
        Misfire::Skip => on_time,
        Misfire::Latest if on_time.is_empty() => missed.last().copied().into_iter().collect(),
        Misfire::Latest => on_time,
    };
    Ok((to_fire, next))
}

/// The first boundary of `spec` after `now`: where a schedule registered
/// now first fires.
///
/// ```
/// use honker_core::{first_boundary, ScheduleSpec};
/// let spec = ScheduleSpec::new("s", "q", "@every 60s", "{}");
/// assert_eq!(first_boundary(&spec, 1_800_000_000).unwrap(), 1_800_000_060);
/// ```
pub fn first_boundary(spec: &ScheduleSpec, now: i64) -> Result<i64> {
    spec.next_after(now)
}

/// Remove a schedule; `false` when there was none.
pub fn remove_schedule(conn: &Connection, name: &str) -> Result<bool> {
    atomically(conn, |c| {
        c.prepare_cached(sql::SCHEDULE_EXTRAS_DELETE)?
            .execute([name])?;
        Ok(c.prepare_cached(sql::SCHEDULE_DELETE)?.execute([name])? == 1)
    })
}

/// Pause (`enabled = false`) or resume a schedule; `false` when there was
/// none, or it already was so. A resumed schedule goes on from its stored
/// `next_fire_at` (its misfire policy decides what was missed).
pub fn set_schedule_enabled(conn: &Connection, name: &str, enabled: bool) -> Result<bool> {
    Ok(conn
        .prepare_cached(sql::SCHEDULE_SET_ENABLED)?
        .execute(rusqlite::params![name, enabled])?
        == 1)
}

/// One schedule.
pub fn get_schedule(conn: &Connection, name: &str) -> Result<Option<ScheduleRow>> {
    Ok(conn
        .prepare_cached(sql::SCHEDULE_GET)?
        .query_row([name], read_row)
        .optional()?)
}

/// Every schedule, by name.
pub fn list_schedules(conn: &Connection) -> Result<Vec<ScheduleRow>> {
    let mut stmt = conn.prepare_cached(sql::SCHEDULE_LIST)?;
    let rows = stmt.query_map([], read_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The earliest `next_fire_at` of the enabled schedules.
pub fn next_fire_at(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(sql::SCHEDULE_SOONEST)?
        .query_row([], |r| r.get(0))?)
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ScheduleRow> {
    let lenient = |i: usize| -> rusqlite::Result<i64> {
        Ok(crate::job::lenient_int(r.get_ref(i)?, "schedule", 0))
    };
    let expires: Option<i64> = match r.get_ref(5)? {
        rusqlite::types::ValueRef::Null => None,
        v => Some(crate::job::lenient_int(v, "expires_s", 0)),
    };
    let zone: Option<String> = r.get(9)?;
    let misfire: Option<String> = r.get(10)?;
    Ok(ScheduleRow {
        spec: ScheduleSpec {
            name: crate::job::text_lossy(r.get_ref(0)?),
            queue: crate::job::text_lossy(r.get_ref(1)?),
            expr: crate::job::text_lossy(r.get_ref(2)?),
            payload: crate::job::text_lossy(r.get_ref(3)?),
            priority: lenient(4)?,
            expires: expires.map(|e| Duration::from_secs(e.max(0).unsigned_abs())),
            max_attempts: u32::try_from(lenient(8)?.max(1)).unwrap_or(u32::MAX),
            zone,
            misfire: misfire.as_deref().map_or(Misfire::Latest, Misfire::parse),
        },
        next_fire_at: lenient(6)?,
        enabled: lenient(7)? != 0,
    })
}

/// Fire every enabled schedule whose boundary is due at unix second
/// `now`, each by its misfire policy: enqueue its payload for the
/// boundaries to fire and advance `next_fire_at` past `now`, in one
/// transaction per schedule, only if `next_fire_at` still holds what was
/// read (another scheduler fired it otherwise). A schedule that cannot be
/// fired (its expression no longer parses, a full disk) is logged and
/// left for the next look; the others go on.
pub fn fire_due(conn: &Connection, now: i64) -> Result<Vec<Fired>> {
    let due: Vec<ScheduleRow> = {
        let mut stmt = conn.prepare_cached(sql::SCHEDULE_DUE)?;
        let rows = stmt.query_map([now], read_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let outer = conn.is_autocommit();
    let mut fired = Vec::new();
    for row in due {
        match atomically(conn, |c| fire_one(c, &row, now)) {
            Ok(f) => fired.extend(f),
            // The caller's transaction is gone: nothing here holds.
            Err(e) if !outer && conn.is_autocommit() => return Err(e),
            Err(e) => {
                tracing::warn!(schedule = %row.spec.name, error = %e,
                    "could not fire a schedule; will try again")
            }
        }
    }
    Ok(fired)
}

fn fire_one(c: &Connection, row: &ScheduleRow, now: i64) -> Result<Vec<Fired>> {
    let spec = &row.spec;
    let (to_fire, next) = boundaries_to_fire(row, now)?;
    let advanced = c
        .prepare_cached(sql::SCHEDULE_ADVANCE)?
        .execute(rusqlite::params![spec.name, next, row.next_fire_at])?;
    if advanced == 0 {
        return Ok(Vec::new()); // fired by another scheduler meanwhile
    }
    let mut opts = EnqueueOptions::default()
        .priority(spec.priority)
        .max_attempts(spec.max_attempts);
    if let Some(e) = spec.expires {
        opts = opts.expires(e);
    }
    let mut fired = Vec::new();
    for boundary in to_fire {
        let job = enqueue_outcome(c, &spec.queue, &spec.payload, &opts)?;
        c.prepare_cached(sql::SCHEDULE_RUN_RECORD)?
            .execute(rusqlite::params![job.id, spec.name, boundary])?;
        fired.push(Fired {
            schedule: spec.name.clone(),
            boundary,
            job_id: job.id,
        });
    }
    Ok(fired)
}

/// Enqueue schedule `name`'s job now, outside its timetable ("run now"):
/// its queue, payload, priority, attempts and expiry, recorded as fired
/// for the current second. `next_fire_at` is left as it is, and a paused
/// schedule runs too. `None` when there is no such schedule.
///
/// ```
/// use honker_core::{register_schedule, run_schedule_now, ScheduleSpec};
/// let conn = honker_core::open_in_memory().unwrap();
/// register_schedule(&conn, &ScheduleSpec::new("nightly", "q", "0 3 * * *", "{}")).unwrap();
/// let id = run_schedule_now(&conn, "nightly").unwrap().unwrap();
/// assert_eq!(honker_core::get_job(&conn, id).unwrap().unwrap().queue, "q");
/// assert_eq!(run_schedule_now(&conn, "nope").unwrap(), None);
/// ```
pub fn run_schedule_now(conn: &Connection, name: &str) -> Result<Option<i64>> {
    atomically(conn, |c| {
        let Some(row) = get_schedule(c, name)? else {
            return Ok(None);
        };
        let spec = &row.spec;
        let mut opts = EnqueueOptions::default()
            .priority(spec.priority)
            .max_attempts(spec.max_attempts);
        if let Some(e) = spec.expires {
            opts = opts.expires(e);
        }
        let job = enqueue_outcome(c, &spec.queue, &spec.payload, &opts)?;
        let now = crate::now(c)?;
        c.prepare_cached(sql::SCHEDULE_RUN_RECORD)?
            .execute(rusqlite::params![job.id, spec.name, now])?;
        Ok(Some(job.id))
    })
}

/// The schedule and boundary job `id` was fired for, if a schedule of
/// this crate's fired it.
pub fn fired_for(conn: &Connection, job_id: i64) -> Result<Option<(String, i64)>> {
    Ok(conn
        .prepare_cached(sql::SCHEDULE_RUN_GET)?
        .query_row([job_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open_in_memory;

    fn spec(expr: &str, misfire: Misfire) -> ScheduleSpec {
        let mut s = ScheduleSpec::new("s", "q", expr, r#"{"n":1}"#);
        s.misfire = misfire;
        s.zone = Some("UTC".into());
        s
    }

    fn set_next(conn: &Connection, t: i64) {
        conn.execute("UPDATE _honker_scheduler_tasks SET next_fire_at = ?1", [t])
            .unwrap();
    }

    #[test]
    fn a_due_boundary_fires_once_and_advances() {
        let conn = open_in_memory().unwrap();
        register_schedule(&conn, &spec("@every 60s", Misfire::Latest)).unwrap();
        let now = crate::now(&conn).unwrap();
        set_next(&conn, now);
        let fired = fire_due(&conn, now).unwrap();
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].boundary, now);
        assert_eq!(
            fired_for(&conn, fired[0].job_id).unwrap(),
            Some(("s".into(), now))
        );
        assert!(
            fire_due(&conn, now).unwrap().is_empty(),
            "advanced past now"
        );
        assert_eq!(
            get_schedule(&conn, "s").unwrap().unwrap().next_fire_at,
            now + 60
        );
        let job = crate::get_job(&conn, fired[0].job_id).unwrap().unwrap();
        assert_eq!(
            (job.queue.as_str(), job.payload.as_str()),
            ("q", r#"{"n":1}"#)
        );
    }

    #[test]
    fn missed_boundaries_follow_the_misfire_policy() {
        let conn = open_in_memory().unwrap();
        for (policy, expect) in [(Misfire::All, 11), (Misfire::Latest, 1), (Misfire::Skip, 0)] {
            remove_schedule(&conn, "s").unwrap();
            register_schedule(&conn, &spec("@every 60s", policy)).unwrap();
            let now = crate::now(&conn).unwrap();
            // Eleven boundaries fell while no scheduler ran, the last 45 s
            // ago (missed: older than 30 s); the next is 15 s ahead.
            set_next(&conn, now - 645);
            let fired = fire_due(&conn, now).unwrap();
            assert_eq!(fired.len(), expect, "{policy:?}");
            let next = get_schedule(&conn, "s").unwrap().unwrap().next_fire_at;
            assert!(
                next > now && next <= now + 60,
                "{policy:?}: goes on after now"
            );
        }
    }

    #[test]
    fn a_boundary_another_scheduler_fired_is_not_fired_again() {
        let conn = open_in_memory().unwrap();
        register_schedule(&conn, &spec("@every 60s", Misfire::Latest)).unwrap();
        let now = crate::now(&conn).unwrap();
        set_next(&conn, now);
        let row = get_schedule(&conn, "s").unwrap().unwrap();
        // Another scheduler fires it between our read and our write.
        assert_eq!(fire_due(&conn, now).unwrap().len(), 1);
        let again = atomically(&conn, |c| fire_one(c, &row, now)).unwrap();
        assert!(again.is_empty());
        assert_eq!(crate::queue_stats(&conn, "q").unwrap().pending_due, 1);
    }

    #[test]
    fn registering_keeps_an_unchanged_schedule_and_resets_a_changed_one() {
        let conn = open_in_memory().unwrap();
        let s = spec("@every 60s", Misfire::Latest);
        register_schedule(&conn, &s).unwrap();
        set_next(&conn, 5);
        register_schedule(&conn, &s).unwrap();
        assert_eq!(
            get_schedule(&conn, "s").unwrap().unwrap().next_fire_at,
            5,
            "unchanged"
        );
        let mut changed = s.clone();
        changed.expr = "@every 120s".into();
        register_schedule(&conn, &changed).unwrap();
        assert!(get_schedule(&conn, "s").unwrap().unwrap().next_fire_at > 5);
        assert!(set_schedule_enabled(&conn, "s", false).unwrap());
        let now = crate::now(&conn).unwrap();
        set_next(&conn, now);
        assert!(fire_due(&conn, now).unwrap().is_empty(), "paused");
        assert!(set_schedule_enabled(&conn, "s", true).unwrap());
        assert_eq!(fire_due(&conn, now).unwrap().len(), 1);
        assert!(remove_schedule(&conn, "s").unwrap());
        assert!(list_schedules(&conn).unwrap().is_empty());
    }

    #[test]
    fn bad_schedules_are_refused_writing_nothing() {
        let conn = open_in_memory().unwrap();
        let mut bad = vec![
            spec("* * *", Misfire::Latest),
            ScheduleSpec::new("", "q", "@every 1s", "{}"),
            ScheduleSpec::new("s", "bad queue", "@every 1s", "{}"),
            ScheduleSpec::new("s", "q", "@every 1s", "{nope"),
        ];
        let mut zone = spec("@every 1s", Misfire::Latest);
        zone.zone = Some("Nowhere/Land".into());
        bad.push(zone);
        for s in bad {
            assert!(register_schedule(&conn, &s).is_err(), "{s:?}");
        }
        assert!(list_schedules(&conn).unwrap().is_empty());
    }

    #[test]
    fn the_misfire_window_is_the_last_30_seconds_and_its_edge_is_on_time() {
        let conn = open_in_memory().unwrap();
        register_schedule(&conn, &spec("@every 1s", Misfire::Skip)).unwrap();
        let now = crate::now(&conn).unwrap();
        // Boundaries from 31 s ago: the one 31 s ago is missed (skipped);
        // 30 s ago, the window's edge, and every later one fire.
        set_next(&conn, now - 31);
        let fired: Vec<i64> = fire_due(&conn, now)
            .unwrap()
            .iter()
            .map(|f| f.boundary)
            .collect();
        assert_eq!(fired, (now - 30..=now).collect::<Vec<_>>());
    }

    #[test]
    fn one_look_fires_at_most_1000_boundaries_of_a_schedule() {
        let conn = open_in_memory().unwrap();
        register_schedule(&conn, &spec("@every 1s", Misfire::All)).unwrap();
        let now = crate::now(&conn).unwrap();
        set_next(&conn, now - 1500);
        assert_eq!(fire_due(&conn, now).unwrap().len(), 1000);
        assert_eq!(
            get_schedule(&conn, "s").unwrap().unwrap().next_fire_at,
            now - 500,
            "the rest next time"
        );
        assert_eq!(fire_due(&conn, now).unwrap().len(), 501);
    }

    #[test]
    fn the_soonest_boundary_is_the_earliest_enabled_one() {
        let conn = open_in_memory().unwrap();
        assert_eq!(next_fire_at(&conn).unwrap(), None);
        register_schedule(&conn, &spec("@every 60s", Misfire::Latest)).unwrap();
        set_next(&conn, 5000);
        let mut other = spec("@every 60s", Misfire::Latest);
        other.name = "t".into();
        register_schedule(&conn, &other).unwrap();
        conn.execute(
            "UPDATE _honker_scheduler_tasks SET next_fire_at = 4000 WHERE name = 't'",
            [],
        )
        .unwrap();
        assert_eq!(next_fire_at(&conn).unwrap(), Some(4000));
        conn.execute(
            "UPDATE _honker_scheduler_tasks SET enabled = 0 WHERE name = 't'",
            [],
        )
        .unwrap();
        assert_eq!(
            next_fire_at(&conn).unwrap(),
            Some(5000),
            "a paused one waits"
        );
    }

    #[test]
    fn an_expiry_of_200_years_is_the_longest_allowed() {
        let conn = open_in_memory().unwrap();
        let mut s = spec("@every 60s", Misfire::Latest);
        s.expires = Some(crate::MAX_DURATION);
        register_schedule(&conn, &s).unwrap();
        s.expires = Some(crate::MAX_DURATION + Duration::from_secs(1));
        assert!(matches!(
            register_schedule(&conn, &s),
            Err(Error::InvalidOption(_))
        ));
    }

    #[test]
    fn a_schedule_that_cannot_fire_is_skipped_unless_the_callers_transaction_is_gone() {
        let conn = open_in_memory().unwrap();
        register_schedule(&conn, &spec("@every 60s", Misfire::Latest)).unwrap();
        let mut other = spec("@every 60s", Misfire::Latest);
        other.name = "t".into();
        other.queue = "ok".into();
        register_schedule(&conn, &other).unwrap();
        let now = crate::now(&conn).unwrap();
        conn.execute(
            "UPDATE _honker_scheduler_tasks SET next_fire_at = ?1",
            [now],
        )
        .unwrap();
        // Schedule "s" cannot enqueue (a trigger refuses its queue): it
        // alone is skipped, and tried again next time.
        conn.execute_batch(
            "CREATE TEMP TRIGGER no_q BEFORE INSERT ON _honker_live WHEN new.queue = 'q'
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .unwrap();
        let fired = fire_due(&conn, now).unwrap();
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].schedule, "t");
        assert_eq!(get_schedule(&conn, "s").unwrap().unwrap().next_fire_at, now);
        // Inside a caller's transaction that SQLite rolls back: an error.
        conn.execute_batch(
            "DROP TRIGGER no_q;
             CREATE TEMP TRIGGER gone BEFORE INSERT ON _honker_live
             BEGIN SELECT RAISE(ROLLBACK, 'gone'); END;
             BEGIN IMMEDIATE",
        )
        .unwrap();
        assert!(fire_due(&conn, now).is_err());
        assert!(conn.is_autocommit(), "the caller's transaction is gone");
    }
}
