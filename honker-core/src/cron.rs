//! Schedule expressions and their next boundary, with the meaning the
//! format's other bindings give them (the Python package's `Scheduler`
//! stores these expressions in `_honker_scheduler_tasks.cron_expr`):
//!
//! - 5-field cron, `minute hour day-of-month month day-of-week`, fires at
//!   second 0; 6-field cron puts `second` first. A field is `*`, a value, a
//!   range `a-b`, any of these with a step `/n` (a single value with a
//!   step is that value alone), or a comma-separated list of them. Numbers
//!   only; day of week 0 (Sunday) to 6. A time matches when every field
//!   matches, day of month *and* day of week alike.
//! - `@every <n><unit>`, unit `s`, `m`, `h` or `d`: `n` units after the
//!   previous boundary.
//!
//! Cron boundaries are computed on the wall clock of a time zone (the
//! host's, as upstream, or a named IANA zone): the next matching wall-clock
//! time strictly after the given instant's; a wall-clock time a DST change
//! skips moves forward a second at a time to the first one that exists; one
//! it repeats is its later occurrence (standard time). A corpus test checks
//! every boundary against the Python package's own, and a named zone
//! against the host's clock set to it (`tests/tests/interop.rs`).

use std::str::FromStr;

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike};

use crate::{Error, Result};

/// A parsed schedule expression.
///
/// ```
/// use honker_core::Schedule;
/// let s = Schedule::parse("0 3 * * *").unwrap();
/// let next = s.next_after_in(1_767_225_600, "UTC").unwrap(); // 2026-01-01T00:00:00Z
/// assert_eq!(next, 1_767_225_600 + 3 * 3600);
/// assert_eq!(Schedule::parse("@every 90s").unwrap().next_after(100).unwrap(), 190);
/// assert!(Schedule::parse("0 0 * *").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// `@every`: this many seconds after the previous boundary.
    Every(i64),
    /// A cron expression.
    Cron(Box<CronFields>),
}

/// The values each field of a cron expression allows, as bit sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronFields {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
}

/// How far ahead a boundary is looked for, as upstream.
const SEARCH_YEARS: i32 = 100;

impl Schedule {
    /// Parse `expr`; [`Error::InvalidOption`] names what is wrong.
    pub fn parse(expr: &str) -> Result<Schedule> {
        let expr = expr.trim();
        if let Some(body) = expr.strip_prefix("@every") {
            return parse_every(body.trim()).map(Schedule::Every);
        }
        let fields: Vec<&str> = expr.split_whitespace().collect();
        let (second, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(invalid(format!(
                "a schedule is 5 or 6 cron fields, or '@every <n><unit>'; got {n} fields: {expr:?}"
            )))
            }
        };
        Ok(Schedule::Cron(Box::new(CronFields {
            seconds: parse_field(second, 0, 59)?,
            minutes: parse_field(rest[0], 0, 59)?,
            hours: parse_field(rest[1], 0, 23)?,
            days: parse_field(rest[2], 1, 31)?,
            months: parse_field(rest[3], 1, 12)?,
            weekdays: parse_field(rest[4], 0, 6)?,
        })))
    }

    /// The next boundary strictly after unix second `from`, on the host's
    /// wall clock.
    pub fn next_after(&self, from: i64) -> Result<i64> {
        self.next_after_tz(from, &chrono::Local)
    }

    /// The next boundary strictly after unix second `from`, on the wall
    /// clock of IANA zone `zone` (`"Europe/Paris"`).
    pub fn next_after_in(&self, from: i64, zone: &str) -> Result<i64> {
        let tz = chrono_tz::Tz::from_str(zone)
            .map_err(|_| invalid(format!("unknown time zone {zone:?}")))?;
        self.next_after_tz(from, &tz)
    }

    fn next_after_tz<Tz: TimeZone>(&self, from: i64, tz: &Tz) -> Result<i64> {
        let fields = match self {
            Schedule::Every(step) => {
                return from
                    .checked_add(*step)
                    .ok_or_else(|| invalid("the next boundary is out of range".into()))
            }
            Schedule::Cron(f) => f,
        };
        let wall = match tz.timestamp_opt(from, 0) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.naive_local(),
            LocalResult::None => return Err(invalid(format!("invalid unix time {from}"))),
        };
        let mut t = fields
            .next_match(wall)
            .ok_or_else(|| invalid(format!("no boundary within {SEARCH_YEARS} years")))?;
        // A wall-clock time the zone skips: the first one after it that
        // exists. One it repeats: its later occurrence (standard time), as
        // upstream's host-clock computation gives it.
        let limit = t.year().saturating_add(SEARCH_YEARS);
        while t.year() <= limit {
            match tz.from_local_datetime(&t) {
                LocalResult::Single(x) => return Ok(x.timestamp()),
                LocalResult::Ambiguous(a, b) => return Ok(a.timestamp().max(b.timestamp())),
                LocalResult::None => t += Duration::seconds(1),
            }
        }
        Err(invalid(format!("no boundary within {SEARCH_YEARS} years")))
    }
}

