//! `ai-employee setup`: driven through a real terminal (tmux: answers typed with
//! send-keys, the screen read with capture-pane) and with flags only (no terminal),
//! against the real servers the other tests run (aiosmtpd, Dovecot) and the stand-ins
//! for the WhatsApp and GitHub APIs; files re-read with the watchers' own loaders; a
//! running supervisor's child taken from needs setup to running.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::approvals::{SMTP_PASSWORD, Smtp, StandIn, WA_TOKEN, new_vault, python};
use crate::common::{BIN, TestVault, sh_process, wait_until};
use crate::github::standin::{self as gh, StandIn as GithubStandIn};
use crate::gmail::dovecot::{self, Dovecot, PASSWORD as IMAP_PASSWORD};

const LONG: Duration = Duration::from_secs(30);

/// `ai-employee setup ARGS --vault V` without a terminal (stdin from `stdin`).
fn setup<S: AsRef<std::ffi::OsStr>>(vault: &Path, args: &[S], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("setup")
        .args(args)
        .arg("--vault")
        .arg(vault)
        .env_remove("AI_EMPLOYEE_VAULT")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run setup");
    let mut input = child.stdin.take().expect("stdin");
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().expect("setup output")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

/// A secret in a file of its own (0600), as a script would pass it.
fn secret_file(dir: &Path, name: &str, value: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("{value}\n")).expect("secret file");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

// ---------------------------------------------------------------------------------------
// A terminal: tmux on a private socket, one session running the command.
// ---------------------------------------------------------------------------------------

struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// tmux on PATH, or None after saying why the test is skipped.
    fn available() -> bool {
        let ok = Command::new("tmux")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("SKIPPED: tmux is not installed (tests/run.sh installs it)");
        }
        ok
    }

    /// Run `argv` in a new 200×50 terminal; when it ends, its exit code is printed as
    /// `[exit N]` and the pane stays for reading.
    fn run(dir: &Path, argv: &[&str], env: &[(&str, &str)]) -> Tmux {
        let socket = dir.join(format!("tmux-{}", crate::common::now_ns()));
        let quoted: Vec<String> = argv
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect();
        // The test's shell, not the product's: it reports the exit code, then waits.
        let script = format!("{}; echo \"[exit $?]\"; sleep 600", quoted.join(" "));
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&socket).args([
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "200",
            "-y",
            "50",
        ]);
        for (k, v) in env {
            cmd.arg("-e").arg(format!("{k}={v}"));
        }
        cmd.args(["sh", "-c", &script])
            .env_remove("AI_EMPLOYEE_VAULT")
            .env("NO_COLOR", "1");
        let st = cmd.status().expect("tmux new-session");
        assert!(st.success(), "tmux did not start");
        Tmux { socket }
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux")
    }

    /// The screen (and scrollback).
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-S", "-200"]).stdout)
            .into_owned()
    }

    /// Wait for `needle` on the screen.
    fn wait_for(&self, needle: &str) -> String {
        let ok = wait_until(LONG, || self.screen().contains(needle));
        assert!(ok, "no {needle:?} on the screen:\n{}", self.screen());
        self.screen()
    }

    /// Wait for the prompt `prompt`, then type `answer` and Enter.
    fn answer(&self, prompt: &str, answer: &str) {
        self.wait_for(prompt);
        if !answer.is_empty() {
            self.tmux(&["send-keys", "-l", answer]);
        }
        self.tmux(&["send-keys", "Enter"]);
    }

    /// Wait for the prompt `prompt` of a secret and for the terminal to stop echoing (the
    /// prompt turns echo off with a flush: keys typed before that are lost), then type
    /// `answer` and Enter.
    fn answer_secret(&self, prompt: &str, answer: &str) {
        self.wait_for(prompt);
        let out = self.tmux(&["display-message", "-p", "#{pane_tty}"]);
        let tty = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let echo_off = || {
            Command::new("stty")
                .args(["-a", "-F", &tty])
                .output()
                .is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .any(|w| w == "-echo")
                })
        };
        assert!(
            wait_until(LONG, echo_off),
            "echo stays on:\n{}",
            self.screen()
        );
        self.tmux(&["send-keys", "-l", answer]);
        self.tmux(&["send-keys", "Enter"]);
    }

    /// Wait for the yes/no prompt `prompt`, then press `key` (no Enter: a y or n answers).
    fn answer_key(&self, prompt: &str, key: &str) {
        self.wait_for(prompt);
        self.tmux(&["send-keys", "-l", key]);
    }

    /// The command's exit code, once it ended.
    fn exit_code(&self) -> i32 {
        let screen = self.wait_for("[exit ");
        let tail = screen.rsplit("[exit ").next().unwrap_or_default();
        tail.split(']')
            .next()
            .unwrap_or_default()
            .trim()
            .parse()
            .expect("exit code")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// `setup PART --vault V` in a terminal.
fn in_terminal(tv: &TestVault, part: &[&str], env: &[(&str, &str)]) -> Tmux {
    let vault = tv.vault.display().to_string();
    let mut argv = vec![BIN, "setup"];
    argv.extend_from_slice(part);
    argv.extend(["--vault", vault.as_str()]);
    Tmux::run(tv.dir.path(), &argv, env)
}

// ---------------------------------------------------------------------------------------
// SMTP (aiosmtpd with AUTH).
// ---------------------------------------------------------------------------------------

#[test]
fn smtp_through_a_terminal_is_checked_and_saved_0600_and_reads_back() {
    if !Tmux::available() {
        return;
    }
    let _ = python();
    let tv = new_vault();
    let smtp = Smtp::start(tv.dir.path(), 0, true, 0);
    let t = in_terminal(&tv, &["smtp"], &[]);
    t.answer("SMTP host", "127.0.0.1");
    t.answer("TLS (tls, starttls or none)", "none");
    t.answer("Port", &smtp.port.to_string());
    t.answer("Login (empty for none)", "agent");
    t.answer_secret("Password", SMTP_PASSWORD);
    t.answer("Sender (Name <address>)", "AI Employee <ai@example.com>");
    assert_eq!(t.exit_code(), 0, "{}", t.screen());
    let screen = t.screen();
    assert!(
        screen.contains(&format!("✓ 127.0.0.1:{}: logged in as agent", smtp.port)),
        "{screen}"
    );
    assert!(
        screen.contains("saved credentials/smtp.toml (mode 0600)"),
        "{screen}"
    );
    assert!(
        screen.contains("no supervisor runs on this vault; start it with: ai-employee supervise"),
        "{screen}"
    );
    // The password was typed without echo.
    assert!(!screen.contains(SMTP_PASSWORD), "{screen}");
    let file = tv.vault.join("credentials/smtp.toml");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&tv.vault.join("credentials")), 0o700);
    ai_employee_approvals::setup::read_smtp(&tv.vault).expect("the handler reads it");
    let saved = fs::read_to_string(&file).unwrap();
    assert!(
        saved.contains(&format!("password = \"{SMTP_PASSWORD}\"")),
        "{saved}"
    );
    // Nothing was sent: the check logs in and quits.
    assert!(smtp.mails().is_empty());
}

