//! A watcher's JSON state file in `.ai-employee/` (`gmail.state`, `github.state`): read
//! whole, a missing file being the empty state; replaced atomically with mode 0600;
//! neither the file nor its folder reached through a symlink.

use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::nofollow;

/// Why the state file cannot be used (the watcher needs setup).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `remedy`: what removing the file costs, in the watcher's words.
    #[error("{} is damaged ({source}); {remedy}", path.display())]
    Damaged {
        path: PathBuf,
        source: serde_json::Error,
        remedy: &'static str,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

/// The state at `path` (`T::default()` when there is no file). `remedy` ends the message
/// of a damaged file: "remove it to …".
pub fn load<T: DeserializeOwned + Default>(
    path: &Path,
    remedy: &'static str,
) -> Result<T, LoadError> {
    match nofollow::folder_of(path).and_then(|(dir, name)| dir.read(name, None)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| LoadError::Damaged {
            path: path.to_path_buf(),
            source,
            remedy,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(LoadError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replace the state at `path` by `bytes` (its JSON), atomically, mode 0600.
pub fn save(path: &Path, bytes: &[u8]) -> io::Result<()> {
    nofollow::folder_of(path).and_then(|(dir, name)| dir.write_atomic(name, bytes, 0o600))
}
