//! `ai-employee watch whatsapp` over real HTTP on loopback against the real binary. The
//! watcher listens on port 0 and logs the port it got; every wait is on a condition with a
//! deadline. A 200 for a delivery means its tasks are durable, so task counts are read
//! right after the answer; "exactly one" is checked again after the watcher stopped.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ai_employee_vault::frontmatter::{self, Document};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::common::{WatcherProc, wait_until};

const SECRET: &str = "app-secret-0123456789abcdef";
const VERIFY: &str = "verify me: \"please\" & thanks";

struct Watcher {
    proc: WatcherProc,
    port: u16,
}

impl std::ops::Deref for Watcher {
    type Target = WatcherProc;
    fn deref(&self) -> &WatcherProc {
        &self.proc
    }
}

impl std::ops::DerefMut for Watcher {
    fn deref_mut(&mut self) -> &mut WatcherProc {
        &mut self.proc
    }
}

impl Watcher {
    fn spawn(vault: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Watcher {
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Watcher {
            proc: WatcherProc::spawn_with("whatsapp", vault, &args, |cmd| {
                for (k, v) in env {
                    cmd.env(k, v);
                }
            }),
            port: 0,
        }
    }

    /// Start and wait until it listens (the log names the port it got).
    fn start(vault: &Path, extra: &[&str]) -> Watcher {
        let mut w = Watcher::spawn(vault, extra, &[]);
        w.wait_ready();
        w
    }

    fn wait_ready(&mut self) {
        let mut port = None;
        let ok = wait_until(Duration::from_secs(30), || {
            port = self
                .log()
                .split("listening on http://127.0.0.1:")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .and_then(|p| p.parse::<u16>().ok());
            port.is_some()
        });
        assert!(ok, "the watcher did not start listening:\n{}", self.log());
        self.port = port.unwrap_or_default();
        // Readiness by connecting, too.
        let ok = wait_until(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(ok, "port {} does not accept connections", self.port);
    }

    /// SIGTERM and wait; asserts a clean exit.
    fn stop(&mut self) {
        self.proc.stop_clean(Duration::from_secs(15));
    }

    fn get(&self, target: &str) -> (u16, String) {
        http(self.port, "GET", target, &[], b"")
    }

    /// POST a body signed with `secret`.
    fn post_signed(&self, body: &[u8], secret: &str) -> (u16, String) {
        let sig = sign(secret, body);
        http(
            self.port,
            "POST",
            "/webhook",
            &[("X-Hub-Signature-256", sig.as_str())],
            body,
        )
    }

    fn post(&self, body: &[u8]) -> (u16, String) {
        self.post_signed(body, SECRET)
    }
}

/// One HTTP/1.1 request on its own connection; (status, body).
fn http(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if method == "POST" {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("send head");
    // The server may answer (413) and close before reading a large body.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn message(id: &str, from: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "from": from, "id": id, "timestamp": "1795000000", "type": "text",
        "text": {"body": text}
    })
}

/// A delivery of `messages` from contacts `(wa_id, name)`.
fn delivery(contacts: &[(&str, &str)], messages: Vec<serde_json::Value>) -> Vec<u8> {
    let contacts: Vec<serde_json::Value> = contacts
        .iter()
        .map(|(id, name)| serde_json::json!({"profile": {"name": name}, "wa_id": id}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": contacts,
            "messages": messages
        }}]}]
    }))
    .expect("json")
}

fn one(id: &str, text: &str) -> Vec<u8> {
    delivery(
        &[("15551234567", "Ana")],
        vec![message(id, "15551234567", text)],
    )
}

