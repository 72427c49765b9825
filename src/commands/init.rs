use std::path::Path;

use ai_employee_vault::exit_codes;
use ai_employee_vault::{Vault, layout};

use crate::config::DEFAULT_TABLE;

pub fn run(root: &Path) -> i32 {
    let vault = Vault::new(root.to_path_buf());
    match layout::init(&vault, DEFAULT_TABLE) {
        Ok(report) => {
            if report.created.is_empty() {
                println!("Vault {} is complete; nothing to create.", root.display());
            } else {
                println!("Vault {}:", root.display());
                for p in &report.created {
                    match p.strip_prefix(root) {
                        // The vault's own folder.
                        Ok(rel) if rel.as_os_str().is_empty() => {
                            println!("  created the vault folder");
                        }
                        Ok(rel) => println!("  created {}", rel.display()),
                        Err(_) => println!("  created {}", p.display()),
                    }
                }
            }
            for line in &report.refused {
                eprintln!("ai-employee: warning: {line}");
            }
            exit_codes::OK
        }
        Err(e) if ai_employee_vault::nofollow::is_symlink_error(&e) => {
            super::fail(exit_codes::CONFIG, e)
        }
        Err(e) => super::fail(
            exit_codes::CANT_CREATE,
            format_args!("failed to initialise vault {}: {e}", root.display()),
        ),
    }
}
