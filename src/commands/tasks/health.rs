//! `ai-employee tasks health [--json]`: whether the task loop runs and is well
//! ([`crate::agent::health`] has the rules; docs/agent.md ("Metrics and health") lists them).
//!
//! Exit status (also with `--json`), as `ai-employee status`: 0 healthy, 1 degraded or
//! unhealthy, 3 no task loop runs, 4 unknown (its snapshot or log cannot be read).

use std::io;
use std::path::Path;

use ai_employee_vault::layout::Vault;
use ai_employee_vault::nofollow::{self, Dir, How};
use ai_employee_vault::sys::{self, TryLock};
use chrono::{TimeDelta, Utc};

use crate::agent::health::{self, Health, Lock, Observed, State};
use crate::agent::metrics;
use crate::agent::snapshot::{self, Snapshot};
use crate::commands::status::{self as status_cmd, Style};
use crate::config::model::AgentSettings;

/// The name the loop runs under (`run_watcher("agent", …)`): its lock is
/// `.ai-employee/agent.lock`.
pub const LOOP_NAME: &str = "agent";
/// A snapshot larger than this is not one the loop wrote.
const SNAPSHOT_LIMIT: u64 = 64 << 20;

pub fn health(vault: &Path, json: bool, settings: &AgentSettings) -> i32 {
    let (status, reasons, code) = match assess(vault, settings) {
        Ok(h) => {
            let code = exit_code(h.state);
            if !json && matches!(code, status_cmd::HEALTHY | status_cmd::DEGRADED) {
                print!("{}", render(&h, Style::detect()));
                return code;
            }
            (h.state.as_str(), h.reasons, code)
        }
        Err(why) => ("unknown", vec![why], status_cmd::UNKNOWN),
    };
    if json {
        println!(
            "{:#}",
            serde_json::json!({ "status": status, "reasons": reasons })
        );
    } else {
        for r in &reasons {
            eprintln!("ai-employee: {r}");
        }
    }
    code
}

/// 0 healthy, 1 degraded or unhealthy, 3 not running.
pub fn exit_code(state: State) -> i32 {
    match state {
        State::Healthy => status_cmd::HEALTHY,
        State::Degraded | State::Unhealthy => status_cmd::DEGRADED,
        State::NotRunning => status_cmd::NOT_RUNNING,
    }
}

/// Observe the loop and judge it; `Err` (one line) when its snapshot or log cannot be
/// read.
pub fn assess(vault: &Path, settings: &AgentSettings) -> Result<Health, String> {
    let layout = Vault::new(vault.to_path_buf());
    let now = Utc::now();
    let snapshot = read_snapshot(&layout)?;
    let lock = lock_state(&layout);
    let pid_alive = snapshot.as_ref().is_some_and(|s| pid_alive(s.pid));
    let last_day =
        metrics::read(vault, now - TimeDelta::hours(24), now).map_err(|e| e.to_string())?;
    let observed = Observed {
        snapshot: snapshot.as_ref(),
        lock,
        pid_alive,
        now,
    };
    Ok(health::assess(&observed, &last_day, settings))
}

/// `.ai-employee/tasks.json`, or `None` when there is none.
pub fn read_snapshot(layout: &Vault) -> Result<Option<Snapshot>, String> {
    let path = layout.state_file(snapshot::FILE_NAME);
    let bytes = match Dir::open(&layout.state_dir())
        .and_then(|d| d.read(snapshot::FILE_NAME, Some(SNAPSHOT_LIMIT)))
    {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("failed to read {}: {e}", path.display())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("{}: not a task loop snapshot: {e}", path.display()))
}

/// Whether the loop holds its lock, tested by taking it without waiting and letting go
/// at once. (A loop starting within that instant would find it taken and exit with the
/// lock's exit code; its supervisor starts it again.) No lock file: [`Lock::Unknown`].
pub fn lock_state(layout: &Vault) -> Lock {
    let Ok(file) = nofollow::open_in_folder(&layout.watcher_lock(LOOP_NAME), How::READ) else {
        return Lock::Unknown;
    };
    match sys::try_lock(file) {
        // Dropping the lock closes the file, which lets go of it.
        Ok(TryLock::Locked(_)) => Lock::Free,
        Ok(TryLock::Held(_)) => Lock::Held,
        Err(_) => Lock::Unknown,
    }
}

/// Whether `pid` names a live process (one of another user's counts).
fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        // 0 and negatives name process groups, not a process.
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e == nix::errno::Errno::EPERM,
    }
}

/// The text: the state, then one reason a line.
pub fn render(h: &Health, style: Style) -> String {
    let state = match h.state {
        State::Healthy => style.paint("32", "healthy"),
        State::Degraded => style.paint("33", "degraded"),
        State::Unhealthy | State::NotRunning => style.paint("31", h.state.as_str()),
    };
    let mut out = format!("task loop: {state}\n");
    for r in &h.reasons {
        out.push_str("  - ");
        out.push_str(r);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_text_lists_each_reason() {
        let h = Health {
            state: State::Degraded,
            reasons: vec!["backlog 34 tasks over max_backlog 20".into()],
        };
        assert_eq!(
            render(&h, Style { colour: false }),
            "task loop: degraded\n  - backlog 34 tasks over max_backlog 20\n"
        );
        assert!(render(&h, Style { colour: true }).contains("\x1b[33mdegraded\x1b[0m"));
    }

    #[test]
    fn exit_codes_follow_status() {
        assert_eq!(exit_code(State::Healthy), 0);
        assert_eq!(exit_code(State::Degraded), 1);
        assert_eq!(exit_code(State::Unhealthy), 1);
        assert_eq!(exit_code(State::NotRunning), 3);
    }

    #[test]
    fn the_lock_is_held_only_while_its_holder_lives_and_testing_leaves_it_free() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Vault::new(dir.path().to_path_buf());
        std::fs::create_dir(layout.state_dir()).unwrap();
        assert_eq!(lock_state(&layout), Lock::Unknown, "no lock file yet");
        let held =
            ai_employee_vault::lock::VaultLock::acquire(&layout.watcher_lock(LOOP_NAME)).unwrap();
        assert_eq!(lock_state(&layout), Lock::Held);
        drop(held);
        assert_eq!(lock_state(&layout), Lock::Free);
        // Testing let go of it: the loop can take it.
        let again = ai_employee_vault::lock::VaultLock::acquire(&layout.watcher_lock(LOOP_NAME));
        assert!(again.is_ok());
    }

    #[test]
    fn only_a_live_process_is_alive() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(pid), "reaped");
    }
}