fn new_vault() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("aie-wa-")
        .tempdir()
        .expect("tempdir");
    let vault = dir.path().join("vault");
    fs::create_dir_all(vault.join("credentials")).expect("credentials");
    fs::write(
        vault.join("credentials/whatsapp.toml"),
        format!(
            "# the approval handler's keys live here too\ntoken = \"EAAB-not-ours\"\nphone_number_id = \"106540352242922\"\napp_secret = \"{SECRET}\"\nverify_token = {}\n",
            toml_string(VERIFY)
        ),
    )
    .expect("credentials file");
    private(&vault.join("credentials/whatsapp.toml"));
    (dir, vault)
}

fn private(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o600)).expect("chmod");
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Every task in Needs_Action, parsed: file name → document.
fn tasks(vault: &Path) -> BTreeMap<String, Document> {
    let dir = vault.join("Needs_Action");
    let mut out = BTreeMap::new();
    for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let text = fs::read_to_string(e.path()).expect("read task");
        let doc = frontmatter::parse(&text).unwrap_or_else(|err| panic!("{name}: {err}\n{text}"));
        out.insert(name, doc);
    }
    out
}

/// The `message_id` of every task, sorted (one entry per task file).
fn message_ids(vault: &Path) -> Vec<String> {
    let mut ids: Vec<String> = tasks(vault)
        .values()
        .map(|d| field(d, "message_id").to_string())
        .collect();
    ids.sort();
    ids
}

fn field<'a>(doc: &'a Document, key: &str) -> &'a str {
    frontmatter::get_str(&doc.front, key).unwrap_or_else(|| panic!("no {key} in {doc:?}"))
}

