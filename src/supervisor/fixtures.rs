//! Status reports for unit tests: the `status` table's and the metrics text's.

use ai_employee_vault::control::{ChildStatus, Health, LastExit, StatusReport, SupervisorInfo};

/// Child `name` in `state`, nothing else known.
pub fn child(name: &str, state: &str) -> ChildStatus {
    ChildStatus {
        name: name.into(),
        description: String::new(),
        state: state.into(),
        enabled: true,
        pid: None,
        uptime_secs: None,
        restarts: 0,
        manual_restarts: 0,
        last_exit: None,
        rss_bytes: None,
        cpu_percent: None,
        cpu_seconds: None,
        backoff_left_secs: None,
        reason: None,
    }
}

/// A last exit with `code`.
pub fn exited(code: i32) -> Option<LastExit> {
    Some(LastExit {
        code: Some(code),
        signal: None,
    })
}

/// A last exit by signal `name` (`SIGKILL`).
pub fn killed_by(name: &str) -> Option<LastExit> {
    Some(LastExit {
        code: None,
        signal: Some(name.into()),
    })
}

/// A degraded report from supervisor `pid`, up `uptime_secs`, of `children`; version
/// `0` and no start time, vault or table unless the caller sets them.
pub fn report(pid: u32, uptime_secs: f64, children: Vec<ChildStatus>) -> StatusReport {
    StatusReport {
        protocol: 1,
        health: Health::Degraded,
        supervisor: SupervisorInfo {
            pid,
            version: "0".into(),
            started_at: String::new(),
            uptime_secs,
            vault: String::new(),
            table: String::new(),
        },
        children,
    }
}
