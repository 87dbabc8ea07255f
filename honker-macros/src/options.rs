//! The values of `#[job(..)]`'s options, checked: queue names, priority,
//! durations and backoffs.

use syn::{Expr, Lit, UnOp};

/// The rule `honker_core::validate_queue_name` enforces at run time, with
/// the same reasons (this crate cannot depend on `honker-core`): keep the
/// two in step. `None`: a valid name.
pub(crate) fn queue_name_error(name: &str) -> Option<&'static str> {
    const MAX_QUEUE_NAME: usize = 128; // honker_core's MAX_QUEUE_NAME
    if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > MAX_QUEUE_NAME {
        Some("must be at most 128 bytes")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b))
    {
        Some("may hold only ASCII letters, digits and _ - . : /")
    } else {
        None
    }
}

/// An integer literal, possibly negative, that fits an `i64`.
pub(crate) fn priority(e: &Expr) -> Result<i64, String> {
    let (negative, lit) = match e {
        Expr::Lit(l) => (false, &l.lit),
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => match &*u.expr {
            Expr::Lit(l) => (true, &l.lit),
            _ => return Err(PRIORITY.into()),
        },
        _ => return Err(PRIORITY.into()),
    };
    let Lit::Int(n) = lit else {
        return Err(PRIORITY.into());
    };
    let n: i128 = n.base10_parse().map_err(|e| e.to_string())?;
    i64::try_from(if negative { -n } else { n })
        .map_err(|_| format!("priority {n} does not fit in an i64"))
}

const PRIORITY: &str = "priority must be an integer literal, for example `priority = 10` \
                        (higher runs first; negative is allowed)";

/// Why a duration string was refused.
#[derive(Debug, PartialEq)]
pub(crate) enum DurationError {
    /// Not a whole number and a unit.
    Invalid,
    /// More milliseconds than a `u64` holds.
    TooLarge,
}

/// `"250ms"`, `"30s"`, `"5m"`, `"1h"`, `"2d"` (a space before the unit is
/// allowed) in milliseconds.
pub(crate) fn parse_millis(s: &str) -> Result<u64, DurationError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(DurationError::Invalid)?;
    let (num, unit) = s.split_at(split);
    let scale: u64 = match unit.trim_start() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(DurationError::Invalid),
    };
    if num.is_empty() {
        return Err(DurationError::Invalid);
    }
    // Only digits: the one possible error is a number beyond u64.
    let n: u64 = num.parse().map_err(|_| DurationError::TooLarge)?;
    n.checked_mul(scale).ok_or(DurationError::TooLarge)
}

fn duration_message(s: &str, e: DurationError, example: &str) -> String {
    match e {
        DurationError::Invalid => format!(
            "invalid duration {s:?}: write a whole number and a unit, \
             one of ms, s, m, h, d (for example {example})"
        ),
        DurationError::TooLarge => format!("duration {s:?} is too large"),
    }
}

/// Whole seconds, or the whole seconds to use instead (rounded up).
fn whole_secs(ms: u64) -> Result<u64, u64> {
    if ms.is_multiple_of(1000) {
        Ok(ms / 1000)
    } else {
        Err(ms.div_ceil(1000))
    }
}

const WHOLE_SECONDS: &str = "the honker format stores due times in whole seconds";

/// `timeout`: an in-process timer, so any number of milliseconds above 0.
pub(crate) fn timeout(s: &str) -> Result<u64, String> {
    match parse_millis(s) {
        Ok(0) => Err(format!(
            "timeout {s:?} would stop every run at once: use at least \"1ms\", \
             or leave `timeout` out for no limit"
        )),
        Ok(ms) => Ok(ms),
        Err(e) => Err(duration_message(s, e, "\"30s\" or \"250ms\"")),
    }
}