fn keywords(doc: &Document) -> Vec<String> {
    doc.front
        .get("keywords")
        .and_then(|v| v.as_sequence())
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Percent-encode a query value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn the_verification_handshake() {
    let (_dir, vault) = new_vault();
    let mut w = Watcher::start(&vault, &[]);
    let good = format!(
        "/webhook?hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444",
        enc(VERIFY)
    );
    assert_eq!(w.get(&good), (200, "1158201444".to_string()));
    let bad = "/webhook?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1";
    assert_eq!(w.get(bad).0, 403);
    let wrong_mode = format!(
        "/webhook?hub.mode=unsubscribe&hub.verify_token={}&hub.challenge=1",
        enc(VERIFY)
    );
    assert_eq!(w.get(&wrong_mode).0, 403);
    assert_eq!(w.get("/webhook").0, 403);
    assert_eq!(w.get("/elsewhere").0, 404);
    // Still answering after the refusals.
    assert_eq!(w.get(&good).0, 200);
    w.stop();
    let log = w.log();
    assert!(
        !log.contains("verify me"),
        "the verify token was logged:\n{log}"
    );
}

#[test]
fn a_signed_message_with_a_keyword_becomes_exactly_one_task() {
    let (_dir, vault) = new_vault();
    let mut w = Watcher::start(&vault, &[]);
    let text = "URGENT: the invoice #1234 is overdue\n---\n# please pay";
    let name = "Doe, J: \"Boss\" 🚀";
    let body = delivery(
        &[("15551234567", name)],
        vec![message(
            "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQTk=",
            "15551234567",
            text,
        )],
    );
    assert_eq!(w.post(&body), (200, "ok\n".to_string()));
    let all = tasks(&vault);
    assert_eq!(all.len(), 1, "{all:?}");
    w.stop();
    assert_eq!(tasks(&vault).len(), 1);

    let (file, doc) = all.iter().next().expect("one task");
    assert!(
        file.starts_with("WHATSAPP_20261118T110640Z_doe_j_boss") && file.ends_with(".md"),
        "{file}"
    );
    assert_eq!(field(doc, "type"), "whatsapp");
    assert_eq!(field(doc, "status"), "pending");
    assert_eq!(field(doc, "priority"), "high");
    assert_eq!(field(doc, "received"), "2026-11-18T11:06:40Z");
    assert_eq!(field(doc, "from"), "15551234567");
    assert_eq!(field(doc, "contact_name"), name);
    assert_eq!(
        field(doc, "message_id"),
        "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQTk="
    );
    assert_eq!(keywords(doc), vec!["urgent", "invoice"]);
    assert!(
        doc.body
            .contains("> URGENT: the invoice \\#1234 is overdue\n> \\---\n> \\# please pay"),
        "{}",
        doc.body
    );

    let log = w.log();
    assert!(
        log.contains("wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQTk="),
        "{log}"
    );
    assert!(log.contains(file), "{log}");
    for secret in [SECRET, "overdue", "verify me", "EAAB"] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}

#[test]
fn keywords_are_whole_words_in_any_case_and_set_the_priority() {
    let (_dir, vault) = new_vault();
    let w = Watcher::start(&vault, &[]);
    let cases = [
        (
            "wamid.a",
            "Can you HELP me?",
            Some(("normal", vec!["help"])),
        ),
        ("wamid.b", "that was helpful, thanks", None),
        (
            "wamid.c",
            "Payment sent asap",
            Some(("high", vec!["asap", "payment"])),
        ),
        ("wamid.d", "the invoices are attached", None),
        ("wamid.e", "just saying hi 👋", None),
    ];
    for (id, text, _) in &cases {
        assert_eq!(w.post(&one(id, text)).0, 200, "{text}");
    }
    let all = tasks(&vault);
    let by_id: BTreeMap<&str, &Document> =
        all.values().map(|d| (field(d, "message_id"), d)).collect();
    for (id, text, want) in &cases {
        match (by_id.get(id), want) {
            (None, None) => {}
            (Some(doc), Some((priority, kws))) => {
                assert_eq!(field(doc, "priority"), *priority, "{text}");
                assert_eq!(keywords(doc), *kws, "{text}");
            }
            (got, _) => panic!("{text:?}: task {got:?}, expected {want:?}"),
        }
    }
    assert_eq!(all.len(), 2);
}

#[test]
fn keywords_from_the_command_line_replace_the_defaults() {
    let (_dir, vault) = new_vault();
    let mut w = Watcher::start(
        &vault,
        &[
            "--keyword",
            "Rechnung",
            "--keyword",
            "call me",
            "--high-keyword",
            "SOFORT",
        ],
    );
    assert_eq!(w.post(&one("wamid.1", "urgent help asap")).0, 200);
    assert_eq!(w.post(&one("wamid.2", "Die RECHNUNG bitte sofort")).0, 200);
    assert_eq!(w.post(&one("wamid.3", "please call me")).0, 200);
    w.stop();
    let all = tasks(&vault);
    let got: BTreeMap<&str, (&str, Vec<String>)> = all
        .values()
        .map(|d| (field(d, "message_id"), (field(d, "priority"), keywords(d))))
        .collect();
    assert_eq!(
        got,
        BTreeMap::from([
            ("wamid.2", ("high", vec!["Rechnung".to_string()])),
            ("wamid.3", ("normal", vec!["call me".to_string()])),
        ])
    );
}

#[test]
fn several_entries_and_messages_each_become_a_task_and_the_rest_is_ignored() {
    let (_dir, vault) = new_vault();
    let mut w = Watcher::start(&vault, &[]);
    let value = |msgs: serde_json::Value| {
        serde_json::json!({"field": "messages", "value": {
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "111"},
                         {"profile": {"name": "Bo"}, "wa_id": "222"}],
            "messages": msgs}})
    };
    let body = serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": [value(serde_json::json!([
                message("wamid.1", "111", "invoice 1"),
                message("wamid.2", "222", "invoice 2"),
                {"from": "222", "id": "wamid.img", "type": "image", "image": {"id": "9"}}
            ]))]},
            {"id": "2", "changes": [
                value(serde_json::json!([message("wamid.3", "111", "help")])),
                {"field": "messages", "value": {"statuses": [
                    {"id": "wamid.1", "status": "read", "timestamp": "1795000001"}]}}
            ]}
        ]
    }))
    .expect("json");
    assert_eq!(w.post(&body).0, 200);
    // A status update alone is answered 200 and changes nothing.
    let status_only = serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"changes": [{"field": "messages", "value": {"statuses": [
            {"id": "wamid.2", "status": "delivered"}]}}]}]
    }))
    .expect("json");
    assert_eq!(w.post(&status_only).0, 200);
    w.stop();
    let all = tasks(&vault);
    let got: BTreeMap<&str, &str> = all
        .values()
        .map(|d| (field(d, "message_id"), field(d, "contact_name")))
        .collect();
    assert_eq!(
        got,
        BTreeMap::from([("wamid.1", "Ana"), ("wamid.2", "Bo"), ("wamid.3", "Ana")])
    );
}

