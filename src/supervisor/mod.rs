//! Supervision: the pure per-child state machine and backoff, the system status derived
//! from the children, and the async runtime that turns OS events into machine events and
//! carries out the machine's actions.

pub mod backoff;
pub mod console;
pub mod dashboard_writer;
pub mod machine;
pub mod metrics;
pub mod notify;
pub mod runtime;
pub mod status;
