//! `ai-employee setup` without a part: each part's state (configured, missing, invalid)
//! and what to do next; the same facts for `status` and `supervise`'s banner.

use std::path::Path;

use ai_employee_vault::control::StatusReport;
use ai_employee_vault::credentials::LoadError;
use ai_employee_vault::exit_codes;

use super::{Part, child_part, supervisor_table};
use crate::agent::probe;

/// A part's state as its files say (no network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Configured,
    Missing(String),
    Invalid(String),
}

/// `part`'s state in `vault` (`agent`: its program found on PATH).
pub fn state(vault: &Path, part: Part, agent_program: Option<&str>) -> State {
    let loaded = |r: Result<(), LoadError>| match r {
        Ok(()) => State::Configured,
        Err(LoadError::Missing { .. }) => State::Missing(format!(
            "no credentials/{}",
            part.file().unwrap_or_default()
        )),
        Err(e) => State::Invalid(first_line(&e.to_string())),
    };
    match part {
        Part::Gmail => loaded(ai_employee_gmail::load_credentials(vault).map(|_| ())),
        Part::Whatsapp => loaded(ai_employee_whatsapp::load_credentials(vault).map(|_| ())),
        Part::Github => loaded(github_load(vault)),
        Part::Smtp => {
            let path = vault.join("credentials/smtp.toml");
            if std::fs::symlink_metadata(&path).is_err() {
                return State::Missing("no credentials/smtp.toml (emails cannot be sent)".into());
            }
            match ai_employee_approvals::setup::read_smtp(vault) {
                Ok(()) => State::Configured,
                Err(e) => State::Invalid(first_line(&e)),
            }
        }
        Part::Agent => {
            let program = agent_program.unwrap_or("claude");
            match probe::find_program(program) {
                Some(_) => State::Configured,
                None => State::Missing(format!("{program} not found on PATH")),
            }
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Configured => f.write_str("configured"),
            State::Missing(d) | State::Invalid(d) => f.write_str(d),
        }
    }
}

fn github_load(vault: &Path) -> Result<(), LoadError> {
    ai_employee_vault::github::load(vault).map(|_| ())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// A part the vault's table uses, and whether its child needs it to run.
struct Use {
    part: Part,
    /// An enabled child cannot run without it (the approval handler runs without SMTP).
    required: bool,
}

/// The parts the table `cfg` uses, in [`Part::ALL`]'s order.
fn uses(cfg: Option<&crate::config::Config>) -> Vec<Use> {
    Part::ALL
        .into_iter()
        .map(|part| {
            let enabled = cfg.is_none_or(|c| {
                c.processes
                    .iter()
                    .any(|p| p.enabled && Part::of_process(&p.args) == Some(part))
            });
            Use {
                part,
                required: enabled && part != Part::Smtp,
            }
        })
        .collect()
}

/// The parts an enabled child of the table needs and that are not configured: what
/// `supervise`'s banner names, each with its state.
pub fn missing(vault: &Path, cfg: &crate::config::Config) -> Vec<(Part, State)> {
    let program = cfg.agent.command.first().map(String::as_str);
    uses(Some(cfg))
        .into_iter()
        .filter(|u| u.required)
        .map(|u| (u.part, state(vault, u.part, program)))
        .filter(|(_, s)| *s != State::Configured)
        .collect()
}

/// The children of a status report that need set-up, with the part that sets each up
/// (None: not a part `setup` knows; its log says why).
pub fn needing_setup(report: &StatusReport) -> Vec<(String, Option<Part>)> {
    let table = supervisor_table(&report.supervisor.table);
    report
        .children
        .iter()
        .filter(|c| c.state == "needs-setup")
        .map(|c| (c.name.clone(), child_part(table.as_ref(), &c.name)))
        .collect()
}

pub fn run(vault: &Path) -> i32 {
    let cfg = crate::config::load(vault, None);
    let cfg = match &cfg {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!(
                "ai-employee: warning: the vault's table cannot be read ({e}); every part is shown"
            );
            None
        }
    };
    let program = cfg.and_then(|c| c.agent.command.first().map(String::as_str));
    println!("Set-up of {}:", vault.display());
    let mut next = None;
    for u in uses(cfg) {
        let s = state(vault, u.part, program);
        let (word, detail) = match &s {
            State::Configured => ("configured", String::new()),
            State::Missing(d) => ("missing", d.clone()),
            State::Invalid(d) => ("invalid", d.clone()),
        };
        let note = if u.required {
            ""
        } else {
            " (not needed by the table)"
        };
        let fix = if s == State::Configured {
            String::new()
        } else {
            format!(": {}", u.part.command())
        };
        let line = format!("  {:<9} {word:<10} {detail}{fix}{note}", u.part.name());
        println!("{}", line.trim_end());
        if u.required && s != State::Configured && next.is_none() {
            next = Some(u.part);
        }
    }
    match next {
        Some(p) => {
            println!("Next: {}", p.command());
            exit_codes::CONFIG
        }
        None => {
            println!(
                "Every part the table needs is set up; the agent's login is checked by: ai-employee setup agent"
            );
            exit_codes::OK
        }
    }
}
