//! `ai-employee status [--json] [--watch]`: the running supervisor's report over the
//! control socket, as a table (coloured on a terminal) or JSON.
//!
//! Exit status (also with `--json`): 0 healthy, 1 degraded, 3 not running, 4 unknown, 5
//! needs setup (nothing failed, but a child waits for `ai-employee setup`; a fresh
//! install). Degraded wins over needs setup.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use ai_employee_vault::control::client::{Client, ConnectError};
use ai_employee_vault::control::{ChildStatus, Health, Request, StatusReport};
use ai_employee_vault::units::{format_age, format_size_approx};

pub const HEALTHY: i32 = 0;
pub const DEGRADED: i32 = 1;
pub const NOT_RUNNING: i32 = 3;
pub const UNKNOWN: i32 = 4;
/// Nothing failed, but children wait for set-up (docs/operations.md: why not 0 or 1).
pub const NEEDS_SETUP: i32 = 5;

/// What asking for a status gave.
pub enum Outcome {
    Report(StatusReport),
    NotRunning(String),
    Unknown(String),
}

impl Outcome {
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Report(r) => match r.health {
                Health::Healthy => HEALTHY,
                Health::NeedsSetup => NEEDS_SETUP,
                Health::Degraded => DEGRADED,
            },
            Outcome::NotRunning(_) => NOT_RUNNING,
            Outcome::Unknown(_) => UNKNOWN,
        }
    }
}

pub fn fetch(vault: &Path) -> Outcome {
    let mut client = match Client::connect(vault) {
        Ok(c) => c,
        Err(e @ ConnectError::NotRunning(_)) => return Outcome::NotRunning(e.to_string()),
        Err(e) => return Outcome::Unknown(e.to_string()),
    };
    match client.call(&Request::Status) {
        Ok(r) => match (r.ok, r.status, r.error) {
            (true, Some(s), _) => Outcome::Report(s),
            (_, _, Some(e)) => Outcome::Unknown(e),
            _ => Outcome::Unknown("the supervisor sent no status".into()),
        },
        Err(e) => Outcome::Unknown(format!("the supervisor did not answer: {e}")),
    }
}

pub fn run(vault: &Path, json: bool, watch: bool, interval: Duration) -> i32 {
    if watch {
        return run_watch(vault, json, interval);
    }
    let outcome = fetch(vault);
    let mut text = if json {
        render_json(vault, &outcome)
    } else {
        render_text(&outcome, Style::detect())
    };
    match &outcome {
        Outcome::Report(r) => {
            if !json {
                text.push_str(&setup_hints(r));
            }
            print!("{text}")
        }
        _ => eprint!("{text}"),
    }
    outcome.exit_code()
}

/// What to type for each child that needs a part `ai-employee setup` sets up (empty when
/// none does; the others' reasons are above, naming their logs).
fn setup_hints(r: &StatusReport) -> String {
    let commands: Vec<String> = super::setup::needing_setup(r)
        .into_iter()
        .filter_map(|(name, part)| Some(format!("  {name}: {}\n", part?.command())))
        .collect();
    if commands.is_empty() {
        return String::new();
    }
    format!("\nSet-up needed:\n{}", commands.concat())
}

fn run_watch(vault: &Path, json: bool, interval: Duration) -> i32 {
    let tty = std::io::stdout().is_terminal();
    let style = Style::detect();
    loop {
        let outcome = fetch(vault);
        let mut frame = String::new();
        if tty {
            // Home, then clear to the end: redraw in place without flicker.
            frame.push_str("\x1b[H\x1b[2J");
        }
        frame.push_str(&if json {
            render_json(vault, &outcome)
        } else {
            render_text(&outcome, style)
        });
        if tty && !json {
            frame.push_str(&style.dim(&format!(
                "\nevery {}; Ctrl+C to quit\n",
                ai_employee_vault::units::format_duration(interval)
            )));
        }
        let mut out = std::io::stdout().lock();
        if out
            .write_all(frame.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // The reader went away (a closed pipe).
            return outcome.exit_code();
        }
        drop(out);
        std::thread::sleep(interval);
    }
}

pub fn render_json(vault: &Path, outcome: &Outcome) -> String {
    let value = match outcome {
        Outcome::Report(r) => {
            let mut s = serde_json::to_string_pretty(r).unwrap_or_default();
            s.push('\n');
            return s;
        }
        Outcome::NotRunning(e) => serde_json::json!({
            "health": "not_running",
            "vault": vault.display().to_string(),
            "error": e,
        }),
        Outcome::Unknown(e) => serde_json::json!({
            "health": "unknown",
            "vault": vault.display().to_string(),
            "error": e,
        }),
    };
    let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
    s.push('\n');
    s
}

/// Colours on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    /// Colour when stdout is a terminal, `NO_COLOR` is unset and `TERM` is not `dumb`.
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        Style {
            colour: std::io::stdout().is_terminal() && !no_color && !dumb,
        }
    }

    pub(crate) fn paint(self, code: &str, s: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub(crate) fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }

    pub(crate) fn bold(self, s: &str) -> String {
        self.paint("1", s)
    }

    fn state(self, state: &str, padded: &str) -> String {
        match state {
            "running" => self.paint("32", padded),
            "backoff" | "starting" | "stopping" => self.paint("33", padded),
            "fatal" | "needs-setup" => self.paint("31", padded),
            "exited" => padded.to_string(),
            _ => self.dim(padded),
        }
    }

    fn health(self, h: Health) -> String {
        match h {
            Health::Healthy => self.paint("32", "healthy"),
            Health::NeedsSetup => self.paint("36", "needs setup"),
            Health::Degraded => self.paint("33", "degraded"),
        }
    }
}

