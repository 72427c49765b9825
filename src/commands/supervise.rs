//! `ai-employee supervise`: run the process table in the foreground.

use std::path::Path;

use crate::config;
use crate::exit_codes;
use crate::logs::RotatingFile;
use crate::logs::system::{self, SystemLogOptions};
use crate::process;
use crate::supervisor::runtime::{Outcome, Runtime, TableLocation};
use crate::vault::lock::{LockError, VaultLock};
use crate::vault::{Vault, layout};

pub fn run(root: &Path, explicit: Option<&Path>) -> i32 {
    let vault = Vault::new(root.to_path_buf());
    // First run: create the vault's folders (never overwrites anything). Its template
    // files are written off the start-up path, below.
    if let Err(e) = layout::create_folders(&vault) {
        return super::fail(
            exit_codes::CANT_CREATE,
            format_args!("failed to create vault {}: {e}", root.display()),
        );
    }
    let explicit = explicit.map(super::absolute);
    let cfg = match config::load(root, explicit.as_deref()) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return exit_codes::CONFIG;
        }
    };
    let lock = match VaultLock::acquire(&vault.lock_file()) {
        Ok(l) => l,
        Err(e @ (LockError::HeldBy { .. } | LockError::Held { .. })) => {
            return super::fail(exit_codes::LOCKED, format_args!("{}: {e}", root.display()));
        }
        Err(e) => return super::fail(exit_codes::CANT_CREATE, e),
    };
    let syslog = RotatingFile::new(
        vault.system_log(),
        cfg.supervisor.log_max_size,
        cfg.supervisor.log_max_files,
    );
    system::install(SystemLogOptions {
        file: Some(syslog),
        console: true,
        level: system::level_from_env(),
        full_time: false,
    });

    let enabled = cfg.processes.iter().filter(|p| p.enabled).count();
    crate::supervisor::console::banner(root, &cfg.source.to_string(), cfg.processes.len(), enabled);
    tracing::info!(
        "supervisor starting (pid {}, version {}, table {})",
        std::process::id(),
        env!("CARGO_PKG_VERSION"),
        cfg.source
    );
    for r in process::records::kill_leftovers(&vault.children_record()) {
        tracing::warn!(
            child = r.name.as_str(),
            "killed process group {} left running by a previous supervisor",
            r.pgid
        );
    }
    // SAFETY: no thread has been started yet (the tokio runtime and the helper threads
    // come below), which is what forking without exec requires.
    let guardian = match unsafe { process::guardian::Guardian::fork_early() } {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!("failed to fork the orphan guardian: {e}; starting it by exec");
            None
        }
    };
    let templates_vault = vault.clone();
    let _ = std::thread::Builder::new()
        .name("vault-init".into())
        .spawn(move || {
            if let Err(e) = layout::write_templates(&templates_vault, config::DEFAULT_TABLE) {
                tracing::warn!("failed to write the vault's template files: {e}");
            }
        });
    process::raise_fd_limit();
    process::become_subreaper();

    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return super::fail(exit_codes::FAILURE, format_args!("failed to start: {e}")),
    };
    let runtime = Runtime::new(vault, TableLocation { explicit }, cfg, guardian);
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(&rt, runtime.run());
    drop(lock);
    match outcome {
        Ok(Outcome::Clean) => exit_codes::OK,
        Ok(Outcome::Forced) => exit_codes::FORCED,
        Err(e) => super::fail(exit_codes::FAILURE, format_args!("supervisor failed: {e}")),
    }
}
