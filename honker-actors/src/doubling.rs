//! [`DoublingDelay`]: how long to wait before trying again after a failure.

use std::time::Duration;

/// A pause that starts at `first`, doubles after each failure up to `max`,
/// and starts over after a success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DoublingDelay {
    first: Duration,
    max: Duration,
    current: Duration,
}

impl DoublingDelay {
    /// Start at `first` (never more than `max`).
    pub fn new(first: Duration, max: Duration) -> Self {
        let first = first.min(max);
        DoublingDelay {
            first,
            max,
            current: first,
        }
    }

    /// The pause to take now; the next one is twice as long (up to the
    /// maximum).
    pub fn take(&mut self) -> Duration {
        let now = self.current;
        self.current = self.current.saturating_mul(2).min(self.max);
        now
    }

    /// The pause [`take`](Self::take) would return, without doubling.
    pub fn peek(&self) -> Duration {
        self.current
    }

    /// After a success: start over from the first pause.
    pub fn reset(&mut self) {
        self.current = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_to_its_cap_and_starts_over_after_a_success() {
        let ms = Duration::from_millis;
        let mut d = DoublingDelay::new(ms(10), ms(35));
        assert_eq!(d.peek(), ms(10));
        assert_eq!(d.take(), ms(10));
        assert_eq!(d.peek(), ms(20), "peek shows the next pause");
        assert_eq!(d.peek(), ms(20), "and does not double it");
        assert_eq!(d.take(), ms(20));
        assert_eq!(d.take(), ms(35));
        assert_eq!(d.take(), ms(35));
        d.reset();
        assert_eq!(d.take(), ms(10));
        assert_eq!(
            DoublingDelay::new(ms(90), ms(35)).take(),
            ms(35),
            "first is capped"
        );
    }
}
