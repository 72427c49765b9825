//! One module per subcommand; [`run`] dispatches and returns the exit code.

mod check;
mod init;
mod supervise;

use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command, DEFAULT_VAULT, VaultArg};

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Init { vault } => init::run(&resolve_vault(&vault)),
        Command::Check { vault, config } => check::run(&resolve_vault(&vault), config.as_deref()),
        Command::Supervise { vault, config } => {
            supervise::run(&resolve_vault(&vault), config.as_deref())
        }
        Command::Watch { watcher } => crate::watchers::run(watcher),
        Command::Guardian => crate::process::guardian::run_guardian(),
    }
}

/// `--vault`, else `$AI_EMPLOYEE_VAULT` (clap reads it), else `./AI_Employee_Vault`;
/// made absolute against the current directory.
pub fn resolve_vault(arg: &VaultArg) -> PathBuf {
    let p = arg
        .vault
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VAULT));
    absolute(&p)
}

pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Print a fatal error as one line on stderr and return its exit code.
pub(crate) fn fail(code: i32, msg: impl std::fmt::Display) -> i32 {
    eprintln!("ai-employee: {msg}");
    code
}
