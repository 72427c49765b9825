//! `ai-employee watch gmail` against a real Dovecot on loopback (see `dovecot.rs`): the
//! real binary, real IMAP (TLS, STARTTLS, IDLE, polling, XOAUTH2), real delivery. No
//! fixed sleeps: every wait is on a condition with a deadline. "Exactly one" is checked
//! after the watcher stopped on SIGTERM, so nothing can still arrive after the count.

pub(crate) mod dovecot;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ai_employee_vault::frontmatter::{self, Document};

use self::dovecot::{Dovecot, PASSWORD, Setup, available};
use crate::common::{WatcherProc, wait_until};

/// A running `watch gmail` (reconnects every 300 ms at most).
struct Gw(WatcherProc);

impl std::ops::Deref for Gw {
    type Target = WatcherProc;
    fn deref(&self) -> &WatcherProc {
        &self.0
    }
}

impl std::ops::DerefMut for Gw {
    fn deref_mut(&mut self) -> &mut WatcherProc {
        &mut self.0
    }
}

impl Gw {
    fn start(vault: &Path, extra: &[&str]) -> Gw {
        Gw::start_env(vault, extra, &[])
    }

    fn start_env(vault: &Path, extra: &[&str], env: &[(&str, &str)]) -> Gw {
        let mut args = vec!["--reconnect-max", "300ms"];
        args.extend_from_slice(extra);
        Gw(WatcherProc::spawn_with("gmail", vault, &args, |cmd| {
            for (k, v) in env {
                cmd.env(k, v);
            }
        }))
    }

    /// Start and wait until it watches the mailbox.
    fn start_ready(vault: &Path, extra: &[&str]) -> Gw {
        let w = Gw::start(vault, extra);
        w.wait_log("watching INBOX");
        w
    }

    /// SIGTERM and wait; asserts a clean exit within a second.
    fn stop(&mut self) {
        let took = self.0.stop_clean(Duration::from_secs(10));
        assert!(took < Duration::from_secs(1), "stop took {took:?}");
    }
}

/// A temp dir with a vault whose `credentials/gmail.toml` points at `d`.
fn vault_for(d: &Dovecot, tmp: &Path, tls: &str) -> PathBuf {
    let vault = tmp.join("vault");
    fs::create_dir_all(vault.join("credentials")).expect("credentials");
    let port = if tls == "tls" {
        d.imaps_port
    } else {
        d.imap_port
    };
    write_creds(
        &vault,
        &format!(
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nusername = \"alice\"\n\
             password = \"{PASSWORD}\"\nca_file = {:?}\ntimeout = \"10s\"\n",
            d.cert.display().to_string()
        ),
    );
    vault
}

fn write_creds(vault: &Path, text: &str) {
    let p = vault.join("credentials/gmail.toml");
    fs::create_dir_all(vault.join("credentials")).expect("credentials");
    fs::write(&p, text).expect("gmail.toml");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("aie-gmail-")
        .tempdir()
        .expect("tempdir")
}

/// Every `EMAIL_*.md` in Needs_Action, parsed.
fn tasks(vault: &Path) -> BTreeMap<String, Document> {
    let mut out = BTreeMap::new();
    let Ok(rd) = fs::read_dir(vault.join("Needs_Action")) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("EMAIL_") && name.ends_with(".md") {
            let text = fs::read_to_string(e.path()).expect("read task");
            let doc = frontmatter::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            out.insert(name, doc);
        }
    }
    out
}

fn count(vault: &Path) -> usize {
    fs::read_dir(vault.join("Needs_Action"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("EMAIL_"))
                .count()
        })
        .unwrap_or(0)
}

fn wait_tasks(vault: &Path, n: usize, within: Duration) {
    let ok = wait_until(within, || count(vault) >= n);
    assert!(ok, "{} of {n} tasks after {within:?}", count(vault));
}

fn field<'a>(d: &'a Document, key: &str) -> &'a str {
    frontmatter::get_str(&d.front, key).unwrap_or_else(|| panic!("no {key} in {:?}", d.front))
}

fn uid(d: &Document) -> u64 {
    d.front.get("uid").and_then(|v| v.as_u64()).expect("uid")
}

static MSG: AtomicUsize = AtomicUsize::new(0);

