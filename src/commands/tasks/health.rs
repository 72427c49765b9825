//! Placeholder until the health command lands.
use std::path::Path;

use crate::config::AgentSettings;

pub fn health(_vault: &Path, _json: bool, _settings: &AgentSettings) -> i32 {
    0
}