#[test]
fn smtp_with_a_wrong_password_is_refused_and_nothing_is_written() {
    let _ = python();
    let tv = new_vault();
    let smtp = Smtp::start(tv.dir.path(), 0, true, 0);
    let port = smtp.port.to_string();
    // Everything from flags, the password from stdin.
    let args = [
        "smtp",
        "--no-input",
        "--host",
        "127.0.0.1",
        "--tls",
        "none",
        "--port",
        &port,
        "--user",
        "agent",
        "--password-stdin",
        "--from",
        "ai@example.com",
    ];
    let o = setup(&tv.vault, &args, "not-the-password\n");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "ai-employee: setup smtp: check failed: SMTP 127.0.0.1:{port}: login failed"
        )),
        "{}",
        text(&o)
    );
    assert!(err.contains("nothing saved"), "{}", text(&o));
    assert!(!err.contains("not-the-password"), "{}", text(&o));
    assert!(!tv.vault.join("credentials/smtp.toml").exists());

    // The right one from stdin: saved; then an existing file is not replaced without
    // --force (no terminal to ask on).
    let t0 = std::time::Instant::now();
    let o = setup(&tv.vault, &args, &format!("{SMTP_PASSWORD}\n"));
    eprintln!(
        "setup smtp (check and save, loopback aiosmtpd): {:?}",
        t0.elapsed()
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let before = fs::read_to_string(tv.vault.join("credentials/smtp.toml")).unwrap();
    let o = setup(&tv.vault, &args, &format!("{SMTP_PASSWORD}\n"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("credentials/smtp.toml exists (pass --force to replace it)"),
        "{}",
        text(&o)
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    let o = setup(&tv.vault, &forced, &format!("{SMTP_PASSWORD}\n"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        before,
        fs::read_to_string(tv.vault.join("credentials/smtp.toml")).unwrap()
    );
}

#[test]
fn a_value_missing_without_a_terminal_is_a_usage_error() {
    let tv = new_vault();
    let o = setup(&tv.vault, &["smtp", "--no-input", "--tls", "none"], "");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        "ai-employee: setup smtp: SMTP host is needed: pass --host (or run on a terminal \
         without --no-input); nothing saved"
    );
    // Values the handler would refuse are refused before any check, naming the key.
    let o = setup(
        &tv.vault,
        &[
            "smtp",
            "--no-input",
            "--host",
            "smtp.example.com",
            "--tls",
            "none",
            "--user",
            "me",
            "--password-stdin",
            "--from",
            "me@example.com",
        ],
        "pw\n",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("would send the password unencrypted"),
        "{}",
        text(&o)
    );
    assert!(!tv.vault.join("credentials/smtp.toml").exists());
}

// ---------------------------------------------------------------------------------------
// Gmail / IMAP (Dovecot).
// ---------------------------------------------------------------------------------------

#[test]
fn gmail_through_a_terminal_logs_in_to_dovecot_and_reads_its_capabilities() {
    if !Tmux::available() || !dovecot::available() {
        return;
    }
    let tv = new_vault();
    let d = Dovecot::start(tv.dir.path(), dovecot::Setup::default());
    let cert = d.cert.display().to_string();
    let vault = tv.vault.display().to_string();
    let t = Tmux::run(
        tv.dir.path(),
        &[BIN, "setup", "gmail", "--vault", &vault, "--ca-file", &cert],
        &[],
    );
    t.answer("IMAP host", "127.0.0.1");
    t.answer("TLS (tls, starttls or none)", "");
    t.answer("Port", &d.imaps_port.to_string());
    t.answer("Login (the mail account)", "alice");
    t.answer_secret("Password", IMAP_PASSWORD);
    assert_eq!(t.exit_code(), 0, "{}", t.screen());
    let screen = t.screen();
    assert!(
        screen.contains(&format!(
            "✓ logged in as alice@127.0.0.1:{}; INBOX opened (0 messages); IDLE: new mail is seen at once",
            d.imaps_port
        )),
        "{screen}"
    );
    assert!(!screen.contains(IMAP_PASSWORD), "{screen}");
    let file = tv.vault.join("credentials/gmail.toml");
    assert_eq!(mode(&file), 0o600);
    ai_employee_gmail::load_credentials(&tv.vault).expect("the watcher reads it");

    // An existing file: the terminal asks; "n" keeps it.
    let before = fs::read_to_string(&file).unwrap();
    let t = Tmux::run(
        tv.dir.path(),
        &[BIN, "setup", "gmail", "--vault", &vault],
        &[],
    );
    t.answer_key("credentials/gmail.toml exists. Replace it?", "n");
    assert_eq!(t.exit_code(), 1, "{}", t.screen());
    assert!(
        t.screen()
            .contains("credentials/gmail.toml kept; nothing saved")
    );
    assert_eq!(before, fs::read_to_string(&file).unwrap());
}

#[test]
fn gmail_with_flags_names_what_failed_and_writes_nothing() {
    if !dovecot::available() {
        return;
    }
    let tv = new_vault();
    let d = Dovecot::start(tv.dir.path(), dovecot::Setup::default());
    let cert = d.cert.display().to_string();
    let imaps = d.imaps_port.to_string();
    let imap = d.imap_port.to_string();
    let base = |port: &str, tls: &str| {
        vec![
            "gmail".to_string(),
            "--no-input".into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.into(),
            "--tls".into(),
            tls.into(),
            "--user".into(),
            "alice".into(),
            "--password-stdin".into(),
        ]
    };
    let run = |args: &[String], stdin: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        setup(&tv.vault, &a, stdin)
    };
    // The login refused.
    let mut args = base(&imaps, "tls");
    args.extend(["--ca-file".into(), cert.clone()]);
    let o = run(&args, "wrong\n");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the server refused the login of alice"),
        "{}",
        text(&o)
    );
    // TLS: the self-signed certificate without --ca-file.
    let o = run(&base(&imaps, "tls"), &format!("{IMAP_PASSWORD}\n"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("certificate is not accepted"),
        "{}",
        text(&o)
    );
    // Nobody listening.
    let closed = crate::approvals::free_port().to_string();
    let o = run(&base(&closed, "tls"), &format!("{IMAP_PASSWORD}\n"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("failed to connect"),
        "{}",
        text(&o)
    );
    assert!(!tv.vault.join("credentials/gmail.toml").exists());
    // STARTTLS on the plain port, with the CA: saved.
    let mut args = base(&imap, "starttls");
    args.extend(["--ca-file".into(), cert]);
    let t0 = std::time::Instant::now();
    let o = run(&args, &format!("{IMAP_PASSWORD}\n"));
    eprintln!(
        "setup gmail (STARTTLS check and save, loopback Dovecot): {:?}",
        t0.elapsed()
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    ai_employee_gmail::load_credentials(&tv.vault).expect("the watcher reads it");
}

/// `setup gmail` for alice on `d`'s IMAPS port (its certificate as the CA), logging in
/// as `auth` says.
fn imaps_args(d: &Dovecot, auth: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "gmail",
        "--no-input",
        "--host",
        "127.0.0.1",
        "--user",
        "alice",
    ]
    .map(String::from)
    .into();
    args.extend(["--port".into(), d.imaps_port.to_string()]);
    args.extend(["--ca-file".into(), d.cert.display().to_string()]);
    args.extend(auth.iter().map(|a| a.to_string()));
    args
}

#[test]
fn gmail_with_an_oauth_token_file_logs_in_with_xoauth2_refreshing_it() {
    if !dovecot::available() {
        return;
    }
    let server = crate::oauth::TokenServer::start();
    let tv = new_vault();
    let d = Dovecot::start(
        tv.dir.path(),
        dovecot::Setup {
            oauth_introspect: Some(server.introspect_url()),
            ..dovecot::Setup::default()
        },
    );
    // An expired access token: the check refreshes it as the watcher would.
    let token_file = tv.vault.join("credentials/token.json");
    fs::write(&token_file, server.token_json("alice", -60)).unwrap();
    let o = setup(
        &tv.vault,
        &imaps_args(&d, &["--oauth-token-file", "token.json"]),
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(server.refresh_count() >= 1, "no refresh");
    let saved = fs::read_to_string(tv.vault.join("credentials/gmail.toml")).unwrap();
    assert!(
        saved.contains("oauth_token_file = \"token.json\""),
        "{saved}"
    );
    assert!(!saved.contains("password"), "{saved}");
    let all = text(&o);
    assert!(
        !all.contains("ya29.") && !all.contains("1//refresh"),
        "{all}"
    );
    ai_employee_gmail::load_credentials(&tv.vault).expect("the watcher reads it");
}

// ---------------------------------------------------------------------------------------
// WhatsApp and GitHub (stand-ins for their APIs).
// ---------------------------------------------------------------------------------------

#[test]
fn whatsapp_token_is_checked_against_the_api_base_url() {
    let tv = new_vault();
    let dir = tv.dir.path();
    let app = secret_file(dir, "app", "app-secret-1");
    let verify = secret_file(dir, "verify", "verify-me");
    let token = secret_file(dir, "token", WA_TOKEN);
    let api = StandIn::start(vec![
        (
            401,
            r#"{"error":{"message":"Invalid OAuth access token.","type":"OAuthException","code":190}}"#.into(),
        ),
        (
            200,
            r#"{"display_phone_number":"+1 555 0100","verified_name":"Acme","id":"1098765"}"#
                .into(),
        ),
    ]);
    let base = format!("http://127.0.0.1:{}/v21.0", api.port());
    let args = [
        "whatsapp",
        "--no-input",
        "--app-secret-file",
        app.to_str().unwrap(),
        "--verify-token-file",
        verify.to_str().unwrap(),
        "--token-file",
        token.to_str().unwrap(),
        "--phone-number-id",
        "1098765",
        "--base-url",
        &base,
    ];
    let o = setup(&tv.vault, &args, "");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!(
            "check failed: WhatsApp API {base} refused the token: HTTP 401: Invalid OAuth access token."
        )),
        "{}",
        text(&o)
    );
    assert!(!tv.vault.join("credentials/whatsapp.toml").exists());
    let o = setup(&tv.vault, &args, "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("the token may send from +1 555 0100"),
        "{}",
        text(&o)
    );
    let reqs = api.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].method, "GET");
    assert_eq!(reqs[1].path, "/v21.0/1098765");
    assert_eq!(
        reqs[1].header("authorization"),
        Some(format!("Bearer {WA_TOKEN}").as_str())
    );
    assert_eq!(mode(&tv.vault.join("credentials/whatsapp.toml")), 0o600);
    ai_employee_whatsapp::load_credentials(&tv.vault).expect("the watcher reads it");
    ai_employee_approvals::setup::read_whatsapp(&tv.vault).expect("the handler reads it");
}