/// A plain message with a unique Message-ID.
fn mail(from: &str, subject: &str, body: &str) -> String {
    let n = MSG.fetch_add(1, Ordering::Relaxed);
    format!(
        "From: {from}\nTo: alice@example.com\nSubject: {subject}\n\
         Message-ID: <m{n}.{}@test.example>\nDate: Tue, 03 Nov 2026 10:00:00 +0000\n\
         Content-Type: text/plain; charset=utf-8\n\n{body}\n",
        crate::common::now_ns()
    )
}

#[test]
fn a_delivered_message_becomes_exactly_one_task_with_the_right_fields() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let d = Dovecot::start(tmp.path(), Setup::default());
    let vault = vault_for(&d, tmp.path(), "tls");
    let mut w = Gw::start_ready(&vault, &["--keyword", "invoice"]);
    let raw = "From: Jane Roe <jane@example.com>\nTo: alice@example.com\n\
               Subject: Invoice 42 is due\nMessage-ID: <inv42@example.com>\n\
               In-Reply-To: <root@example.com>\nDate: Tue, 03 Nov 2026 10:00:00 +0100\n\n\
               Please pay invoice 42.\n";
    d.deliver(raw);
    wait_tasks(&vault, 1, Duration::from_secs(10));
    w.stop();
    let all = tasks(&vault);
    assert_eq!(all.len(), 1, "{all:?}");
    let (name, doc) = all.iter().next().unwrap();
    assert!(
        name.starts_with("EMAIL_") && name.ends_with("_invoice_42_is_due.md"),
        "{name}"
    );
    assert_eq!(field(doc, "type"), "email");
    assert_eq!(field(doc, "status"), "pending");
    assert_eq!(field(doc, "priority"), "high");
    assert_eq!(field(doc, "from"), "Jane Roe <jane@example.com>");
    assert_eq!(field(doc, "subject"), "Invoice 42 is due");
    assert_eq!(field(doc, "message_id"), "<inv42@example.com>");
    assert_eq!(field(doc, "thread_id"), "<root@example.com>");
    assert_eq!(field(doc, "mailbox"), "INBOX");
    assert_eq!(uid(doc), 1);
    let received = chrono::DateTime::parse_from_rfc3339(field(doc, "received")).expect("rfc3339");
    let age = chrono::Utc::now().signed_duration_since(received);
    assert!(
        age.num_seconds().abs() < 120,
        "received {received} (INTERNALDATE)"
    );
    assert!(doc.body.contains("Please pay invoice 42."), "{}", doc.body);
    assert!(doc.body.contains("mentions \"invoice\""), "{}", doc.body);
    // Nothing of the message's text at info level.
    assert!(!w.log().contains("Please pay"), "{}", w.log());
    // A restart writes nothing again.
    let mut w = Gw::start_ready(&vault, &["--keyword", "invoice"]);
    w.stop();
    assert_eq!(count(&vault), 1);
}

#[test]
fn with_idle_a_message_is_a_task_within_a_second() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let d = Dovecot::start(tmp.path(), Setup::default());
    let vault = vault_for(&d, tmp.path(), "tls");
    let mut w = Gw::start_ready(&vault, &["--keyword", "urgent"]);
    assert!(w.log().contains("(IDLE)"), "{}", w.log());
    for i in 1..=3 {
        d.deliver(mail("a@example.com", &format!("urgent {i}"), "now"));
        let delivered = Instant::now();
        let ok = wait_until(Duration::from_secs(1), || count(&vault) >= i);
        let took = delivered.elapsed();
        assert!(ok, "task {i} not there 1s after delivery:\n{}", w.log());
        eprintln!("delivery → task: {took:?}");
    }
    w.stop();
    assert_eq!(count(&vault), 3);
}

#[test]
fn the_message_stays_unread_on_the_server() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let d = Dovecot::start(tmp.path(), Setup::default());
    let vault = vault_for(&d, tmp.path(), "starttls");
    let mut w = Gw::start_ready(&vault, &["--sender", "boss@example.com"]);
    d.deliver(mail("Boss <boss@example.com>", "Read me", "text"));
    d.append(&mail("x@example.com", "Starred", "text"), "\\Flagged");
    wait_tasks(&vault, 2, Duration::from_secs(10));
    w.stop();
    let flags = d.flags();
    assert_eq!(flags.len(), 2, "{flags:?}");
    for (uid, f) in &flags {
        assert!(!f.contains("\\Seen"), "message {uid} was marked read: {f}");
    }
    assert!(flags[1].1.contains("\\Flagged"), "{flags:?}");
}

