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
mod top;
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
        Command::Top { vault, interval } => top::run(&resolve_vault(&vault), interval),
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
            containers,
        } => worker::run(worker::Args {
            queue,
            concurrency,
            name,
            credentials,
            claim_timeout,
            work_dir,
            allow_program,
            keep_scratch,
            containers,
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
        Command::Man { dir } => {
            let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            use ai_employee_vault::exit_codes::{CANT_CREATE, FAILURE, OK};
            let written = match &dir {
                Some(dir) => clap_mangen::generate_to(cmd, dir).map_err(|e| {
                    let msg = format!("failed to write the man pages into {}: {e}", dir.display());
                    (CANT_CREATE, msg)
                }),
                None => clap_mangen::Man::new(cmd)
                    .render(&mut std::io::stdout())
                    .map_err(|e| (FAILURE, e.to_string())),
            };
            match written {
                Ok(()) => OK,
                Err((code, e)) => fail(code, e),
            }
        }
        Command::Watch { watcher } => watch::run(watcher),
        Command::Guardian => crate::process::guardian::run_guardian(),
    }
}

/// Why an action failed: its exit code and a one-line message (without the
/// `ai-employee: ` prefix). Commands that `top` also runs return this instead of printing.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    /// Print the message on stderr; returns the exit code.
    pub fn report(self) -> i32 {
        fail(self.code, self.message)
    }
}

/// The one-thread tokio runtime a command runs on; if it cannot be made, the one line
/// `<context>: <why>` is printed and the exit code (1) comes back.
pub(crate) fn runtime(context: &str) -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            fail(
                ai_employee_vault::exit_codes::FAILURE,
                format!("{context}: {e}"),
            )
        })
}

/// Print a fatal error as one line on stderr and return its exit code.
pub(crate) fn fail(code: i32, msg: impl std::fmt::Display) -> i32 {
    eprintln!("ai-employee: {msg}");
    code
}
