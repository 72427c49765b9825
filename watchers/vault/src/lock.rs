//! One supervisor per vault: an exclusive `flock` on `.ai-employee/supervisor.lock`, held
//! for the supervisor's lifetime and released by the kernel when it dies, so a stale lock
//! never blocks. The holder's pid is written into the file for the message a second
//! supervisor prints.

use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::sys::{self, FileLock, TryLock};

/// Held for as long as it lives.
#[derive(Debug)]
pub struct VaultLock {
    _lock: FileLock,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("vault is already supervised by pid {pid} (lock {path})")]
    HeldBy { pid: i32, path: PathBuf },
    #[error("vault is already supervised by another process (lock {path})")]
    Held { path: PathBuf },
    #[error("failed to lock {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl VaultLock {
    pub fn acquire(path: &Path) -> Result<VaultLock, LockError> {
        let io_err = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        // Neither the lock file nor its folder is reached through a symlink.
        let file = super::nofollow::open_in_folder(path, super::nofollow::How::read_write(0o600))
            .map_err(io_err)?;
        let lock = match sys::try_lock(file).map_err(io_err)? {
            TryLock::Locked(lock) => lock,
            TryLock::Held(mut file) => {
                let mut text = String::new();
                // Without the holder's pid (unreadable) the message says less, nothing else.
                let _ = file.read_to_string(&mut text);
                return Err(match text.trim().parse::<i32>() {
                    Ok(pid) if pid > 0 => LockError::HeldBy {
                        pid,
                        path: path.to_path_buf(),
                    },
                    _ => LockError::Held {
                        path: path.to_path_buf(),
                    },
                });
            }
        };
        let mut file = lock.file();
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io_err)?;
        Ok(VaultLock {
            _lock: lock,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
