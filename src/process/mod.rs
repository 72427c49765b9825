//! The only place that spawns, signals and reaps processes.

pub mod guardian;
