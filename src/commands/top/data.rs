//! What `top` shows, gathered by the commands' own functions (`status`, `tasks`, `logs`)
//! into plain text. Compared with the previous poll: an unchanged poll draws nothing.

use std::io;
use std::path::Path;

use ai_employee_vault::layout::Vault;
use chrono::Utc;

use crate::agent::engine::STOP_FILE;
use crate::agent::snapshot::TaskState;
use crate::commands::logs;
use crate::commands::status::{self, Outcome, Style};
use crate::commands::tasks::{self, queue};

/// One poll of everything on the screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    pub supervisor: Supervisor,
    pub tasks: Tasks,
    pub log: Log,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Supervisor {
    /// The supervisor's line and its children.
    Report { line: String, children: Vec<Child> },
    /// No report: the message to show instead (no supervisor, or it did not answer).
    Missing(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Child {
    pub name: String,
    pub state: String,
    /// NAME, STATE, PID, UPTIME, RESTARTS, LAST EXIT, MEMORY, CPU (as `status` shows them).
    pub cells: [String; 8],
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tasks {
    /// The stop file exists.
    pub paused: bool,
    /// `Tasks: 1 running (of 2), …`, when the loop wrote a snapshot.
    pub headline: Option<String>,
    /// A note instead of (or below) the headline: no loop runs, an unreadable snapshot.
    pub note: Option<String>,
    pub rows: Vec<TaskRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub id: String,
    pub state: TaskState,
    pub state_text: String,
    pub score: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Log {
    /// `Logs/system.log` or `Logs/<name>.log`.
    pub title: String,
    pub lines: Vec<String>,
}

/// Ask the supervisor, read the task loop's snapshot and the log (its last `log_lines`
/// lines: the system log, or `follow`'s).
pub fn poll(vault: &Path, follow: Option<&str>, log_lines: usize) -> Data {
    Data {
        supervisor: supervisor(vault),
        tasks: tasks(vault),
        log: log(vault, follow, log_lines),
    }
}

fn supervisor(vault: &Path) -> Supervisor {
    match status::fetch(vault) {
        Outcome::Report(r) => Supervisor::Report {
            line: status::supervisor_line(&r, Style { colour: false }),
            children: r
                .children
                .iter()
                .map(|c| Child {
                    name: c.name.clone(),
                    state: c.state.clone(),
                    cells: status::row(c),
                })
                .collect(),
        },
        Outcome::NotRunning(_) => Supervisor::Missing(format!(
            "no supervisor is running on {} (start it with `ai-employee supervise`); retrying",
            vault.display()
        )),
        Outcome::Unknown(e) => Supervisor::Missing(format!("status unknown: {e}; retrying")),
    }
}

fn tasks(vault: &Path) -> Tasks {
    let paused = std::fs::symlink_metadata(vault.join(STOP_FILE)).is_ok();
    let running = tasks::loop_runs(vault);
    let mut out = Tasks {
        paused,
        ..Tasks::default()
    };
    match tasks::read_snapshot(vault) {
        Err(e) => out.note = Some(e),
        Ok(None) if running => out.note = Some("the task loop is starting".into()),
        Ok(None) => {
            out.note = Some(format!(
                "no task loop is running on {} (the supervisor's `agent` entry runs one)",
                vault.display()
            ));
        }
        Ok(Some(mut s)) => {
            // The stop file is the switch; the snapshot catches up when the loop writes.
            s.paused = paused;
            out.headline = Some(queue::headline(&s));
            if !running {
                out.note = Some("(last written by a loop that is not running)".into());
            }
            let now = Utc::now();
            let remote = |id: &str| {
                s.queue
                    .as_ref()
                    .and_then(|q| q.runs.iter().find(|r| r.task == id))
            };
            out.rows = s
                .tasks
                .iter()
                .map(|t| TaskRow {
                    id: t.id.clone(),
                    state: t.state,
                    state_text: queue::state_text(t, paused, now, remote(&t.id)),
                    score: format!("{:.2}", t.score),
                })
                .collect();
        }
    }
    out
}

fn log(vault: &Path, follow: Option<&str>, n: usize) -> Log {
    let v = Vault::new(vault.to_path_buf());
    let (path, title) = match follow {
        Some(name) => (v.child_log(name), format!("Logs/{name}.log")),
        None => (v.system_log(), "Logs/system.log".to_string()),
    };
    let lines = match logs::last_lines(&path, n) {
        Ok(text) => text.lines().map(clean).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            vec![format!("(no log yet at {})", path.display())]
        }
        Err(e) => vec![format!("cannot read {}: {e}", path.display())],
    };
    Log { title, lines }
}

/// A log line made safe for the screen: colour and other escape sequences dropped, tabs
/// as spaces, other control characters as `?`.
pub fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI (ESC [ … final byte @..~) or a two-character escape.
                if chars.next_if_eq(&'[').is_some() {
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\t' => out.push_str("    "),
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_never_reach_the_screen() {
        assert_eq!(clean("\x1b[32mok\x1b[0m done"), "ok done");
        assert_eq!(clean("a\tb\x07c\rd"), "a    b?c?d");
        assert_eq!(clean("\x1b"), "");
        assert_eq!(clean("\x1b[31"), "");
        assert_eq!(clean("é ünï"), "é ünï");
    }
}
