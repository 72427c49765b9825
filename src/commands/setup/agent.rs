//! `ai-employee setup agent`: the task loop's agent (Claude Code by default) is found and
//! can run: one short run of `[agent] command` with a one-line prompt, its answer read as
//! the loop reads it (not logged in, no API key …). Nothing is saved: Claude Code keeps
//! its own login (`claude`, then `/login`; or `ANTHROPIC_API_KEY` in the table's `env`).

use std::path::Path;

use ai_employee_vault::exit_codes;

use super::{Part, apply};
use crate::agent::probe::{self, Probe};
use crate::agent::runner::{ArgValues, fill};
use crate::cli::SetupAgent;

pub fn run(vault: &Path, a: &SetupAgent) -> i32 {
    let fail = |code: i32, why: &dyn std::fmt::Display| {
        super::super::fail(code, format_args!("setup agent: {why}"))
    };
    let cfg = match crate::config::load(vault, a.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(exit_codes::CONFIG, &e),
    };
    let values = ArgValues {
        task: "setup-check".into(),
        task_file: String::new(),
        vault: vault.display().to_string(),
    };
    let argv = fill(&cfg.agent.command, &values, probe::PROMPT, "");
    let Some(program) = argv.first() else {
        return fail(exit_codes::CONFIG, &"[agent] command is empty");
    };
    let Some(found) = probe::find_program(program) else {
        return fail(
            exit_codes::FAILURE,
            &format_args!(
                "{program} not found on PATH (install Claude Code: npm install -g \
                 @anthropic-ai/claude-code; or name the agent in [agent] command; see \
                 docs/agent.md)"
            ),
        );
    };
    println!("found {program} at {}", found.display());
    if a.common.skip_check {
        println!("not checked (--skip-check)");
        apply(vault, Part::Agent);
        return exit_codes::OK;
    }
    let logs = vault.join("Logs/agent");
    if let Err(e) = std::fs::create_dir_all(&logs) {
        return fail(
            exit_codes::CANT_CREATE,
            &format_args!("failed to create {}: {e}", logs.display()),
        );
    }
    let log = logs.join("setup-check.log");
    eprintln!("checking: one short run of {program} …");
    match probe::run(&argv, vault, &cfg.agent.env, &log, a.timeout) {
        Ok(Probe::Answered(answer)) => {
            let cost = answer
                .cost_usd
                .map(|c| format!(" (cost ${c:.4})"))
                .unwrap_or_default();
            println!("✓ {program} answered: it is logged in and can run tasks{cost}");
        }
        Ok(Probe::NeedsSetup(reason)) => {
            return fail(
                exit_codes::FAILURE,
                &format_args!(
                    "{program} cannot run: {reason} (log in: run `{program}` once and type \
                     /login, or set ANTHROPIC_API_KEY in the agent's env; see docs/agent.md)"
                ),
            );
        }
        Ok(Probe::Failed(why)) => {
            return fail(
                exit_codes::FAILURE,
                &format_args!("{program} failed: {why} (its stderr: {})", log.display()),
            );
        }
        Ok(Probe::TimedOut) => {
            return fail(
                exit_codes::FAILURE,
                &format_args!(
                    "{program} gave no answer within {} (its stderr: {})",
                    ai_employee_vault::units::format_duration(a.timeout),
                    log.display()
                ),
            );
        }
        Err(e) => {
            return fail(
                exit_codes::FAILURE,
                &format_args!("cannot run {program}: {e}"),
            );
        }
    }
    apply(vault, Part::Agent);
    exit_codes::OK
}