/// The next boundary of `expr` after unix second `from`: on the wall clock
/// of `zone`, or the host's for `None`.
///
/// ```
/// let t = honker_core::next_boundary("*/15 * * * *", 1_767_225_600, Some("UTC")).unwrap();
/// assert_eq!(t, 1_767_225_600 + 900);
/// ```
pub fn next_boundary(expr: &str, from: i64, zone: Option<&str>) -> Result<i64> {
    let s = Schedule::parse(expr)?;
    match zone {
        Some(z) => s.next_after_in(from, z),
        None => s.next_after(from),
    }
}

fn invalid(why: String) -> Error {
    Error::InvalidOption(why)
}

fn parse_every(body: &str) -> Result<i64> {
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = body.split_at(digits);
    if n.is_empty() || unit.is_empty() {
        return Err(invalid(format!(
            "an interval is '@every <n><unit>', for example '@every 30s'; got {body:?}"
        )));
    }
    let n: i64 = n
        .parse()
        .map_err(|_| invalid(format!("interval {body:?} is too large")))?;
    if n <= 0 {
        return Err(invalid(format!(
            "an interval must be positive; got {body:?}"
        )));
    }
    let unit: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(invalid(format!(
                "interval unit {other:?} is none of s, m, h, d"
            )))
        }
    };
    n.checked_mul(unit)
        .ok_or_else(|| invalid(format!("interval {body:?} is too large")))
}

/// The values `lo..=hi` that `field` allows, as bits.
fn parse_field(field: &str, lo: u32, hi: u32) -> Result<u64> {
    let mut bits = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => match s.parse::<u32>() {
                Ok(n) if n > 0 => (r, n),
                _ => {
                    return Err(invalid(format!(
                        "cron step in {part:?} must be a positive integer"
                    )))
                }
            },
            None => (part, 1),
        };
        let number = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| invalid(format!("cron field {part:?} is not a number")))
        };
        let (start, end) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (number(a)?, number(b)?)
        } else {
            let v = number(range)?;
            (v, v)
        };
        if start < lo || end > hi || start > end {
            return Err(invalid(format!(
                "cron field {part:?} is outside {lo}-{hi} or inverted"
            )));
        }
        let mut v = start;
        while v <= end {
            bits |= 1 << v;
            v = v.saturating_add(step);
        }
    }
    Ok(bits)
}

fn has(bits: u64, v: u32) -> bool {
    bits & (1 << v) != 0
}

/// The smallest value of `bits` at or above `v`.
fn at_or_after(bits: u64, v: u32) -> Option<u32> {
    let above = bits >> v << v;
    (above != 0).then(|| above.trailing_zeros())
}

fn at(d: NaiveDate, h: u32, m: u32, s: u32) -> Option<NaiveDateTime> {
    d.and_hms_opt(h, m, s)
}

impl CronFields {
    fn day_matches(&self, d: NaiveDate) -> bool {
        has(self.days, d.day()) && has(self.weekdays, d.weekday().num_days_from_sunday())
    }

