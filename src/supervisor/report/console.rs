//! The console's banner and session statistics (the event lines come from the log layer).

use std::time::Duration;

use ai_employee_vault::units::count;

use crate::process::ExitStatus;

const RULE: &str = "============================================================";

/// The start banner. `setup`: (part, what is missing, the command that sets it up) for
/// each part an enabled child needs and does not have yet.
pub fn banner(
    vault: &std::path::Path,
    table: &str,
    processes: usize,
    enabled: usize,
    setup: &[(&str, String, String)],
) {
    let processes = count(processes as u64, "process", "processes");
    eprintln!("{RULE}");
    eprintln!("AI Employee Supervisor {}", env!("CARGO_PKG_VERSION"));
    eprintln!("{RULE}");
    eprintln!("Vault: {}", vault.display());
    eprintln!("Table: {table} ({processes}, {enabled} enabled)");
    if !setup.is_empty() {
        eprintln!("Set-up needed (the children that use it wait for it, not restarted):");
        let w = setup.iter().map(|(p, ..)| p.len()).max().unwrap_or(0);
        for (part, what, command) in setup {
            eprintln!("  {part:<w$}  {what}: {command}");
        }
    }
    eprintln!();
}

pub fn started(running: usize, enabled: usize) {
    eprintln!();
    eprintln!("{RULE}");
    if running == enabled {
        match enabled {
            0 => eprintln!("No process to start"),
            1 => eprintln!("1 process started"),
            n => eprintln!("All {n} processes started"),
        }
    } else {
        eprintln!(
            "{running} of {} running (see above and Logs/system.log)",
            count(enabled as u64, "process", "processes")
        );
    }
    eprintln!("Press Ctrl+C to stop");
    eprintln!("{RULE}");
}

pub fn stopping() {
    eprintln!("{RULE}");
    eprintln!("Shutting down all processes...");
    eprintln!("{RULE}");
}

pub struct StatRow {
    pub name: String,
    pub restarts: u32,
    pub manual_restarts: u32,
    pub last_exit: Option<ExitStatus>,
    pub state: &'static str,
}

/// Restarts by the supervisor, and the operator's starts apart when there were any:
/// `3` or `3 (+1 manual)`.
pub fn restarts_cell(restarts: u32, manual: u32) -> String {
    match manual {
        0 => restarts.to_string(),
        m => format!("{restarts} (+{m} manual)"),
    }
}

pub fn session_stats(up: Duration, starts: u64, restarts: u64, manual: u64, rows: &[StatRow]) {
    eprintln!("{RULE}");
    let manual = match manual {
        0 => String::new(),
        m => format!(", {}", count(m, "manual start", "manual starts")),
    };
    eprintln!(
        "Session statistics: up {}, {}, {}{manual}",
        ai_employee_vault::units::format_elapsed(up),
        count(starts, "start", "starts"),
        count(restarts, "restart", "restarts")
    );
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let cells: Vec<String> = rows
        .iter()
        .map(|r| restarts_cell(r.restarts, r.manual_restarts))
        .collect();
    let rw = cells.iter().map(String::len).max().unwrap_or(8).max(8);
    eprintln!(
        "  {:<w$}  {:>rw$}  {:<12}  LAST EXIT",
        "NAME", "RESTARTS", "STATE"
    );
    for (r, restarts) in rows.iter().zip(&cells) {
        let last = r
            .last_exit
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        eprintln!("  {:<w$}  {restarts:>rw$}  {:<12}  {last}", r.name, r.state);
    }
    eprintln!("All processes stopped");
    eprintln!("{RULE}");
}
