//! The one integration-test binary: real child processes, real signals, real files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent;
mod approvals;
mod certs;
mod claude_cli;
mod common;
mod config_errors;
mod dashboard;
mod dashboard_archive;
mod failures;
mod frozen_disk;
mod fs_watcher;
mod github;
mod gmail;
mod limits;
mod metrics;
mod oauth;
mod operator;
mod podman;
mod postfix;
mod queue;
mod queue_loop;
mod service_units;
mod setup;
mod smtp_wire;
mod supervisor;
mod tasks_metrics;
mod top;
mod vault_symlinks;
mod whatsapp;
mod yaml_readers;