#[test]
fn whatsapp_through_a_terminal_asks_for_each_secret_hidden() {
    if !Tmux::available() {
        return;
    }
    let tv = new_vault();
    let api = StandIn::start(vec![(
        200,
        r#"{"display_phone_number":"+1 555 0100","id":"1098765"}"#.into(),
    )]);
    let base = format!("http://127.0.0.1:{}/v21.0", api.port());
    let t = in_terminal(&tv, &["whatsapp", "--base-url", &base], &[]);
    t.answer_secret("Meta app secret", "app-secret-typed");
    t.answer_secret("Webhook verify token", "verify-typed");
    t.answer_key("Also set up sending approved replies", "y");
    t.answer_secret("Cloud API access token", WA_TOKEN);
    t.answer("Phone number ID", "1098765");
    assert_eq!(t.exit_code(), 0, "{}", t.screen());
    let screen = t.screen();
    for secret in ["app-secret-typed", "verify-typed", WA_TOKEN] {
        assert!(!screen.contains(secret), "{secret} shown:\n{screen}");
    }
    assert!(
        screen.contains("the token may send from +1 555 0100"),
        "{screen}"
    );
    let secrets = ai_employee_whatsapp::load_credentials(&tv.vault).expect("the watcher reads it");
    assert_eq!(secrets.app_secret.expose(), "app-secret-typed");
    assert_eq!(secrets.verify_token.expose(), "verify-typed");
    ai_employee_approvals::setup::read_whatsapp(&tv.vault).expect("the handler reads it");
    assert_eq!(api.requests().len(), 1);
}

