//! When to try a transiently failing approval again (pure: no clock, no I/O).

use std::time::Duration;

/// Capped exponential backoff with a bounded number of attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first one included) before the approval goes to `Failed/`.
    pub max_attempts: u32,
    /// Delay after the first failed attempt; doubled after each further one.
    pub initial: Duration,
    /// Cap on the delay.
    pub max: Duration,
}

/// What to do after attempt number `attempt` (1-based) failed transiently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterTransient {
    /// Try again after this delay; the file stays in `Approved/`.
    RetryIn(Duration),
    /// No attempts left: `Failed/`.
    GiveUp,
}

impl RetryPolicy {
    pub fn after_transient(&self, attempt: u32) -> AfterTransient {
        if attempt >= self.max_attempts {
            return AfterTransient::GiveUp;
        }
        let doublings = attempt.saturating_sub(1).min(32);
        let delay = self
            .initial
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max)
            .min(self.max);
        AfterTransient::RetryIn(delay)
    }

    /// The whole schedule, for the docs and `--help` (delays between attempts).
    pub fn delays(&self) -> Vec<Duration> {
        (1..self.max_attempts)
            .filter_map(|a| match self.after_transient(a) {
                AfterTransient::RetryIn(d) => Some(d),
                AfterTransient::GiveUp => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial: Duration::from_secs(10),
            max: Duration::from_secs(120),
        }
    }

    #[test]
    fn doubles_up_to_the_cap_then_gives_up() {
        let p = policy(6);
        let secs: Vec<u64> = p.delays().iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [10, 20, 40, 80, 120]);
        assert_eq!(p.after_transient(6), AfterTransient::GiveUp);
        assert_eq!(p.after_transient(60), AfterTransient::GiveUp);
    }

    #[test]
    fn one_attempt_means_no_retry() {
        assert_eq!(policy(1).after_transient(1), AfterTransient::GiveUp);
        assert!(policy(1).delays().is_empty());
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = policy(u32::MAX);
        assert_eq!(
            p.after_transient(1000),
            AfterTransient::RetryIn(Duration::from_secs(120))
        );
    }
}
