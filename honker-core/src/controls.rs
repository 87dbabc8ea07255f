//! Queue controls every process on the file honours at claim time: pause,
//! a limit on running jobs across all workers, and a rate limit on starts.
//!
//! They live in `_honker_queue_controls`, a table of this crate's (other
//! bindings ignore it: their workers do not honour the controls). The rate
//! limit counts in the format's `_honker_rate_limits`, under the queue's
//! name, with the fixed windows of the Python package's `try_rate_limit`
//! (`window_start = unixepoch() / per * per`), so a Python producer calling
//! `db.try_rate_limit("emails", limit, per)` counts in the same window.
//!
//! Every rule is checked inside the claim's write transaction: SQLite has
//! one writer at a time, so no two processes can both see room for the
//! same last slot.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use crate::enqueue::validate_queue_name;
use crate::{atomically, sql, Error, Result};

/// The controls of one queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueControls {
    /// No worker claims from the queue while set.
    pub paused: bool,
    /// The most jobs of the queue running at once, across every worker.
    pub max_running: Option<u32>,
    /// At most `limit` claims (starts) per `per`, in fixed windows.
    pub rate: Option<RateLimit>,
}

/// At most `limit` starts per `per` (whole seconds, at least 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Starts allowed per window.
    pub limit: u32,
    /// The window's length.
    pub per: Duration,
}

/// Pause `queue` for every process on the file: claims take nothing from
/// it until [`resume_queue`]. Running jobs finish. Returns whether it was
/// running before.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// assert!(honker_core::pause_queue(&conn, "q").unwrap());
/// let none = honker_core::claim_batch(&conn, "q", "w", 10, std::time::Duration::from_secs(60)).unwrap();
/// assert!(none.is_empty());
/// assert!(honker_core::resume_queue(&conn, "q").unwrap());
/// ```
pub fn pause_queue(conn: &Connection, queue: &str) -> Result<bool> {
    set_paused(conn, queue, true)
}

/// Let workers claim from `queue` again. Returns whether it was paused.
pub fn resume_queue(conn: &Connection, queue: &str) -> Result<bool> {
    set_paused(conn, queue, false)
}

fn set_paused(conn: &Connection, queue: &str, paused: bool) -> Result<bool> {
    validate_queue_name(queue)?;
    atomically(conn, |c| {
        let was = controls(c, queue)?.paused;
        c.prepare_cached(sql::CONTROLS_SET_PAUSED)?
            .execute(rusqlite::params![queue, paused])?;
        Ok(was != paused)
    })
}

/// At most `n` jobs of `queue` running at once across every worker of the
/// file (`None`: no limit). A claim takes only the room left; claims still
/// held count until acked, retried, failed or lapsed.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::set_max_running(&conn, "q", Some(1)).unwrap();
/// assert_eq!(honker_core::queue_controls(&conn, "q").unwrap().max_running, Some(1));
/// ```
pub fn set_max_running(conn: &Connection, queue: &str, n: Option<u32>) -> Result<()> {
    check_max_running(queue, n)?;
    conn.prepare_cached(sql::CONTROLS_SET_MAX_RUNNING)?
        .execute(rusqlite::params![queue, n])?;
    Ok(())
}

/// At most `rate.limit` claims of `queue` per `rate.per` (`None`: no
/// limit), counted in `_honker_rate_limits` under the queue's name.
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// let rate = honker_core::RateLimit { limit: 10, per: Duration::from_secs(1) };
/// honker_core::set_rate_limit(&conn, "q", Some(rate)).unwrap();
/// assert_eq!(honker_core::queue_controls(&conn, "q").unwrap().rate, Some(rate));
/// ```
pub fn set_rate_limit(conn: &Connection, queue: &str, rate: Option<RateLimit>) -> Result<()> {
    let (limit, per) = check_rate_limit(queue, rate)?;
    conn.prepare_cached(sql::CONTROLS_SET_RATE)?
        .execute(rusqlite::params![queue, limit, per])?;
    Ok(())
}

