//! Command-line types only; behaviour lives in `commands/`.

use std::path::PathBuf;

use ai_employee_vault::cli::VaultArg;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ai-employee",
    version,
    about = "Keeps a personal AI employee's watchers running"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the vault's folders, Dashboard.md and process table (never overwrites)
    Init {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Validate the process table without starting anything
    Check {
        #[command(flatten)]
        vault: VaultArg,
        /// Process table [default: <vault>/ai-employee.toml if present, else built-in]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run the process table in the foreground until Ctrl+C or SIGTERM
    Supervise {
        #[command(flatten)]
        vault: VaultArg,
        /// Process table [default: <vault>/ai-employee.toml if present, else built-in]
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Show each child's state, pid, uptime, restarts, last exit, memory and CPU
    ///
    /// Exit status: 0 healthy, 1 degraded (a child is restarting, needs setup, gave up or
    /// failed), 3 no supervisor is running on the vault, 4 status unknown (the socket
    /// belongs to another user, or the supervisor did not answer).
    Status {
        #[command(flatten)]
        vault: VaultArg,
        /// Print the report as JSON (the control socket's status object)
        #[arg(long)]
        json: bool,
        /// Redraw the report in place every --interval until Ctrl+C
        #[arg(long, short = 'w')]
        watch: bool,
        /// How often --watch redraws
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = ai_employee_vault::units::parse_positive_duration)]
        interval: std::time::Duration,
    },
    /// Start a child that is stopped, needs setup, gave up or exited
    Start {
        #[command(flatten)]
        vault: VaultArg,
        /// The process name from the table
        name: String,
    },
    /// Stop a child; it stays stopped until `start` or the supervisor's next start
    Stop {
        #[command(flatten)]
        vault: VaultArg,
        /// The process name from the table
        name: String,
    },
    /// Stop a child (if running) and start it again at once
    Restart {
        #[command(flatten)]
        vault: VaultArg,
        /// The process name from the table
        name: String,
    },
    /// Re-read the process table of the running supervisor (the same as SIGHUP)
    Reload {
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Print the system log, or one child's log, and optionally follow it
    Logs {
        #[command(flatten)]
        vault: VaultArg,
        /// A process name (its Logs/<name>.log); without one, Logs/system.log
        name: Option<String>,
        /// Keep printing what is appended, across rotations, until Ctrl+C
        #[arg(long, short = 'f')]
        follow: bool,
        /// How many of the last lines to print first
        #[arg(long, short = 'n', value_name = "N", default_value_t = 20)]
        lines: usize,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) generated from this command line
    Man,
    /// Run one watcher (the supervisor starts these as its children)
    Watch {
        #[command(subcommand)]
        watcher: WatchCommand,
    },
    /// Internal: the orphan guardian started by `supervise`
    #[command(name = "__guardian", hide = true)]
    Guardian,
}

/// The watchers; each one's options live in its own crate under `watchers/`.
#[derive(Debug, Subcommand)]
pub enum WatchCommand {
    /// Inbox/ → task files in Needs_Action/
    Filesystem(ai_employee_filesystem::Args),
    /// Important unread mail → EMAIL_*.md tasks
    Gmail(ai_employee_gmail::Args),
    /// WhatsApp Cloud API webhook → WHATSAPP_*.md tasks
    Whatsapp(ai_employee_whatsapp::Args),
    /// Executes what a human moved into Approved/ (the safety valve)
    Approvals(ai_employee_approvals::Args),
}
