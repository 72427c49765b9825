//! What every watcher needs: its vault, a heartbeat, a SIGTERM flag, logging to stderr,
//! and the one-line exit 78 for missing configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cli::VaultArg;
use crate::exit_codes;
use crate::layout::{STATE_DIR, ensure_private_dir};
use crate::lock::{LockError, VaultLock};
use crate::logs::system::{self, SystemLogOptions};

/// Shared state of a running watcher.
pub struct WatcherCtx {
    pub name: &'static str,
    pub vault: PathBuf,
    stop: Arc<AtomicBool>,
    heartbeat: Option<PathBuf>,
    last_beat: Option<Instant>,
}

/// How often a watcher touches its heartbeat file (the supervisor's default
/// `heartbeat_timeout` is 90 s).
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

impl WatcherCtx {
    /// Set up logging (stderr, which the supervisor writes to `Logs/<name>.log`), SIGTERM
    /// and SIGINT handling, and the heartbeat from `$AI_EMPLOYEE_HEARTBEAT`.
    pub fn start(name: &'static str, vault: &VaultArg) -> std::io::Result<WatcherCtx> {
        system::install(SystemLogOptions {
            file: None,
            console: true,
            level: system::level_from_env(),
            full_time: true,
        });
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, stop.clone())?;
        }
        let heartbeat = std::env::var_os("AI_EMPLOYEE_HEARTBEAT").map(PathBuf::from);
        let mut ctx = WatcherCtx {
            name,
            vault: crate::cli::resolve_vault(vault),
            stop,
            heartbeat,
            last_beat: None,
        };
        ctx.beat();
        Ok(ctx)
    }

    /// True once SIGTERM or SIGINT arrived: finish the current item and return.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The flag itself, for threads and wait loops.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Touch the heartbeat file if the last beat is older than [`HEARTBEAT_EVERY`]. Cheap
    /// to call often.
    pub fn beat(&mut self) {
        if self
            .last_beat
            .is_some_and(|t| t.elapsed() < HEARTBEAT_EVERY)
        {
            return;
        }
        if let Some(p) = &self.heartbeat {
            touch(&self.vault, p);
        }
        self.last_beat = Some(Instant::now());
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.vault.join(rel)
    }

    /// One watcher of this kind per vault (two would both take every message): an
    /// exclusive lock on `<vault>/.ai-employee/<name>.lock`, held until the guard drops
    /// and released by the kernel however the process ends. Take it before touching the
    /// watcher's state. `what` names the watcher in the message ("WhatsApp watcher").
    /// Err: the exit code, after one line on stderr (75 when another one holds it).
    pub fn single_instance(&self, what: &str) -> Result<VaultLock, i32> {
        let name = self.name;
        let state = self.vault.join(STATE_DIR);
        if let Err(e) = ensure_private_dir(&state) {
            if crate::nofollow::is_symlink_error(&e) {
                return Err(needs_setup(name, e));
            }
            eprintln!(
                "ai-employee watch {name}: cannot create {}: {e}",
                state.display()
            );
            return Err(exit_codes::CANT_CREATE);
        }
        match VaultLock::acquire(&state.join(format!("{name}.lock"))) {
            Ok(lock) => Ok(lock),
            Err(LockError::HeldBy { pid, .. }) => {
                eprintln!(
                    "ai-employee watch {name}: another {what} (pid {pid}) is running on this vault"
                );
                Err(exit_codes::LOCKED)
            }
            Err(LockError::Held { .. }) => {
                eprintln!("ai-employee watch {name}: another {what} is running on this vault");
                Err(exit_codes::LOCKED)
            }
            Err(e) => {
                eprintln!("ai-employee watch {name}: {e}");
                Err(exit_codes::FAILURE)
            }
        }
    }
}

/// Touch the heartbeat file `p`, never through a symlink: below the vault, no component
/// is followed; elsewhere (a test's own path), its folder and the file are not.
fn touch(vault: &Path, p: &Path) {
    use crate::nofollow::{self, How};
    let now = std::time::SystemTime::now();
    let opened = if p.starts_with(vault) {
        nofollow::open_under(vault, p, How::write(0o600))
    } else {
        nofollow::open_in_folder(p, How::write(0o600))
    };
    let ok = opened.and_then(|f| f.set_modified(now));
    if let Err(e) = ok {
        tracing::debug!("failed to touch heartbeat {}: {e}", p.display());
    }
}

/// `--max-body SIZE` of the mail and WhatsApp watchers: 1 KiB to 64 MiB.
pub fn parse_max_body(s: &str) -> Result<u64, String> {
    let n = crate::units::parse_size(s)?;
    if !(1024..=64 << 20).contains(&n) {
        return Err(format!("{s:?} must be between 1KiB and 64MiB"));
    }
    Ok(n)
}

/// Print the one-line reason a watcher cannot run and return 78 (the supervisor shows the
/// watcher as needing setup and does not restart it).
pub fn needs_setup(name: &str, msg: impl std::fmt::Display) -> i32 {
    eprintln!("ai-employee watch {name}: {msg}");
    exit_codes::CONFIG
}

/// A file-watching error in words: notify's own text appends the paths in Rust notation
/// (`… about ["/v/Inbox"]`); the caller names the folder itself.
pub fn notify_error_text(e: &notify::Error) -> String {
    match &e.kind {
        notify::ErrorKind::Generic(s) => s.clone(),
        notify::ErrorKind::Io(io) => io.to_string(),
        notify::ErrorKind::PathNotFound => "the folder does not exist".to_string(),
        notify::ErrorKind::WatchNotFound => "the folder is not being watched".to_string(),
        notify::ErrorKind::InvalidConfig(_) => "invalid file watching settings".to_string(),
        notify::ErrorKind::MaxFilesWatch => {
            "the system's limit on watched folders is reached (Linux: raise \
             fs.inotify.max_user_watches)"
                .to_string()
        }
    }
}

#[cfg(test)]
mod notify_error_tests {
    use super::notify_error_text;

    #[test]
    fn notify_errors_without_rust_notation() {
        let e = notify::Error::io(std::io::Error::from_raw_os_error(libc::ENOENT))
            .add_path("/v/Inbox".into());
        assert!(e.to_string().contains("about [\"/v/Inbox\"]"), "{e}");
        assert_eq!(
            notify_error_text(&e),
            "No such file or directory (os error 2)"
        );
        assert_eq!(
            notify_error_text(&notify::Error::new(notify::ErrorKind::MaxFilesWatch)),
            "the system's limit on watched folders is reached (Linux: raise \
             fs.inotify.max_user_watches)"
        );
    }
}