/// Check a running limit for `queue` as every store does: at least 1.
///
/// ```
/// assert!(honker_core::check_max_running("q", Some(2)).is_ok());
/// assert!(honker_core::check_max_running("q", Some(0)).is_err());
/// ```
pub fn check_max_running(queue: &str, n: Option<u32>) -> Result<()> {
    validate_queue_name(queue)?;
    if n == Some(0) {
        return Err(Error::InvalidOption(
            "max_running must be at least 1 (pause the queue to stop it)".into(),
        ));
    }
    Ok(())
}

/// Check a rate limit for `queue` as every store does; the starts and
/// the period in seconds it writes (`None`s: no limit).
///
/// ```
/// use std::time::Duration;
/// use honker_core::{check_rate_limit, RateLimit};
/// let r = RateLimit { limit: 5, per: Duration::from_secs(60) };
/// assert_eq!(check_rate_limit("q", Some(r)).unwrap(), (Some(5), Some(60)));
/// let bad = RateLimit { limit: 5, per: Duration::from_millis(1500) };
/// assert!(check_rate_limit("q", Some(bad)).is_err());
/// ```
pub fn check_rate_limit(
    queue: &str,
    rate: Option<RateLimit>,
) -> Result<(Option<u32>, Option<i64>)> {
    validate_queue_name(queue)?;
    Ok(match rate {
        None => (None, None),
        Some(r) => {
            if r.limit == 0 {
                return Err(Error::InvalidOption(
                    "a rate limit must allow at least 1 start (pause the queue to stop it)".into(),
                ));
            }
            let per = r.per.as_secs();
            if per == 0 || r.per.subsec_nanos() != 0 || r.per > crate::MAX_DURATION {
                return Err(Error::InvalidOption(format!(
                    "a rate limit's period is whole seconds, from 1 s to 200 years, got {:?}",
                    r.per
                )));
            }
            (Some(r.limit), Some(i64::try_from(per).unwrap_or(i64::MAX)))
        }
    })
}

/// The controls of `queue` (all off for a queue never controlled).
pub fn queue_controls(conn: &Connection, queue: &str) -> Result<QueueControls> {
    controls(conn, queue)
}

/// Every queue of the file with a control set, and its controls, sorted.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::set_max_running(&conn, "a", Some(2)).unwrap();
/// let all = honker_core::controlled_queues(&conn).unwrap();
/// assert_eq!((all[0].0.as_str(), all[0].1.max_running), ("a", Some(2)));
/// ```
pub fn controlled_queues(conn: &Connection) -> Result<Vec<(String, QueueControls)>> {
    let mut stmt = conn.prepare_cached(sql::CONTROLS_ALL)?;
    let rows = stmt.query_map([], |r| {
        Ok((crate::job::text_lossy(r.get_ref(0)?), raw_controls(r, 1)?))
    })?;
    rows.map(|r| {
        r.map(|(q, raw)| (q, read_controls(raw)))
            .map_err(Into::into)
    })
    .collect()
}