#[test]
fn bad_requests_are_refused_and_the_server_keeps_answering() {
    let (_dir, vault) = new_vault();
    let mut w = Watcher::start(&vault, &["--max-body", "64KiB"]);
    let good = one("wamid.good", "urgent");

    // Wrong secret, no signature, a signature of another body.
    assert_eq!(w.post_signed(&good, "not-the-secret").0, 401);
    assert_eq!(http(w.port, "POST", "/webhook", &[], &good).0, 401);
    let other = sign(SECRET, b"{}");
    assert_eq!(
        http(
            w.port,
            "POST",
            "/webhook",
            &[("X-Hub-Signature-256", &other)],
            &good
        )
        .0,
        401
    );
    assert!(tasks(&vault).is_empty());

    // Too large, declared or not.
    let big = vec![b' '; 65 * 1024];
    assert_eq!(w.post(&big).0, 413);
    assert_eq!(chunked_post(w.port, &big, &sign(SECRET, &big)), 413);

    // Signed, but not JSON.
    assert_eq!(w.post(b"{\"entry\": [").0, 400);
    assert_eq!(w.post(b"").0, 400);

    // Still up: the good delivery is taken.
    assert_eq!(w.post(&good), (200, "ok\n".to_string()));
    w.stop();
    let all = tasks(&vault);
    assert_eq!(all.len(), 1, "{all:?}");
    let log = w.log();
    assert!(
        log.contains("(401)") && log.contains("(413)") && log.contains("(400)"),
        "{log}"
    );
}

/// A POST with `Transfer-Encoding: chunked` (no Content-Length); the status.
fn chunked_post(port: u16, body: &[u8], sig: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nX-Hub-Signature-256: {sig}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).expect("head");
    for chunk in body.chunks(8192) {
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || s.write_all(chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

#[test]
fn a_redelivered_message_stays_one_task_also_after_a_restart() {
    let (_dir, vault) = new_vault();
    let body = one("wamid.again", "invoice please");
    let mut w = Watcher::start(&vault, &[]);
    assert_eq!(w.post(&body).0, 200);
    assert_eq!(w.post(&body).0, 200);
    assert_eq!(tasks(&vault).len(), 1);
    w.stop();

    let mut w = Watcher::start(&vault, &[]);
    assert!(w.log().contains("1 message ids remembered"), "{}", w.log());
    assert_eq!(w.post(&body).0, 200);
    // The same message id in a delivery with different text is the same message.
    assert_eq!(w.post(&one("wamid.again", "invoice, edited")).0, 200);
    assert_eq!(w.post(&one("wamid.new", "invoice two")).0, 200);
    w.stop();
    let ids = message_ids(&vault);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&"wamid.again".to_string()) && ids.contains(&"wamid.new".to_string()));
}