#[test]
fn mail_delivered_while_the_watcher_was_stopped_is_taken_at_start() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let d = Dovecot::start(tmp.path(), Setup::default());
    let vault = vault_for(&d, tmp.path(), "tls");
    let args = ["--keyword", "report"];
    let mut w = Gw::start_ready(&vault, &args);
    d.deliver(mail("a@example.com", "report one", "x"));
    wait_tasks(&vault, 1, Duration::from_secs(10));
    w.stop();
    for i in 2..=4 {
        d.deliver(mail("a@example.com", &format!("report {i}"), "x"));
    }
    d.deliver(mail("a@example.com", "not important", "x"));
    let mut w = Gw::start(&vault, &args);
    wait_tasks(&vault, 4, Duration::from_secs(10));
    w.wait_log("watching INBOX");
    w.stop();
    let all = tasks(&vault);
    let mut subjects: Vec<&str> = all.values().map(|d| field(d, "subject")).collect();
    subjects.sort();
    assert_eq!(subjects, ["report 2", "report 3", "report 4", "report one"]);
}

#[test]
fn a_dovecot_restart_mid_run_loses_and_duplicates_nothing() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let mut d = Dovecot::start(tmp.path(), Setup::default());
    let vault = vault_for(&d, tmp.path(), "tls");
    let args = ["--keyword", "n"];
    let mut w = Gw::start_ready(&vault, &args);
    for i in 0..3 {
        d.deliver(mail("a@example.com", &format!("n {i}"), "x"));
    }
    wait_tasks(&vault, 3, Duration::from_secs(10));
    d.stop();
    w.wait_log("reconnecting");
    // Delivered while the server is down (straight into the maildir).
    for i in 3..6 {
        d.deliver_offline(&mail("a@example.com", &format!("n {i}"), "x"), i);
    }
    d.restart();
    wait_tasks(&vault, 6, Duration::from_secs(15));
    w.wait_log("reconnected to 127.0.0.1");
    for i in 6..8 {
        d.deliver(mail("a@example.com", &format!("n {i}"), "x"));
    }
    wait_tasks(&vault, 8, Duration::from_secs(10));
    w.stop();
    let log = w.log();
    assert_eq!(
        log.matches("reconnecting").count(),
        1,
        "one line per outage:\n{log}"
    );
    let all = tasks(&vault);
    assert_eq!(all.len(), 8, "{:?}", all.keys());
    let subjects: HashSet<&str> = all.values().map(|d| field(d, "subject")).collect();
    assert_eq!(subjects.len(), 8, "{subjects:?}");
    let uids: HashSet<u64> = all.values().map(uid).collect();
    assert_eq!(uids, (1..=8).collect());
    assert_eq!(d.message_files(), 8);
}