#[test]
fn github_token_through_a_terminal_and_a_refused_one_with_flags() {
    let tv = new_vault();
    let api = GithubStandIn::start(vec![]);
    let base = api.base_url();
    let bad = secret_file(tv.dir.path(), "bad", "github_pat_wrong");
    let o = setup(
        &tv.vault,
        &[
            "github",
            "--no-input",
            "--token-file",
            bad.to_str().unwrap(),
            "--base-url",
            &base,
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("GitHub refused the token (HTTP 401: Bad credentials)"),
        "{}",
        text(&o)
    );
    assert!(!tv.vault.join("credentials/github.toml").exists());
    if !Tmux::available() {
        return;
    }
    let t = in_terminal(&tv, &["github", "--base-url", &base], &[]);
    t.answer_secret("GitHub token", gh::TOKEN);
    assert_eq!(t.exit_code(), 0, "{}", t.screen());
    let screen = t.screen();
    assert!(
        screen.contains(&format!("✓ {base}: the token belongs to {}", gh::LOGIN)),
        "{screen}"
    );
    assert!(!screen.contains(gh::TOKEN), "{screen}");
    let creds = ai_employee_vault::github::load(&tv.vault).expect("the watcher reads it");
    assert_eq!(creds.token.expose(), gh::TOKEN);
}

// ---------------------------------------------------------------------------------------
// The agent.
// ---------------------------------------------------------------------------------------

/// A folder with a `claude` stand-in that prints `stdout` and exits `code`.
fn fake_claude(dir: &Path, stdout: &str, code: i32) -> PathBuf {
    let bin = dir.join(format!("bin-{code}"));
    fs::create_dir_all(&bin).unwrap();
    let script = bin.join("claude");
    fs::write(
        &script,
        format!("#!/bin/sh\ncat <<'EOF'\n{stdout}\nEOF\nexit {code}\n"),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn setup_with_path(vault: &Path, args: &[&str], path: &Path) -> Output {
    Command::new(BIN)
        .arg("setup")
        .args(args)
        .arg("--vault")
        .arg(vault)
        .env_remove("AI_EMPLOYEE_VAULT")
        .env("PATH", format!("{}:/usr/bin:/bin", path.display()))
        .stdin(Stdio::null())
        .output()
        .expect("setup agent")
}

#[test]
fn agent_not_logged_in_is_reported_and_a_logged_in_one_passes() {
    let tv = new_vault();
    let out = fake_claude(
        tv.dir.path(),
        r#"{"type":"result","subtype":"success","is_error":true,"result":"Not logged in · Please run /login"}"#,
        1,
    );
    let o = setup_with_path(&tv.vault, &["agent", "--no-input"], &out);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "ai-employee: setup agent: claude cannot run: Not logged in · Please run /login"
        ),
        "{}",
        text(&o)
    );
    let ok = fake_claude(
        tv.dir.path(),
        r#"{"type":"result","subtype":"success","is_error":false,"result":"OK","total_cost_usd":0.0012}"#,
        0,
    );
    let o = setup_with_path(&tv.vault, &["agent", "--no-input"], &ok);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("✓ claude answered: it is logged in"),
        "{}",
        text(&o)
    );
    // Not on PATH at all.
    let empty = tv.dir.path().join("empty-bin");
    fs::create_dir_all(&empty).unwrap();
    let o = Command::new(BIN)
        .args(["setup", "agent", "--vault"])
        .arg(&tv.vault)
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("claude not found on PATH"),
        "{}",
        text(&o)
    );
}

