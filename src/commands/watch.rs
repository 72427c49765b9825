//! The watchers, each run as `ai-employee watch <name>` under the supervisor. They share
//! `common` (vault, heartbeat, SIGTERM, logging, exit 78) and the vault I/O in
//! `crate::vault` (atomic writes, frontmatter, layout) with the supervisor.

pub mod approvals;
pub mod common;
pub mod credentials;
pub mod filesystem;
pub mod gmail;
pub mod oauth;
pub mod sorted_index;
pub mod task_ledger;
pub mod tasks;
pub mod tls;
pub mod whatsapp;

use crate::cli::WatchCommand;

/// Run a watcher; returns the process exit code.
pub fn run(cmd: WatchCommand) -> i32 {
    match cmd {
        WatchCommand::Filesystem(args) => filesystem::run(args),
        WatchCommand::Approvals(args) => approvals::run(args),
        WatchCommand::Gmail(args) => gmail::run(args),
        WatchCommand::Whatsapp(args) => whatsapp::run(args),
    }
}
