//! Durations as an operator types them: `90s`, `5m`, `1h30m`, `2d`, `250ms`.

use std::time::Duration;

/// Parse a duration: one or more `<whole number><unit>` parts, units `ms`,
/// `s`, `m`, `h`, `d`. Overflow, a missing unit and anything past
/// [`honker_actors::core::MAX_DURATION`] are errors.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; write e.g. 90s, 5m, 1h30m".into());
    }
    let mut total: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{text:?}: expected a number at {rest:?}"));
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms_per: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("{text:?}: a number needs a unit (ms, s, m, h, d)")),
            other => return Err(format!("{text:?}: unknown unit {other:?} (ms, s, m, h, d)")),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(ms_per)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("{text:?}: too long"))?;
    }
    let max = honker_actors::core::MAX_DURATION.as_millis();
    if total > max {
        return Err(format!(
            "{text:?} is longer than the longest duration honker takes ({} days)",
            max / 86_400_000
        ));
    }
    let ms = u64::try_from(total).map_err(|_| format!("{text:?}: too long"))?;
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_add_up() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_and_extreme_durations_are_refused_with_a_reason() {
        for bad in ["", "10", "s", "10x", "1h-5m", "-5s", "1.5h"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("99999999999999999999999999999999999999999d")
            .unwrap_err()
            .contains("too"));
        assert!(parse("100000000d").unwrap_err().contains("longest"));
    }
}
