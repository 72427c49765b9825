//! One module per subcommand; [`run`] dispatches and returns the exit code.

mod check;
mod control;
mod init;
mod logs;
pub mod status;
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
        Command::Status {
            vault,
            json,
            watch,
            interval,
        } => status::run(&resolve_vault(&vault), json, watch, interval),
        Command::Start { vault, name } => {
            control::run(&resolve_vault(&vault), control::Verb::Start, &name)
        }
        Command::Stop { vault, name } => {
            control::run(&resolve_vault(&vault), control::Verb::Stop, &name)
        }
        Command::Restart { vault, name } => {
            control::run(&resolve_vault(&vault), control::Verb::Restart, &name)
        }
        Command::Reload { vault } => control::reload(&resolve_vault(&vault)),
        Command::Logs {
            vault,
            name,
            follow,
            lines,
        } => logs::run(&resolve_vault(&vault), name.as_deref(), follow, lines),
        Command::Completions { shell } => {
            let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "ai-employee", &mut std::io::stdout());
            crate::exit_codes::OK
        }
        Command::Man => {
            let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => crate::exit_codes::OK,
                Err(e) => fail(crate::exit_codes::FAILURE, e),
            }
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