#[test]
fn agent_with_the_real_claude_cli_without_a_login() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|d| d.join("claude").is_file()) {
        eprintln!("SKIPPED: `claude` (Claude Code) is not on PATH; tests/run.sh installs it");
        return;
    }
    let tv = new_vault();
    let home = tv.dir.path().join("home");
    fs::create_dir_all(&home).unwrap();
    // As tests/it/claude_cli.rs: no login, no key, nothing sent anywhere.
    let mut cmd = Command::new(BIN);
    cmd.args(["setup", "agent", "--timeout", "60s", "--vault"])
        .arg(&tv.vault);
    crate::claude_cli::isolate(&mut cmd, &home);
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("setup agent: claude cannot run:") && err.to_lowercase().contains("log"),
        "{}",
        text(&o)
    );
}

// ---------------------------------------------------------------------------------------
// With a supervisor; fresh install; the overview; init.
// ---------------------------------------------------------------------------------------

#[test]
fn a_running_supervisors_child_goes_from_needs_setup_to_running() {
    if !dovecot::available() {
        return;
    }
    let tv = new_vault();
    let d = Dovecot::start(tv.dir.path(), dovecot::Setup::default());
    tv.write_config(&format!(
        "[[process]]\nname = \"gmail\"\ncommand = \"{BIN}\"\nargs = [\"watch\", \"gmail\"]\n\n{}",
        sh_process("sleeper", "exec sleep 600", "")
    ));
    let mut sup = tv.start();
    // The banner names what is missing and the command, before any child ran.
    assert!(
        wait_until(LONG, || sup.console().contains(
            "Set-up needed (the children that use it wait for it, not restarted):\n  \
             gmail  no credentials/gmail.toml: ai-employee setup gmail\n"
        )),
        "{}",
        sup.console()
    );
    let status = |args: &[&str]| {
        Command::new(BIN)
            .arg("status")
            .args(args)
            .arg("--vault")
            .arg(&tv.vault)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    assert!(
        wait_until(LONG, || status(&[]).status.code() == Some(5)),
        "{}",
        text(&status(&[]))
    );
    let o = status(&[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("needs setup"), "{out}");
    assert!(
        out.contains("Set-up needed:\n  gmail: ai-employee setup gmail"),
        "{out}"
    );
    let json: serde_json::Value = serde_json::from_slice(&status(&["--json"]).stdout).unwrap();
    assert_eq!(json["health"], "needs_setup");
    assert!(
        wait_until(LONG, || tv.dashboard().contains("⚙ Needs Setup")),
        "{}",
        tv.dashboard()
    );

    let pw = secret_file(tv.dir.path(), "pw", IMAP_PASSWORD);
    let t0 = std::time::Instant::now();
    let o = setup(
        &tv.vault,
        &imaps_args(&d, &["--password-file", pw.to_str().unwrap()]),
        "",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    eprintln!(
        "setup gmail (IMAPS check, save, restart under the supervisor): {:?}",
        t0.elapsed()
    );
    // What was checked, what was saved, and the child's new state: one line each.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{}", text(&o));
    assert!(
        lines[0].starts_with("✓ logged in as alice@127.0.0.1:"),
        "{}",
        text(&o)
    );
    assert_eq!(lines[1], "saved credentials/gmail.toml (mode 0600)");
    // The child waited as needs setup: started, and said so once it stayed up.
    assert!(lines[2].starts_with("started gmail (pid "), "{}", text(&o));
    let o = status(&["--json"]);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let gmail = json["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "gmail")
        .unwrap()
        .clone();
    assert_eq!(gmail["state"], "running", "{json}");
    assert_eq!(o.status.code(), Some(0), "{json}");
    assert_eq!(sup.stop().and_then(|s| s.code()), Some(0));
}

#[test]
fn the_overview_says_what_to_set_up_next() {
    let nowhere = TestVault::new();
    let o = setup::<&str>(&nowhere.vault, &[], "");
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no vault at "),
        "{}",
        text(&o)
    );
    let tv = new_vault();
    let o = setup::<&str>(&tv.vault, &[], "");
    assert_eq!(o.status.code(), Some(78), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("gmail     missing    no credentials/gmail.toml: ai-employee setup gmail"),
        "{out}"
    );
    assert!(out.contains("Next: ai-employee setup gmail"), "{out}");
    fs::write(tv.vault.join("credentials/gmail.toml"), "usrname = \"x\"\n").unwrap();
    let out = String::from_utf8_lossy(&setup::<&str>(&tv.vault, &[], "").stdout).into_owned();
    assert!(
        out.contains("gmail     invalid    credentials/gmail.toml:1:1: unknown key `usrname`"),
        "{out}"
    );
}

#[test]
fn init_and_first_run_make_credentials_private() {
    let tv = TestVault::new();
    fs::create_dir_all(tv.vault.join("credentials")).unwrap();
    fs::set_permissions(
        tv.vault.join("credentials"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let st = Command::new(BIN)
        .args(["init", "--vault"])
        .arg(&tv.vault)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(mode(&tv.vault.join("credentials")), 0o700);
    let fresh = new_vault();
    assert_eq!(mode(&fresh.vault.join("credentials")), 0o700);
    // The supervisor's first run creates the folders too.
    let tv = TestVault::new();
    tv.write_config(&sh_process("sleeper", "exec sleep 600", ""));
    let mut sup = tv.start();
    assert!(
        wait_until(LONG, || tv.vault.join("credentials").exists()),
        "{}",
        sup.console()
    );
    assert_eq!(mode(&tv.vault.join("credentials")), 0o700);
    assert_eq!(sup.stop().and_then(|s| s.code()), Some(0));
}
