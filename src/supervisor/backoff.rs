//! The restart delay: `initial × factor^(n−1)`, capped at `max` (pure).

use std::time::Duration;

use crate::config::BackoffSpec;

/// Delay before restart number `attempt` (1-based) of a crash series.
pub fn delay(spec: &BackoffSpec, attempt: u32) -> Duration {
    if attempt == 0 || spec.initial.is_zero() {
        return Duration::ZERO;
    }
    let exp = spec.factor.powi(attempt.saturating_sub(1).min(1024) as i32);
    let secs = spec.initial.as_secs_f64() * exp;
    if !secs.is_finite() || secs >= spec.max.as_secs_f64() {
        spec.max
    } else {
        Duration::try_from_secs_f64(secs).map_or(spec.max, |d| d.min(spec.max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sequence_is_2_4_8_16_32_60_60() {
        let spec = BackoffSpec::default();
        let got: Vec<u64> = (1..=8).map(|n| delay(&spec, n).as_secs()).collect();
        assert_eq!(got, vec![2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn zero_initial_restarts_at_once() {
        let spec = BackoffSpec {
            initial: Duration::ZERO,
            ..BackoffSpec::default()
        };
        assert_eq!(delay(&spec, 1), Duration::ZERO);
        assert_eq!(delay(&spec, 50), Duration::ZERO);
    }

    #[test]
    fn huge_attempt_counts_stay_capped() {
        let spec = BackoffSpec::default();
        assert_eq!(delay(&spec, u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn huge_durations_never_panic() {
        let spec = BackoffSpec {
            initial: Duration::MAX,
            factor: 100.0,
            max: Duration::MAX,
            reset_after: Duration::MAX,
        };
        for n in [1, 2, 100, u32::MAX] {
            assert_eq!(delay(&spec, n), Duration::MAX);
        }
        let nan = BackoffSpec {
            factor: f64::NAN,
            ..BackoffSpec::default()
        };
        assert_eq!(delay(&nan, 3), nan.max);
    }

    #[test]
    fn factor_one_is_constant() {
        let spec = BackoffSpec {
            factor: 1.0,
            initial: Duration::from_millis(300),
            ..BackoffSpec::default()
        };
        assert_eq!(delay(&spec, 7), Duration::from_millis(300));
    }
}
