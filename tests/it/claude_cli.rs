//! The real Claude Code CLI (`claude`, the npm package `@anthropic-ai/claude-code` that
//! tests/run.sh installs, pinned): the agent's default command line and its resume form are
//! accepted by its argument parser, and its answer without a login is classified as
//! needs-setup by `agent::outcome`.
//!
//! Each run is cut off from everything: an empty HOME (no login, no settings), an emptied
//! environment (no API key), non-essential traffic and the auto-updater off, and the API's
//! address pointed at a closed port on loopback, so that even a machine where `claude`
//! finds a login elsewhere (a keychain) sends nothing out. Without a login it answers at
//! once (measured: under a second, no connection attempted); a run that does not end
//! within a minute has its process group killed and the test fails.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ai_employee::agent::outcome::{self, Answer};
use ai_employee::config::AgentSettings;

use crate::common::wait_child;

/// The longest a run may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(60);

/// `claude` on PATH, or `None` after saying why the test is skipped.
fn claude() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join("claude"))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!(
            "SKIPPED: `claude` (Claude Code) is not on PATH; tests/run.sh installs it with npm \
             where npm is available"
        );
    }
    found
}

/// What one run of `claude` did.
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
    took: Duration,
}

impl Run {
    fn answer(&self) -> Answer {
        outcome::parse_output(&self.stdout)
    }

    fn output(&self) -> String {
        format!(
            "exit {:?} after {:?}\nstdout: {}\nstderr: {}",
            self.code,
            self.took,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        )
    }

    /// The argument parser's complaint, if it refused the command line (commander.js:
    /// `error: unknown option '--x'`, `error: option '--output-format <format>' argument
    /// 'xml' is invalid`, `error: missing required argument`, `error: too many arguments`).
    fn parser_error(&self) -> Option<String> {
        let out = String::from_utf8_lossy(&self.stdout);
        out.lines()
            .chain(self.stderr.lines())
            .find(|l| {
                let l = l.trim_start().to_lowercase();
                l.starts_with("error: unknown option")
                    || l.starts_with("error: option")
                    || l.starts_with("error: missing")
                    || l.starts_with("error: too many arguments")
                    || l.starts_with("error: unknown command")
                    || l.contains("requires a valid session id")
            })
            .map(str::to_string)
            .or_else(|| (self.code == Some(2)).then(|| "exit code 2".to_string()))
    }
}

