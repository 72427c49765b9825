//! The process table: TOML text → validated [`Config`].
//!
//! Parsing is strict: unknown keys, wrong types, duplicate names and bad durations are all
//! reported at once, each as `file:line:column: message` (exit code 78).

pub mod model;
mod parse;

use std::path::{Path, PathBuf};

pub use model::*;

/// The built-in default table: the same bytes as `config/ai-employee.toml`.
pub const DEFAULT_TABLE: &str = include_str!("../../config/ai-employee.toml");

pub use ai_employee_vault::layout::VAULT_CONFIG_NAME;

/// One problem in a table, located in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The path as given, or `<built-in default>`.
    pub file: String,
    /// 1-based; 0 when the problem is the file as a whole (cannot be read).
    pub line: usize,
    /// 1-based; 0 with line 0.
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

/// Every problem found in one table, in source order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parse and validate table text. `source` names it in error messages.
pub fn parse(text: &str, source: Source) -> Result<Config, ConfigErrors> {
    parse::parse(text, source)
}

/// Read and validate a table file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, Source::File(path.to_path_buf())),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("failed to read the process table: {e}"),
        }])),
    }
}

/// Which table a command uses: `--config FILE` if given, else the vault's
/// `ai-employee.toml` if it exists, else the built-in default.
pub fn locate(vault: &Path, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let in_vault = vault.join(VAULT_CONFIG_NAME);
    in_vault.exists().then_some(in_vault)
}

/// Load the table a command should use (see [`locate`]).
pub fn load(vault: &Path, explicit: Option<&Path>) -> Result<Config, ConfigErrors> {
    match locate(vault, explicit) {
        Some(path) => load_file(&path),
        None => parse(DEFAULT_TABLE, Source::BuiltIn),
    }
}
