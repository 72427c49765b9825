//! One module per subcommand; [`run`] dispatches and returns the exit code.

mod agent;
mod check;
mod control;
mod init;
mod logs;
pub mod setup;
pub mod status;
mod supervise;
pub mod tasks;
mod watch;
mod worker;
mod workers;

use ai_employee_vault::cli::resolve_vault;

use crate::cli::{Cli, Command};

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
        Command::Agent {
            vault,
            config,
            once,
            dry_run,
        } => agent::run(&vault, config.as_deref(), once, dry_run),
        Command::Tasks {
            vault,
            json,
            watch,
            verbose,
            interval,
            command,
        } => tasks::run(
            &resolve_vault(&vault),
            command,
            json,
            watch,
            verbose,
            interval,
        ),
        Command::Worker {
            queue,
            concurrency,
            name,
            credentials,
            claim_timeout,
            work_dir,
            allow_program,
            keep_scratch,
        } => worker::run(worker::Args {
            queue,
            concurrency,
            name,
            credentials,
            claim_timeout,
            work_dir,
            allow_program,
            keep_scratch,
        }),
        Command::Workers {
            vault,
            config,
            json,
        } => workers::run(&resolve_vault(&vault), config.as_deref(), json),
        Command::Setup { vault, part } => setup::run(
            &resolve_vault(&ai_employee_vault::cli::VaultArg { vault }),
            part,
        ),
        Command::Completions { shell } => {
            let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "ai-employee", &mut std::io::stdout());
            ai_employee_vault::exit_codes::OK
        }
        Command::Man => {
            let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ai_employee_vault::exit_codes::OK,
                Err(e) => fail(ai_employee_vault::exit_codes::FAILURE, e),
            }
        }
        Command::Watch { watcher } => watch::run(watcher),
        Command::Guardian => crate::process::guardian::run_guardian(),
    }
}

/// Print a fatal error as one line on stderr and return its exit code.
pub(crate) fn fail(code: i32, msg: impl std::fmt::Display) -> i32 {
    eprintln!("ai-employee: {msg}");
    code
}
