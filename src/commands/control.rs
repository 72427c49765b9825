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

fn connect(vault: &Path) -> Result<Client, i32> {
    Client::connect(vault).map_err(|e| {
        eprintln!("ai-employee: {e}");
        match e {
            ConnectError::NotRunning(_) => NOT_RUNNING,
            _ => UNKNOWN,
        }
    })
}

fn call(client: &mut Client, req: &Request) -> Result<Response, i32> {
    client.call(req).map_err(|e| {
        eprintln!("ai-employee: the supervisor did not answer: {e}");
        UNKNOWN
    })
}

pub fn run(vault: &Path, verb: Verb, name: &str) -> i32 {
    run_with(vault, verb, name, true)
}

/// [`run`]; `echo`: print the supervisor's first answer (`restarting gmail (was pid 4)`)
/// before the outcome (`gmail running (pid 9)`). `setup` prints only the outcome.
pub fn run_with(vault: &Path, verb: Verb, name: &str, echo: bool) -> i32 {
    let mut client = match connect(vault) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let before = match call(&mut client, &Request::Status) {
        Ok(r) if r.ok => r
            .status
            .and_then(|s| s.children.into_iter().find(|c| c.name == name)),
        Ok(r) => {
            eprintln!("ai-employee: {}", r.error.unwrap_or_default());
            return UNKNOWN;
        }
        Err(code) => return code,
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
    let r = match call(&mut client, &req) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if !r.ok {
        eprintln!("ai-employee: {}", r.error.unwrap_or_default());
        return exit_codes::FAILURE;
    }
    let message = r.message.unwrap_or_default();
    let until = Instant::now() + WAIT_MAX;
    match verb {
        Verb::Start => {
            println!("{message}");
            let now = find(&mut client, name);
            let Some(pid) = now.as_ref().and_then(|c| c.pid) else {
                return match now {
                    Some(c) if c.state != "running" => {
                        let last = c.last_exit.map(|e| format!(", {e}")).unwrap_or_default();
                        eprintln!("ai-employee: {name} exited at once ({}{last})", c.state);
                        exit_codes::FAILURE
                    }
                    _ => exit_codes::OK,
                };
            };
            // Like supervisord's startsecs: a child that dies within a second did not start.
            let settle = Instant::now() + START_SETTLE;
            match wait(&mut client, name, settle, &|c| c.pid != Some(pid)) {
                Some(c) => {
                    let why = c.reason.map(|r| format!(": {r}")).unwrap_or_default();
                    let last = c.last_exit.map(|e| format!(", {e}")).unwrap_or_default();
                    eprintln!(
                        "ai-employee: {name} exited at once ({}{last}){why}",
                        c.state
                    );
                    exit_codes::FAILURE
                }
                None => exit_codes::OK,
            }
        }
        Verb::Stop => {
            println!("{message}");
            if !active {
                return exit_codes::OK;
            }
            let done = wait(&mut client, name, until, &|c| {
                !matches!(c.state.as_str(), "running" | "stopping" | "starting")
            });
            match done {
                Some(c) => {
                    let how = c.last_exit.map(|e| format!(" ({e})")).unwrap_or_default();
                    println!("{name} stopped{how}");
                    exit_codes::OK
                }
                None => {
                    eprintln!("ai-employee: {name} has not stopped yet; see `ai-employee status`");
                    exit_codes::FAILURE
                }
            }
        }
        Verb::Restart => {
            if echo {
                println!("{message}");
            }
            let done = wait(&mut client, name, until, &|c| {
                (c.state == "running" && c.pid != before)
                    || !matches!(c.state.as_str(), "running" | "stopping" | "starting")
            });
            match done {
                Some(c) if c.state == "running" => {
                    println!("{name} running (pid {})", c.pid.unwrap_or_default());
                    exit_codes::OK
                }
                Some(c) => {
                    let why = c.reason.map(|r| format!(": {r}")).unwrap_or_default();
                    eprintln!(
                        "ai-employee: {name} did not come back up ({}){why}",
                        c.state
                    );
                    exit_codes::FAILURE
                }
                None => {
                    eprintln!("ai-employee: {name} is not running yet; see `ai-employee status`");
                    exit_codes::FAILURE
                }
            }
        }
    }
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
        Err(code) => return code,
    };
    match call(&mut client, &Request::Reload) {
        Ok(r) if r.ok => {
            println!("{}", r.message.unwrap_or_default());
            exit_codes::OK
        }
        Ok(r) => {
            eprintln!(
                "ai-employee: reload refused: {}",
                r.error.unwrap_or_default()
            );
            exit_codes::CONFIG
        }
        Err(code) => code,
    }
}
