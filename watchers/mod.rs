//! The watchers, each run as `ai-employee watch <name>` under the supervisor. They share
//! `common` (vault, heartbeat, SIGTERM, logging, exit 78) and the vault I/O in
//! `crate::vault` (atomic writes, frontmatter, layout) with the supervisor.

pub mod approvals;
pub mod common;
pub mod filesystem;

use crate::cli::WatchCommand;
use crate::exit_codes;

/// Run a watcher; returns the process exit code.
pub fn run(cmd: WatchCommand) -> i32 {
    match cmd {
        WatchCommand::Filesystem(args) => filesystem::run(args),
        WatchCommand::Approvals(args) => approvals::run(args),
        WatchCommand::Gmail(_) => not_available("gmail"),
        WatchCommand::Whatsapp(_) => not_available("whatsapp"),
    }
}

fn not_available(name: &str) -> i32 {
    eprintln!("ai-employee watch {name}: not available in this build");
    exit_codes::CONFIG
}
