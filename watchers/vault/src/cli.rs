//! The command-line bits every command and watcher shares: `--vault` and how it resolves.

use std::path::{Path, PathBuf};

use clap::Args;

#[derive(Debug, Args, Clone)]
pub struct VaultArg {
    /// The vault folder [default: $AI_EMPLOYEE_VAULT, else ./AI_Employee_Vault]
    #[arg(
        long,
        value_name = "DIR",
        env = "AI_EMPLOYEE_VAULT",
        hide_env_values = true
    )]
    pub vault: Option<PathBuf>,
}

/// The default vault when neither `--vault` nor `$AI_EMPLOYEE_VAULT` is set.
pub const DEFAULT_VAULT: &str = "AI_Employee_Vault";

/// `--vault`, else `$AI_EMPLOYEE_VAULT` (clap reads it), else `./AI_Employee_Vault`;
/// made absolute against the current directory.
pub fn resolve_vault(arg: &VaultArg) -> PathBuf {
    let p = arg
        .vault
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_VAULT));
    absolute(&p)
}

/// `p` made absolute against the current directory (as it is when that fails).
pub fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
