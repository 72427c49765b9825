//! The one integration-test binary: real child processes, real signals, real files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod approvals;
mod common;
mod config_errors;
mod dashboard;
mod fs_watcher;
mod gmail;
mod oauth;
mod operator;
mod supervisor;
mod units;
mod whatsapp;
mod yaml_readers;
