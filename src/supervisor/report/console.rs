//! The console's banner and session statistics (the event lines come from the log layer).

use std::time::Duration;

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
    eprintln!("{RULE}");
    eprintln!("AI Employee Supervisor {}", env!("CARGO_PKG_VERSION"));
    eprintln!("{RULE}");
    eprintln!("Vault: {}", vault.display());
    eprintln!("Table: {table} ({processes} processes, {enabled} enabled)");
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
        eprintln!("All {enabled} processes started");
    } else {
        eprintln!("{running} of {enabled} processes running (see above and Logs/system.log)");
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
    pub last_exit: Option<ExitStatus>,
    pub state: &'static str,
}

pub fn session_stats(up: Duration, starts: u64, restarts: u64, rows: &[StatRow]) {
    eprintln!("{RULE}");
    eprintln!(
        "Session statistics: up {}, {starts} starts, {restarts} restarts",
        ai_employee_vault::units::format_elapsed(up)
    );
    let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    eprintln!(
        "  {:<w$}  {:>8}  {:<12}  LAST EXIT",
        "NAME", "RESTARTS", "STATE"
    );
    for r in rows {
        let last = r
            .last_exit
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        eprintln!(
            "  {:<w$}  {:>8}  {:<12}  {last}",
            r.name, r.restarts, r.state
        );
    }
    eprintln!("All processes stopped");
    eprintln!("{RULE}");
}
