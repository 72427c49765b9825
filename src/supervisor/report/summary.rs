//! The system's status as the Dashboard shows it, derived from the children (pure).

use ai_employee_vault::dashboard::Row;

use crate::supervisor::machine::{Child, Phase};

/// A child's contribution to the system status; stable across a crash loop, so a loop
/// does not produce a row per restart.
fn trouble(c: &Child) -> Option<&'static str> {
    match c.phase() {
        Phase::Running { .. } if c.is_healthy() => None,
        Phase::Running { .. } | Phase::Backoff { .. } | Phase::Starting => Some("restarting"),
        Phase::Stopping { .. } => None,
        Phase::NeedsSetup { .. } => Some("needs setup"),
        Phase::Fatal { .. } => Some("gave up"),
        Phase::Exited { status } if !status.success() => Some("exited"),
        Phase::Exited { .. } | Phase::Idle | Phase::Removed => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub status: &'static str,
    pub details: String,
}

pub const ONLINE: &str = "✓ Online";
pub const DEGRADED: &str = "⚠ Degraded";
/// Nothing failed, but children wait for set-up (a fresh install): not degraded.
pub const NEEDS_SETUP: &str = "⚙ Needs Setup";
pub const OFFLINE: &str = "✗ Offline";

pub fn summarize<'a>(children: impl Iterator<Item = &'a Child>) -> Summary {
    let mut running = 0;
    let mut problems = Vec::new();
    let mut waiting = Vec::new();
    for c in children {
        if matches!(c.phase(), Phase::Running { .. }) {
            running += 1;
        }
        if let Some(t) = trouble(c) {
            problems.push(format!("{} {t}", c.name()));
            if matches!(c.phase(), Phase::NeedsSetup { .. }) {
                waiting.push(c.name());
            }
        }
    }
    if problems.is_empty() {
        Summary {
            status: ONLINE,
            details: format!("System Online: All Watchers Active ({running} running)"),
        }
    } else if waiting.len() == problems.len() {
        Summary {
            status: NEEDS_SETUP,
            details: format!(
                "System Online ({running} running); waiting for set-up: {} (run `ai-employee setup`)",
                waiting.join(", ")
            ),
        }
    } else {
        Summary {
            status: DEGRADED,
            details: format!("System Degraded: {}", problems.join(", ")),
        }
    }
}

pub fn now_stamp() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn system_row(status: &str, details: String) -> Row {
    Row {
        timestamp: now_stamp(),
        action: "System_Status".into(),
        status: status.into(),
        details,
    }
}

/// A table that a reload refused.
pub fn table_row(details: String) -> Row {
    Row {
        timestamp: now_stamp(),
        action: "Process_Table".into(),
        status: "✗ Refused".into(),
        details,
    }
}

pub fn child_row(status: &str, details: String) -> Row {
    Row {
        timestamp: now_stamp(),
        action: "Watcher_Status".into(),
        status: status.into(),
        details,
    }
}