/// A due time on disk, so whole seconds, at least one: option `option`
/// from `s`, with `example` values for a malformed one and `when_zero`
/// saying what a zero would do.
fn whole_secs_at_least_one(
    option: &str,
    s: &str,
    example: &str,
    when_zero: &str,
) -> Result<u64, String> {
    let ms = parse_millis(s).map_err(|e| duration_message(s, e, example))?;
    match whole_secs(ms) {
        Ok(0) => Err(format!("{option} {s:?} {when_zero}")),
        Ok(secs) => Ok(secs),
        Err(up) => Err(format!(
            "{option} {s:?} is not a whole number of seconds: {WHOLE_SECONDS}, so use \"{up}s\""
        )),
    }
}

/// `expires`: a due time on disk.
pub(crate) fn expires(s: &str) -> Result<u64, String> {
    whole_secs_at_least_one(
        "expires",
        s,
        "\"1h\" or \"7d\"",
        "would expire every job before it runs: use at least \"1s\"",
    )
}

/// `result_ttl`: how long a saved result is kept, a due time on disk
/// (`expires_at`).
pub(crate) fn result_ttl(s: &str) -> Result<u64, String> {
    whole_secs_at_least_one(
        "result_ttl",
        s,
        "\"1h\" or \"7d\"",
        "would drop every result as it is saved: use at least \"1s\"",
    )
}

/// `unique_period`: a due time on disk.
pub(crate) fn unique_period(s: &str) -> Result<u64, String> {
    whole_secs_at_least_one(
        "unique_period",
        s,
        "\"1h\" or \"1d\"",
        "would never hold: use at least \"1s\", or leave it out",
    )
}

/// A retry delay in whole seconds.
#[derive(Debug, PartialEq)]
pub(crate) enum Backoff {
    Fixed { secs: u64 },
    Exponential { base_secs: u64, max_secs: u64 },
}

/// `backoff`: `"5s"` (fixed, `"0s"` allowed) or `"exponential(2s, 1h)"`;
/// retry due times are on disk, so whole seconds.
pub(crate) fn backoff(s: &str) -> Result<Backoff, String> {
    let invalid = || {
        format!("invalid backoff {s:?}: write a fixed delay like \"5s\" or \"exponential(2s, 1h)\"")
    };
    let millis = |part: &str| {
        parse_millis(part).map_err(|e| match e {
            DurationError::Invalid => invalid(),
            DurationError::TooLarge => format!("invalid backoff {s:?}: {part:?} is too large"),
        })
    };
    let t = s.trim();
    let Some(args) = t
        .strip_prefix("exponential")
        .map(str::trim_start)
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.strip_suffix(')'))
    else {
        return match whole_secs(millis(t)?) {
            Ok(secs) => Ok(Backoff::Fixed { secs }),
            Err(up) => Err(format!(
                "backoff {s:?} is not a whole number of seconds: {WHOLE_SECONDS}, so use \"{up}s\""
            )),
        };
    };
    let parts: Vec<&str> = args.split(',').map(str::trim).collect();
    let [base, max] = parts[..] else {
        return Err(invalid());
    };
    let (base_ms, max_ms) = (millis(base)?, millis(max)?);
    match (whole_secs(base_ms), whole_secs(max_ms)) {
        (Ok(0), _) => Err(format!(
            "invalid backoff {s:?}: the base delay must be at least \"1s\" \
             (a fixed \"0s\" retries at once)"
        )),
        (Ok(base_secs), Ok(max_secs)) if max_secs < base_secs => Err(format!(
            "invalid backoff {s:?}: the cap ({max}) must not be less than the base ({base})"
        )),
        (Ok(base_secs), Ok(max_secs)) => Ok(Backoff::Exponential {
            base_secs,
            max_secs,
        }),
        (b, m) => {
            let fix = |r: Result<u64, u64>, part: &str| match r {
                Ok(_) => part.to_string(),
                Err(up) => format!("{up}s"),
            };
            Err(format!(
                "backoff {s:?} is not in whole seconds: {WHOLE_SECONDS}, so use \
                 \"exponential({}, {})\"",
                fix(b, base),
                fix(m, max)
            ))
        }
    }
}
