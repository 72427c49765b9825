//! One attempt at a task: the agent run, its resumes (`max_iterations`) and `verify`, each
//! in its own process group with the timeout, output into `Logs/agent/<task>.log`.
//! Returns what happened; the loop decides what it means for the task.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};

use super::container::Contained;
use super::events::RunResult;
use super::outcome::{self, Answer, Status};
use crate::process::{self, job};

/// The most of an agent's standard output kept for reading its answer (the rest is in
/// the log).
const ANSWER_CAP: usize = 4 * 1024 * 1024;
/// How much of `verify`'s output is fed into the next iteration.
const VERIFY_TAIL: usize = 8 * 1024;
/// How much of a failed run's log is read for its reason (and a set-up problem's words).
const STDERR_TAIL: u64 = 4096;

/// What an attempt needs; owned, so it can run on its own task.
#[derive(Debug, Clone)]
pub struct AttemptSpec {
    pub task: String,
    /// The first run's argv (placeholders filled in).
    pub argv: Vec<String>,
    /// `[agent] command` and `resume` as written, for resumes.
    pub command: Vec<String>,
    pub resume: Vec<String>,
    /// What fills their placeholders (and `verify`'s).
    pub values: ArgValues,
    /// The prompt of a resume after a run without status.
    pub continue_prompt: String,
    pub verify: Option<Vec<String>>,
    pub max_iterations: u32,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub log: PathBuf,
    pub timeout: Duration,
    pub kill_after: Duration,
    pub dry_run: bool,
    /// Each process in a container of its own (a worker's `--runner podman`).
    pub container: Option<Contained>,
}

