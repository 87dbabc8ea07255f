//! Wall-clock time as the format counts it: whole unix seconds. Checked:
//! a due time from the file can be anything, and none of it may panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Now, in unix seconds (0 before 1970, `i64::MAX` past its range).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// How long from now until unix second `at`, plus a few milliseconds so
/// that SQLite's `unixepoch()` reads `at` when the wait ends. Zero plus
/// that margin when `at` has passed.
pub(crate) fn until_due(at: i64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let at = Duration::from_secs(u64::try_from(at).unwrap_or(0));
    at.saturating_sub(now)
        .saturating_add(Duration::from_millis(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_from_any_value_are_checked() {
        assert_eq!(until_due(i64::MIN), Duration::from_millis(5));
        assert_eq!(until_due(0), Duration::from_millis(5));
        let far = until_due(i64::MAX);
        assert!(far > Duration::from_secs(1 << 62), "{far:?}");
        let soon = until_due(unix_now() + 2);
        assert!(soon > Duration::from_millis(1000) && soon <= Duration::from_millis(2005));
    }
}