/// `cmd` cut off from everything (see the module doc): an emptied environment but PATH,
/// `home` as HOME and Claude Code's config folders, no updater or telemetry, the API on a
/// closed loopback port.
pub(crate) fn isolate(cmd: &mut Command, home: &Path) {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("CLAUDE_CONFIG_DIR", home.join(".claude"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        // Port 9 (discard) on loopback: nothing listens, a connection is refused at once.
        .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:9");
}

/// Run `claude` with `argv` (argv[0] is replaced by the binary found) in `dir`, with
/// `home` as its HOME.
fn run(claude: &Path, argv: &[String], dir: &Path, home: &Path) -> Run {
    let out = dir.join(".claude-test.out");
    let err = dir.join(".claude-test.err");
    let started = Instant::now();
    let mut child = Command::new(claude);
    child.args(&argv[1..]).current_dir(dir);
    isolate(&mut child, home);
    let mut child = child
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", claude.display()));
    let pgid = child.id() as i32;
    let status = wait_child(&mut child, DEADLINE);
    // Whatever it left behind goes with its group (nothing, when it ended by itself).
    crate::common::signal(-pgid, libc::SIGKILL);
    let Some(status) = status else {
        let _reaped = child.wait();
        panic!(
            "claude did not answer within {DEADLINE:?} (killed); stderr: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    };
    Run {
        code: status.code(),
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        took: started.elapsed(),
    }
}

/// The agent's default command line for `prompt`, as the loop builds it.
fn default_argv(prompt: &str) -> Vec<String> {
    AgentSettings::default()
        .command
        .iter()
        .map(|a| a.replace("{prompt}", prompt))
        .collect()
}

fn resume_args(session_id: &str) -> Vec<String> {
    AgentSettings::default()
        .resume
        .iter()
        .map(|a| a.replace("{session_id}", session_id))
        .collect()
}

const PROMPT: &str = "You are the AI employee.\nTask file: In_Progress/EMAIL_x.md\n\
                      --output-format text\nEnd with one line: STATUS: done";

/// Asserts the run was accepted and answered "not logged in", classified as needs-setup.
fn assert_not_logged_in(r: &Run) -> Answer {
    assert_eq!(r.parser_error(), None, "refused:\n{}", r.output());
    let a = r.answer();
    assert!(a.json, "not Claude Code's JSON result:\n{}", r.output());
    assert!(a.is_error, "{}", r.output());
    let reason = outcome::needs_setup(r.code, &a, &r.stderr);
    assert!(
        reason
            .as_deref()
            .is_some_and(|t| t.contains("Not logged in")),
        "not classified as needs-setup ({reason:?}):\n{}",
        r.output()
    );
    assert_ne!(r.code, Some(0), "{}", r.output());
    a
}

#[test]
fn the_default_command_line_is_accepted_and_without_login_needs_setup() {
    let Some(claude) = claude() else { return };
    let home = tempfile::tempdir().unwrap();
    let vault = tempfile::tempdir().unwrap();
    let r = run(&claude, &default_argv(PROMPT), vault.path(), home.path());
    let a = assert_not_logged_in(&r);
    assert!(
        a.session_id
            .as_deref()
            .is_some_and(outcome::session_id_is_safe),
        "{}",
        r.output()
    );
    eprintln!("claude answered in {:?}: {:?}", r.took, a.text);
}

#[test]
fn the_resume_form_is_accepted_too() {
    let Some(claude) = claude() else { return };
    let home = tempfile::tempdir().unwrap();
    let vault = tempfile::tempdir().unwrap();
    // A first run leaves a session (its transcript under HOME) to resume.
    let first = run(&claude, &default_argv(PROMPT), vault.path(), home.path());
    let session = assert_not_logged_in(&first)
        .session_id
        .expect("the first run's session id");
    let mut argv = default_argv("Continue. End with one line: STATUS: done");
    argv.extend(resume_args(&session));
    let r = run(&claude, &argv, vault.path(), home.path());
    let a = assert_not_logged_in(&r);
    assert_eq!(a.session_id.as_deref(), Some(session.as_str()));
}

#[test]
fn resuming_an_unknown_session_is_not_a_setup_problem() {
    let Some(claude) = claude() else { return };
    let home = tempfile::tempdir().unwrap();
    let vault = tempfile::tempdir().unwrap();
    let mut argv = default_argv(PROMPT);
    argv.extend(resume_args("00000000-0000-4000-8000-000000000000"));
    let r = run(&claude, &argv, vault.path(), home.path());
    assert_eq!(r.parser_error(), None, "refused:\n{}", r.output());
    // Claude Code 2.1: exit 1, "No conversation found with session ID: …" on stderr.
    assert_ne!(r.code, Some(0), "{}", r.output());
    assert_eq!(
        outcome::needs_setup(r.code, &r.answer(), &r.stderr),
        None,
        "{}",
        r.output()
    );
}

/// The check above can fail: a command line `claude` refuses is seen as refused.
#[test]
fn a_command_line_claude_refuses_is_seen() {
    let Some(claude) = claude() else { return };
    let home = tempfile::tempdir().unwrap();
    let vault = tempfile::tempdir().unwrap();
    let mut bad_option = default_argv(PROMPT);
    bad_option.push("--no-such-option".into());
    let r = run(&claude, &bad_option, vault.path(), home.path());
    assert!(r.parser_error().is_some(), "{}", r.output());
    let mut bad_value = default_argv(PROMPT);
    bad_value.extend(["--output-format".to_string(), "xml".to_string()]);
    let r = run(&claude, &bad_value, vault.path(), home.path());
    assert!(r.parser_error().is_some(), "{}", r.output());
    // A prompt that starts with `-` reads as an option: the loop must never render one
    // (a leading space or newline is enough).
    let r = run(
        &claude,
        &default_argv("- list the tasks"),
        vault.path(),
        home.path(),
    );
    assert!(r.parser_error().is_some(), "{}", r.output());
    let r = run(
        &claude,
        &default_argv("\n- list the tasks"),
        vault.path(),
        home.path(),
    );
    assert_eq!(r.parser_error(), None, "{}", r.output());
}
