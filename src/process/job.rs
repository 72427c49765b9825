//! One-shot jobs of the task loop (the agent, its `verify` command): argv without a shell,
//! their own process group, stdin from /dev/null, stdout to a pipe the loop reads (the
//! agent's answer), stderr straight into the task's log file. On Linux the job's leader
//! is killed if the loop dies (`PR_SET_PDEATHSIG`); whatever else of its group survives is
//! found through the loop's record of groups at its next start.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, ChildStdout, Command};

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
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .current_dir(cwd)
        .process_group(0)
        .kill_on_drop(false);
    for k in [
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "AI_EMPLOYEE_HEARTBEAT",
    ] {
        cmd.env_remove(k);
    }
    cmd.envs(env);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec and only calls
        // async-signal-safe functions (prctl, getppid, _exit).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The loop may have died between fork and prctl.
                if libc::getppid() != parent {
                    libc::_exit(137);
                }
                Ok(())
            });
        }
    }
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