    /// The first wall-clock time after `after` (whole seconds) that every
    /// field allows, within [`SEARCH_YEARS`].
    fn next_match(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut t = after.with_nanosecond(0)? + Duration::seconds(1);
        let limit = t.year().checked_add(SEARCH_YEARS)?;
        while t.year() <= limit {
            let day = t.date();
            if !has(self.months, t.month()) {
                // The first day of the next allowed month.
                t = match at_or_after(self.months, t.month() + 1) {
                    Some(m) => at(NaiveDate::from_ymd_opt(t.year(), m, 1)?, 0, 0, 0)?,
                    None => at(
                        NaiveDate::from_ymd_opt(t.year() + 1, self.months.trailing_zeros(), 1)?,
                        0,
                        0,
                        0,
                    )?,
                };
                continue;
            }
            if !self.day_matches(day) {
                t = at(day.succ_opt()?, 0, 0, 0)?;
                continue;
            }
            let Some(h) = at_or_after(self.hours, t.hour()) else {
                t = at(day.succ_opt()?, 0, 0, 0)?;
                continue;
            };
            if h != t.hour() {
                t = at(day, h, 0, 0)?;
                continue;
            }
            let Some(m) = at_or_after(self.minutes, t.minute()) else {
                t = at(day, t.hour(), 0, 0)? + Duration::hours(1);
                continue;
            };
            if m != t.minute() {
                t = at(day, h, m, 0)?;
                continue;
            }
            let Some(s) = at_or_after(self.seconds, t.second()) else {
                t = at(day, h, m, 0)? + Duration::minutes(1);
                continue;
            };
            return at(day, h, m, s);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of a wall-clock time in `zone` (its first occurrence).
    fn wall(zone: &str, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        let tz = chrono_tz::Tz::from_str(zone).unwrap();
        tz.with_ymd_and_hms(y, mo, d, h, mi, s)
            .earliest()
            .unwrap()
            .timestamp()
    }

    fn next(expr: &str, from: i64, zone: &str) -> i64 {
        next_boundary(expr, from, Some(zone)).unwrap()
    }

    #[test]
    fn fields_match_all_together_day_of_month_and_weekday_alike() {
        let z = "UTC";
        let from = wall(z, 2026, 4, 19, 12, 30, 0); // a Sunday
        assert_eq!(next("* * * * *", from, z), from + 60);
        assert_eq!(next("*/5 * * * * *", from, z), from + 5);
        assert_eq!(next("0 9 * * 1-5", from, z), wall(z, 2026, 4, 20, 9, 0, 0));
        // Both the 13th and a Friday: the next Friday the 13th.
        assert_eq!(next("0 0 13 * 5", from, z), wall(z, 2026, 11, 13, 0, 0, 0));
        assert_eq!(next("0 0 1 1 *", from, z), wall(z, 2027, 1, 1, 0, 0, 0));
        // A single value with a step is that value alone, as upstream.
        assert_eq!(
            next("5/15 * * * *", from, z),
            wall(z, 2026, 4, 19, 13, 5, 0)
        );
        assert_eq!(next("0 0 29 2 *", from, z), wall(z, 2028, 2, 29, 0, 0, 0));
    }

    #[test]
    fn dst_gaps_move_forward_and_repeats_take_the_first() {
        let z = "America/New_York";
        // 2026-03-08: 02:00 -> 03:00. 02:30 does not exist: 03:00 instead.
        let before = wall(z, 2026, 3, 8, 1, 0, 0);
        assert_eq!(next("30 2 * * *", before, z), wall(z, 2026, 3, 8, 3, 0, 0));
        // 2026-11-01: 01:00-02:00 twice. 01:30 fires once, the second
        // time (standard time), as upstream.
        let before = wall(z, 2026, 11, 1, 0, 0, 0);
        let once = next("30 1 * * *", before, z);
        assert_eq!(once, wall(z, 2026, 11, 1, 1, 30, 0) + 3600);
        assert_eq!(next("30 1 * * *", once, z), wall(z, 2026, 11, 2, 1, 30, 0));
    }

    #[test]
    fn intervals_step_from_the_previous_boundary() {
        assert_eq!(next_boundary("@every 1s", 10, None).unwrap(), 11);
        assert_eq!(next_boundary("  @every 2d ", 0, None).unwrap(), 172_800);
        assert!(next_boundary(&format!("@every {}d", i64::MAX / 2), 0, None).is_err());
        assert!(next_boundary("@every 1s", i64::MAX, None).is_err());
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for bad in [
            "",
            "* * * *",
            "* * * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 7",
            "5-1 * * * *",
            "*/0 * * * *",
            "a * * * *",
            "1,,2 * * * *",
            "@every",
            "@every 0s",
            "@every 5",
            "@every s",
            "@every 5w",
            "@every -5s",
            "MON * * * *",
        ] {
            assert!(
                matches!(Schedule::parse(bad), Err(Error::InvalidOption(_))),
                "{bad:?}"
            );
        }
        for no_number_or_no_unit in ["@every 5", "@every s"] {
            let e = Schedule::parse(no_number_or_no_unit)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("for example '@every 30s'"),
                "{no_number_or_no_unit}: {e}"
            );
        }
        assert!(next_boundary("* * * * *", 0, Some("Mars/Olympus")).is_err());
        assert!(
            next_boundary("0 0 31 2 *", 0, Some("UTC")).is_err(),
            "never"
        );
    }
}
