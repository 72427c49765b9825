//! `ai-employee tasks …`: the task loop's operator commands.

/// `tasks health`: the loop's health from its snapshot and the last day's metrics.
pub mod health;
/// `tasks metrics`: throughput, error rate, durations and cost over a window of the log.
pub mod metrics;
