//! Durations as the format writes them: whole seconds or milliseconds,
//! rounded up, never past [`MAX_DURATION`], the same in debug and release
//! builds.

use std::time::Duration;

/// The longest duration honker accepts or writes: 200 years of 365 days
/// (6,307,200,000 s).
///
/// An enqueue whose `delay` or `expires` is longer is rejected
/// ([`Error::InvalidOption`](crate::Error::InvalidOption)); a claim visibility, heartbeat extension,
/// retry delay or result time-to-live that is longer is clamped to it, so
/// the times written stay integers that every binding can compare (a
/// longer one could overflow SQLite's `unixepoch() + ?` into a REAL).
///
/// ```
/// use std::time::Duration;
/// use honker_core::{enqueue, EnqueueOptions, Error, MAX_DURATION};
/// let conn = honker_core::open_in_memory().unwrap();
/// let ok = EnqueueOptions::default().expires(MAX_DURATION);
/// assert!(enqueue(&conn, "q", "1", &ok).is_ok());
/// let too_long = EnqueueOptions::default().expires(Duration::MAX);
/// assert!(matches!(enqueue(&conn, "q", "1", &too_long), Err(Error::InvalidOption(_))));
/// ```
pub const MAX_DURATION: Duration = Duration::from_secs(200 * 365 * 86_400);

/// Whole milliseconds, rounded up; saturating (the same in debug and
/// release builds).
///
/// ```
/// use std::time::Duration;
/// use honker_core::durations::ceil_millis;
/// assert_eq!(ceil_millis(Duration::from_micros(1001)), 2);
/// assert_eq!(ceil_millis(Duration::MAX), i64::MAX);
/// ```
pub fn ceil_millis(d: Duration) -> i64 {
    let ms = d
        .as_millis()
        .saturating_add(u128::from(!d.subsec_nanos().is_multiple_of(1_000_000)));
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Whole seconds, rounded up; saturating (the same in debug and release
/// builds).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(honker_core::durations::ceil_secs(Duration::from_millis(1001)), 2);
/// ```
pub fn ceil_secs(d: Duration) -> i64 {
    let s = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
    i64::try_from(s).unwrap_or(i64::MAX)
}

/// Whole seconds, rounded up, of `d` clamped to [`MAX_DURATION`].
///
/// ```
/// use std::time::Duration;
/// use honker_core::{durations::clamped_secs, MAX_DURATION};
/// assert_eq!(clamped_secs(Duration::MAX), MAX_DURATION.as_secs() as i64);
/// ```
pub fn clamped_secs(d: Duration) -> i64 {
    ceil_secs(d.min(MAX_DURATION))
}

/// Whole milliseconds, rounded up, of `d` clamped to [`MAX_DURATION`].
///
/// ```
/// use std::time::Duration;
/// use honker_core::{durations::clamped_millis, MAX_DURATION};
/// assert_eq!(clamped_millis(Duration::MAX), MAX_DURATION.as_millis() as i64);
/// ```
pub fn clamped_millis(d: Duration) -> i64 {
    ceil_millis(d.min(MAX_DURATION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_up_saturates_the_same_in_debug_and_release() {
        assert_eq!(ceil_secs(Duration::MAX), i64::MAX);
        assert_eq!(ceil_millis(Duration::MAX), i64::MAX);
        assert_eq!(ceil_secs(Duration::from_millis(1001)), 2);
        assert_eq!(ceil_millis(Duration::from_nanos(1_000_001)), 2);
        assert_eq!(
            ceil_millis(Duration::from_micros(500)),
            1,
            "a part of a millisecond is one"
        );
        assert_eq!(
            ceil_millis(Duration::from_millis(2)),
            2,
            "whole milliseconds stay"
        );
        assert_eq!(ceil_secs(Duration::ZERO), 0);
    }

    #[test]
    fn clamping_stops_at_max_duration() {
        let max_secs = i64::try_from(MAX_DURATION.as_secs()).unwrap();
        assert_eq!(clamped_secs(Duration::MAX), max_secs);
        assert_eq!(clamped_millis(Duration::MAX), max_secs * 1000);
        assert_eq!(clamped_secs(Duration::from_secs(5)), 5);
        assert_eq!(MAX_DURATION.as_secs(), 6_307_200_000);
    }
}