#[test]
fn tricky_mail_round_trips_through_the_frontmatter() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let d = Dovecot::start(tmp.path(), Setup::default());
    let vault = vault_for(&d, tmp.path(), "tls");
    let mut w = Gw::start_ready(&vault, &["--sender", "j@x.example"]);
    // RFC 2047 subject and name, a subject with `:` and quotes, a quoted display name.
    d.deliver(
        "From: \"Doe, J\" <j@x.example>\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe:_\"Q3\"_'final'?=\n\
         Message-ID: <t1@x.example>\nReferences: <r0@x.example> <r1@x.example>\n\n\
         ---\ntype: not-frontmatter\n---\n",
    );
    // Nested multipart: mixed(alternative(text, html), attachment); encoded From name.
    d.deliver(
        "From: =?ISO-8859-1?Q?Andr=E9?= <j@x.example>\nSubject: Nested\n\
         Message-ID: <t2@x.example>\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"outer\"\n\n\
         --outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n\
         --inner\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n\
         Plain =E2=82=AC part\n--inner\nContent-Type: text/html\n\n<p>HTML part</p>\n--inner--\n\
         --outer\nContent-Type: application/pdf; name=\"a.pdf\"\n\
         Content-Disposition: attachment; filename=\"a.pdf\"\nContent-Transfer-Encoding: base64\n\n\
         JVBERi0=\n--outer--\n",
    );
    // ISO-8859-1 body, 8bit.
    let latin1 = {
        let mut v = b"From: j@x.example\nSubject: Latin\nMessage-ID: <t3@x.example>\n\
            Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\n"
            .to_vec();
        v.extend_from_slice(b"Caf\xe9 cr\xe8me br\xfbl\xe9e\n");
        v
    };
    d.deliver(latin1);
    // HTML only, base64.
    d.deliver(
        "From: j@x.example\nSubject: Html only\nMessage-ID: <t4@x.example>\n\
         Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n\
         PGh0bWw+PGJvZHk+PHA+SGVsbG8gPGI+d29ybGQ8L2I+PC9wPjwvYm9keT48L2h0bWw+\n",
    );
    wait_tasks(&vault, 4, Duration::from_secs(10));
    w.stop();
    let all = tasks(&vault);
    assert_eq!(all.len(), 4, "{:?}", all.keys());
    let by_id = |id: &str| -> &Document {
        all.values()
            .find(|d| field(d, "message_id") == id)
            .unwrap_or_else(|| panic!("no task for {id}"))
    };
    let t1 = by_id("<t1@x.example>");
    assert_eq!(field(t1, "subject"), "Grüße: \"Q3\" 'final'");
    assert_eq!(field(t1, "from"), "\"Doe, J\" <j@x.example>");
    assert_eq!(field(t1, "thread_id"), "<r0@x.example>");
    assert!(
        t1.body.contains("---\ntype: not-frontmatter\n---"),
        "{}",
        t1.body
    );
    let t2 = by_id("<t2@x.example>");
    assert_eq!(field(t2, "from"), "André <j@x.example>");
    assert!(t2.body.contains("Plain € part"), "{}", t2.body);
    assert!(!t2.body.contains("HTML part"), "{}", t2.body);
    assert!(t2.body.contains("a.pdf"), "{}", t2.body);
    let t3 = by_id("<t3@x.example>");
    assert!(t3.body.contains("Café crème brûlée"), "{}", t3.body);
    let t4 = by_id("<t4@x.example>");
    assert!(t4.body.contains("Hello world"), "{}", t4.body);
    assert!(!t4.body.contains("<b>"), "{}", t4.body);
}

#[test]
fn importance_rules_decide_what_becomes_a_task() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let d = Dovecot::start(tmp.path(), Setup::default());
    let vault = vault_for(&d, tmp.path(), "tls");
    let mut w = Gw::start_ready(
        &vault,
        &[
            "--sender",
            "boss@example.com",
            "--keyword",
            "invoice",
            "--keyword",
            "ASAP",
        ],
    );
    d.append(&mail("x@example.com", "flagged", "nothing"), "\\Flagged");
    d.deliver(mail("Boss <BOSS@example.com>", "from the boss", "nothing"));
    d.deliver(mail(
        "x@example.com",
        "keyword in the text",
        "send the Invoice today",
    ));
    d.deliver(mail("x@example.com", "Reply asap please", "nothing"));
    // Not important: none of the rules, a keyword only inside a word, already read.
    d.deliver(mail("x@example.com", "none", "hello"));
    d.deliver(mail("x@example.com", "invoices", "reinvoiced"));
    d.append(
        &mail("boss@example.com", "already read", "invoice"),
        "\\Seen \\Flagged",
    );
    // A last important one: once it is a task, everything before it was judged.
    d.deliver(mail("x@example.com", "sentinel", "invoice"));
    let ok = wait_until(Duration::from_secs(10), || {
        tasks(&vault)
            .values()
            .any(|d| field(d, "subject") == "sentinel")
    });
    assert!(ok, "{}", w.log());
    w.stop();
    let all = tasks(&vault);
    let mut subjects: Vec<&str> = all.values().map(|d| field(d, "subject")).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "Reply asap please",
            "flagged",
            "from the boss",
            "keyword in the text",
            "sentinel"
        ]
    );
    for d in all.values() {
        assert_eq!(field(d, "priority"), "high");
    }
}

#[test]
fn without_idle_mail_is_picked_up_by_polling() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let d = Dovecot::start(
        tmp.path(),
        Setup {
            no_idle: true,
            ..Setup::default()
        },
    );
    let vault = vault_for(&d, tmp.path(), "starttls");
    let poll = Duration::from_millis(700);
    let mut w = Gw::start_ready(&vault, &["--poll", "700ms", "--keyword", "poll"]);
    assert!(w.log().contains("no IDLE: checking every"), "{}", w.log());
    for i in 1..=2 {
        d.deliver(mail("a@example.com", &format!("poll {i}"), "x"));
        let delivered = Instant::now();
        // One poll interval, plus the time a check takes.
        let ok = wait_until(poll + Duration::from_millis(700), || count(&vault) >= i);
        assert!(
            ok,
            "not picked up after {:?}:\n{}",
            delivered.elapsed(),
            w.log()
        );
    }
    w.stop();
    assert_eq!(count(&vault), 2);
}

