//! Command-line types only; behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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

#[derive(Debug, Args, Clone)]
pub struct VaultArg {
    /// The vault folder [default: $AI_EMPLOYEE_VAULT, else ./AI_Employee_Vault]
    #[arg(long, value_name = "DIR", env = "AI_EMPLOYEE_VAULT")]
    pub vault: Option<PathBuf>,
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
    /// Run one watcher (the supervisor starts these as its children)
    Watch {
        #[command(subcommand)]
        watcher: WatchCommand,
    },
    /// Internal: the orphan guardian started by `supervise`
    #[command(name = "__guardian", hide = true)]
    Guardian,
}

/// The watchers; each one's options live in its own module under `watchers/`.
#[derive(Debug, Subcommand)]
pub enum WatchCommand {
    /// Inbox/ → task files in Needs_Action/
    Filesystem(crate::watchers::filesystem::Args),
    /// Important unread mail → EMAIL_*.md tasks
    Gmail(crate::watchers::gmail::Args),
    /// WhatsApp Cloud API webhook → WHATSAPP_*.md tasks
    Whatsapp(crate::watchers::whatsapp::Args),
    /// Executes what a human moved into Approved/ (the safety valve)
    Approvals(crate::watchers::approvals::Args),
}

/// The default vault when neither `--vault` nor `$AI_EMPLOYEE_VAULT` is set.
pub const DEFAULT_VAULT: &str = "AI_Employee_Vault";