#[test]
fn concurrent_deliveries_each_become_a_task() {
    let (_dir, vault) = new_vault();
    let mut w = Watcher::start(&vault, &[]);
    let port = w.port;
    let threads: Vec<_> = (0..24)
        .map(|i| {
            std::thread::spawn(move || {
                let body = one(&format!("wamid.c{i}"), "urgent");
                let sig = sign(SECRET, &body);
                http(
                    port,
                    "POST",
                    "/webhook",
                    &[("X-Hub-Signature-256", &sig)],
                    &body,
                )
                .0
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("client thread"), 200);
    }
    // Every 200 was answered after its task was durable.
    assert_eq!(tasks(&vault).len(), 24);
    w.stop();
    assert_eq!(tasks(&vault).len(), 24);
}

#[test]
fn missing_or_invalid_credentials_exit_78_with_one_line() {
    let (_dir, vault) = new_vault();
    fs::remove_file(vault.join("credentials/whatsapp.toml")).expect("remove");
    let mut w = Watcher::spawn(&vault, &[], &[]);
    let st = w.wait_exit(Duration::from_secs(20));
    assert_eq!(st.and_then(|s| s.code()), Some(78), "{}", w.log());
    let log = w.log();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].starts_with("ai-employee watch whatsapp: no credentials: create ")
            && lines[0].contains("credentials/whatsapp.toml")
            && lines[0].contains("docs/whatsapp.md"),
        "{log}"
    );

    fs::write(
        vault.join("credentials/whatsapp.toml"),
        "verify_token = \"v\"\napp_secert = \"s\"\n",
    )
    .expect("write");
    let mut w = Watcher::spawn(&vault, &[], &[]);
    let st = w.wait_exit(Duration::from_secs(20));
    assert_eq!(st.and_then(|s| s.code()), Some(78), "{}", w.log());
    let log = w.log();
    assert!(
        log.trim_end().starts_with(
            "ai-employee watch whatsapp: credentials/whatsapp.toml:2:1: unknown key `app_secert`"
        ) && log.trim_end().ends_with("(see docs/whatsapp.md)")
            && log.lines().count() == 1,
        "{log}"
    );
}

#[test]
fn heartbeat_and_clean_stop_on_sigterm() {
    let (dir, vault) = new_vault();
    let beat = dir.path().join("heartbeat");
    let mut w = Watcher::spawn(&vault, &[], &[("AI_EMPLOYEE_HEARTBEAT", beat.as_path())]);
    w.wait_ready();
    assert!(
        wait_until(Duration::from_secs(10), || beat.exists()),
        "no heartbeat file"
    );
    // A second watcher on the same vault is refused while the first runs.
    let mut second = Watcher::spawn(&vault, &[], &[]);
    let st = second.wait_exit(Duration::from_secs(20));
    assert_eq!(st.and_then(|s| s.code()), Some(75), "{}", second.log());
    assert!(
        second.log().contains("another WhatsApp watcher"),
        "{}",
        second.log()
    );
    w.stop();
    assert!(w.log().contains("stopped"), "{}", w.log());
}

/// Told a 3 s heartbeat timeout, an idle watcher touches its heartbeat every second and
/// wakes for little else (it asked its writer thread for a beat ten times a second).
#[test]
fn an_idle_watcher_beats_every_third_of_its_timeout_and_sleeps_between() {
    use crate::common::wake_ups;
    let (dir, vault) = new_vault();
    let beat = dir.path().join("heartbeat");
    let usec = Path::new("3000000");
    let env = [
        ("AI_EMPLOYEE_HEARTBEAT", beat.as_path()),
        ("AI_EMPLOYEE_HEARTBEAT_USEC", usec),
    ];
    let mut w = Watcher::spawn(&vault, &[], &env);
    w.wait_ready();
    let mtime = || fs::metadata(&beat).and_then(|m| m.modified()).ok();
    assert!(
        wait_until(Duration::from_secs(10), || mtime().is_some()),
        "no heartbeat file"
    );
    let before = wake_ups(w.pid()).expect("wake-ups");
    let started = std::time::Instant::now();
    // Four beats seen, a second apart: watched for (polling its time is this test's
    // own work, not the watcher's).
    let mut seen = vec![mtime()];
    let four = wait_until(Duration::from_secs(20), || {
        let m = mtime();
        if seen.last() != Some(&m) {
            seen.push(m);
        }
        seen.len() >= 5
    });
    let woken = wake_ups(w.pid()).expect("wake-ups") - before;
    let secs = started.elapsed().as_secs_f64();
    assert!(four, "{} beats in {secs:.1} s\n{}", seen.len() - 1, w.log());
    assert!(
        // About three a beat (the runtime's timer, its worker, the writer thread); some
        // fifty a second before.
        (woken as f64) <= 5.0 + 6.0 * secs,
        "{woken} wake-ups in {secs:.1} s\n{}",
        w.log()
    );
    w.stop();
}

