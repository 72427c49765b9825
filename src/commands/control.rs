//! `ai-employee start|stop|restart NAME` and `ai-employee reload`: one request over the
//! control socket; `stop` and `restart` then watch the status until the child has
//! stopped or is running again.
//!
//! Exit status: 0 done, 1 refused or failed (unknown name, needs setup, did not come
//! up), 3 no supervisor is running, 4 the socket could not be used, 78 (reload) the
//! table has errors and the running one was kept.

use std::path::Path;
use std::time::{Duration, Instant};

use ai_employee_vault::control::client::{Client, ConnectError};
use ai_employee_vault::control::{ChildStatus, Request, Response};
use ai_employee_vault::exit_codes;

use super::Failure;
use super::status::{NOT_RUNNING, UNKNOWN};

/// How long `stop` / `restart` wait for the child to get there (a child's stop_timeout
/// is usually seconds; SIGKILL follows it).
const WAIT_MAX: Duration = Duration::from_secs(300);
const WAIT_POLL: Duration = Duration::from_millis(20);
/// A started child that exits within this long is reported as not started.
const START_SETTLE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Stop,
    Restart,
}

fn failure(code: i32, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

fn connect(vault: &Path) -> Result<Client, Failure> {
    Client::connect(vault).map_err(|e| {
        let code = match e {
            ConnectError::NotRunning(_) => NOT_RUNNING,
            _ => UNKNOWN,
        };
        failure(code, e.to_string())
    })
}

fn call(client: &mut Client, req: &Request) -> Result<Response, Failure> {
    client
        .call(req)
        .map_err(|e| failure(UNKNOWN, format!("the supervisor did not answer: {e}")))
}

pub fn run(vault: &Path, verb: Verb, name: &str) -> i32 {
    run_with(vault, verb, name, true)
}

/// [`run`]; `echo`: print the supervisor's first answer to a restart (`restarting gmail
/// (was pid 4)`) before the outcome (`gmail running (pid 9)`). `setup` prints only the
/// outcome.
pub fn run_with(vault: &Path, verb: Verb, name: &str, echo: bool) -> i32 {
    match act(vault, verb, name, echo, &mut |line| println!("{line}")) {
        Ok(()) => exit_codes::OK,
        Err(f) => f.report(),
    }
}

/// Send `verb` for `name` and wait until it took effect, as `run` does; what `run` prints
/// on stdout goes to `say`, the error comes back. `top` calls this from a thread.
pub fn act(
    vault: &Path,
    verb: Verb,
    name: &str,
    echo: bool,
    say: &mut dyn FnMut(&str),
) -> Result<(), Failure> {
    let mut client = connect(vault)?;
    let before = match call(&mut client, &Request::Status)? {
        r if r.ok => r
            .status
            .and_then(|s| s.children.into_iter().find(|c| c.name == name)),
        r => return Err(failure(UNKNOWN, r.error.unwrap_or_default())),
    };
    let active = before.as_ref().is_some_and(|c| {
        matches!(
            c.state.as_str(),
            "running" | "stopping" | "starting" | "backoff"
        )
    });
    let before = before.and_then(|c| c.pid);
    let req = match verb {
        Verb::Start => Request::Start { name: name.into() },
        Verb::Stop => Request::Stop { name: name.into() },
        Verb::Restart => Request::Restart { name: name.into() },
    };
    let r = call(&mut client, &req)?;
    if !r.ok {
        return Err(failure(exit_codes::FAILURE, r.error.unwrap_or_default()));
    }
    let message = r.message.unwrap_or_default();
    let until = Instant::now() + WAIT_MAX;
    // A start says "started" only once the child stayed up (in `started`).
    let starting = matches!(verb, Verb::Start) || (matches!(verb, Verb::Restart) && !active);
    if !starting && (echo || !matches!(verb, Verb::Restart)) {
        say(&message);
    }
    match verb {
        // One line for what happened: "started" only once it stayed up.
        Verb::Start => started(&mut client, name, &message, "not started", say),
        Verb::Restart if !active => started(&mut client, name, &message, "not restarted", say),
        Verb::Stop => {
            if !active {
                return Ok(());
            }
            let done = wait(&mut client, name, until, &|c| {
                !matches!(c.state.as_str(), "running" | "stopping" | "starting")
            });
            match done {
                Some(c) => {
                    let how = c.last_exit.map(|e| format!(" ({e})")).unwrap_or_default();
                    say(&format!("{name} stopped{how}"));
                    Ok(())
                }
                None => Err(failure(
                    exit_codes::FAILURE,
                    format!("{name} has not stopped yet; see `ai-employee status`"),
                )),
            }
        }
        Verb::Restart => {
            let done = wait(&mut client, name, until, &|c| {
                (c.state == "running" && c.pid != before)
                    || !matches!(c.state.as_str(), "running" | "stopping" | "starting")
            });
            match done {
                Some(c) if c.state == "running" => {
                    say(&format!(
                        "{name} running (pid {})",
                        c.pid.unwrap_or_default()
                    ));
                    Ok(())
                }
                Some(c) => Err(failure(
                    exit_codes::FAILURE,
                    not_up(name, &c, "it did not come back up"),
                )),
                None => Err(failure(
                    exit_codes::FAILURE,
                    format!("{name} is not running yet; see `ai-employee status`"),
                )),
            }
        }
    }
}

/// After a start: `message` ("started NAME (pid N)") once the child has stayed up for
/// [`START_SETTLE`], else one line saying why it is not running.
fn started(
    client: &mut Client,
    name: &str,
    message: &str,
    outcome: &str,
    say: &mut dyn FnMut(&str),
) -> Result<(), Failure> {
    let now = find(client, name);
    let Some(pid) = now.as_ref().and_then(|c| c.pid) else {
        return match now {
            Some(c) if c.state != "running" => {
                Err(failure(exit_codes::FAILURE, not_up(name, &c, outcome)))
            }
            _ => {
                say(message);
                Ok(())
            }
        };
    };
    // Like supervisord's startsecs: a child that dies within a second did not start.
    let settle = Instant::now() + START_SETTLE;
    match wait(client, name, settle, &|c| c.pid != Some(pid)) {
        Some(c) => Err(failure(exit_codes::FAILURE, not_up(name, &c, outcome))),
        None => {
            say(message);
            Ok(())
        }
    }
}

/// `gmail needs setup: exited 78 (…); not started`, or `gmail exited at once (backoff,
/// exit 1): …` for a child that is not running after a start.
fn not_up(name: &str, c: &ChildStatus, outcome: &str) -> String {
    let reason = c.reason.clone();
    if c.state == "needs-setup" {
        let why = reason.unwrap_or_else(|| "see `ai-employee status`".into());
        return format!("{name} needs setup: {why}; {outcome}");
    }
    let last = c
        .last_exit
        .as_ref()
        .map(|e| format!(", {e}"))
        .unwrap_or_default();
    let why = reason.map(|r| format!(": {r}")).unwrap_or_default();
    format!("{name} exited at once ({}{last}){why}; {outcome}", c.state)
}

fn find(client: &mut Client, name: &str) -> Option<ChildStatus> {
    let r = client.call(&Request::Status).ok()?;
    r.status?.children.into_iter().find(|c| c.name == name)
}

/// Poll the child's status until `done` says so (or the deadline passes).
fn wait(
    client: &mut Client,
    name: &str,
    until: Instant,
    // dyn: one copy of the polling loop for the three conditions.
    done: &dyn Fn(&ChildStatus) -> bool,
) -> Option<ChildStatus> {
    loop {
        if let Some(c) = find(client, name)
            && done(&c)
        {
            return Some(c);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(WAIT_POLL);
    }
}

pub fn reload(vault: &Path) -> i32 {
    let mut client = match connect(vault) {
        Ok(c) => c,
        Err(f) => return f.report(),
    };
    match call(&mut client, &Request::Reload) {
        Ok(r) if r.ok => {
            println!("{}", r.message.unwrap_or_default());
            for w in r.reload.iter().flat_map(|r| &r.warnings) {
                eprintln!("ai-employee: warning: {w}");
            }
            exit_codes::OK
        }
        Ok(r) => {
            eprintln!(
                "ai-employee: reload refused: {}",
                r.error.unwrap_or_default()
            );
            exit_codes::CONFIG
        }
        Err(f) => f.report(),
    }
}
