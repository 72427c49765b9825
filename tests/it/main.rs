//! The one integration-test binary: real child processes, real signals, real files.

mod common;
mod config_errors;
mod dashboard;
mod supervisor;
mod units;
