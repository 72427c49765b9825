//! Supervision: the pure per-child state machine and backoff, the async runtime that
//! turns OS events into machine events and carries out the machine's actions, and the
//! reporter that tells people what happened.

pub mod backoff;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod machine;
pub mod metrics;
pub mod report;
pub mod runtime;