/// Reported while an attempt runs.
#[derive(Debug)]
pub enum Progress {
    /// A process group started (the loop records it, to kill it if the loop dies), with
    /// its leader's start time (`/proc`; 0 where unknown), read here rather than on the
    /// loop's thread.
    Started {
        task: String,
        pgid: i32,
        start_time: u64,
    },
    /// It is gone.
    Ended { task: String, pgid: i32 },
    /// One agent run ended (an event for the metrics).
    Run {
        task: String,
        iteration: u32,
        result: RunResult,
        duration: Duration,
        cost_usd: Option<f64>,
        turns: Option<u32>,
        error: Option<String>,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct AttemptEnd {
    pub result: RunResult,
    /// Why, for a result other than done / waiting for approval.
    pub error: Option<String>,
    pub session_id: Option<String>,
    pub cost_usd: f64,
    pub turns: u64,
    pub iterations: u32,
    /// Set for [`RunResult::NeedsSetup`].
    pub setup: Option<String>,
}

/// Run one attempt. `abort` turning true stops it (SIGTERM, then SIGKILL after
/// `kill_after`): the result is then [`RunResult::Interrupted`].
pub async fn attempt(
    spec: AttemptSpec,
    progress: mpsc::UnboundedSender<Progress>,
    mut abort: watch::Receiver<bool>,
) -> AttemptEnd {
    let mut end = AttemptEnd {
        result: RunResult::NoStatus,
        error: None,
        session_id: None,
        cost_usd: 0.0,
        turns: 0,
        iterations: 0,
        setup: None,
    };
    let mut argv = spec.argv.clone();
    for iteration in 1..=spec.max_iterations.max(1) {
        end.iterations = iteration;
        let started = Instant::now();
        let run = run_once(&spec, &argv, iteration, &progress, &mut abort).await;
        let (result, answer) = match run {
            Err(e) => {
                let setup = e.kind() == std::io::ErrorKind::NotFound
                    || e.kind() == std::io::ErrorKind::PermissionDenied;
                let why = format!("cannot start {:?}: {e}", argv.first().map_or("", |s| s));
                if setup {
                    end.setup = Some(why.clone());
                }
                let r = if setup {
                    RunResult::NeedsSetup
                } else {
                    RunResult::Crashed
                };
                (r, Err(why))
            }
            Ok(out) => classify(&out),
        };
        let answer_ref = answer.as_ref().ok();
        if let Some(a) = answer_ref {
            if a.session_id.is_some() {
                end.session_id.clone_from(&a.session_id);
            }
            end.cost_usd += a.cost_usd.unwrap_or(0.0);
            end.turns += u64::from(a.turns.unwrap_or(0));
        }
        let error = match (&answer, result) {
            (Err(why), _) => Some(why.clone()),
            (Ok(a), RunResult::Failed) => Some(failure_text(a)),
            (Ok(_), RunResult::NoStatus) => Some("the agent ended without a status line".into()),
            (Ok(a), RunResult::NeedsSetup) => {
                end.setup = Some(a.text.clone());
                Some(a.text.clone())
            }
            (Ok(a), RunResult::Crashed | RunResult::Timeout | RunResult::Interrupted) => {
                Some(a.text.clone())
            }
            _ => None,
        };
        let mut result = result;
        let mut error = error;
        // `verify` after a run that says done.
        let mut verify_failure = None;
        if result == RunResult::Done
            && let Some(v) = &spec.verify
            && !spec.dry_run
        {
            let v = fill(v, &spec.values, "", "");
            match verify(&spec, &v, &progress, &mut abort).await {
                Ok(None) => {}
                Ok(Some(out)) => {
                    result = RunResult::VerifyFailed;
                    error = Some(format!("verify failed: {}", first_line(&out)));
                    verify_failure = Some(out);
                }
                Err(e) => {
                    result = RunResult::VerifyFailed;
                    error = Some(format!("verify could not run: {e}"));
                }
            }
        }
        let _ = progress.send(Progress::Run {
            task: spec.task.clone(),
            iteration,
            result,
            duration: started.elapsed(),
            cost_usd: answer_ref.and_then(|a| a.cost_usd),
            turns: answer_ref.and_then(|a| a.turns),
            error: error.clone(),
        }); // the loop is gone only when it stops; nothing to tell then
        end.result = result;
        end.error = error;
        let again = match result {
            RunResult::NoStatus => Some(spec.continue_prompt.clone()),
            RunResult::VerifyFailed => verify_failure.map(|out| {
                format!(
                    "Task file: {}\n\nThe check `{}` failed after you said done. Its \
                     output:\n\n{}\n\nFix the problem and end with the status line again.",
                    spec.values.task_file,
                    spec.verify.as_deref().unwrap_or_default().join(" "),
                    out
                )
            }),
            _ => None,
        };
        let (Some(prompt), Some(session)) = (again, end.session_id.clone()) else {
            break;
        };
        if *abort.borrow() {
            break;
        }
        argv = resume_argv(&spec, &prompt, &session);
    }
    end
}

/// The values of the argv templates' placeholders other than `{prompt}` and
/// `{session_id}` (`config::template`).
#[derive(Debug, Clone, Default)]
pub struct ArgValues {
    pub task: String,
    /// Vault-relative, `In_Progress/<task>.md`.
    pub task_file: String,
    pub vault: String,
}

/// `args` with their placeholders filled in (`{{` and `}}` become braces). The table's
/// reader has checked every template, so one that does not parse is left as written.
pub fn fill(args: &[String], v: &ArgValues, prompt: &str, session: &str) -> Vec<String> {
    use crate::config::template::{self, Placeholder};
    args.iter()
        .map(|a| {
            template::render(a, |p| match p {
                Placeholder::Prompt => prompt,
                Placeholder::Task => &v.task,
                Placeholder::TaskFile => &v.task_file,
                Placeholder::Vault => &v.vault,
                Placeholder::SessionId => session,
            })
            .unwrap_or_else(|_| a.clone())
        })
        .collect()
}

/// `command` + `resume`, filled in for a resumed session.
pub fn resume_argv(spec: &AttemptSpec, prompt: &str, session: &str) -> Vec<String> {
    let args: Vec<String> = spec.command.iter().chain(&spec.resume).cloned().collect();
    fill(&args, &spec.values, prompt, session)
}

/// What one process run gave.
struct Output {
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    aborted: bool,
    stdout: Vec<u8>,
    /// The run's log (open for reading) and where this run's output starts in it; `None`
    /// for a dry run.
    log: Option<(File, u64)>,
}

impl Output {
    /// The last `limit` bytes this run wrote to its log, after its header: its standard
    /// error (only there) and its standard output (also kept in `stdout`), as they came.
    /// Read only when a failure needs it.
    fn log_tail(&self, limit: u64) -> String {
        let Some((log, from)) = &self.log else {
            return String::new();
        };
        use std::os::unix::fs::FileExt;
        let Ok(len) = log.metadata().map(|m| m.len()) else {
            return String::new();
        };
        let start = (*from).max(len.saturating_sub(limit));
        let mut buf = vec![0u8; (len.saturating_sub(start)) as usize];
        let mut got = 0;
        // A log we cannot read back only costs the error's detail.
        while got < buf.len() {
            match log.read_at(&mut buf[got..], start + got as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        buf.truncate(got);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// [`Output::log_tail`] without the lines the run printed on its standard output: what
    /// it said on its standard error.
    fn stderr_tail(&self) -> String {
        let stdout = String::from_utf8_lossy(&self.stdout);
        let said: std::collections::HashSet<&str> = stdout.lines().collect();
        self.log_tail(STDERR_TAIL)
            .lines()
            .filter(|l| !said.contains(l))
            .fold(String::new(), |mut acc, l| {
                acc.push_str(l);
                acc.push('\n');
                acc
            })
    }
}

fn classify(out: &Output) -> (RunResult, Result<Answer, String>) {
    let answer = outcome::parse_output(&out.stdout);
    // A clean exit with an answer that is not an error needs nothing from the log.
    let stderr_tail = if out.code == Some(0) && !answer.is_error {
        String::new()
    } else {
        out.stderr_tail()
    };
    if let Some(reason) = outcome::needs_setup(out.code, &answer, &stderr_tail) {
        let mut a = answer;
        a.text = reason;
        return (RunResult::NeedsSetup, Ok(a));
    }
    if out.aborted {
        return (
            RunResult::Interrupted,
            Err("interrupted: the task loop stopped while the agent ran".into()),
        );
    }
    if out.timed_out {
        return (RunResult::Timeout, Err("timed out".into()));
    }
    if answer.is_error {
        return (RunResult::Failed, Ok(answer));
    }
    match (&answer.status, out.code) {
        (Status::Done, Some(0)) => (RunResult::Done, Ok(answer)),
        (Status::WaitingApproval, Some(0)) => (RunResult::WaitingApproval, Ok(answer)),
        (Status::Failed(_), _) => (RunResult::Failed, Ok(answer)),
        (Status::Missing, Some(0)) => (RunResult::NoStatus, Ok(answer)),
        _ => {
            let how = match (out.code, out.signal) {
                (Some(c), _) => format!("exited {c}"),
                (None, Some(s)) => format!("killed by {}", process::signal_name(s)),
                _ => "ended".to_string(),
            };
            let tail = first_line(stderr_tail.trim());
            let why = if tail.is_empty() {
                format!("the agent {how}")
            } else {
                format!("the agent {how}: {tail}")
            };
            (RunResult::Crashed, Err(why))
        }
    }
}

fn failure_text(a: &Answer) -> String {
    match &a.status {
        Status::Failed(reason) if !reason.is_empty() => reason.clone(),
        _ => {
            let t = last_line(&a.text);
            if t.is_empty() {
                "the agent answered with an error".into()
            } else {
                t
            }
        }
    }
}

fn first_line(s: &str) -> String {
    super::task::one_line(s.lines().find(|l| !l.trim().is_empty()).unwrap_or(""), 300)
}

fn last_line(s: &str) -> String {
    super::task::one_line(
        s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(""),
        300,
    )
}

/// Run `verify`; `Ok(None)` when it passed, `Ok(Some(output tail))` when it failed.
async fn verify(
    spec: &AttemptSpec,
    argv: &[String],
    progress: &mpsc::UnboundedSender<Progress>,
    abort: &mut watch::Receiver<bool>,
) -> std::io::Result<Option<String>> {
    let out = run_process(spec, argv, "verify", progress, abort).await?;
    if out.code == Some(0) {
        return Ok(None);
    }
    // Both its streams, in the order it wrote them.
    let text = out.log_tail(VERIFY_TAIL as u64);
    let start = text.len().saturating_sub(VERIFY_TAIL);
    let mut start = start;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    Ok(Some(text[start..].to_string()))
}

async fn run_once(
    spec: &AttemptSpec,
    argv: &[String],
    iteration: u32,
    progress: &mpsc::UnboundedSender<Progress>,
    abort: &mut watch::Receiver<bool>,
) -> std::io::Result<Output> {
    if spec.dry_run {
        return Ok(Output {
            code: Some(0),
            signal: None,
            timed_out: false,
            aborted: false,
            stdout: b"dry run: the agent was not started\nSTATUS: done\n".to_vec(),
            log: None,
        });
    }
    run_process(
        spec,
        argv,
        &format!("iteration {iteration}"),
        progress,
        abort,
    )
    .await
}

/// Start `argv`, copy its output into the log, stop it at the timeout or on abort.
async fn run_process(
    spec: &AttemptSpec,
    argv: &[String],
    what: &str,
    progress: &mpsc::UnboundedSender<Progress>,
    abort: &mut watch::Receiver<bool>,
) -> std::io::Result<Output> {
    let mut log = open_log(&spec.log)?;
    let shown: Vec<&str> = argv
        .iter()
        .map(|a| {
            if a.len() > 200 {
                "<prompt>"
            } else {
                a.as_str()
            }
        })
        .collect();
    // One write: `writeln!` on a file is a write per piece.
    let header = format!(
        "==== {} {what}: {}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"),
        shown.join(" ")
    );
    log.write_all(header.as_bytes())?;
    let start_offset = log.seek(SeekFrom::End(0))?;
    let contained = spec.container.as_ref().map(|c| (c, c.step_name(what)));
    let wrapped;
    let argv = match &contained {
        Some((c, name)) => {
            wrapped = c.run_argv(name, &spec.cwd, spec.env.keys(), argv);
            &wrapped[..]
        }
        None => argv,
    };
    let mut j = job::spawn_job(argv, &spec.cwd, &spec.env, log.try_clone()?)?;
    let pgid = j.pgid;
    let _ = progress.send(Progress::Started {
        task: spec.task.clone(),
        pgid,
        start_time: crate::process::stats::proc_info(pgid).map_or(0, |i| i.start_time),
    }); // see above
    let mut kept: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut status = None;
    let mut stdout_open = true;
    let mut timed_out = false;
    let mut aborted = false;
    let deadline = tokio::time::Instant::now() + spec.timeout;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let far = tokio::time::Instant::now() + Duration::from_secs(86400 * 365);
    while status.is_none() || stdout_open {
        tokio::select! {
            r = j.child.wait(), if status.is_none() => {
                status = Some(r?);
                // Whatever the leader left behind in its group goes with it.
                process::signal_group(pgid, Signal::SIGKILL);
            }
            r = j.stdout.read(&mut chunk), if stdout_open => {
                match r {
                    Ok(0) | Err(_) => stdout_open = false,
                    Ok(n) => {
                        log.write_all(&chunk[..n])?;
                        kept.extend_from_slice(&chunk[..n]);
                        if kept.len() > 2 * ANSWER_CAP {
                            kept.drain(..kept.len() - ANSWER_CAP);
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline), if status.is_none() && !timed_out && !aborted => {
                timed_out = true;
                process::signal_group(pgid, Signal::SIGTERM);
                process::signal_group(pgid, Signal::SIGCONT);
                kill_at = Some(tokio::time::Instant::now() + spec.kill_after);
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or(far)), if status.is_none() && kill_at.is_some() => {
                process::signal_group(pgid, Signal::SIGKILL);
                kill_at = None;
            }
            r = abort.changed(), if status.is_none() && !aborted && !timed_out => {
                if r.is_err() || *abort.borrow() {
                    aborted = true;
                    process::signal_group(pgid, Signal::SIGTERM);
                    process::signal_group(pgid, Signal::SIGCONT);
                    kill_at = Some(tokio::time::Instant::now() + spec.kill_after);
                }
            }
        }
    }
    let _ = progress.send(Progress::Ended {
        task: spec.task.clone(),
        pgid,
    }); // see above
    let status = status.ok_or_else(|| std::io::Error::other("no exit status"))?;
    use std::os::unix::process::ExitStatusExt;
    if let Some((c, name)) = &contained
        && (timed_out || aborted || status.signal().is_some())
    {
        // The client is gone; its container may not be (podman's monitor keeps it).
        remove_container(spec, c, name, &mut log).await;
    }
    if !kept.ends_with(b"\n") && !kept.is_empty() {
        log.write_all(b"\n")?;
    }
    Ok(Output {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        aborted,
        stdout: kept,
        log: Some((log, start_offset)),
    })
}

/// `podman rm --force` of a run's container; a failure is said in the run's log and the
/// worker's.
async fn remove_container(spec: &AttemptSpec, c: &Contained, name: &str, log: &mut File) {
    const RM_TIMEOUT: Duration = Duration::from_secs(60);
    let _ = writeln!(log, "==== removing container {name}"); // the log is best effort
    let why = match job::output(&c.rm_argv(name), RM_TIMEOUT).await {
        Ok(out) if out.status.success() => return,
        Ok(out) => {
            let _ = log.write_all(&out.stderr); // as above
            format!("{}; see {}", out.status, spec.log.display())
        }
        Err(e) => e.to_string(),
    };
    let _ = writeln!(log, "==== podman rm --force {name} failed: {why}"); // as above
    tracing::warn!("podman rm --force {name} failed: {why}");
}

/// The run's log, opened once for appending and for reading its tail back (a failure's
/// reason); the agent's standard error is a copy of this descriptor.
fn open_log(path: &std::path::Path) -> std::io::Result<File> {
    ai_employee_vault::nofollow::open_in_folder(
        path,
        ai_employee_vault::nofollow::How::read_append(0o600),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_placeholders_and_keeps_literal_braces() {
        let v = ArgValues {
            task: "T".into(),
            task_file: "In_Progress/T.md".into(),
            vault: "/v".into(),
        };
        let args = [
            "--json={{\"task\":\"{task}\"}}",
            "{prompt}",
            "{vault}/{task_file}",
        ]
        .map(String::from);
        assert_eq!(
            fill(&args, &v, "do {task}", ""),
            [
                "--json={\"task\":\"T\"}",
                "do {task}",
                "/v/In_Progress/T.md"
            ]
        );
    }
}
