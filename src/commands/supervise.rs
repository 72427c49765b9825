use std::path::Path;

pub fn run(_vault: &Path, _config: Option<&Path>) -> i32 {
    0
}