#[test]
fn a_request_in_flight_at_sigterm_is_finished() {
    let (_dir, vault) = new_vault();
    let mut w = Watcher::start(&vault, &[]);
    let body = one("wamid.inflight", "payment due");
    let sig = sign(SECRET, &body);
    let mut s = TcpStream::connect(("127.0.0.1", w.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    // `Expect: 100-continue`: the "100 Continue" shows the handler is reading the body,
    // so the request is in flight (not merely queued) when SIGTERM arrives.
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    s.write_all(head.as_bytes()).expect("head");
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("read 100 Continue"), 1, "closed");
        interim.push(byte[0]);
    }
    assert!(interim.starts_with(b"HTTP/1.1 100"), "{interim:?}");
    s.write_all(first).expect("first half");
    crate::common::signal(w.pid(), libc::SIGTERM);
    let ok = wait_until(Duration::from_secs(10), || w.log().contains("stopping"));
    assert!(ok, "{}", w.log());
    // The open request still completes.
    s.write_all(rest).expect("second half");
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let st = w.wait_exit(Duration::from_secs(15));
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", w.log());
    assert_eq!(tasks(&vault).len(), 1);
}

#[test]
fn an_io_error_is_answered_500_and_the_redelivery_succeeds() {
    let (_dir, vault) = new_vault();
    let mut w = Watcher::start(&vault, &[]);
    let na = vault.join("Needs_Action");
    // Needs_Action replaced by a file: the task cannot be published.
    fs::remove_dir(&na).expect("rmdir Needs_Action");
    fs::write(&na, "not a folder").expect("file");
    let body = one("wamid.io", "invoice attached");
    assert_eq!(w.post(&body).0, 500);
    // Still up, still failing while the folder is broken.
    assert_eq!(w.post(&one("wamid.io2", "help")).0, 500);
    fs::remove_file(&na).expect("rm file");
    // The watcher, reopening its task store after the failure, may create the folder
    // itself the moment the file is gone.
    match fs::create_dir(&na) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && na.is_dir() => {}
        Err(e) => panic!("mkdir: {e}"),
    }
    // Meta delivers again: 200, and one task per message, not two.
    assert_eq!(w.post(&body).0, 200);
    assert_eq!(w.post(&one("wamid.io2", "help")).0, 200);
    w.stop();
    assert_eq!(message_ids(&vault), vec!["wamid.io", "wamid.io2"]);
    assert!(w.log().contains("answered 500"), "{}", w.log());
}

/// A POST that reports a dead or dying watcher as `None` instead of failing the test.
fn try_post(port: u16, body: &[u8]) -> Option<u16> {
    post_within(port, body, Duration::from_secs(20))
}

/// A signed POST of `body` on a fresh connection, answered within `within`: the status,
/// or None when no answer came in time (or the watcher is gone).
fn post_within(port: u16, body: &[u8], within: Duration) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(within)).ok()?;
    let sig = sign(SECRET, body);
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    String::from_utf8_lossy(&resp)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
}

