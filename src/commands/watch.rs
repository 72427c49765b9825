//! `ai-employee watch <name>`: run one watcher (the supervisor starts these as its
//! children). Each watcher is its own crate under `watchers/`, sharing the vault crate
//! (atomic writes, frontmatter, layout, the watcher start-up) with the supervisor.

use crate::cli::WatchCommand;

/// Run a watcher; returns the process exit code.
pub fn run(cmd: WatchCommand) -> i32 {
    match cmd {
        WatchCommand::Filesystem(args) => ai_employee_filesystem::run(args),
        WatchCommand::Approvals(args) => ai_employee_approvals::run(args),
        WatchCommand::Gmail(args) => ai_employee_gmail::run(args),
        WatchCommand::Whatsapp(args) => ai_employee_whatsapp::run(args),
        WatchCommand::Github(args) => ai_employee_github::run(args),
    }
}