pub fn render_text(outcome: &Outcome, style: Style) -> String {
    match outcome {
        Outcome::Report(r) => render_report(r, style),
        Outcome::NotRunning(e) => format!("ai-employee: not running: {e}\n"),
        Outcome::Unknown(e) => format!("ai-employee: status unknown: {e}\n"),
    }
}

/// The table's columns, one per cell of [`row`] (`top` shows them too).
pub(crate) const HEADER: [&str; 8] = [
    "NAME",
    "STATE",
    "PID",
    "UPTIME",
    "RESTARTS",
    "LAST EXIT",
    "MEMORY",
    "CPU",
];

/// `ai-employee 0.1.0 · pid 4242 · up 2h3m · healthy` (`top` shows it too).
pub(crate) fn supervisor_line(r: &StatusReport, style: Style) -> String {
    let s = &r.supervisor;
    format!(
        "{} {} · pid {} · up {} · {}",
        style.bold("ai-employee"),
        s.version,
        s.pid,
        format_age(s.uptime_secs),
        style.health(r.health)
    )
}

/// The table. Pure (a report in, text out), so it is pinned by snapshot tests.
pub fn render_report(r: &StatusReport, style: Style) -> String {
    let s = &r.supervisor;
    let mut out = format!(
        "{}\nvault {} · table {}\n\n",
        supervisor_line(r, style),
        s.vault,
        s.table
    );
    let header = HEADER;
    let rows: Vec<[String; 8]> = r.children.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = String::new();
    for (i, h) in header.iter().enumerate() {
        line.push_str(&pad(h, widths[i], i + 1 == header.len()));
    }
    out.push_str(&style.dim(line.trim_end()));
    out.push('\n');
    for (c, row) in r.children.iter().zip(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let last = i + 1 == row.len();
            let padded = pad(cell, widths[i], last);
            if i == 1 {
                line.push_str(&style.state(&c.state, &padded));
            } else {
                line.push_str(&padded);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if r.children.is_empty() {
        out.push_str("(no processes in the table)\n");
    }
    let reasons: Vec<&ChildStatus> = r.children.iter().filter(|c| c.reason.is_some()).collect();
    if !reasons.is_empty() {
        out.push('\n');
        for c in reasons {
            out.push_str(&format!(
                "{}: {}\n",
                c.name,
                c.reason.as_deref().unwrap_or_default()
            ));
        }
    }
    out
}

fn pad(s: &str, width: usize, last: bool) -> String {
    if last {
        s.to_string()
    } else {
        format!("{s:<width$}  ")
    }
}

pub(crate) fn row(c: &ChildStatus) -> [String; 8] {
    let dash = || "-".to_string();
    let state = match c.backoff_left_secs {
        Some(left) => format!("{} ({})", c.state, format_age(left.ceil())),
        None => c.state.clone(),
    };
    [
        c.name.clone(),
        state,
        c.pid.map_or_else(dash, |p| p.to_string()),
        c.uptime_secs.map_or_else(dash, format_age),
        crate::supervisor::report::console::restarts_cell(c.restarts, c.manual_restarts),
        c.last_exit.as_ref().map_or_else(dash, |e| e.to_string()),
        c.rss_bytes.map_or_else(dash, format_size_approx),
        c.cpu_percent.map_or_else(dash, |p| format!("{p:.1}%")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::fixtures::{child, exited, killed_by};

    fn report() -> StatusReport {
        let mut running = child("filesystem", "running");
        running.pid = Some(4243);
        running.uptime_secs = Some(7385.2);
        running.rss_bytes = Some(3_250_000);
        running.cpu_percent = Some(0.14);
        running.cpu_seconds = Some(1.5);
        let mut backoff = child("gmail", "backoff");
        backoff.restarts = 4;
        backoff.manual_restarts = 1;
        backoff.backoff_left_secs = Some(11.2);
        backoff.last_exit = exited(1);
        let mut setup = child("whatsapp", "needs-setup");
        setup.last_exit = exited(78);
        setup.reason = Some("exited 78 (needs configuration; see Logs/whatsapp.log)".into());
        let mut killed = child("approvals", "stopped");
        killed.last_exit = killed_by("SIGKILL");
        let children = vec![running, backoff, setup, killed];
        let mut r = crate::supervisor::fixtures::report(4242, 7390.0, children);
        let s = &mut r.supervisor;
        s.version = "0.1.0".into();
        s.started_at = "2026-11-22T01:00:00Z".into();
        s.vault = "/home/me/AI_Employee_Vault".into();
        s.table = "/home/me/AI_Employee_Vault/ai-employee.toml".into();
        r
    }

    #[test]
    fn the_table() {
        insta::assert_snapshot!(render_report(&report(), Style { colour: false }));
    }

    #[test]
    fn colours_only_when_asked() {
        let plain = render_report(&report(), Style { colour: false });
        assert!(!plain.contains('\x1b'));
        let coloured = render_report(&report(), Style { colour: true });
        assert!(coloured.contains("\x1b[32mrunning"), "{coloured}");
        assert!(coloured.contains("\x1b[33mbackoff (12s)"), "{coloured}");
        assert!(coloured.contains("\x1b[31mneeds-setup"), "{coloured}");
    }
}
