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

use crate::agent::health::Lock;
use crate::agent::snapshot::Snapshot;
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

/// Whether a task loop runs on `vault` (it holds its lock).
pub fn loop_runs(vault: &Path) -> bool {
    health::lock_state(&Vault::new(vault.to_path_buf())) == Lock::Held
}

/// The loop's last snapshot, if it wrote one.
pub fn read_snapshot(vault: &Path) -> Result<Option<Snapshot>, String> {
    health::read_snapshot(&Vault::new(vault.to_path_buf()))
}