#[test]
fn kill_9_under_load_then_redelivery_leaves_exactly_one_task_per_message() {
    use std::sync::{Arc, Mutex};
    const N: usize = 240;
    const SENDERS: usize = 8;
    let (_dir, vault) = new_vault();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..N)
            .map(|i| {
                let from = format!("1555000{i:04}");
                delivery(
                    &[(from.as_str(), "Crash Test")],
                    vec![message(
                        &format!("wamid.crash{i}"),
                        &from,
                        "urgent: invoice",
                    )],
                )
            })
            .collect(),
    );
    let mut acked = vec![false; N];
    // Two rounds in which the watcher is killed with SIGKILL while deliveries are in
    // flight; like Meta, the next round sends again what was not answered 200.
    for _ in 0..2 {
        let mut w = Watcher::start(&vault, &[]);
        let port = w.port;
        let pending: Vec<usize> = (0..N).filter(|&i| !acked[i]).collect();
        let done = Arc::new(Mutex::new(Vec::<usize>::new()));
        let threads: Vec<_> = (0..SENDERS)
            .map(|t| {
                let mine: Vec<usize> = pending.iter().copied().skip(t).step_by(SENDERS).collect();
                let (done, bodies) = (done.clone(), bodies.clone());
                std::thread::spawn(move || {
                    for i in mine {
                        match try_post(port, &bodies[i]) {
                            Some(200) => done.lock().unwrap().push(i),
                            Some(other) => panic!("message {i}: HTTP {other}"),
                            None => return, // the watcher is gone
                        }
                    }
                })
            })
            .collect();
        let third = pending.len() / 3;
        assert!(
            wait_until(Duration::from_secs(30), || done.lock().unwrap().len()
                >= third),
            "{}",
            w.log()
        );
        w.kill9();
        for t in threads {
            t.join().expect("sender");
        }
        for &i in done.lock().unwrap().iter() {
            acked[i] = true;
        }
    }
    assert!(
        acked.iter().any(|a| !a),
        "the kills came too late to test anything"
    );
    // Every message delivered once more (Meta's duplicates of answered ones included).
    let mut w = Watcher::start(&vault, &[]);
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(w.post(body).0, 200, "message {i}");
    }
    w.stop();
    let mut want: Vec<String> = (0..N).map(|i| format!("wamid.crash{i}")).collect();
    want.sort();
    assert_eq!(message_ids(&vault), want, "each message exactly one task");
    let staging = vault.join(".ai-employee/staging-whatsapp");
    assert_eq!(fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0), 0);
}

/// A client that sends its request one byte at a time (slowloris), on a non-blocking
/// socket so that many are driven from one thread.
struct SlowClient {
    s: TcpStream,
    request: Vec<u8>,
    sent: usize,
    closed: bool,
    got: Vec<u8>,
}

impl SlowClient {
    /// Connect and send the first `first` bytes of `request` at once.
    fn open(port: u16, request: &[u8], first: usize) -> SlowClient {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(&request[..first]).expect("first bytes");
        s.set_nonblocking(true).expect("non-blocking");
        SlowClient {
            s,
            request: request.to_vec(),
            sent: first,
            closed: false,
            got: Vec::new(),
        }
    }

    /// Send one more byte (never the last: the request is never complete).
    fn trickle(&mut self) {
        if self.closed || self.sent + 1 >= self.request.len() {
            return;
        }
        match self.s.write(&self.request[self.sent..=self.sent]) {
            Ok(n) => self.sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => self.closed = true,
        }
    }

    /// Whether the server closed the connection (reading what it sent meanwhile).
    fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        while !self.closed {
            match self.s.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => self.closed = true,
            }
        }
        self.closed
    }
}

