//! `ai-employee agent [--once] [--dry-run]`: the task loop (src/agent/).

use std::path::Path;

use ai_employee_vault::cli::VaultArg;
use ai_employee_vault::exit_codes;
use ai_employee_vault::watcher::{WatcherError, run_watcher};

use crate::agent::engine::{self, Options};
use crate::config;

pub fn run(vault: &VaultArg, explicit: Option<&Path>, once: bool, dry_run: bool) -> i32 {
    let root = ai_employee_vault::cli::resolve_vault(vault);
    let mut settings = match config::load(&root, explicit) {
        Ok(cfg) => cfg.agent,
        Err(errors) => {
            eprintln!("{errors}");
            return exit_codes::CONFIG;
        }
    };
    // With a queue, the command goes to the workers as the table writes it (each resolves
    // it on its own host); this host may not have the agent at all.
    let queued = settings.queue.url.is_some();
    run_watcher("agent", vault, |ctx| {
        let program = settings.command.first().map(String::as_str).unwrap_or("");
        let path = settings.env.get("PATH").map(String::as_str);
        let resolved = crate::process::spawn::resolve_program(program, ctx.vault().root(), path)
            .and_then(|p| {
                use std::os::unix::fs::PermissionsExt;
                match std::fs::metadata(&p) {
                    Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(p),
                    Ok(_) => Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        format!("{} is not an executable file", p.display()),
                    )),
                    Err(e) => Err(e),
                }
            });
        match resolved {
            Ok(p) if !queued => settings.command[0] = p.display().to_string(),
            Ok(_) => {}
            Err(e) => {
                let why = format!(
                    "the agent command {program:?} cannot be started ({e}); install it or set \
                 [agent] command (see docs/agent.md, \"Setting up the agent\")"
                );
                if !dry_run && !queued {
                    return Err(WatcherError::Setup(why));
                }
                if queued {
                    tracing::warn!(
                        "{why}; runs go to workers, but one run here while the queue is \
                         unreachable (queue_unreachable = \"local\") would fail"
                    );
                } else {
                    tracing::warn!("{why}");
                }
            }
        }
        engine::run(ctx, settings, Options { once, dry_run })
    })
}
