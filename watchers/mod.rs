//! The watchers, each run as `ai-employee watch <name>` under the supervisor.
//!
//! None is implemented in this build yet: each exits 78 ("not available in this build"),
//! which the supervisor shows as needing setup and does not restart.

use crate::cli::WatcherName;
use crate::exit_codes;

/// Run a watcher; returns the process exit code.
pub fn run(name: WatcherName) -> i32 {
    eprintln!(
        "ai-employee watch {}: not available in this build",
        name.as_str()
    );
    exit_codes::CONFIG
}
