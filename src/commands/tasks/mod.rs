//! `ai-employee tasks …`: the task loop's queue and the operator's hands on it. The queue
//! comes from the loop's snapshot (`.ai-employee/tasks.json`); `add`, `retry`, `pause` and
//! `resume` change the vault's files, which the loop watches.

pub mod edit;
pub mod health;
pub mod metrics;
pub mod queue;

use std::path::Path;
use std::time::Duration;

use ai_employee_vault::exit_codes;
use ai_employee_vault::layout::Vault;
use ai_employee_vault::lock::{LockError, VaultLock};

use crate::agent::snapshot::{self, Snapshot};
use crate::cli::TasksCommand;

/// Exit status when no task loop runs on the vault (as `status` says of the supervisor).
pub const NOT_RUNNING: i32 = 3;

pub fn run(
    vault: &Path,
    command: Option<TasksCommand>,
    json: bool,
    watch: bool,
    verbose: bool,
    interval: Duration,
) -> i32 {
    match command {
        None => queue::run(vault, json, watch, verbose, interval),
        Some(TasksCommand::Show { id }) => edit::show(vault, &id),
        Some(TasksCommand::Add {
            title,
            body,
            priority,
            deadline,
        }) => edit::add(
            vault,
            &title,
            body.as_deref(),
            priority,
            deadline.as_deref(),
        ),
        Some(TasksCommand::Retry { id }) => edit::retry(vault, &id),
        Some(TasksCommand::Pause { now }) => edit::pause(vault, now),
        Some(TasksCommand::Resume) => edit::resume(vault),
        Some(TasksCommand::Metrics { since, json }) => metrics::metrics(vault, since, json),
        Some(TasksCommand::Health { json, config }) => {
            match crate::config::load(vault, config.as_deref()) {
                Ok(cfg) => health::health(vault, json, &cfg.agent),
                Err(errors) => {
                    eprintln!("{errors}");
                    exit_codes::CONFIG
                }
            }
        }
    }
}

/// The pid of the task loop running on `vault`, if one runs (it holds its lock).
pub fn loop_pid(vault: &Path) -> Option<i32> {
    let v = Vault::new(vault.to_path_buf());
    let path = v.watcher_lock("agent");
    if !path.exists() {
        return None;
    }
    match VaultLock::acquire(&path) {
        Ok(_) => None,
        Err(LockError::HeldBy { pid, .. }) => Some(pid),
        Err(LockError::Held { .. }) => Some(0),
        Err(LockError::Io { .. }) => None,
    }
}

/// The loop's last snapshot, if it wrote one.
pub fn read_snapshot(vault: &Path) -> Result<Option<Snapshot>, String> {
    let path = Vault::new(vault.to_path_buf()).state_file(snapshot::FILE_NAME);
    let read = ai_employee_vault::nofollow::folder_of(&path)
        .and_then(|(dir, name)| dir.read(name, Some(256 << 20)));
    let bytes = match read {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}