#[test]
fn missing_credentials_exit_78_with_one_line() {
    let tmp = tempdir();
    let vault = tmp.path().join("vault");
    fs::create_dir_all(&vault).unwrap();
    let mut w = Gw::start(&vault, &[]);
    let st = w.wait_exit(Duration::from_secs(10));
    assert_eq!(st.and_then(|s| s.code()), Some(78), "{}", w.log());
    let log = w.log();
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(
        log.contains("credentials/gmail.toml") && log.contains("docs/gmail.md"),
        "{log}"
    );
    // An invalid file names the line and column.
    write_creds(&vault, "username = \"u\"\npassword = \"p\"\nhots = \"x\"\n");
    let mut w = Gw::start(&vault, &[]);
    let st = w.wait_exit(Duration::from_secs(10));
    assert_eq!(st.and_then(|s| s.code()), Some(78));
    assert!(
        w.log()
            .contains("credentials/gmail.toml:3:1: unknown key `hots`"),
        "{}",
        w.log()
    );
}

#[test]
fn a_wrong_password_exits_78_with_the_servers_reason_and_no_password() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let d = Dovecot::start(tmp.path(), Setup::default());
    let vault = vault_for(&d, tmp.path(), "tls");
    let wrong = "wrong-pw-must-not-be-logged";
    let text = fs::read_to_string(vault.join("credentials/gmail.toml"))
        .unwrap()
        .replace(PASSWORD, wrong);
    write_creds(&vault, &text);
    let mut w = Gw::start_env(&vault, &[], &[("AI_EMPLOYEE_LOG", "debug")]);
    let st = w.wait_exit(Duration::from_secs(20));
    let log = w.log();
    assert_eq!(st.and_then(|s| s.code()), Some(78), "{log}");
    assert!(!log.contains(wrong), "{log}");
    // The server's words, not the IMAP library's Rust notation around them.
    let line = log
        .lines()
        .find(|l| l.contains("refused the login"))
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(
        line,
        "ai-employee watch gmail: the server refused the login of alice: \
         [AUTHENTICATIONFAILED] Authentication failed. (check the password in \
         credentials/gmail.toml; for Gmail use an app password; see docs/gmail.md)"
    );
}

#[test]
fn a_missing_mailbox_exits_78_with_the_servers_words() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let d = Dovecot::start(tmp.path(), Setup::default());
    let vault = vault_for(&d, tmp.path(), "tls");
    let mut w = Gw::start(&vault, &["--mailbox", "Nope"]);
    let st = w.wait_exit(Duration::from_secs(20));
    let log = w.log();
    assert_eq!(st.and_then(|s| s.code()), Some(78), "{log}");
    let line = log.lines().last().unwrap_or_default();
    // Dovecot adds its timing, e.g. "(0.002 + 0.000 + 0.001 secs).".
    assert!(
        line.starts_with(
            "ai-employee watch gmail: cannot open mailbox \"Nope\": Mailbox doesn't exist: Nope"
        ) && line.ends_with(" (see --mailbox)"),
        "{line}"
    );
    for rust in ["code:", "info:", "Some(", "None"] {
        assert!(!line.contains(rust), "{line}");
    }
}

#[test]
fn xoauth2_with_an_expired_token_refreshes_it_and_logs_in() {
    if !available() {
        return;
    }
    let server = crate::oauth::TokenServer::start();
    let tmp = tempdir();
    let d = Dovecot::start(
        tmp.path(),
        Setup {
            oauth_introspect: Some(server.introspect_url()),
            ..Setup::default()
        },
    );
    let vault = vault_for(&d, tmp.path(), "tls");
    let token_file = vault.join("credentials/token.json");
    fs::write(&token_file, server.token_json("alice", -60)).unwrap();
    let before = fs::read_to_string(&token_file).unwrap();
    write_creds(
        &vault,
        &format!(
            "host = \"127.0.0.1\"\nport = {}\nusername = \"alice\"\n\
             oauth_token_file = \"token.json\"\nca_file = {:?}\n",
            d.imaps_port,
            d.cert.display().to_string()
        ),
    );
    let mut w = Gw::start(&vault, &["--keyword", "oauth"]);
    w.wait_log("watching INBOX");
    assert!(server.refresh_count() >= 1, "no refresh");
    let after = fs::read_to_string(&token_file).unwrap();
    assert_ne!(before, after, "the token file was not rewritten");
    d.deliver(mail("a@example.com", "oauth works", "x"));
    wait_tasks(&vault, 1, Duration::from_secs(10));
    w.stop();
    let log = w.log();
    assert!(!log.contains("ya29."), "a token in the log:\n{log}");
    assert!(
        !log.contains("1//refresh"),
        "a refresh token in the log:\n{log}"
    );
}

