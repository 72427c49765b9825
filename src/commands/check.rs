use std::path::Path;

use ai_employee_vault::exit_codes;

use crate::config;

pub fn run(vault: &Path, explicit: Option<&Path>) -> i32 {
    match config::load(vault, explicit) {
        Ok(cfg) => {
            // Not an error: the folder may be made (or mounted) before the supervisor
            // starts; until then the child needs setup.
            for p in cfg.processes.iter().filter(|p| p.enabled) {
                let cwd = p.working_dir(vault);
                if !cwd.is_dir() {
                    let problem = if cwd.exists() {
                        "is not a folder"
                    } else {
                        "does not exist"
                    };
                    eprintln!(
                        "{}: warning: process {:?}: cwd {} {problem} (it cannot start until fixed)",
                        cfg.source,
                        p.name,
                        cwd.display()
                    );
                }
            }
            let enabled = cfg.processes.iter().filter(|p| p.enabled).count();
            println!(
                "{}: ok ({}, {enabled} enabled)",
                cfg.source,
                ai_employee_vault::units::count(cfg.processes.len() as u64, "process", "processes"),
            );
            exit_codes::OK
        }
        Err(errors) => {
            eprintln!("{errors}");
            exit_codes::CONFIG
        }
    }
}
