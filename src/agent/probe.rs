//! One short run of the agent to learn whether it can run at all (`ai-employee setup
//! agent`): the table's `[agent] command` with a one-line prompt, through the task loop's
//! job spawner, its answer read by `outcome` (not logged in, no API key …).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;

use super::outcome::{self, Answer};
use crate::process::job::spawn_job;

/// The prompt of the check: the cheapest answer there is.
pub const PROMPT: &str = "Reply with the single word OK.";

/// What the run gave.
#[derive(Debug)]
pub enum Probe {
    /// It answered without an error.
    Answered(Answer),
    /// It cannot run until set up: the one-line reason.
    NeedsSetup(String),
    /// It failed otherwise: its exit and what it said.
    Failed(String),
    /// No answer within the limit (its group was killed).
    TimedOut,
}

/// `program` as the task loop starts it: a path as is, a bare name found on `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Run `argv` in `cwd` with `env` added (the table's `[agent] env`, as the loop does),
/// stderr into `log` (replaced), for at most `limit`.
pub fn run(
    argv: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
    log: &Path,
    limit: Duration,
) -> io::Result<Probe> {
    let file = std::fs::File::create(log)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (code, stdout, timed_out) = rt.block_on(async {
        let job = spawn_job(argv, cwd, env, file)?;
        let (mut child, pgid, mut stdout) = (job.child, job.pgid, job.stdout);
        let mut out = Vec::new();
        let ran = tokio::time::timeout(limit, async {
            stdout.read_to_end(&mut out).await?;
            child.wait().await
        })
        .await;
        match ran {
            Ok(status) => Ok::<_, io::Error>((status?.code(), out, false)),
            Err(_) => {
                crate::process::signal_group(pgid, Signal::SIGKILL);
                let _ = child.wait().await;
                Ok((None, out, true))
            }
        }
    })?;
    if timed_out {
        return Ok(Probe::TimedOut);
    }
    let stderr = std::fs::read_to_string(log).unwrap_or_default();
    let answer = outcome::parse_output(&stdout);
    if let Some(reason) = outcome::needs_setup(code, &answer, &stderr) {
        return Ok(Probe::NeedsSetup(reason));
    }
    if code == Some(0) && !answer.is_error {
        return Ok(Probe::Answered(answer));
    }
    let said = if answer.text.trim().is_empty() {
        stderr.lines().last().unwrap_or_default().to_string()
    } else {
        answer.text.clone()
    };
    let exit = code.map_or("killed by a signal".to_string(), |c| format!("exit {c}"));
    Ok(Probe::Failed(format!(
        "{exit}: {}",
        super::task::one_line(&said, 300)
    )))
}
