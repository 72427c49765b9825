//! The process table: TOML text → validated [`Config`].
//!
//! Parsing is strict: unknown keys, wrong types, duplicate names and bad durations are all
//! reported at once, each as `file:line:column: message` (exit code 78).

pub mod model;
mod parse;
mod read;
mod schema;
pub mod template;

use std::path::{Path, PathBuf};

pub use model::*;

/// The built-in default table: the same bytes as `config/ai-employee.toml`.
pub const DEFAULT_TABLE: &str = include_str!("../../config/ai-employee.toml");

/// One problem in a table, located in its source (`file` is the path as given, or
/// `<built-in default>`; line 0 when the file cannot be read).
pub use ai_employee_vault::toml_fields::Diagnostic as ConfigError;
/// Every problem found in one table, in source order, one line each.
pub use ai_employee_vault::toml_fields::Diagnostics as ConfigErrors;

/// Parse and validate table text. `source` names it in error messages.
pub fn parse(text: &str, source: Source) -> Result<Config, ConfigErrors> {
    parse::parse(text, source)
}

/// Read and validate a table file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, Source::File(path.to_path_buf())),
        Err(e) => Err(ConfigErrors(vec![ConfigError::whole_file(
            &path.display().to_string(),
            format!("failed to read the process table: {e}"),
        )])),
    }
}

/// Which table a command uses: `--config FILE` if given, else the vault's
/// `ai-employee.toml` if it exists, else the built-in default.
pub fn locate(vault: &Path, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let in_vault = vault.join(ai_employee_vault::layout::VAULT_CONFIG_NAME);
    in_vault.exists().then_some(in_vault)
}

/// Load the table a command should use (see [`locate`]).
pub fn load(vault: &Path, explicit: Option<&Path>) -> Result<Config, ConfigErrors> {
    match locate(vault, explicit) {
        Some(path) => load_file(&path),
        None => parse(DEFAULT_TABLE, Source::BuiltIn),
    }
}
