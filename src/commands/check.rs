use std::path::Path;

use ai_employee_vault::exit_codes;

use crate::config;

pub fn run(vault: &Path, explicit: Option<&Path>) -> i32 {
    match config::load(vault, explicit) {
        Ok(cfg) => {
            let enabled = cfg.processes.iter().filter(|p| p.enabled).count();
            println!(
                "{}: ok ({} processes, {} enabled)",
                cfg.source,
                cfg.processes.len(),
                enabled
            );
            exit_codes::OK
        }
        Err(errors) => {
            eprintln!("{errors}");
            exit_codes::CONFIG
        }
    }
}