/// The paused queues of the file, sorted.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::pause_queue(&conn, "b").unwrap();
/// assert_eq!(honker_core::paused_queues(&conn).unwrap(), ["b"]);
/// ```
pub fn paused_queues(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(sql::CONTROLS_PAUSED)?;
    let rows = stmt.query_map([], |r| Ok(crate::job::text_lossy(r.get_ref(0)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn controls(conn: &Connection, queue: &str) -> Result<QueueControls> {
    let row = conn
        .prepare_cached(sql::CONTROLS_GET)?
        .query_row([queue], |r| raw_controls(r, 0))
        .optional()?;
    Ok(row.map(read_controls).unwrap_or_default())
}

type RawControls = (Option<i64>, Option<i64>, Option<i64>, Option<i64>);

/// The four control columns from `first` on, read leniently: NULL is
/// "not set"; an integer (or an integral REAL) is itself; anything else
/// another program wrote (a REAL `2.5`, a TEXT `'yes'`) reads as the
/// strictest meaningful value, never as an error that would stop every
/// pool on the file, and never as "no limit".
fn raw_controls(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<RawControls> {
    use rusqlite::types::ValueRef;
    let int = |i: usize, strictest: i64| -> rusqlite::Result<Option<i64>> {
        let v = r.get_ref(first + i)?;
        Ok(match v {
            ValueRef::Null => None,
            ValueRef::Integer(n) => Some(n),
            _ => Some(crate::job::exact_int(v).unwrap_or_else(|| {
                tracing::warn!(column = i, held = %crate::job::describe(v),
                    "a queue control holds an odd value; read as the strictest one");
                strictest
            })),
        })
    };
    // Paused: any odd value pauses. Limits: 1 start or 1 running.
    Ok((int(0, 1)?, int(1, 1)?, int(2, 1)?, int(3, i64::MAX)?))
}

/// Controls from a row. Lenient: a value another program wrote that is
/// out of range reads as the nearest meaningful one, never as "no limit".
fn read_controls((paused, max_running, limit, per): RawControls) -> QueueControls {
    let positive = |v: i64| u32::try_from(v.max(1)).unwrap_or(u32::MAX);
    QueueControls {
        paused: paused.unwrap_or(0) != 0,
        max_running: max_running.map(positive),
        rate: match (limit, per) {
            (Some(l), Some(p)) => Some(RateLimit {
                limit: positive(l),
                per: Duration::from_secs(p.max(1).unsigned_abs()),
            }),
            _ => None,
        },
    }
}

/// When the rate limit of `queue`, used up now, lets claims through again
/// (unix seconds); `None` when it does not hold claims back.
///
/// ```
/// let conn = honker_core::open_in_memory().unwrap();
/// assert_eq!(honker_core::rate_reopens_at(&conn, "q").unwrap(), None);
/// ```
pub fn rate_reopens_at(conn: &Connection, queue: &str) -> Result<Option<i64>> {
    Ok(allowance(conn, queue, 1)?.reopens_at)
}

/// [`next_claim_at`](crate::next_claim_at), or, when it is earlier, the
/// end of the rate-limit window that holds `queue`'s claims back now: when
/// a waiting worker should look again. (A pause or a running limit is
/// lifted by a commit, a resume or a finish, which wakes workers; a lapse
/// of a running claim is in `next_claim_at` already.)
///
/// ```
/// use std::time::Duration;
/// let conn = honker_core::open_in_memory().unwrap();
/// honker_core::enqueue(&conn, "q", "1", &Default::default()).unwrap();
/// assert_eq!(honker_core::next_claim_allowed_at(&conn, "q").unwrap(), None, "due now");
/// let rate = honker_core::RateLimit { limit: 1, per: Duration::from_secs(60) };
/// honker_core::set_rate_limit(&conn, "q", Some(rate)).unwrap();
/// honker_core::enqueue(&conn, "q", "2", &Default::default()).unwrap();
/// honker_core::claim_batch(&conn, "q", "w", 10, Duration::from_secs(3600)).unwrap();
/// let window_end = honker_core::next_claim_allowed_at(&conn, "q").unwrap().unwrap();
/// assert_eq!(window_end % 60, 0);
/// ```
pub fn next_claim_allowed_at(conn: &Connection, queue: &str) -> Result<Option<i64>> {
    let due = crate::next_claim_at(conn, queue)?;
    let reopens = rate_reopens_at(conn, queue)?;
    Ok(match (due, reopens) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// How many of `want` claims the controls of `queue` allow now, and, when
/// the rate limit alone holds claims back, when its next window opens
/// (unix seconds). Call inside the claim's transaction.
pub(crate) fn allowance(conn: &Connection, queue: &str, want: usize) -> Result<Allowance> {
    let c = controls(conn, queue)?;
    if c.paused {
        return Ok(Allowance::default());
    }
    let mut n = want;
    if let Some(max) = c.max_running {
        let running: i64 = conn
            .prepare_cached(sql::CONTROLS_RUNNING)?
            .query_row([queue], |r| r.get(0))?;
        let room = i64::from(max).saturating_sub(running).max(0);
        n = n.min(usize::try_from(room).unwrap_or(0));
    }
    let mut reopens_at = None;
    let mut rate_per = None;
    if let Some(rate) = c.rate {
        let per = i64::try_from(rate.per.as_secs()).unwrap_or(i64::MAX).max(1);
        rate_per = Some(per);
        let (start, used): (i64, i64) = conn
            .prepare_cached(sql::RATE_WINDOW)?
            .query_row(rusqlite::params![queue, per], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let room = i64::from(rate.limit).saturating_sub(used).max(0);
        let by_rate = usize::try_from(room).unwrap_or(0);
        if by_rate < n {
            n = by_rate;
            reopens_at = Some(start.saturating_add(per));
        }
    }
    Ok(Allowance {
        n,
        reopens_at,
        rate_per,
    })
}

/// What [`allowance`] found.
#[derive(Debug, Default)]
pub(crate) struct Allowance {
    /// Claims allowed now.
    pub(crate) n: usize,
    /// When the rate limit held claims back: when its window ends.
    pub(crate) reopens_at: Option<i64>,
    /// The rate limit's window length, when claims count against one.
    pub(crate) rate_per: Option<i64>,
}

/// Count `k` claims of `queue` in its rate window (the window of the
/// claim's own transaction, as Python's `try_rate_limit` counts). Returns
/// the end of the window they were counted in (unix seconds, the first
/// second after it); `None` when `k` is 0.
pub(crate) fn count_starts(
    conn: &Connection,
    queue: &str,
    per: i64,
    k: usize,
) -> Result<Option<i64>> {
    if k == 0 {
        return Ok(None);
    }
    let start: i64 = conn.prepare_cached(sql::RATE_COUNT)?.query_row(
        rusqlite::params![queue, per, i64::try_from(k).unwrap_or(i64::MAX)],
        |r| r.get(0),
    )?;
    Ok(Some(start.saturating_add(per)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{claim_batch, enqueue, open_in_memory};

    const VIS: Duration = Duration::from_secs(60);

    fn filled(n: usize) -> Connection {
        let conn = open_in_memory().unwrap();
        for i in 0..n {
            enqueue(&conn, "q", &i.to_string(), &Default::default()).unwrap();
        }
        conn
    }

    #[test]
    fn a_paused_queue_gives_nothing_until_resumed() {
        let conn = filled(3);
        assert!(pause_queue(&conn, "q").unwrap());
        assert!(!pause_queue(&conn, "q").unwrap(), "already paused");
        assert!(claim_batch(&conn, "q", "w", 10, VIS).unwrap().is_empty());
        assert_eq!(paused_queues(&conn).unwrap(), ["q"]);
        assert!(resume_queue(&conn, "q").unwrap());
        assert_eq!(claim_batch(&conn, "q", "w", 10, VIS).unwrap().len(), 3);
        assert!(paused_queues(&conn).unwrap().is_empty());
    }

    #[test]
    fn max_running_counts_every_valid_claim_of_the_queue() {
        let conn = filled(5);
        set_max_running(&conn, "q", Some(2)).unwrap();
        let first = claim_batch(&conn, "q", "a", 10, VIS).unwrap();
        assert_eq!(first.len(), 2);
        assert!(claim_batch(&conn, "q", "b", 10, VIS).unwrap().is_empty());
        crate::ack(&conn, "a", first[0].lease()).unwrap();
        assert_eq!(claim_batch(&conn, "q", "b", 10, VIS).unwrap().len(), 1);
        // A lapsed claim is not running.
        conn.execute(
            "UPDATE _honker_live SET claim_expires_at = unixepoch() - 5 WHERE worker_id = 'a'",
            [],
        )
        .unwrap();
        assert_eq!(claim_batch(&conn, "q", "c", 10, VIS).unwrap().len(), 1);
        set_max_running(&conn, "q", None).unwrap();
        assert!(set_max_running(&conn, "q", Some(0)).is_err());
    }

    #[test]
    fn the_rate_limit_counts_claims_in_pythons_fixed_windows() {
        let conn = filled(10);
        let rate = RateLimit {
            limit: 3,
            per: Duration::from_secs(3600),
        };
        set_rate_limit(&conn, "q", Some(rate)).unwrap();
        assert_eq!(claim_batch(&conn, "q", "w", 2, VIS).unwrap().len(), 2);
        assert_eq!(claim_batch(&conn, "q", "w", 10, VIS).unwrap().len(), 1);
        assert!(claim_batch(&conn, "q", "w", 10, VIS).unwrap().is_empty());
        // The row Python's try_rate_limit reads and writes.
        let (start, count): (i64, i64) = conn
            .query_row(
                "SELECT window_start, count FROM _honker_rate_limits WHERE name = 'q'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let now = crate::now(&conn).unwrap();
        assert_eq!((start, count), (now / 3600 * 3600, 3));
        let a = allowance(&conn, "q", 5).unwrap();
        assert_eq!((a.n, a.reopens_at), (0, Some(start + 3600)));
        // A new window: the old row is left as Python leaves it.
        conn.execute(
            "UPDATE _honker_rate_limits SET window_start = window_start - 3600",
            [],
        )
        .unwrap();
        assert_eq!(claim_batch(&conn, "q", "w", 10, VIS).unwrap().len(), 3);
    }

    #[test]
    fn a_used_up_rate_window_is_a_time_to_look_again() {
        let conn = filled(2);
        assert_eq!(next_claim_allowed_at(&conn, "q").unwrap(), None);
        let hour = Duration::from_secs(3600);
        set_rate_limit(
            &conn,
            "q",
            Some(RateLimit {
                limit: 1,
                per: hour,
            }),
        )
        .unwrap();
        assert_eq!(
            next_claim_allowed_at(&conn, "q").unwrap(),
            None,
            "room left"
        );
        assert_eq!(claim_batch(&conn, "q", "w", 10, hour * 2).unwrap().len(), 1);
        let window_end = crate::now(&conn).unwrap() / 3600 * 3600 + 3600;
        assert_eq!(next_claim_allowed_at(&conn, "q").unwrap(), Some(window_end));
    }

    #[test]
    fn odd_values_another_program_wrote_read_as_the_strictest_never_as_errors() {
        let conn = filled(3);
        conn.execute_batch(
            "INSERT INTO _honker_queue_controls (queue, paused, max_running) VALUES ('x', 'yes', 2.5);
             INSERT INTO _honker_queue_controls (queue, max_running) VALUES ('q', 'two');",
        )
        .unwrap();
        let all = controlled_queues(&conn).unwrap();
        assert!(all[1].1.paused, "an odd pause flag pauses: {all:?}");
        assert_eq!(
            all[0].1.max_running,
            Some(1),
            "an odd limit is the strictest"
        );
        // Claims go on, within the strictest reading.
        assert_eq!(claim_batch(&conn, "q", "w", 10, VIS).unwrap().len(), 1);
        assert_eq!(paused_queues(&conn).unwrap(), ["x"]);
    }

    #[test]
    fn bad_controls_are_refused() {
        let conn = open_in_memory().unwrap();
        for per in [Duration::ZERO, Duration::from_millis(1500), Duration::MAX] {
            let r = set_rate_limit(&conn, "q", Some(RateLimit { limit: 1, per }));
            assert!(matches!(r, Err(Error::InvalidOption(_))), "{per:?}");
        }
        let zero = RateLimit {
            limit: 0,
            per: Duration::from_secs(1),
        };
        assert!(set_rate_limit(&conn, "q", Some(zero)).is_err());
        assert!(matches!(
            pause_queue(&conn, "bad name"),
            Err(Error::InvalidQueueName { .. })
        ));
    }

    #[test]
    fn queue_controls_read_back_what_was_set_and_the_longest_period_is_allowed() {
        let conn = open_in_memory().unwrap();
        assert_eq!(
            queue_controls(&conn, "q").unwrap(),
            QueueControls::default()
        );
        pause_queue(&conn, "q").unwrap();
        set_max_running(&conn, "q", Some(3)).unwrap();
        let rate = RateLimit {
            limit: 7,
            per: crate::MAX_DURATION,
        };
        set_rate_limit(&conn, "q", Some(rate)).unwrap();
        let c = queue_controls(&conn, "q").unwrap();
        assert!(c.paused);
        assert_eq!((c.max_running, c.rate), (Some(3), Some(rate)));
        let too_long = RateLimit {
            limit: 7,
            per: crate::MAX_DURATION + Duration::from_secs(1),
        };
        assert!(matches!(
            set_rate_limit(&conn, "q", Some(too_long)),
            Err(Error::InvalidOption(_))
        ));
    }
}
