//! Spawning a child: its own process group, argv without a shell, stdin from /dev/null,
//! stdout and stderr into one pipe that the supervisor drains into the child's log.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ai_employee_vault::watcher::{HEARTBEAT_ENV, HEARTBEAT_USEC_ENV};

/// The program name that means "this executable" in a process table.
pub const SELF_COMMAND: &str = "ai-employee";

/// Everything needed to start one child.
pub struct SpawnRequest<'a> {
    /// As written in the table.
    pub command: &'a str,
    pub args: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    /// Absolute.
    pub cwd: &'a Path,
    /// Absolute; relative commands are resolved against it.
    pub vault: &'a Path,
    pub heartbeat: &'a Path,
    /// The child's `heartbeat_timeout`, told to it so that it beats often enough.
    pub heartbeat_timeout: Option<std::time::Duration>,
}

/// A child that could not be started, and why.
#[derive(Debug, thiserror::Error)]
pub struct SpawnError {
    /// As written in the table.
    command: String,
    source: io::Error,
    /// The working folder, when it is what is missing (`ENOENT` from `chdir` reads like a
    /// missing program otherwise).
    missing_cwd: Option<PathBuf>,
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.missing_cwd {
            Some(cwd) => write!(
                f,
                "failed to start {:?}: cwd {} does not exist",
                self.command,
                cwd.display()
            ),
            None => write!(f, "failed to start {:?}: {}", self.command, self.source),
        }
    }
}

impl SpawnError {
    /// Whether the table needs fixing (no such program, not executable, bad working
    /// directory) rather than a passing condition.
    pub fn needs_setup(&self) -> bool {
        let e = &self.source;
        matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
        ) || matches!(
            e.raw_os_error(),
            Some(libc::ENOEXEC) | Some(libc::ENOTDIR) | Some(libc::EISDIR)
        )
    }
}

/// A started child.
#[derive(Debug)]
pub struct Spawned {
    /// Also its process group id.
    pub pid: i32,
    /// Read end of the stdout+stderr pipe, non-blocking.
    pub output: OwnedFd,
}

/// Resolve a table `command` to the file to execute.
pub fn resolve_program(command: &str, vault: &Path, path_var: Option<&str>) -> io::Result<PathBuf> {
    if command == SELF_COMMAND {
        return self_exe();
    }
    if command.contains('/') {
        let p = Path::new(command);
        return Ok(if p.is_absolute() {
            p.to_path_buf()
        } else {
            vault.join(p)
        });
    }
    let path_var = path_var
        .map(str::to_string)
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_string());
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let cand = Path::new(dir).join(command);
        if is_executable(&cand) {
            return Ok(cand);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("{command:?} not found on PATH"),
    ))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The supervisor's own executable. On Linux `/proc/self/exe`, which keeps working (and
/// keeps the running version) even when the file is replaced during an upgrade.
pub fn self_exe() -> io::Result<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        let p = PathBuf::from("/proc/self/exe");
        if p.exists() {
            return Ok(p);
        }
    }
    std::env::current_exe()
}

/// Variables that belong to the supervisor's own service manager, not to children.
const SCRUBBED_ENV: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    // Ours, from a supervisor above this one: each child is told its own.
    HEARTBEAT_USEC_ENV,
];

/// Start a child. Never goes through a shell.
pub fn spawn(req: &SpawnRequest<'_>) -> Result<Spawned, SpawnError> {
    start(req).map_err(|source| {
        // Checked after the failure, so a folder made meanwhile is not blamed.
        let missing_cwd = (source.kind() == io::ErrorKind::NotFound
            && std::fs::symlink_metadata(req.cwd).is_err())
        .then(|| req.cwd.to_path_buf());
        SpawnError {
            command: req.command.to_string(),
            source,
            missing_cwd,
        }
    })
}

fn start(req: &SpawnRequest<'_>) -> io::Result<Spawned> {
    let program = resolve_program(
        req.command,
        req.vault,
        req.env.get("PATH").map(String::as_str),
    )?;
    let (rd, wr) = super::cloexec_pipe()?;
    let wr2 = wr.try_clone()?;
    let mut cmd = Command::new(&program);
    cmd.arg0(req.command)
        .args(req.args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(wr))
        .stderr(Stdio::from(wr2))
        .current_dir(req.cwd)
        .process_group(0);
    for k in SCRUBBED_ENV {
        cmd.env_remove(k);
    }
    cmd.env(HEARTBEAT_ENV, req.heartbeat)
        .env("AI_EMPLOYEE_VAULT", req.vault);
    if let Some(t) = req.heartbeat_timeout {
        cmd.env(HEARTBEAT_USEC_ENV, t.as_micros().to_string());
    }
    cmd.envs(req.env);
    let child = cmd.spawn()?;
    // `cmd` holds the pipe's write ends; drop it so EOF arrives when the child's side closes.
    drop(cmd);
    let pid = child.id() as i32;
    // We reap with waitpid(-1) ourselves; dropping a std Child neither waits nor kills.
    drop(child);
    nix::fcntl::fcntl(
        &rd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .map_err(io::Error::from)?;
    Ok(Spawned { pid, output: rd })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_error(command: &str, cwd: &Path) -> SpawnError {
        let env = BTreeMap::new();
        let req = SpawnRequest {
            command,
            args: &[],
            env: &env,
            cwd,
            vault: Path::new("/"),
            heartbeat: Path::new("/nonexistent/heartbeat"),
            heartbeat_timeout: None,
        };
        match spawn(&req) {
            Ok(s) => panic!("{command} started as pid {}", s.pid),
            Err(e) => e,
        }
    }

    #[test]
    fn a_table_that_names_what_cannot_run_needs_setup() {
        let e = start_error("/nonexistent/program", Path::new("/"));
        assert!(e.needs_setup());
        assert_eq!(
            e.to_string(),
            "failed to start \"/nonexistent/program\": No such file or directory (os error 2)"
        );
        // Not executable.
        assert!(start_error("/etc/hosts", Path::new("/")).needs_setup());
        // A working folder that is a file.
        assert!(start_error("/bin/sh", Path::new("/etc/hosts")).needs_setup());
        // A working folder that does not exist is named, not the program.
        let e = start_error("/bin/sh", Path::new("/nonexistent/folder"));
        assert!(e.needs_setup());
        assert_eq!(
            e.to_string(),
            "failed to start \"/bin/sh\": cwd /nonexistent/folder does not exist"
        );
    }

    #[test]
    fn a_passing_condition_does_not() {
        let e = SpawnError {
            command: "x".into(),
            source: io::Error::from_raw_os_error(libc::EMFILE),
            missing_cwd: None,
        };
        assert!(!e.needs_setup());
        assert_eq!(
            e.to_string(),
            "failed to start \"x\": Too many open files (os error 24)"
        );
    }
}