/// Spawn the watcher with its open-file limit (soft and hard) set to `nofile`.
fn spawn_with_nofile(vault: &Path, extra: &[&str], nofile: u64) -> Watcher {
    use std::os::unix::process::CommandExt;
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut w = Watcher {
        proc: WatcherProc::spawn_with("whatsapp", vault, &args, |cmd| {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
            unsafe {
                cmd.pre_exec(move || {
                    nix::sys::resource::setrlimit(
                        nix::sys::resource::Resource::RLIMIT_NOFILE,
                        nofile,
                        nofile,
                    )
                    .map_err(std::io::Error::from)
                });
            }
        }),
        port: 0,
    };
    w.wait_ready();
    w
}

#[test]
fn slow_clients_are_timed_out_and_a_delivery_is_answered_under_a_low_fd_limit() {
    const SLOW_HEADERS: usize = 200;
    const SLOW_BODIES: usize = 3;
    const TIMEOUT: Duration = Duration::from_secs(6);
    let (_dir, vault) = new_vault();
    // 128 open files in all: 200 slow clients are more than the watcher may hold.
    let mut w = spawn_with_nofile(
        &vault,
        &["--header-timeout", "6s", "--body-timeout", "6s"],
        128,
    );
    let cap: usize = w
        .log()
        .split("at most ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no connection limit in the log:\n{}", w.log()));
    assert!(cap < 128, "the limit {cap} ignores the open-file limit");

    let started = std::time::Instant::now();
    let head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut slow: Vec<SlowClient> = (0..SLOW_HEADERS)
        .map(|_| SlowClient::open(w.port, head, 1))
        .collect();
    // Complete headers, then a body that never completes.
    let body_head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=00\r\nContent-Length: 100\r\n\r\n{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{";
    let head_len = body_head.len() - 100;
    let mut slow_bodies: Vec<SlowClient> = (0..SLOW_BODIES)
        .map(|_| SlowClient::open(w.port, body_head, head_len + 1))
        .collect();

    // A real delivery while the slow clients hold every connection the watcher allows.
    let body = one("wamid.realdelivery", "urgent: are you there?");
    let status = post_within(w.port, &body, Duration::from_secs(5));
    assert_eq!(status, Some(200), "no timely answer:\n{}", w.log());
    let open = slow
        .iter_mut()
        .map(|c| usize::from(!c.is_closed()))
        .sum::<usize>();
    assert!(
        started.elapsed() < TIMEOUT,
        "too slow to show anything ({:?})",
        started.elapsed()
    );
    assert!(
        open >= cap / 2 && open <= cap,
        "{open} slow clients still open after the delivery (limit {cap})"
    );
    assert_eq!(message_ids(&vault), vec!["wamid.realdelivery"]);

    // The slow clients keep sending, a byte at a time; each is closed after its timeout.
    let all_closed = wait_until(TIMEOUT + Duration::from_secs(20), || {
        for c in slow.iter_mut().chain(slow_bodies.iter_mut()) {
            c.trickle();
        }
        std::thread::sleep(Duration::from_millis(200));
        slow.iter_mut()
            .chain(slow_bodies.iter_mut())
            .all(SlowClient::is_closed)
    });
    let still = slow
        .iter_mut()
        .chain(slow_bodies.iter_mut())
        .map(|c| usize::from(!c.is_closed()))
        .sum::<usize>();
    assert!(all_closed, "{still} slow clients still open:\n{}", w.log());
    assert!(
        started.elapsed() >= TIMEOUT,
        "closed before their timeout ({:?})",
        started.elapsed()
    );
    for c in &slow_bodies {
        let got = String::from_utf8_lossy(&c.got);
        assert!(got.starts_with("HTTP/1.1 408"), "{got:?}");
    }
    let log = w.wait_log("connection limit");
    assert_eq!(
        log.matches("reached the connection limit").count(),
        1,
        "one line per episode:\n{log}"
    );
    w.wait_log("no complete request header within 6s");

    // Still healthy afterwards.
    assert_eq!(w.post(&one("wamid.after", "help")).0, 200);
    w.stop();
    assert_eq!(
        message_ids(&vault),
        vec!["wamid.after", "wamid.realdelivery"]
    );
}
