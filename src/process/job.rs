//! One-shot jobs of the task loop (the agent, its `verify` command): argv without a shell,
//! their own process group, stdin from /dev/null, stdout to a pipe the loop reads (the
//! agent's answer), stderr straight into the task's log file.
//!
//! Started with nothing to run between fork and exec, so the standard library uses
//! `posix_spawn` (a `vfork`-style clone: no copy of the loop's page tables, which made a
//! full `fork` a third of the loop's CPU per task). There is therefore no parent-death
//! signal: a job the loop leaves behind when it is killed is found at its next start, by
//! the loop's record of groups and by the marker its environment carries
//! ([`RUN_MARKER`], see `records::kill_marked`), and killed with its whole group.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, ChildStdout, Command};

/// The environment variable that marks a job as the task loop's: its value names the
/// vault (`<vault path>`), so that a loop's next start finds what it left behind, even a
/// job whose group it had not recorded yet.
pub const RUN_MARKER: &str = "AI_EMPLOYEE_AGENT_OF";

/// A started job.
pub struct Job {
    pub child: Child,
    /// Its pid, also its process group id.
    pub pgid: i32,
    pub stdout: ChildStdout,
}

/// Start `argv` in `cwd` with `env` added, stderr appended to `log`.
pub fn spawn_job(
    argv: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
    log: File,
) -> io::Result<Job> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(dev_null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .current_dir(cwd)
        .process_group(0)
        .kill_on_drop(false);
    for k in [
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        ai_employee_vault::watcher::HEARTBEAT_ENV,
        ai_employee_vault::watcher::HEARTBEAT_USEC_ENV,
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(env);
    let mut child = cmd.spawn()?;
    let pgid = child
        .id()
        .map(|p| p as i32)
        .ok_or_else(|| io::Error::other("the job exited before its pid was read"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("the job has no stdout pipe"))?;
    Ok(Job {
        child,
        pgid,
        stdout,
    })
}

/// Standard input from /dev/null: a copy of a descriptor opened once (`Stdio::null()`
/// opens the path for every job).
fn dev_null() -> Stdio {
    static NULL: std::sync::OnceLock<Option<File>> = std::sync::OnceLock::new();
    NULL.get_or_init(|| File::open("/dev/null").ok())
        .as_ref()
        .and_then(|f| f.try_clone().ok())
        .map_or_else(Stdio::null, Stdio::from)
}

/// Run `argv` to its end (no shell, stdin from /dev/null) and take its output; killed
/// when it takes longer than `timeout` (an error of kind `TimedOut`).
pub async fn output(
    argv: &[String],
    timeout: std::time::Duration,
) -> io::Result<std::process::Output> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    match tokio::time::timeout(timeout, cmd.output()).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
    }
}
