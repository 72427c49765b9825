//! `ai-employee supervise`: run the process table in the foreground.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use ai_employee_vault::exit_codes;
use ai_employee_vault::lock::{LockError, VaultLock};
use ai_employee_vault::logs::system::{self, SystemLogOptions};
use ai_employee_vault::logs::{LogWriter, RotatingFile};
use ai_employee_vault::{Vault, layout};

use crate::config;
use crate::process;
use crate::supervisor::runtime::{Outcome, Runtime, TableLocation};

/// How long a stop waits for queued log lines to reach their files.
const LOG_FLUSH_MAX: Duration = Duration::from_secs(2);

pub fn run(root: &Path, explicit: Option<&Path>) -> i32 {
    // A stop requested while we are still starting (before the event loop listens) must
    // not kill us with the default action: note it and act on it once running.
    let early_stop = Arc::new(AtomicBool::new(false));
    // A reload requested during start-up is moot (the table is read below anyway), but
    // SIGHUP must not end the supervisor by its default action either.
    let reload_moot = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGTERM, &early_stop),
        (signal_hook::consts::SIGINT, &early_stop),
        (signal_hook::consts::SIGHUP, &reload_moot),
    ] {
        if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
            return super::fail(
                exit_codes::FAILURE,
                format_args!("failed to handle signals: {e}"),
            );
        }
    }
    let vault = Vault::new(root.to_path_buf());
    // First run: create the vault's folders (never overwrites anything). Its template
    // files are written off the start-up path, below.
    // `Logs/` or `.ai-employee/` as a symlink: refuse to start (nothing is written
    // through it). Other working folders as symlinks: their watchers refuse to run.
    let folders = match layout::create_folders(&vault) {
        Ok(report) => report,
        Err(e) if ai_employee_vault::nofollow::is_symlink_error(&e) => {
            return super::fail(exit_codes::CONFIG, e);
        }
        Err(e) => {
            return super::fail(
                exit_codes::CANT_CREATE,
                format_args!("failed to create vault {}: {e}", root.display()),
            );
        }
    };
    // What the previous run left, read before the lock is taken (it writes our pid).
    let previous = PreviousRun::look(&vault);
    let lock = match VaultLock::acquire(&vault.lock_file()) {
        Ok(l) => l,
        Err(e @ (LockError::HeldBy { .. } | LockError::Held { .. })) => {
            return super::fail(exit_codes::LOCKED, format_args!("{}: {e}", root.display()));
        }
        Err(e) => return super::fail(exit_codes::CANT_CREATE, e),
    };
    // The guardian is forked now, while this process is single-threaded and its heap is
    // still small (the forked guardian keeps a copy of every page mapped at this point).
    // SAFETY: no thread has been started yet (the tokio runtime and the helper threads
    // come below), which is what forking without exec requires.
    let guardian = match unsafe { process::guardian::Guardian::fork_early() } {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("ai-employee: failed to fork the orphan guardian: {e}; starting it by exec");
            None
        }
    };
    let explicit = explicit.map(ai_employee_vault::cli::absolute);
    let cfg = match config::load(root, explicit.as_deref()) {
        Ok(c) => c,
        Err(errors) => {
            if let Some(g) = guardian {
                g.dismiss();
            }
            eprintln!("{errors}");
            return exit_codes::CONFIG;
        }
    };
    let syslog = RotatingFile::new(
        vault.system_log(),
        cfg.supervisor.log_max_size,
        cfg.supervisor.log_max_files,
    );
    // Every log file is written on this thread, never on the event loop's (a stalled
    // disk would stop supervision). Started after the guardian's fork, like every thread.
    let logs = match LogWriter::start() {
        Ok(w) => w,
        Err(e) => {
            if let Some(g) = guardian {
                g.dismiss();
            }
            return super::fail(
                exit_codes::FAILURE,
                format_args!("failed to start the log writer: {e}"),
            );
        }
    };
    system::install(SystemLogOptions {
        file: Some((logs.clone(), syslog)),
        console: true,
        level: system::level_from_env(),
        full_time: false,
    });

    let enabled = cfg.processes.iter().filter(|p| p.enabled).count();
    let setup: Vec<(&str, String, String)> = super::setup::missing(root, &cfg)
        .into_iter()
        .map(|(part, state)| (part.name(), state.to_string(), part.command()))
        .collect();
    crate::supervisor::report::console::banner(
        root,
        &cfg.source.to_string(),
        cfg.processes.len(),
        enabled,
        &setup,
    );
    tracing::info!(
        "supervisor starting (pid {}, version {}, table {})",
        std::process::id(),
        env!("CARGO_PKG_VERSION"),
        cfg.source
    );
    for line in &folders.refused {
        tracing::warn!("{line}; the watchers that use it will refuse to run");
    }
    for r in process::records::kill_leftovers(&vault.children_record()) {
        tracing::warn!(
            child = r.name.as_str(),
            "killed process group {} left running by a previous supervisor",
            r.pgid
        );
    }
    let templates_vault = vault.clone();
    if let Err(e) = std::thread::Builder::new()
        .name("vault-init".into())
        .spawn(move || {
            if let Err(e) = layout::write_templates(&templates_vault, config::DEFAULT_TABLE) {
                tracing::warn!("failed to write the vault's template files: {e}");
            }
        })
    {
        tracing::warn!("failed to write the vault's template files: {e}");
    }
    process::raise_fd_limit();
    process::become_subreaper();

    let rt = match super::runtime("failed to start") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut runtime = Runtime::new(
        vault,
        TableLocation { explicit },
        cfg,
        guardian,
        early_stop,
        logs.clone(),
    );
    // We hold the lock, so no other supervisor runs: a records file left behind means
    // the previous run ended without a clean stop.
    if let Some(when) = previous.unclean_end() {
        runtime.previous_run_unclean(previous.pid, when);
    }
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(&rt, runtime.run());
    // The last log lines reach their files, unless the disk does not answer: then the
    // stop does not wait for it (the console has had every line of level info and up).
    if let Err(left) = logs.finish(LOG_FLUSH_MAX) {
        tracing::warn!(
            "{} bytes of log output were not written to Logs/: the disk did not answer \
             within {}s of the stop",
            left.bytes,
            LOG_FLUSH_MAX.as_secs()
        );
    }
    drop(lock);
    match outcome {
        Ok(Outcome::Clean) => exit_codes::OK,
        Ok(Outcome::Forced) => exit_codes::FORCED,
        Err(e) => super::fail(exit_codes::FAILURE, format_args!("supervisor failed: {e}")),
    }
}

/// What a previous supervisor of the vault left: its pid (in the lock file) and, when it
/// did not stop cleanly, its records file (removed by a clean stop).
struct PreviousRun {
    pid: Option<i32>,
    /// When the records file and the system log were last written, if the records file
    /// is there.
    last_written: Option<SystemTime>,
}

impl PreviousRun {
    fn look(vault: &Vault) -> PreviousRun {
        let pid = std::fs::read_to_string(vault.lock_file())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .filter(|&p| p > 0);
        let mtime = |p: &Path| std::fs::symlink_metadata(p).and_then(|m| m.modified()).ok();
        let last_written = mtime(&vault.children_record())
            .map(|records| mtime(&vault.system_log()).map_or(records, |log| log.max(records)));
        PreviousRun { pid, last_written }
    }

    /// When the previous run was last seen alive, if it ended without a clean stop.
    fn unclean_end(&self) -> Option<SystemTime> {
        self.last_written
    }
}