/// `credentials/gmail.toml` for `d` on the port of `tls`, with or without a `ca_file`.
fn creds_with_ca(vault: &Path, d: &Dovecot, tls: &str, ca: Option<&Path>) {
    let port = if tls == "tls" {
        d.imaps_port
    } else {
        d.imap_port
    };
    let ca = ca
        .map(|p| format!("ca_file = {:?}\n", p.display().to_string()))
        .unwrap_or_default();
    write_creds(
        vault,
        &format!(
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nusername = \"alice\"\n\
             password = \"{PASSWORD}\"\ntimeout = \"10s\"\n{ca}"
        ),
    );
}

/// Start the watcher and expect exit 78 with one line (the reason), quickly: a
/// certificate error is not retried.
fn exits_78_at_once(vault: &Path) -> String {
    let mut w = Gw::start(vault, &[]);
    let st = w.wait_exit(Duration::from_secs(10));
    let log = w.log();
    assert_eq!(st.and_then(|s| s.code()), Some(78), "{log}");
    assert!(!log.contains("reconnecting"), "{log}");
    assert_eq!(log.lines().count(), 1, "{log}");
    log
}

#[test]
fn a_certificate_from_an_unknown_issuer_exits_78_at_once_naming_ca_file() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let d = Dovecot::start(tmp.path(), Setup::default());
    let vault = tmp.path().join("vault");
    // IMAPS without `ca_file`: the self-signed certificate is trusted by nobody.
    creds_with_ca(&vault, &d, "tls", None);
    let log = exits_78_at_once(&vault);
    assert_eq!(
        log.trim_end(),
        "ai-employee watch gmail: 127.0.0.1:{port}: the server's certificate is not \
         accepted: it was not issued by a certificate authority this program trusts (the \
         public roots; no `ca_file` is set). A certificate error does not pass by waiting: \
         if the server uses a certificate from a private CA or a self-signed one, save that \
         CA certificate (PEM) in credentials/ and name it with `ca_file` in \
         credentials/gmail.toml; see docs/gmail.md"
            .replace("{port}", &d.imaps_port.to_string())
    );
    // STARTTLS too, and a `ca_file` with another CA.
    let pki = crate::certs::make(&tmp.path().join("pki"));
    creds_with_ca(&vault, &d, "starttls", Some(&pki.ca));
    let log = exits_78_at_once(&vault);
    assert!(
        log.contains(
            "it was issued neither by a public certificate authority nor by one in ca_file"
        ),
        "{log}"
    );
    assert!(log.contains("`ca_file` in credentials/gmail.toml"), "{log}");
}

#[test]
fn a_ca_certificate_as_the_servers_own_exits_78_naming_ca_file() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let pki = crate::certs::make(&tmp.path().join("pki"));
    let d = Dovecot::start(
        tmp.path(),
        Setup {
            cert: Some((pki.ca_as_server_cert.clone(), pki.ca_as_server_key.clone())),
            ..Setup::default()
        },
    );
    let vault = tmp.path().join("vault");
    creds_with_ca(&vault, &d, "starttls", Some(&pki.ca_as_server_cert));
    let log = exits_78_at_once(&vault);
    assert!(
        log.contains("the server presents a CA certificate as its own"),
        "{log}"
    );
    assert!(log.contains("`ca_file` in credentials/gmail.toml"), "{log}");
    assert!(!log.contains("CaUsedAsEndEntity"), "{log}");
}

#[test]
fn a_server_certificate_from_the_ca_in_ca_file_is_accepted() {
    if !available() {
        return;
    }
    let tmp = tempdir();
    let pki = crate::certs::make(&tmp.path().join("pki"));
    let d = Dovecot::start(
        tmp.path(),
        Setup {
            cert: Some((pki.server_cert.clone(), pki.server_key.clone())),
            ..Setup::default()
        },
    );
    let vault = tmp.path().join("vault");
    creds_with_ca(&vault, &d, "tls", Some(&pki.ca));
    let mut w = Gw::start_ready(&vault, &[]);
    w.stop();
}
