//! Command-line types only; behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Run one watcher (started by the supervisor)
    Watch {
        #[arg(value_enum)]
        watcher: WatcherName,
        #[command(flatten)]
        vault: VaultArg,
    },
    /// Internal: the orphan guardian started by `supervise`
    #[command(name = "__guardian", hide = true)]
    Guardian,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatcherName {
    Filesystem,
    Gmail,
    Whatsapp,
    Approvals,
}

impl WatcherName {
    pub fn as_str(self) -> &'static str {
        match self {
            WatcherName::Filesystem => "filesystem",
            WatcherName::Gmail => "gmail",
            WatcherName::Whatsapp => "whatsapp",
            WatcherName::Approvals => "approvals",
        }
    }
}

/// The default vault when neither `--vault` nor `$AI_EMPLOYEE_VAULT` is set.
pub const DEFAULT_VAULT: &str = "AI_Employee_Vault";
