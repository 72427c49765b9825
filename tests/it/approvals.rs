//! `ai-employee watch approvals` against a real SMTP server (aiosmtpd, started on a free
//! loopback port by each test), a loopback HTTP stand-in for the WhatsApp Cloud API, real
//! files and the real binary, including kill -9 at random moments. Every wait is on a
//! condition with a deadline.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ai_employee_vault::frontmatter;
use sha2::{Digest, Sha256};

use crate::common::{
    BIN, HttpRequest, TestVault, WatcherProc, now_ns, read_http_request, wait_until,
};

#[cfg(target_os = "linux")]
mod disk_full;
#[cfg(target_os = "linux")]
mod idle;
mod run_task;

// ---------------------------------------------------------------------------------------
// Helpers: vault, handler process, SMTP server, WhatsApp stand-in.
// ---------------------------------------------------------------------------------------

pub(crate) const FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/smtp/server.py");
pub(crate) const SMTP_PASSWORD: &str = "Pw-7f3a9c-not-in-logs";
pub(crate) const WA_TOKEN: &str = "EAAG-token-5d81e2-not-in-logs";
pub(crate) const FROM: &str = "AI Employee <ai@example.com>";
/// Fast retries for tests.
const FAST: &[&str] = &["--retry-initial", "100ms", "--retry-max", "300ms"];

/// A Python that has aiosmtpd: Debian's /usr/bin/python3 (python3-aiosmtpd), else the
/// first `python3` on PATH that has it (pip install aiosmtpd).
pub(crate) fn python() -> &'static str {
    static PY: OnceLock<String> = OnceLock::new();
    PY.get_or_init(|| {
        for py in ["/usr/bin/python3", "python3"] {
            let ok = Command::new(py)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return py.to_string();
            }
        }
        panic!(
            "no python3 with aiosmtpd: apt-get install python3-aiosmtpd (tests/run.sh does) \
             or pip install aiosmtpd"
        );
    })
}

pub(crate) fn new_vault() -> TestVault {
    let tv = TestVault::new();
    let st = Command::new(BIN)
        .args(["init", "--vault"])
        .arg(&tv.vault)
        .env_remove("AI_EMPLOYEE_VAULT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run init");
    assert!(st.success(), "init failed");
    tv
}

pub(crate) fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).expect("write credentials");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod");
}

pub(crate) fn smtp_toml(vault: &Path, port: u16, auth: bool, extra: &str) {
    let login = if auth {
        format!("username = \"agent\"\npassword = \"{SMTP_PASSWORD}\"\n")
    } else {
        String::new()
    };
    write_private(
        &vault.join("credentials/smtp.toml"),
        &format!(
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"{FROM}\"\ntimeout = \"5s\"\n{login}{extra}"
        ),
    );
}

fn whatsapp_toml(vault: &Path, port: u16) {
    write_private(
        &vault.join("credentials/whatsapp.toml"),
        &format!(
            "token = \"{WA_TOKEN}\"\nphone_number_id = \"1098765\"\nbase_url = \"http://127.0.0.1:{port}/v21.0\"\ntimeout = \"5s\"\n"
        ),
    );
}

/// As a person does it: written in Pending_Approval/, then moved to Approved/.
pub(crate) fn approve(vault: &Path, name: &str, text: &str) {
    let pending = vault.join("Pending_Approval").join(name);
    fs::write(&pending, text).expect("write pending");
    fs::rename(&pending, vault.join("Approved").join(name)).expect("approve");
}

pub(crate) fn email(to: &str, subject: &str, body: &str, extra: &str) -> String {
    format!(
        "---\ntype: approval_request\naction: send_email\nto: {to:?}\nsubject: {subject:?}\ncreated: 2026-01-07T10:30:00Z\nstatus: pending\n{extra}---\n{body}"
    )
}

pub(crate) fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A frontmatter field as text: a string, or a number's digits.
pub(crate) fn field(path: &Path, key: &str) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let doc = frontmatter::parse(&text).ok()?;
    match doc.front.get(key)? {
        serde_norway::Value::Number(n) => Some(n.to_string()),
        v => v.as_str().map(str::to_string),
    }
}

pub(crate) fn audit_lines(vault: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for name in files(&vault.join("Logs")) {
        if !name.ends_with(".json") {
            continue;
        }
        let text = fs::read_to_string(vault.join("Logs").join(&name)).unwrap_or_default();
        for line in text.lines() {
            out.push(serde_json::from_str(line).expect("audit line is JSON"));
        }
    }
    out
}

fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Numbers the SMTP fixtures' log files.
static SPAWNS: AtomicUsize = AtomicUsize::new(0);

/// A running `watch approvals` (looks at Approved/ every 200 ms besides events).
pub(crate) struct Handler(WatcherProc);

impl std::ops::Deref for Handler {
    type Target = WatcherProc;
    fn deref(&self) -> &WatcherProc {
        &self.0
    }
}

impl std::ops::DerefMut for Handler {
    fn deref_mut(&mut self) -> &mut WatcherProc {
        &mut self.0
    }
}

impl Handler {
    pub(crate) fn start(vault: &Path, extra: &[&str]) -> Handler {
        Handler::start_env(vault, extra, &[])
    }

    fn start_env(vault: &Path, extra: &[&str], env: &[(&str, &str)]) -> Handler {
        let mut args = vec!["--rescan", "200ms"];
        args.extend_from_slice(extra);
        Handler(WatcherProc::spawn_with("approvals", vault, &args, |cmd| {
            for (k, v) in env {
                cmd.env(k, v);
            }
        }))
    }

    pub(crate) fn stderr(&self) -> String {
        self.log()
    }

    /// SIGTERM; the exit status and how long it took.
    pub(crate) fn stop(&mut self) -> (Option<ExitStatus>, Duration) {
        self.0.terminate(Duration::from_secs(10))
    }
}

/// One message as the SMTP server stored it.
#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub(crate) received_ns: u128,
    pub(crate) mail_from: String,
    pub(crate) rcpt_tos: Vec<String>,
    pub(crate) data: String,
}

impl Mail {
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = value.as_mut() {
                    v.push_str(line.trim_start_matches(['\r']));
                }
                continue;
            }
            if value.is_some() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_string());
            }
        }
        value
    }

    fn body(&self) -> String {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.replace("\r\n", "\n"))
            .unwrap_or_default()
    }
}

/// aiosmtpd on 127.0.0.1, messages as JSON files in `out`.
pub(crate) struct Smtp {
    child: Option<Child>,
    pub(crate) port: u16,
    out: PathBuf,
}

impl Smtp {
    pub(crate) fn start(dir: &Path, port: u16, auth: bool, delay_ms: u32) -> Smtp {
        let mut args = vec![
            "--port".to_string(),
            port.to_string(),
            "--delay-ms".to_string(),
            delay_ms.to_string(),
        ];
        if auth {
            args.extend(["--auth".to_string(), format!("agent:{SMTP_PASSWORD}")]);
        }
        Smtp::spawn(dir, &args)
    }

    /// The fixture with these arguments (besides `--out` and `--ready`).
    pub(crate) fn spawn(dir: &Path, args: &[String]) -> Smtp {
        let n = SPAWNS.fetch_add(1, Ordering::Relaxed);
        let out = dir.join(format!("smtp-out-{n}"));
        let ready = dir.join(format!("smtp-ready-{n}"));
        let mut cmd = Command::new(python());
        cmd.arg(FIXTURE)
            .args(args)
            .arg("--out")
            .arg(&out)
            .arg("--ready")
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::File::create(dir.join(format!("smtp-{n}.err"))).expect("smtp stderr"),
            ));
        let child = cmd.spawn().expect("spawn aiosmtpd fixture");
        let mut s = Smtp {
            child: Some(child),
            port: 0,
            out,
        };
        assert!(
            wait_until(Duration::from_secs(15), || ready.exists()),
            "SMTP fixture did not start: {}",
            fs::read_to_string(dir.join(format!("smtp-{n}.err"))).unwrap_or_default()
        );
        s.port = fs::read_to_string(&ready)
            .expect("ready file")
            .trim()
            .parse()
            .expect("port");
        s
    }

    pub(crate) fn mails(&self) -> Vec<Mail> {
        let mut v: Vec<Mail> = files(&self.out)
            .into_iter()
            .filter(|n| n.ends_with(".json"))
            .filter_map(|n| fs::read_to_string(self.out.join(n)).ok())
            .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|j| Mail {
                received_ns: j["received_ns"].as_u64().unwrap_or(0) as u128,
                mail_from: j["mail_from"].as_str().unwrap_or("").to_string(),
                rcpt_tos: j["rcpt_tos"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                data: j["data"].as_str().unwrap_or("").to_string(),
            })
            .collect();
        v.sort_by_key(|m| m.received_ns);
        v
    }

    fn with_subject_containing(&self, token: &str) -> Vec<Mail> {
        self.mails()
            .into_iter()
            .filter(|m| m.header("Subject").is_some_and(|s| s.contains(token)))
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The WhatsApp Cloud API stand-in: answers each request with the next scripted
/// (status, body), then 200 with a message id.
pub(crate) struct StandIn {
    port: u16,
    requests: Arc<Mutex<Vec<HttpRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    pub(crate) fn start(script: Vec<(u16, String)>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stand-in");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (reqs, stop2) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let Some(req) = read_http_request(&conn) else {
                    continue;
                };
                reqs.lock().expect("lock").push(req);
                let (status, body) = script.lock().expect("lock").pop_front().unwrap_or((
                    200,
                    r#"{"messaging_product":"whatsapp","messages":[{"id":"wamid.TEST123"}]}"#
                        .to_string(),
                ));
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes());
            }
        });
        StandIn {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn requests(&self) -> Vec<HttpRequest> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Small deterministic PRNG (xorshift64*), seeded and printed by the test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

// ---------------------------------------------------------------------------------------
// Delivery.
// ---------------------------------------------------------------------------------------

#[test]
fn approved_email_arrives_with_the_right_from_to_subject_and_body() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, true, 0);
    smtp_toml(v, smtp.port, true, "");
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    // A line starting with "." checks SMTP transparency (dot-stuffing).
    let body = "Dear client,\n\nplease find the invoice: total 1,234.00.\n.\n..and a line with dots\n\nRegards\n";
    approve(
        v,
        "APPROVAL_invoice.md",
        &email(
            "\"Doe, J\" <client@example.com>",
            "Invoice #1234: \"final\"",
            body,
            "cc: boss@example.com\napproved_by: alice\n",
        ),
    );
    let done = v.join("Done/APPROVAL_invoice.md");
    assert!(
        wait_until(Duration::from_secs(10), || done.exists()),
        "not done:\n{}",
        h.stderr()
    );
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert_eq!(m.mail_from, "ai@example.com");
    let mut rcpts = m.rcpt_tos.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["boss@example.com", "client@example.com"]);
    assert_eq!(
        m.header("From").as_deref(),
        Some("\"AI Employee\" <ai@example.com>")
    );
    assert_eq!(
        m.header("To").as_deref(),
        // "Doe, J" as an RFC 2047 encoded word (lettre's choice for a name with a comma).
        Some("=?utf-8?b?RG9lLCBK?= <client@example.com>")
    );
    assert_eq!(m.header("Cc").as_deref(), Some("boss@example.com"));
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("Invoice #1234: \"final\"")
    );
    assert!(
        m.header("Message-ID")
            .is_some_and(|id| id.ends_with("@example.com>"))
    );
    assert_eq!(
        field(&v.join("Done/APPROVAL_invoice.md"), "message_id"),
        m.header("Message-ID")
    );
    // SMTP framing adds the final line break.
    assert_eq!(m.body().trim_end(), body.trim_end());
    // The file: result, executed_at, nothing left in Approved/.
    assert_eq!(field(&done, "result").as_deref(), Some("sent"));
    assert_eq!(field(&done, "status").as_deref(), Some("done"));
    assert!(field(&done, "executed_at").is_some());
    assert!(field(&done, "smtp_reply").is_some_and(|r| r.starts_with("250")));
    assert_eq!(
        field(&done, "subject").as_deref(),
        Some("Invoice #1234: \"final\"")
    );
    assert!(wait_until(Duration::from_secs(10), || files(
        &v.join("Approved")
    )
    .is_empty()));
    // The audit line.
    let lines = audit_lines(v);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let a = &lines[0];
    assert_eq!(a["action_type"], "send_email");
    assert_eq!(a["actor"], "ai-employee");
    assert_eq!(a["target"], "client@example.com");
    assert_eq!(a["approval_status"], "approved");
    assert_eq!(a["approved_by"], "alice");
    assert_eq!(a["result"], "sent");
    assert_eq!(a["parameters"]["subject"], "Invoice #1234: \"final\"");
    assert_eq!(a["parameters"]["body_chars"], body.chars().count());
    assert_eq!(a["parameters"]["file"], "APPROVAL_invoice.md");
    assert!(a.get("error").is_none());
    assert!(a["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0));
    // Restarting sends nothing again.
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(smtp.mails().len(), 1);
    h.stop();
}

#[test]
fn expired_rejected_and_pending_approvals_are_never_sent() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    // Approved while the handler was down; it expired before the handler came back.
    let expires = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    let expires = expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    approve(
        v,
        "expired.md",
        &email(
            "a@example.com",
            "EXPIRED-token",
            "late\n",
            &format!("expires: {expires}\n"),
        ),
    );
    fs::write(
        v.join("Rejected/rejected.md"),
        email("a@example.com", "REJECTED-token", "no\n", ""),
    )
    .expect("write");
    fs::write(
        v.join("Pending_Approval/pending.md"),
        email("a@example.com", "PENDING-token", "wait\n", ""),
    )
    .expect("write");
    fs::write(
        v.join("Done/done.md"),
        email("a@example.com", "DONE-token", "old\n", ""),
    )
    .expect("write");
    std::thread::sleep(Duration::from_millis(1000));
    let mut h = Handler::start(v, &[]);
    approve(
        v,
        "sentinel.md",
        &email("a@example.com", "SENTINEL-token", "ok\n", ""),
    );
    assert!(wait_until(Duration::from_secs(10), || {
        v.join("Failed/expired.md").exists() && v.join("Done/sentinel.md").exists()
    }));
    // Several full listings later, still only the sentinel.
    std::thread::sleep(Duration::from_millis(700));
    let subjects: Vec<String> = smtp
        .mails()
        .iter()
        .filter_map(|m| m.header("Subject"))
        .collect();
    assert_eq!(subjects, ["SENTINEL-token"]);
    let error = field(&v.join("Failed/expired.md"), "error").expect("error field");
    let want_time = chrono::DateTime::parse_from_rfc3339(&expires)
        .expect("time")
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        error,
        format!("approval expired at {want_time}: ask again rather than act late")
    );
    assert_eq!(
        field(&v.join("Failed/expired.md"), "result").as_deref(),
        Some("refused")
    );
    assert!(v.join("Rejected/rejected.md").exists());
    assert!(v.join("Pending_Approval/pending.md").exists());
    assert!(wait_until(Duration::from_secs(5), || tv
        .dashboard()
        .contains("expired.md: approval expired at")));
    h.stop();
}

// ---------------------------------------------------------------------------------------
// Exactly once across kill -9.
// ---------------------------------------------------------------------------------------

#[test]
fn crash_injection_200_approvals_with_kill_9_at_random_moments() {
    const N: usize = 200;
    let tv = new_vault();
    let v = tv.vault.clone();
    // A random delay before the server answers the message widens the window in which a
    // kill lands between "sent" and "recorded".
    let smtp = Smtp::start(tv.dir.path(), 0, false, 25);
    smtp_toml(&v, smtp.port, false, "");
    let seed = (now_ns() as u64) | 1;
    eprintln!("crash injection seed {seed}");
    let mut rng = Rng(seed);
    let nonce = format!("{:x}", seed % 0xffffff);
    let token = move |i: usize| format!("T{i:03}x{nonce}");
    // Every 10th is a LinkedIn post (a local effect, checked after a crash), the rest email.
    let is_post = |i: usize| i % 10 == 9;

    let writer_done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (v, done, token) = (v.clone(), writer_done.clone(), token.clone());
        let mut wrng = Rng(seed.rotate_left(17) | 1);
        std::thread::spawn(move || {
            for i in 0..N {
                let t = token(i);
                let text = if is_post(i) {
                    format!("---\ntype: approval_request\naction: linkedin_post\n---\nPost {t}\n")
                } else {
                    email(
                        &format!("c{i}@example.com"),
                        &format!("Subject {t}"),
                        &format!("Body {t}\n"),
                        "",
                    )
                };
                approve(&v, &format!("approval-{i:03}.md"), &text);
                std::thread::sleep(Duration::from_millis(wrng.range(0, 12)));
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    let args = [FAST, &["--settle", "50ms"]].concat();
    let mut kills = 0;
    let start = Instant::now();
    while !(writer_done.load(Ordering::SeqCst) && kills >= 40)
        && start.elapsed() < Duration::from_secs(60)
    {
        let mut h = Handler::start(&v, &args);
        std::thread::sleep(Duration::from_millis(rng.range(5, 200)));
        h.kill9();
        kills += 1;
    }
    writer.join().expect("writer");
    let mut h = Handler::start(&v, &args);
    h.wait_log("watching ");
    assert!(
        wait_until(Duration::from_secs(60), || files(&v.join("Approved"))
            .is_empty()),
        "Approved/ not drained: {:?}\n{}",
        files(&v.join("Approved")),
        h.stderr()
    );
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0));

    // Account for every approval.
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for m in smtp.mails() {
        let subject = m.header("Subject").unwrap_or_default();
        let t = subject.trim_start_matches("Subject ").to_string();
        *deliveries.entry(t).or_default() += 1;
    }
    let queue = fs::read_to_string(v.join("LINKEDIN_QUEUE.md")).unwrap_or_default();
    for (t, n) in &deliveries {
        assert_eq!(*n, 1, "{t} delivered {n} times");
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..N {
        let t = token(i);
        let name = format!("approval-{i:03}.md");
        let in_done: Vec<String> = files(&v.join("Done"))
            .into_iter()
            .filter(|n| n.starts_with(&name[..name.len() - 3]))
            .collect();
        let in_failed: Vec<String> = files(&v.join("Failed"))
            .into_iter()
            .filter(|n| n.starts_with(&name[..name.len() - 3]))
            .collect();
        assert_eq!(
            in_done.len() + in_failed.len(),
            1,
            "{name}: Done {in_done:?} Failed {in_failed:?}"
        );
        let delivered = if is_post(i) {
            queue.matches(&format!("Post {t}")).count()
        } else {
            deliveries.get(&t).copied().unwrap_or(0)
        };
        assert!(delivered <= 1, "{name} delivered {delivered} times");
        if let Some(d) = in_done.first() {
            let result = field(&v.join("Done").join(d), "result").unwrap_or_default();
            let want = if is_post(i) { "queued" } else { "sent" };
            assert_eq!(result, want, "{d}");
            assert_eq!(
                delivered, 1,
                "{d} is done but was delivered {delivered} times"
            );
            *outcomes.entry(format!("done/{result}")).or_default() += 1;
        } else {
            let p = v.join("Failed").join(&in_failed[0]);
            let result = field(&p, "result").unwrap_or_default();
            let error = field(&p, "error").unwrap_or_default();
            assert!(!error.is_empty(), "{p:?} has no error");
            if result == "outcome_unknown" {
                assert!(
                    error.starts_with("outcome unknown — check before re-approving"),
                    "{error}"
                );
                *outcomes
                    .entry(format!("failed/outcome_unknown (delivered {delivered})"))
                    .or_default() += 1;
            } else {
                assert_eq!(delivered, 0, "{p:?} failed ({error}) but was delivered");
                *outcomes.entry(format!("failed/{result}")).or_default() += 1;
            }
        }
    }
    assert_eq!(outcomes.values().sum::<usize>(), N);
    eprintln!("crash injection: {kills} kills, outcomes {outcomes:?}");
}

/// The crash points, one by one, with the ledger written as a crashed handler left it.
#[test]
fn an_intent_without_outcome_is_never_repeated() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    let text = email("a@example.com", "INFLIGHT-token", "hi\n", "");
    fs::write(v.join("Approved/inflight.md"), &text).expect("write");
    let intent = serde_json::json!({
        "record": "intent", "file": "inflight.md", "sha256": sha_hex(text.as_bytes()),
        "attempt": 1, "action": "send_email", "at": "2026-01-07T10:31:00Z"
    });
    fs::write(
        v.join(".ai-employee/approvals.ledger"),
        format!("{intent}\n{{\"record\":\"intent\",\"fi"),
    )
    .expect("ledger");
    let mut h = Handler::start(v, &[]);
    let failed = v.join("Failed/inflight.md");
    assert!(
        wait_until(Duration::from_secs(10), || failed.exists()),
        "{}",
        h.stderr()
    );
    assert_eq!(field(&failed, "result").as_deref(), Some("outcome_unknown"));
    assert_eq!(
        field(&failed, "error").as_deref(),
        Some(
            "outcome unknown — check before re-approving: the handler stopped during attempt 1 \
             (send_email, started 2026-01-07T10:31:00Z), after the request may have been sent"
        )
    );
    assert!(smtp.mails().is_empty());
    assert!(wait_until(Duration::from_secs(5), || tv
        .dashboard()
        .contains(
            "| Approval | ⚠ Outcome unknown | inflight.md: outcome unknown"
        )));
    // Re-approved after checking (the file as it came out of Failed/): sent once.
    fs::rename(&failed, v.join("Approved/inflight.md")).expect("re-approve");
    assert!(wait_until(Duration::from_secs(10), || v
        .join("Done/inflight.md")
        .exists()));
    assert_eq!(smtp.with_subject_containing("INFLIGHT-token").len(), 1);
    h.stop();
}

#[test]
fn a_recorded_outcome_not_yet_moved_is_finished_without_executing_again() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    let text = email("a@example.com", "DECIDED-token", "hi\n", "");
    fs::write(v.join("Approved/decided.md"), &text).expect("write");
    let sha = sha_hex(text.as_bytes());
    let records = [
        serde_json::json!({"record": "intent", "file": "decided.md", "sha256": sha,
            "attempt": 1, "action": "send_email", "at": "2026-01-07T10:31:00Z"}),
        serde_json::json!({"record": "final", "file": "decided.md", "sha256": sha,
            "at": "2026-01-07T10:31:01Z", "decision": {"folder": "Done", "dest": "Done/decided.md",
            "result": "sent", "at": "2026-01-07T10:31:01Z",
            "fields": [["smtp_reply", "250 2.0.0 queued"]], "final_sha256": "x"}}),
    ];
    let ledger: String = records.iter().map(|r| format!("{r}\n")).collect();
    fs::write(v.join(".ai-employee/approvals.ledger"), ledger).expect("ledger");
    // A local action that had completed (its mark is in the queue) and one that had not.
    let post = "---\ntype: approval_request\naction: linkedin_post\n---\nPOSTED-before-crash\n";
    let post2 = "---\ntype: approval_request\naction: linkedin_post\n---\nNOT-YET-posted\n";
    fs::write(v.join("Approved/post.md"), post).expect("write");
    fs::write(v.join("Approved/post2.md"), post2).expect("write");
    let tag = |name: &str, body: &str| {
        let mut input = name.as_bytes().to_vec();
        input.push(0);
        input.extend_from_slice(sha_hex(body.as_bytes()).as_bytes());
        sha_hex(&input)[..20].to_string()
    };
    let (t1, t2) = (tag("post.md", post), tag("post2.md", post2));
    fs::write(
        v.join("LINKEDIN_QUEUE.md"),
        format!("# LinkedIn queue\n\n## x\n\nPOSTED-before-crash\n\n<!-- approval {t1} -->\n"),
    )
    .expect("queue");
    let mut ledger = fs::OpenOptions::new()
        .append(true)
        .open(v.join(".ai-employee/approvals.ledger"))
        .expect("ledger");
    for (name, body, t) in [("post.md", post, &t1), ("post2.md", post2, &t2)] {
        let r = serde_json::json!({"record": "intent", "file": name, "sha256": sha_hex(body.as_bytes()),
            "attempt": 1, "action": "linkedin_post", "at": "2026-01-07T10:31:00Z",
            "effect": format!("LINKEDIN_QUEUE.md#{t}")});
        writeln!(ledger, "{r}").expect("append");
    }
    drop(ledger);

    let mut h = Handler::start(v, &[]);
    assert!(wait_until(Duration::from_secs(10), || files(
        &v.join("Approved")
    )
    .is_empty()));
    let done = v.join("Done/decided.md");
    assert_eq!(field(&done, "result").as_deref(), Some("sent"));
    assert_eq!(
        field(&done, "executed_at").as_deref(),
        Some("2026-01-07T10:31:01Z")
    );
    assert_eq!(
        field(&done, "smtp_reply").as_deref(),
        Some("250 2.0.0 queued")
    );
    assert!(smtp.mails().is_empty(), "sent again");
    let queue = fs::read_to_string(v.join("LINKEDIN_QUEUE.md")).expect("queue");
    assert_eq!(queue.matches("POSTED-before-crash").count(), 1, "{queue}");
    assert_eq!(queue.matches("NOT-YET-posted").count(), 1, "{queue}");
    assert_eq!(
        field(&v.join("Done/post.md"), "result").as_deref(),
        Some("queued")
    );
    assert_eq!(
        field(&v.join("Done/post2.md"), "result").as_deref(),
        Some("queued")
    );
    // The same name and content approved again: refused as a duplicate.
    approve(v, "decided.md", &text);
    let dup = v.join("Failed/decided.md");
    assert!(wait_until(Duration::from_secs(10), || dup.exists()));
    assert!(
        field(&dup, "error").is_some_and(|e| e.starts_with("already handled at ")),
        "{:?}",
        field(&dup, "error")
    );
    // And again: still a duplicate (refusing it did not reset what the ledger knows).
    approve(v, "decided.md", &text);
    let dup2 = v.join("Failed/decided-2.md");
    assert!(wait_until(Duration::from_secs(10), || dup2.exists()));
    assert!(field(&dup2, "error").is_some_and(|e| e.starts_with("already handled at ")));
    assert!(smtp.mails().is_empty());
    h.stop();
}

#[test]
fn refused_for_missing_credentials_then_runs_once_they_exist() {
    let tv = new_vault();
    let v = &tv.vault;
    let api = StandIn::start(vec![]);
    whatsapp_toml(v, api.port); // email is not set up yet
    let mut h = Handler::start(v, &[]);
    let text = email("a@example.com", "LATE-SETUP-token", "x\n", "");
    approve(v, "mail.md", &text);
    let failed = v.join("Failed/mail.md");
    assert!(wait_until(Duration::from_secs(10), || failed.exists()));
    assert_eq!(
        field(&failed, "error").as_deref(),
        Some(
            "send_email needs credentials/smtp.toml, which does not exist: create it (see \
             docs/approvals.md), then move this file back to Approved/"
        )
    );
    // Set up while the handler runs (no restart), then approve again: the file as it
    // came out of Failed/ runs.
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    fs::rename(&failed, v.join("Approved/mail.md")).expect("move back");
    // Done until it left Approved/ too: a file put under the same name before that
    // replaces the one being finished, and is refused as a changed file.
    assert!(wait_until(Duration::from_secs(10), || v
        .join("Done/mail.md")
        .exists()
        && !v.join("Approved/mail.md").exists()));
    // An identical fresh copy of the original is the same email again: refused as a
    // duplicate; with `allow_duplicate: true` it runs.
    approve(v, "mail.md", &text);
    assert!(
        wait_until(Duration::from_secs(10), || failed.exists()
            && !v.join("Approved/mail.md").exists()),
        "Failed/: {:?}, Done/: {:?}, Approved/: {:?}\n{}",
        files(&v.join("Failed")),
        files(&v.join("Done")),
        files(&v.join("Approved")),
        h.stderr()
    );
    assert!(
        field(&failed, "error")
            .is_some_and(|e| e.starts_with("duplicate of Done/mail.md (sent at ")),
        "{:?}",
        field(&failed, "error")
    );
    approve(
        v,
        "mail.md",
        &email(
            "a@example.com",
            "LATE-SETUP-token",
            "x\n",
            "allow_duplicate: true\n",
        ),
    );
    assert!(wait_until(Duration::from_secs(10), || v
        .join("Done/mail-2.md")
        .exists()));
    assert_eq!(smtp.with_subject_containing("LATE-SETUP-token").len(), 2);
    h.stop();
}

// ---------------------------------------------------------------------------------------
// Refusals.
// ---------------------------------------------------------------------------------------

#[test]
fn malformed_approvals_are_refused_with_their_reason() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    let outside = tv.dir.path().join("outside-secret.txt");
    fs::write(&outside, "secret").expect("write");
    std::os::unix::fs::symlink(&outside, v.join("Inbox/escape.txt")).expect("symlink");
    fs::write(v.join("Inbox/ok.txt"), "fine").expect("write");
    let good_email = |extra: &str| email("a@example.com", "s", "body\n", extra);
    let wa = |extra: &str| {
        format!("---\ntype: approval_request\naction: send_whatsapp\n{extra}---\nhello\n")
    };
    let pay = |extra: &str| format!("---\ntype: approval_request\naction: payment\n{extra}---\n");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "no_frontmatter",
            "Just send it please.\n".into(),
            "no frontmatter: the file must start with a line \"---\"",
        ),
        (
            "empty_file",
            String::new(),
            "no frontmatter: the file must start with a line \"---\"",
        ),
        (
            "unclosed",
            "---\ntype: approval_request\naction: send_email\n".into(),
            "frontmatter is not closed: no line \"---\" after line 1",
        ),
        (
            "bad_yaml",
            "---\ntype: approval_request\nto: [a@example.com\n---\nx\n".into(),
            "frontmatter is not valid YAML: did not find expected ',' or ']' at line 3 column 1, while parsing a flow sequence at line 2 column 5",
        ),
        (
            "duplicate_key",
            "---\ntype: approval_request\ntype: approval_request\n---\nx\n".into(),
            "frontmatter is not valid YAML: duplicate entry with key \"type\"",
        ),
        (
            "not_a_mapping",
            "---\n- send_email\n- to everyone\n---\n".into(),
            "frontmatter must be a mapping of keys to values, found a list",
        ),
        (
            "missing_type",
            "---\naction: send_email\n---\nx\n".into(),
            "missing field `type` (an approval file has `type: approval_request`)",
        ),
        (
            "wrong_type_field",
            "---\ntype: email\naction: send_email\n---\nx\n".into(),
            "`type` is \"email\", not \"approval_request\": only approval requests are executed",
        ),
        (
            "type_not_a_string",
            "---\ntype: 42\n---\nx\n".into(),
            "field `type` must be a string, found a number",
        ),
        (
            "missing_action",
            "---\ntype: approval_request\n---\nx\n".into(),
            "missing field `action` (one of send_email, send_whatsapp, linkedin_post, payment, run_task, github_comment)",
        ),
        (
            "unknown_action",
            "---\ntype: approval_request\naction: delete_all_files\n---\nx\n".into(),
            "unknown action \"delete_all_files\": only send_email, send_whatsapp, linkedin_post, payment, run_task, github_comment are allowed",
        ),
        (
            "action_is_a_list",
            "---\ntype: approval_request\naction: [send_email]\n---\nx\n".into(),
            "field `action` must be a string, found a list",
        ),
        (
            "missing_to",
            "---\ntype: approval_request\naction: send_email\nsubject: s\n---\nx\n".into(),
            "missing field `to` (send_email needs `to`, `subject` and the email text after the frontmatter)",
        ),
        (
            "to_is_a_number",
            "---\ntype: approval_request\naction: send_email\nto: 12345\nsubject: s\n---\nx\n"
                .into(),
            "field `to` must be an email address or a list of them, found a number",
        ),
        (
            "to_not_an_address",
            email("not an address", "s", "x\n", ""),
            "field `to`: \"not an address\" is not a valid email address",
        ),
        (
            "missing_subject",
            "---\ntype: approval_request\naction: send_email\nto: a@example.com\n---\nx\n".into(),
            "missing field `subject` (send_email needs `to`, `subject` and the email text after the frontmatter)",
        ),
        (
            "subject_two_lines",
            email(
                "a@example.com",
                "line one\nBcc: evil@example.com",
                "x\n",
                "",
            ),
            "field `subject` must be one line",
        ),
        (
            "empty_body",
            email("a@example.com", "s", "\n\n", ""),
            "the email text (after the frontmatter) is empty",
        ),
        (
            "cc_is_a_mapping",
            good_email("cc: {name: x}\n"),
            "field `cc` must be an email address or a list of them, found a mapping",
        ),
        (
            "attachments_not_a_list",
            good_email("attachments: Inbox/ok.txt\n"),
            "field `attachments` must be a list of vault-relative paths, found a string",
        ),
        (
            "attachment_traversal",
            good_email("attachments: [\"Inbox/../../outside-secret.txt\"]\n"),
            "attachment \"Inbox/../../outside-secret.txt\": must not contain \"..\"",
        ),
        (
            "attachment_absolute_outside",
            good_email("attachments: [\"/etc/hostname\"]\n"),
            "attachment \"/etc/hostname\": outside the vault",
        ),
        (
            "attachment_symlink_escape",
            good_email("attachments: [\"Inbox/escape.txt\"]\n"),
            "attachment \"Inbox/escape.txt\": a symbolic link leads outside the vault",
        ),
        (
            "attachment_credentials",
            good_email("attachments: [\"credentials/smtp.toml\"]\n"),
            "attachment \"credentials/smtp.toml\": files under credentials/ are never attached",
        ),
        (
            "attachment_missing",
            good_email("attachments: [\"Inbox/nope.pdf\"]\n"),
            "attachment \"Inbox/nope.pdf\": not found",
        ),
        (
            "attachment_folder",
            good_email("attachments: [\"Inbox\"]\n"),
            "attachment \"Inbox\": not a regular file",
        ),
        (
            "expired",
            good_email("expires: 2020-01-01T00:00:00Z\n"),
            "approval expired at 2020-01-01T00:00:00Z: ask again rather than act late",
        ),
        (
            "expires_not_a_time",
            good_email("expires: tomorrow\n"),
            "field `expires` is not a time: \"tomorrow\" (expected RFC 3339 with a time zone, e.g. 2026-01-08T10:30:00Z)",
        ),
        (
            "expires_without_zone",
            good_email("expires: \"2099-01-01T00:00:00\"\n"),
            "field `expires` is not a time: \"2099-01-01T00:00:00\" (expected RFC 3339 with a time zone, e.g. 2026-01-08T10:30:00Z)",
        ),
        (
            "expires_a_number",
            good_email("expires: 20990101\n"),
            "field `expires` must be a string, found a number",
        ),
        (
            "approved_by_a_list",
            good_email("approved_by: [a, b]\n"),
            "field `approved_by` must be a string, found a list",
        ),
        (
            "message_id_malformed",
            good_email("message_id: not-an-id\n"),
            "field `message_id` must look like \"<id@domain>\", found \"not-an-id\"",
        ),
        (
            "already_executed",
            good_email("result: sent\nexecuted_at: 2026-01-07T10:31:00Z\n"),
            "already executed (result: sent at 2026-01-07T10:31:00Z): to run it again, remove `result` and `executed_at`",
        ),
        (
            "whatsapp_bad_phone",
            wa("to: call me maybe\n"),
            "field `to` is not a phone number: \"call me maybe\" (use international format, e.g. \"+14155550123\")",
        ),
        (
            "whatsapp_too_long",
            format!(
                "---\ntype: approval_request\naction: send_whatsapp\nto: \"+14155550123\"\n---\n{}\n",
                "x".repeat(4097)
            ),
            "the message has 4097 characters, over WhatsApp's 4096",
        ),
        (
            "whatsapp_not_configured",
            wa("to: \"+14155550123\"\n"),
            "send_whatsapp needs credentials/whatsapp.toml, which does not exist: create it (see docs/approvals.md), then move this file back to Approved/",
        ),
        (
            "linkedin_empty",
            "---\ntype: approval_request\naction: linkedin_post\n---\n\n".into(),
            "the post is empty (a `body` field or text after the frontmatter)",
        ),
        (
            "payment_negative",
            pay("amount: -5\nrecipient: Acme\nreason: x\n"),
            "field `amount` must be a positive number, found -5",
        ),
        (
            "payment_amount_words",
            pay("amount: lots\nrecipient: Acme\nreason: x\n"),
            "field `amount` must be a positive number, found \"lots\"",
        ),
        (
            "payment_missing_recipient",
            pay("amount: 10\nreason: x\n"),
            "missing field `recipient` (payment needs `amount`, `recipient` and `reason`)",
        ),
    ];
    for (name, text, _) in &cases {
        fs::write(v.join("Approved").join(format!("{name}.md")), text).expect("write case");
    }
    // Unreadable ones: a symlink, a file over 1 MiB, bytes that are not UTF-8.
    let target = v.join("Pending_Approval/target.md");
    fs::write(&target, good_email("")).expect("write");
    std::os::unix::fs::symlink(&target, v.join("Approved/symlink.md")).expect("symlink");
    let mut huge = good_email("");
    huge.push_str(&"x".repeat(1024 * 1024));
    fs::write(v.join("Approved/huge.md"), &huge).expect("write");
    fs::write(
        v.join("Approved/latin1.md"),
        b"---\ntype: approval_request\n---\ncaf\xe9\n",
    )
    .expect("write");
    let unreadable = [
        (
            "symlink",
            format!(
                "Approved/symlink.md is a symbolic link (to {:?}): only regular files in Approved/ are executed",
                target.display().to_string()
            ),
        ),
        (
            "huge",
            format!(
                "Approved/huge.md is {} bytes, over the 1 MiB (1048576 bytes) limit for approval files",
                huge.len()
            ),
        ),
        ("latin1", "Approved/latin1.md is not UTF-8 text".to_string()),
    ];
    assert!(cases.len() + unreadable.len() >= 25);

    let mut h = Handler::start(v, &[]);
    assert!(
        wait_until(Duration::from_secs(20), || files(&v.join("Approved"))
            .is_empty()),
        "left: {:?}\n{}",
        files(&v.join("Approved")),
        h.stderr()
    );
    let mut wrong = Vec::new();
    for (name, _, want) in &cases {
        let p = v.join("Failed").join(format!("{name}.md"));
        let got = field(&p, "error");
        if got.as_deref() != Some(*want) {
            wrong.push(format!("{name}:\n  want {want:?}\n  got  {got:?}"));
        }
        if field(&p, "result").as_deref() != Some("refused") {
            wrong.push(format!("{name}: result {:?}", field(&p, "result")));
        }
    }
    for (name, want) in &unreadable {
        let p = v.join("Failed").join(format!("{name}.md"));
        let got = field(&p, "error");
        if got.as_deref() != Some(want.as_str()) {
            wrong.push(format!("{name}:\n  want {want:?}\n  got  {got:?}"));
        }
        // The original, unchanged and unfollowed, next to the note.
        let original = v.join("Failed").join(format!("{name}.original"));
        if fs::symlink_metadata(&original).is_err() {
            wrong.push(format!("{name}: no {original:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The symlink was moved as a link; its target is untouched.
    assert!(
        fs::symlink_metadata(v.join("Failed/symlink.original"))
            .is_ok_and(|m| m.file_type().is_symlink())
    );
    assert!(target.exists());
    // The original text of an unparseable file is kept after the added frontmatter.
    let kept = fs::read_to_string(v.join("Failed/no_frontmatter.md")).expect("read");
    assert!(kept.ends_with("---\nJust send it please.\n"), "{kept}");
    // Nothing sent, nothing queued, nothing recorded; one audit line and a Dashboard row each.
    assert!(smtp.mails().is_empty());
    assert!(!v.join("LINKEDIN_QUEUE.md").exists());
    assert!(files(&v.join("Needs_Action")).is_empty());
    let lines = audit_lines(v);
    assert_eq!(lines.len(), cases.len() + unreadable.len());
    assert!(
        lines
            .iter()
            .all(|l| l["result"] == "refused" && l["error"].is_string())
    );
    let rows = || tv.dashboard().matches("| Approval | ✗ Refused |").count();
    assert!(
        wait_until(Duration::from_secs(10), || rows() == lines.len()),
        "{} rows for {} refusals:\n{}",
        rows(),
        lines.len(),
        tv.dashboard()
    );
    h.stop();
}

// ---------------------------------------------------------------------------------------
// WhatsApp, LinkedIn, payment.
// ---------------------------------------------------------------------------------------

fn whatsapp_approval(to: &str, body: &str) -> String {
    format!("---\ntype: approval_request\naction: send_whatsapp\nto: {to:?}\n---\n{body}\n")
}

#[test]
fn whatsapp_message_reaches_the_cloud_api_with_path_bearer_and_json() {
    let tv = new_vault();
    let v = &tv.vault;
    let api = StandIn::start(vec![]);
    whatsapp_toml(v, api.port);
    let mut h = Handler::start(v, FAST);
    approve(
        v,
        "wa.md",
        &whatsapp_approval("+1 (415) 555-0123", "Your invoice is ready: 1,234.00 €"),
    );
    let done = v.join("Done/wa.md");
    assert!(
        wait_until(Duration::from_secs(10), || done.exists()),
        "{}",
        h.stderr()
    );
    let reqs = api.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v21.0/1098765/messages");
    assert_eq!(
        r.header("Authorization"),
        Some(format!("Bearer {WA_TOKEN}").as_str())
    );
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&r.body).expect("JSON body");
    assert_eq!(
        body,
        serde_json::json!({
            "messaging_product": "whatsapp", "recipient_type": "individual",
            "to": "14155550123", "type": "text",
            "text": {"preview_url": false, "body": "Your invoice is ready: 1,234.00 €"}
        })
    );
    assert_eq!(field(&done, "result").as_deref(), Some("sent"));
    assert_eq!(
        field(&done, "whatsapp_message_id").as_deref(),
        Some("wamid.TEST123")
    );
    h.stop();
}

#[test]
fn whatsapp_500_is_retried_and_400_goes_to_failed() {
    let tv = new_vault();
    let v = &tv.vault;
    let api = StandIn::start(vec![
        (
            500,
            r#"{"error":{"message":"Service temporarily unavailable","code":2}}"#.into(),
        ),
        (
            429,
            r#"{"error":{"message":"Too many calls","code":80007}}"#.into(),
        ),
    ]);
    whatsapp_toml(v, api.port);
    let mut h = Handler::start(v, FAST);
    approve(v, "retry.md", &whatsapp_approval("+14155550123", "first"));
    assert!(
        wait_until(Duration::from_secs(10), || v.join("Done/retry.md").exists()),
        "{}",
        h.stderr()
    );
    assert_eq!(api.requests().len(), 3);
    let results: Vec<String> = audit_lines(v)
        .iter()
        .map(|l| l["result"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(results, ["retrying", "retrying", "sent"]);
    assert_eq!(
        audit_lines(v)[0]["error"],
        format!(
            "WhatsApp API http://127.0.0.1:{}/v21.0: HTTP 500: Service temporarily unavailable",
            api.port
        )
    );
    h.stop();

    let api = StandIn::start(vec![(
        400,
        r#"{"error":{"message":"(#131030) Recipient phone number not in allowed list","code":131030}}"#.into(),
    )]);
    whatsapp_toml(v, api.port);
    let mut h = Handler::start(v, FAST);
    approve(v, "bad.md", &whatsapp_approval("+14155550123", "second"));
    let failed = v.join("Failed/bad.md");
    assert!(
        wait_until(Duration::from_secs(10), || failed.exists()),
        "{}",
        h.stderr()
    );
    assert_eq!(api.requests().len(), 1, "a 400 is not retried");
    assert_eq!(field(&failed, "result").as_deref(), Some("failed"));
    assert_eq!(
        field(&failed, "error"),
        Some(format!(
            "WhatsApp API http://127.0.0.1:{}/v21.0 refused the message: HTTP 400: (#131030) Recipient phone number not in allowed list",
            api.port
        ))
    );
    assert!(wait_until(Duration::from_secs(5), || tv
        .dashboard()
        .contains("| Approval | ✗ Failed | bad.md: WhatsApp API")));
    h.stop();
}

#[test]
fn linkedin_posts_are_queued_and_payments_are_recorded_never_paid() {
    let tv = new_vault();
    let v = &tv.vault;
    let api = StandIn::start(vec![]);
    whatsapp_toml(v, api.port); // some channel must be configured; none is used here
    let mut h = Handler::start(v, &[]);
    approve(
        v,
        "post.md",
        "---\ntype: approval_request\naction: linkedin_post\n---\nWe shipped v2!\n\n#launch\n",
    );
    approve(
        v,
        "pay.md",
        "---\ntype: approval_request\naction: payment\namount: 120.50\ncurrency: EUR\nrecipient: \"Acme, Inc.\"\nreason: \"Invoice #77: hosting\"\napproved_by: bob\n---\n",
    );
    assert!(wait_until(Duration::from_secs(10), || {
        v.join("Done/post.md").exists() && v.join("Done/pay.md").exists()
    }));
    let queue = fs::read_to_string(v.join("LINKEDIN_QUEUE.md")).expect("queue");
    assert!(queue.starts_with("# LinkedIn queue"), "{queue}");
    assert!(
        queue.contains("\nWe shipped v2!\n\n#launch\n\n<!-- approval "),
        "{queue}"
    );
    assert_eq!(
        field(&v.join("Done/post.md"), "result").as_deref(),
        Some("queued")
    );
    let done = v.join("Done/pay.md");
    assert_eq!(field(&done, "result").as_deref(), Some("recorded"));
    let task_rel = field(&done, "payment_task").expect("payment_task");
    assert!(
        task_rel.starts_with("Needs_Action/PAYMENT_") && task_rel.contains("_acme-inc_"),
        "{task_rel}"
    );
    let task = v.join(&task_rel);
    assert_eq!(field(&task, "type").as_deref(), Some("payment"));
    assert_eq!(field(&task, "amount").as_deref(), Some("120.5"));
    assert_eq!(field(&task, "recipient").as_deref(), Some("Acme, Inc."));
    assert_eq!(
        field(&task, "reason").as_deref(),
        Some("Invoice #77: hosting")
    );
    assert_eq!(field(&task, "approved_by").as_deref(), Some("bob"));
    let lines = audit_lines(v);
    let pay = lines
        .iter()
        .find(|l| l["action_type"] == "payment")
        .expect("payment line");
    assert_eq!(pay["result"], "recorded");
    assert_eq!(pay["target"], "Acme, Inc.");
    assert_eq!(pay["approved_by"], "bob");
    assert!(api.requests().is_empty());
    h.stop();
}

#[test]
fn payment_task_and_done_file_keep_their_types_for_yaml_1_1_readers() {
    use crate::yaml_readers::{py_get, pyyaml};
    let tv = new_vault();
    let v = &tv.vault;
    let api = StandIn::start(vec![]);
    whatsapp_toml(v, api.port);
    let mut h = Handler::start(v, &[]);
    approve(
        v,
        "pay.md",
        "---\ntype: approval_request\naction: payment\namount: \"12.5\"\nrecipient: \"yes\"\nreason: \"2026-01-01\"\napproved_by: \"on\"\n---\n",
    );
    assert!(wait_until(Duration::from_secs(10), || v
        .join("Done/pay.md")
        .exists()));
    h.stop();
    let done = v.join("Done/pay.md");
    let task = v.join(field(&done, "payment_task").expect("payment_task"));
    let py = pyyaml(&task);
    let amount = py_get(&py, "amount");
    assert_eq!(amount["t"], "float", "{amount}");
    assert_eq!(amount["v"], "12.5");
    for (key, want) in [
        ("recipient", "yes"),
        ("reason", "2026-01-01"),
        ("approved_by", "on"),
        ("type", "payment"),
    ] {
        let got = py_get(&py, key);
        assert_eq!(
            (got["t"].as_str(), got["v"].as_str()),
            (Some("str"), Some(want))
        );
    }
    assert_eq!(py_get(&py, "received")["t"], "str");
    let py = pyyaml(&done);
    for key in [
        "status",
        "result",
        "executed_at",
        "payment_task",
        "recipient",
        "reason",
    ] {
        assert_eq!(py_get(&py, key)["t"], "str", "{key}: {py}");
    }
    assert_eq!(py_get(&py, "result")["v"], "recorded");
}

// ---------------------------------------------------------------------------------------
// Retries, dry run, secrets, signals, set-up errors.
// ---------------------------------------------------------------------------------------

#[test]
fn smtp_down_at_first_then_up_delivers_once_from_approved() {
    let tv = new_vault();
    let v = &tv.vault;
    let port = free_port();
    smtp_toml(v, port, false, "");
    let mut h = Handler::start(
        v,
        &[
            "--retry-initial",
            "100ms",
            "--retry-max",
            "200ms",
            "--max-attempts",
            "100",
        ],
    );
    approve(
        v,
        "later.md",
        &email("a@example.com", "LATER-token", "eventually\n", ""),
    );
    // It fails, stays in Approved/, and is retried.
    assert!(wait_until(Duration::from_secs(10), || {
        audit_lines(v)
            .iter()
            .filter(|l| l["result"] == "retrying")
            .count()
            >= 3
    }));
    assert!(v.join("Approved/later.md").exists());
    assert!(files(&v.join("Done")).is_empty() && files(&v.join("Failed")).is_empty());
    let first = audit_lines(v)[0].clone();
    assert!(
        first["error"]
            .as_str()
            .is_some_and(|e| e.starts_with(&format!("SMTP 127.0.0.1:{port}: connect failed"))),
        "{first}"
    );
    let smtp = Smtp::start(tv.dir.path(), port, false, 0);
    assert!(
        wait_until(Duration::from_secs(10), || v.join("Done/later.md").exists()),
        "{}",
        h.stderr()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(smtp.with_subject_containing("LATER-token").len(), 1);
    h.stop();
}

#[test]
fn transient_failures_give_up_after_the_configured_attempts() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    let mut h = Handler::start(
        v,
        &[
            "--retry-initial",
            "50ms",
            "--retry-max",
            "50ms",
            "--max-attempts",
            "3",
        ],
    );
    approve(
        v,
        "temp.md",
        &email("tempfail@example.com", "TEMP-token", "x\n", ""),
    );
    approve(
        v,
        "perm.md",
        &email("permfail@example.com", "PERM-token", "x\n", ""),
    );
    let (temp, perm) = (v.join("Failed/temp.md"), v.join("Failed/perm.md"));
    assert!(
        wait_until(Duration::from_secs(10), || temp.exists() && perm.exists()),
        "{}",
        h.stderr()
    );
    let port = smtp.port;
    assert_eq!(
        field(&temp, "error"),
        Some(format!(
            "gave up after 3 attempts: SMTP 127.0.0.1:{port}: RCPT TO <tempfail@example.com> failed: transient error (451): 4.3.0 try again later"
        ))
    );
    assert_eq!(
        field(&perm, "error"),
        Some(format!(
            "SMTP 127.0.0.1:{port}: RCPT TO <permfail@example.com> failed: permanent error (550): 5.1.1 no such mailbox"
        ))
    );
    let results: Vec<String> = audit_lines(v)
        .iter()
        .filter(|l| l["parameters"]["file"] == "temp.md")
        .map(|l| {
            format!(
                "{}#{}",
                l["result"].as_str().unwrap_or(""),
                l["parameters"]["attempt"]
            )
        })
        .collect();
    assert_eq!(results, ["retrying#1", "retrying#2", "failed#3"]);
    assert!(smtp.mails().is_empty());
    h.stop();
}

#[test]
fn dry_run_does_everything_but_send() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    let mut h = Handler::start(v, &["--dry-run"]);
    approve(v, "dry.md", &email("a@example.com", "DRY-token", "x\n", ""));
    approve(
        v,
        "post.md",
        "---\ntype: approval_request\naction: linkedin_post\n---\nnot really\n",
    );
    approve(
        v,
        "bad.md",
        &email(
            "a@example.com",
            "s",
            "x\n",
            "expires: 2020-01-01T00:00:00Z\n",
        ),
    );
    assert!(wait_until(Duration::from_secs(10), || files(
        &v.join("Approved")
    )
    .is_empty()));
    assert_eq!(
        field(&v.join("Done/dry.md"), "result").as_deref(),
        Some("dry_run")
    );
    assert_eq!(
        field(&v.join("Done/post.md"), "result").as_deref(),
        Some("dry_run")
    );
    assert_eq!(
        field(&v.join("Failed/bad.md"), "result").as_deref(),
        Some("refused")
    );
    assert!(!v.join("LINKEDIN_QUEUE.md").exists());
    h.stop();
    // dry_run = true in the credentials file: the same, for that channel.
    smtp_toml(v, smtp.port, false, "dry_run = true\n");
    let mut h = Handler::start(v, &[]);
    approve(
        v,
        "dry2.md",
        &email("a@example.com", "DRY2-token", "x\n", ""),
    );
    assert!(wait_until(Duration::from_secs(10), || v
        .join("Done/dry2.md")
        .exists()));
    assert_eq!(
        field(&v.join("Done/dry2.md"), "result").as_deref(),
        Some("dry_run")
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(smtp.mails().is_empty());
    let lines = audit_lines(v);
    assert!(
        lines
            .iter()
            .any(|l| l["result"] == "dry_run" && l["parameters"]["file"] == "dry.md")
    );
    // A dry-run file moved back to Approved/ runs for real (dry_run is not "executed").
    smtp_toml(v, smtp.port, false, "");
    std::thread::sleep(Duration::from_millis(20));
    fs::rename(v.join("Done/dry.md"), v.join("Approved/dry.md")).expect("re-approve");
    assert!(wait_until(Duration::from_secs(10), || field(
        &v.join("Done/dry.md"),
        "result"
    )
    .as_deref()
        == Some("sent")));
    assert_eq!(smtp.with_subject_containing("DRY-token").len(), 1);
    h.stop();
}

#[test]
fn secrets_never_reach_logs_audit_files_or_stderr() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, true, 0);
    smtp_toml(v, smtp.port, true, "");
    // A server that echoes the token back in its error (it happens).
    let api = StandIn::start(vec![(
        401,
        format!(
            r#"{{"error":{{"message":"Invalid OAuth access token - Cannot parse access token {WA_TOKEN}","code":190}}}}"#
        ),
    )]);
    whatsapp_toml(v, api.port);
    let mut h = Handler::start_env(v, FAST, &[("AI_EMPLOYEE_LOG", "trace")]);
    approve(
        v,
        "mail.md",
        &email("a@example.com", "SECRET-test", "hello\n", ""),
    );
    approve(v, "wa.md", &whatsapp_approval("+14155550123", "hi"));
    assert!(
        wait_until(Duration::from_secs(10), || {
            v.join("Done/mail.md").exists() && v.join("Failed/wa.md").exists()
        }),
        "{}",
        h.stderr()
    );
    assert_eq!(smtp.mails().len(), 1, "authenticated and sent");
    let error = field(&v.join("Failed/wa.md"), "error").expect("error");
    assert!(
        error.contains("Cannot parse access token [redacted]"),
        "{error}"
    );
    // Wrong password: the server refuses the login; the error must not carry it either.
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0));
    let wrong = "Wrong-pw-41b0-not-in-logs";
    write_private(
        &v.join("credentials/smtp.toml"),
        &format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"{FROM}\"\nusername = \"agent\"\npassword = \"{wrong}\"\n",
            smtp.port
        ),
    );
    let mut h2 = Handler::start_env(v, FAST, &[("AI_EMPLOYEE_LOG", "trace")]);
    approve(
        v,
        "mail2.md",
        &email("a@example.com", "SECRET-test-2", "hello\n", ""),
    );
    assert!(
        wait_until(Duration::from_secs(10), || v
            .join("Failed/mail2.md")
            .exists()),
        "{}",
        h2.stderr()
    );
    assert!(field(&v.join("Failed/mail2.md"), "error").is_some_and(|e| e.contains("login failed")));
    h2.stop();
    // Every file in the vault but credentials/, and both stderr logs.
    let mut leaks = Vec::new();
    let mut stack = vec![v.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.ends_with("credentials") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = fs::read(&p) {
                let text = String::from_utf8_lossy(&bytes);
                for s in [SMTP_PASSWORD, WA_TOKEN, wrong] {
                    if text.contains(s) {
                        leaks.push(format!("{} contains {s}", p.display()));
                    }
                }
            }
        }
    }
    for (name, text) in [("stderr 1", h.stderr()), ("stderr 2", h2.stderr())] {
        assert!(
            text.len() > 100,
            "{name} is too short to mean anything: {text}"
        );
        for s in [SMTP_PASSWORD, WA_TOKEN, wrong] {
            if text.contains(s) {
                leaks.push(format!("{name} contains {s}"));
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
    assert!(!audit_lines(v).is_empty());
}

#[test]
fn sigterm_exits_0_within_a_second_idle_and_in_the_middle_of_a_send() {
    let tv = new_vault();
    let v = &tv.vault;
    // A server that accepts connections and never says a word.
    let hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = hole.local_addr().expect("addr").port();
    let held = Arc::new(Mutex::new(Vec::new()));
    {
        let held = held.clone();
        std::thread::spawn(move || {
            for c in hole.incoming().flatten() {
                held.lock().expect("lock").push(c);
            }
        });
    }
    smtp_toml(v, port, false, "");
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    let (st, took) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", h.stderr());
    assert!(took < Duration::from_secs(1), "idle stop took {took:?}");

    let mut h = Handler::start(v, &[]);
    approve(
        v,
        "stuck.md",
        &email("a@example.com", "STUCK-token", "x\n", ""),
    );
    h.wait_log("stuck.md: send_email attempt 1");
    std::thread::sleep(Duration::from_millis(100));
    let (st, took) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", h.stderr());
    assert!(
        took < Duration::from_secs(1),
        "stop during a send took {took:?}"
    );
    // The attempt may or may not have gone out: the next start never repeats it.
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    let mut h = Handler::start(v, &[]);
    let failed = v.join("Failed/stuck.md");
    assert!(
        wait_until(Duration::from_secs(10), || failed.exists()),
        "{}",
        h.stderr()
    );
    assert_eq!(field(&failed, "result").as_deref(), Some("outcome_unknown"));
    assert!(smtp.mails().is_empty());
    // Re-approved after checking: the same Message-ID as the attempt that may have gone
    // out, so a mail client shows one message even if both arrived.
    let id = field(&failed, "message_id").expect("message_id kept on the failed file");
    fs::rename(&failed, v.join("Approved/stuck.md")).expect("re-approve");
    assert!(wait_until(Duration::from_secs(10), || v
        .join("Done/stuck.md")
        .exists()));
    let mails = smtp.with_subject_containing("STUCK-token");
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].header("Message-ID"), Some(id));
    h.stop();
}

/// One action's missing or broken credentials disable that action only: the others run,
/// and its approvals go to Failed/ with the reason. The start-up log and the Dashboard
/// say which actions are enabled.
#[test]
fn missing_or_broken_credentials_disable_only_their_own_action() {
    let tv = new_vault();
    let v = &tv.vault;
    // No credentials at all: LinkedIn posts and payments need none.
    let mut h = Handler::start(v, &[]);
    let log = h.wait_log("watching ");
    assert!(
        log.contains(
            "actions enabled: linkedin_post, payment, run_task; not enabled: send_email \
             (credentials/smtp.toml does not exist), send_whatsapp (credentials/whatsapp.toml \
             does not exist), github_comment (credentials/github.toml does not exist): see \
             docs/approvals.md"
        ),
        "{log}"
    );
    approve(
        v,
        "post.md",
        "---\ntype: approval_request\naction: linkedin_post\n---\nNO-CREDS post\n",
    );
    approve(
        v,
        "pay.md",
        "---\ntype: approval_request\naction: payment\namount: 10\nrecipient: Acme\nreason: NO-CREDS\n---\n",
    );
    approve(v, "mail.md", &email("a@example.com", "NO-CREDS", "x\n", ""));
    assert!(
        wait_until(Duration::from_secs(10), || {
            v.join("Done/post.md").exists()
                && v.join("Done/pay.md").exists()
                && v.join("Failed/mail.md").exists()
        }),
        "{}",
        h.stderr()
    );
    assert_eq!(
        field(&v.join("Failed/mail.md"), "error").as_deref(),
        Some(
            "send_email needs credentials/smtp.toml, which does not exist: create it (see \
             docs/approvals.md), then move this file back to Approved/"
        )
    );
    assert!(
        wait_until(Duration::from_secs(5), || tv.dashboard().contains(
            "| Approval | ⚠ Not set up | not enabled: send_email (credentials/smtp.toml does not \
             exist), send_whatsapp (credentials/whatsapp.toml does not exist), github_comment \
             (credentials/github.toml does not exist): see docs/approvals.md |"
        )),
        "{}",
        tv.dashboard()
    );
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0));
    // A broken smtp.toml: email is refused with the exact line; the rest still runs.
    write_private(
        &v.join("credentials/smtp.toml"),
        "host = \"h\"\nfrom = \"a@b.c\"\npasword = \"x\"\n",
    );
    let broken = "credentials/smtp.toml:3:1: unknown key `pasword` (known: host, port, tls, \
                  username, password, oauth_token_file, from, timeout, dry_run, ca_file)";
    let mut h = Handler::start(v, &[]);
    let log = h.wait_log("watching ");
    assert!(
        log.contains(&format!(
            "not enabled: send_email ({broken}), send_whatsapp"
        )),
        "{log}"
    );
    approve(
        v,
        "mail2.md",
        &email("a@example.com", "BROKEN-SMTP", "x\n", ""),
    );
    approve(
        v,
        "post2.md",
        "---\ntype: approval_request\naction: linkedin_post\n---\nBROKEN-SMTP post\n",
    );
    assert!(
        wait_until(Duration::from_secs(10), || v
            .join("Failed/mail2.md")
            .exists()
            && v.join("Done/post2.md").exists()),
        "{}",
        h.stderr()
    );
    assert_eq!(
        field(&v.join("Failed/mail2.md"), "error"),
        Some(format!(
            "send_email cannot run: {broken} (see docs/approvals.md); then move this file back \
             to Approved/"
        ))
    );
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0));
    // A dry run rehearses every action without credentials.
    fs::remove_file(v.join("credentials/smtp.toml")).expect("rm");
    let mut h = Handler::start(v, &["--dry-run"]);
    let log = h.wait_log("watching ");
    assert!(
        log.contains(
            "actions enabled: linkedin_post, payment, run_task, send_email (dry run), send_whatsapp (dry run)"
        ),
        "{log}"
    );
    h.stop();
}

/// The set-up row is written when the set-up changed, not at every start: a handler
/// restarted in a loop (or every morning) does not flood the Dashboard.
#[test]
fn the_set_up_row_is_written_once_per_change_not_per_start() {
    let tv = new_vault();
    let v = &tv.vault;
    let rows = |what: &str| {
        tv.dashboard()
            .lines()
            .filter(|l| l.contains(&format!("| Approval | {what} |")))
            .count()
    };
    for _ in 0..3 {
        let mut h = Handler::start(v, &[]);
        h.wait_log("watching ");
        let (st, _) = h.stop();
        assert_eq!(st.and_then(|s| s.code()), Some(0));
    }
    assert_eq!(rows("⚠ Not set up"), 1, "{}", tv.dashboard());
    assert_eq!(rows("✓ Set up"), 0, "{}", tv.dashboard());
    // Every action enabled (a dry run needs no credentials): one row says so, once.
    for _ in 0..2 {
        let mut h = Handler::start(v, &["--dry-run"]);
        h.wait_log("watching ");
        h.stop();
    }
    assert_eq!(rows("✓ Set up"), 1, "{}", tv.dashboard());
    // Broken again: a new row.
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    h.stop();
    assert_eq!(rows("⚠ Not set up"), 2, "{}", tv.dashboard());
}

/// Exactly the file docs/whatsapp.md asks for (the webhook's keys only): the approval
/// handler runs email, LinkedIn and payments, and refuses WhatsApp with what to add.
#[test]
fn a_webhook_only_whatsapp_file_does_not_stop_the_other_actions() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    write_private(
        &v.join("credentials/whatsapp.toml"),
        "app_secret   = \"0123456789abcdef0123456789abcdef\"\nverify_token = \"6f1c0e3b9a7d4e2f8a5b1c3d7e9f0a2b\"\n",
    );
    let mut h = Handler::start(v, &[]);
    let log = h.wait_log("watching ");
    assert!(
        log.contains(
            "actions enabled: linkedin_post, payment, run_task, send_email; not enabled: send_whatsapp \
             (credentials/whatsapp.toml has no `token` and `phone_number_id`, only other keys)"
        ),
        "{log}"
    );
    approve(
        v,
        "mail.md",
        &email("a@example.com", "WEBHOOK-ONLY", "x\n", ""),
    );
    approve(
        v,
        "post.md",
        "---\ntype: approval_request\naction: linkedin_post\n---\nWEBHOOK-ONLY post\n",
    );
    approve(
        v,
        "pay.md",
        "---\ntype: approval_request\naction: payment\namount: 5\nrecipient: Acme\nreason: WEBHOOK-ONLY\n---\n",
    );
    approve(v, "wa.md", &whatsapp_approval("+14155550123", "hi"));
    assert!(
        wait_until(Duration::from_secs(10), || {
            [
                "Done/mail.md",
                "Done/post.md",
                "Done/pay.md",
                "Failed/wa.md",
            ]
            .iter()
            .all(|f| v.join(f).exists())
        }),
        "{}",
        h.stderr()
    );
    assert_eq!(smtp.with_subject_containing("WEBHOOK-ONLY").len(), 1);
    assert_eq!(
        field(&v.join("Failed/wa.md"), "error").as_deref(),
        Some(
            "send_whatsapp needs `token` and `phone_number_id` in credentials/whatsapp.toml, \
             which has only other keys (the WhatsApp webhook's): add them (see \
             docs/approvals.md), then move this file back to Approved/"
        )
    );
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0));
}

#[test]
fn a_second_handler_or_a_missing_vault_stops_with_one_line() {
    let tv = new_vault();
    let v = &tv.vault;
    let mut h = Handler::start(v, &["--dry-run"]);
    h.wait_log("watching ");
    // One handler per vault.
    let mut h2 = Handler::start(v, &[]);
    let st = h2.wait_exit(Duration::from_secs(10));
    assert_eq!(st.and_then(|s| s.code()), Some(75));
    assert!(
        h2.stderr().contains("another approval handler (pid "),
        "{}",
        h2.stderr()
    );
    h.stop();
    // No vault at all.
    let mut h = Handler::start(&tv.dir.path().join("nowhere"), &[]);
    assert_eq!(
        h.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()),
        Some(78)
    );
    assert!(h.stderr().contains("no vault at "), "{}", h.stderr());
}

#[test]
fn a_file_written_in_place_is_read_only_once_complete() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    let mut h = Handler::start(v, &["--settle", "300ms"]);
    h.wait_log("watching ");
    // Written slowly in place, without closing in between: half a file must not be refused.
    let text = email("a@example.com", "SLOW-token", "slow body\n", "");
    let mut f = fs::File::create(v.join("Approved/slow.md")).expect("create");
    for chunk in text.as_bytes().chunks(20) {
        f.write_all(chunk).expect("write");
        f.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(40));
    }
    drop(f);
    assert!(
        wait_until(Duration::from_secs(10), || v.join("Done/slow.md").exists()),
        "{}",
        h.stderr()
    );
    assert_eq!(smtp.with_subject_containing("SLOW-token").len(), 1);
    assert!(files(&v.join("Failed")).is_empty());
    h.stop();
}

// ---------------------------------------------------------------------------------------
// XOAUTH2: the login with an OAuth2 token file (credentials/token.json).
// ---------------------------------------------------------------------------------------

/// The SMTP fixture with AUTH XOAUTH2 only (PLAIN and LOGIN withdrawn), accepting the
/// access tokens the [`TokenServer`] reports active for the user (asked over HTTP, as a
/// real server does). Refusals go as Gmail does them: a 334 challenge with the error, then
/// 535 after the client's empty reply. Each attempt is appended to `$AIE_XOAUTH2_LOG` as
/// `ok <user>` or `refused <user>`.
const XOAUTH2_WRAPPER: &str = r#"
import asyncio, base64, importlib.util, json, os, urllib.parse, urllib.request
spec = importlib.util.spec_from_file_location("smtp_fixture", os.environ["AIE_SMTP_FIXTURE"])
fixture = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixture)
from aiosmtpd.smtp import AuthResult, MISSING

INTROSPECT = os.environ["AIE_INTROSPECT_URL"]
LOG = os.environ["AIE_XOAUTH2_LOG"]

def active_user(token):
    data = urllib.parse.urlencode({"token": token}).encode()
    with urllib.request.urlopen(INTROSPECT, data=data, timeout=10) as r:
        reply = json.load(r)
    return reply.get("username") if reply.get("active") else None

def record(line):
    with open(LOG, "a") as f:
        f.write(line + "\n")

class Handler(fixture.Handler):
    async def auth_XOAUTH2(self, server, args):
        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except Exception:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        parts = blob.decode("utf-8", "replace").split("\x01")
        user = parts[0][len("user="):] if parts[0].startswith("user=") else ""
        token = next((p[len("auth=Bearer "):] for p in parts if p.startswith("auth=Bearer ")), "")
        loop = asyncio.get_running_loop()
        who = await loop.run_in_executor(None, active_user, token) if token else None
        if who is not None and who == user:
            record("ok " + user)
            return AuthResult(success=True, auth_data=user)
        record("refused " + user)
        error = json.dumps({"status": "401", "schemes": "Bearer", "scope": "https://mail.google.com/"})
        await server.challenge_auth(error)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Username and Password not accepted")

class SMTP(fixture.SMTP):
    def __init__(self, *args, **kwargs):
        kwargs["auth_required"] = True
        kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN"]
        super().__init__(*args, **kwargs)

fixture.Handler = Handler
fixture.SMTP = SMTP
fixture.main()
"#;

const OAUTH_USER: &str = "agent@example.com";

impl Smtp {
    /// [`XOAUTH2_WRAPPER`] around the usual fixture; its log of AUTH attempts is `log`.
    fn start_xoauth2(dir: &Path, introspect_url: &str, log: &Path) -> Smtp {
        let n = SPAWNS.fetch_add(1, Ordering::Relaxed);
        let script = dir.join(format!("smtp-xoauth2-{n}.py"));
        fs::write(&script, XOAUTH2_WRAPPER).expect("write wrapper");
        let out = dir.join(format!("smtp-out-{n}"));
        let ready = dir.join(format!("smtp-ready-{n}"));
        let err = dir.join(format!("smtp-{n}.err"));
        let child = Command::new(python())
            .arg(&script)
            .args(["--port", "0", "--out"])
            .arg(&out)
            .arg("--ready")
            .arg(&ready)
            .env("AIE_SMTP_FIXTURE", FIXTURE)
            .env("AIE_INTROSPECT_URL", introspect_url)
            .env("AIE_XOAUTH2_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(fs::File::create(&err).expect("smtp stderr")))
            .spawn()
            .expect("spawn XOAUTH2 fixture");
        let mut s = Smtp {
            child: Some(child),
            port: 0,
            out,
        };
        assert!(
            wait_until(Duration::from_secs(15), || ready.exists()),
            "XOAUTH2 SMTP fixture did not start: {}",
            fs::read_to_string(&err).unwrap_or_default()
        );
        s.port = fs::read_to_string(&ready)
            .expect("ready file")
            .trim()
            .parse()
            .expect("port");
        s
    }
}

fn oauth_smtp_toml(vault: &Path, port: u16) {
    write_private(
        &vault.join("credentials/smtp.toml"),
        &format!(
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"{FROM}\"\ntimeout = \"5s\"\nusername = \"{OAUTH_USER}\"\noauth_token_file = \"token.json\"\n"
        ),
    );
}

fn auth_log(p: &Path) -> Vec<String> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn token_in_file(vault: &Path) -> String {
    let v: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(vault.join("credentials/token.json")).expect("read"),
    )
    .expect("json");
    v["token"].as_str().expect("token").to_string()
}

#[test]
fn xoauth2_login_refreshes_expired_and_refused_tokens_and_shares_the_file() {
    use ai_employee_vault::oauth::TokenSource;

    use crate::oauth::{CLIENT_SECRET, TokenServer};
    use std::os::unix::fs::PermissionsExt;

    let tv = new_vault();
    let v = &tv.vault;
    let server = TokenServer::start();
    let log = tv.dir.path().join("xoauth2.log");
    let smtp = Smtp::start_xoauth2(tv.dir.path(), &server.introspect_url(), &log);
    oauth_smtp_toml(v, smtp.port);
    // Expired: the first send refreshes it.
    write_private(
        &v.join("credentials/token.json"),
        &server.token_json(OAUTH_USER, -30),
    );
    let refresh = {
        let j: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(v.join("credentials/token.json")).expect("read"),
        )
        .expect("json");
        j["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_string()
    };
    let mut h = Handler::start_env(v, FAST, &[("AI_EMPLOYEE_LOG", "trace")]);
    let done = |name: &str| {
        assert!(
            wait_until(Duration::from_secs(15), || v
                .join("Done")
                .join(name)
                .exists()),
            "{name} not done: {}",
            h.stderr()
        );
    };

    // 1. Expired token: refreshed once, written back (still 0600), used.
    approve(v, "o1.md", &email("a@example.com", "OAUTH-1", "one\n", ""));
    done("o1.md");
    assert_eq!(smtp.with_subject_containing("OAUTH-1").len(), 1);
    assert_eq!(server.refresh_count(), 1);
    let t1 = token_in_file(v);
    assert!(server.is_active(&t1));
    assert_eq!(auth_log(&log), [format!("ok {OAUTH_USER}")]);
    let mode = fs::metadata(v.join("credentials/token.json"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // 2. Another process (the mail watcher, here this test) refreshed the file after the
    // server refused t1: the handler uses the new token without a refresh of its own.
    server.revoke_access_tokens();
    let other = TokenSource::new(
        v.join("credentials/token.json"),
        "credentials/token.json".into(),
    );
    let t2 = other
        .refresh_rejected(&ai_employee_vault::credentials::Secret::from(t1.clone()))
        .expect("refreshed by the other process");
    assert_eq!(server.refresh_count(), 2);
    approve(v, "o2.md", &email("a@example.com", "OAUTH-2", "two\n", ""));
    done("o2.md");
    assert_eq!(smtp.with_subject_containing("OAUTH-2").len(), 1);
    assert_eq!(server.refresh_count(), 2, "no refresh by the handler");
    assert_eq!(token_in_file(v), t2.expose());

    // 3. The server refuses a token the file still holds as valid: refreshed once, the
    // login tried again on the same connection, the message sent.
    server.revoke_access_tokens();
    approve(
        v,
        "o3.md",
        &email("a@example.com", "OAUTH-3", "three\n", ""),
    );
    done("o3.md");
    assert_eq!(smtp.with_subject_containing("OAUTH-3").len(), 1);
    assert_eq!(server.refresh_count(), 3);
    assert_eq!(
        auth_log(&log)[1..],
        [
            format!("ok {OAUTH_USER}"),
            format!("refused {OAUTH_USER}"),
            format!("ok {OAUTH_USER}")
        ]
    );
    assert!(server.is_active(&token_in_file(v)));

    // 4. Access revoked by the user: the refresh token is refused; the approval fails
    // with a reason that says what to do, and nothing is sent.
    server.revoke_refresh_tokens();
    server.revoke_access_tokens();
    approve(v, "o4.md", &email("a@example.com", "OAUTH-4", "four\n", ""));
    assert!(
        wait_until(Duration::from_secs(15), || v.join("Failed/o4.md").exists()),
        "{}",
        h.stderr()
    );
    let error = field(&v.join("Failed/o4.md"), "error").expect("error");
    assert!(error.contains("credentials/token.json"), "{error}");
    assert!(error.contains("invalid_grant"), "{error}");
    assert!(error.contains("docs/oauth.md"), "{error}");
    assert!(smtp.with_subject_containing("OAUTH-4").is_empty());
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0));

    // No token, refresh token or client secret anywhere but credentials/.
    let mut leaks = Vec::new();
    let secrets = [
        t1.as_str(),
        t2.expose(),
        refresh.as_str(),
        CLIENT_SECRET,
        "ya29.",
    ];
    let mut stack = vec![v.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.ends_with("credentials") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = fs::read(&p) {
                let text = String::from_utf8_lossy(&bytes);
                for s in secrets {
                    if text.contains(s) {
                        leaks.push(format!("{} contains {s}", p.display()));
                    }
                }
            }
        }
    }
    let stderr = h.stderr();
    assert!(stderr.contains("refreshing the access token"), "{stderr}");
    for s in secrets {
        if stderr.contains(s) {
            leaks.push(format!("stderr contains {s}"));
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
}

#[test]
fn an_unusable_token_file_refuses_email_only() {
    let tv = new_vault();
    let v = &tv.vault;
    oauth_smtp_toml(v, free_port());
    let missing =
        "credentials/token.json: not found (create an OAuth token file: see docs/oauth.md)";
    let mut h = Handler::start(v, &[]);
    let log = h.wait_log("watching ");
    assert!(
        log.contains(&format!("not enabled: send_email ({missing})")),
        "{log}"
    );
    approve(v, "mail.md", &email("a@example.com", "NO-TOKEN", "x\n", ""));
    approve(
        v,
        "post.md",
        "---\ntype: approval_request\naction: linkedin_post\n---\nNO-TOKEN post\n",
    );
    assert!(
        wait_until(Duration::from_secs(10), || v
            .join("Failed/mail.md")
            .exists()
            && v.join("Done/post.md").exists()),
        "{}",
        h.stderr()
    );
    assert_eq!(
        field(&v.join("Failed/mail.md"), "error"),
        Some(format!(
            "send_email cannot run: {missing}; then move this file back to Approved/"
        ))
    );
    assert_eq!(
        field(&v.join("Failed/mail.md"), "result").as_deref(),
        Some("refused")
    );
    // A token file without a refresh token: the same, with what is wrong.
    write_private(
        &v.join("credentials/token.json"),
        r#"{"token": "ya29.x", "client_id": "c", "client_secret": "s", "token_uri": "https://oauth2.googleapis.com/token"}"#,
    );
    approve(
        v,
        "mail2.md",
        &email("a@example.com", "NO-TOKEN-2", "x\n", ""),
    );
    assert!(wait_until(Duration::from_secs(10), || v
        .join("Failed/mail2.md")
        .exists()));
    assert_eq!(
        field(&v.join("Failed/mail2.md"), "error").as_deref(),
        Some(
            "send_email cannot run: credentials/token.json: missing `refresh_token`; then move \
             this file back to Approved/"
        )
    );
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0));
}

// ---------------------------------------------------------------------------------------
// Half-written and changed files: only a complete file is read, and Done/ holds exactly
// what was executed.
// ---------------------------------------------------------------------------------------

/// The text of a file in `Done/` or `Failed/` without the fields the handler adds, as the
/// frontmatter and body it carried when it was read.
fn body_of(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    frontmatter::parse(&text)
        .map(|d| d.body)
        .unwrap_or_default()
}

#[test]
fn an_approval_moved_in_while_its_writer_still_writes_is_read_whole() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    // The first half is a valid approval on its own: only the rest tells it is not done.
    let first = email("a@example.com", "HALF-RENAMED", "first half\n", "");
    let rest = "second half\n";
    let pending = v.join("Pending_Approval/half.md");
    let mut f = fs::File::create(&pending).expect("create");
    f.write_all(first.as_bytes()).expect("write");
    f.flush().expect("flush");
    fs::rename(&pending, v.join("Approved/half.md")).expect("approve");
    // The writer pauses (it is the scenario, not a wait for a condition), then finishes.
    std::thread::sleep(Duration::from_millis(1500));
    f.write_all(rest.as_bytes()).expect("write rest");
    drop(f);
    let done = v.join("Done/half.md");
    assert!(
        wait_until(Duration::from_secs(10), || done.exists()
            && files(&v.join("Approved")).is_empty()),
        "{}",
        h.stderr()
    );
    let mails = smtp.with_subject_containing("HALF-RENAMED");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].body().trim_end(), "first half\nsecond half");
    assert_eq!(body_of(&done), "first half\nsecond half\n");
    assert!(
        h.stderr()
            .contains("is open for writing in another process; it is read once closed"),
        "{}",
        h.stderr()
    );
    assert!(
        files(&v.join("Failed")).is_empty(),
        "{:?}",
        files(&v.join("Failed"))
    );
    h.stop();
}

#[test]
fn an_approval_written_in_place_with_a_pause_longer_than_settle_is_read_whole() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    let mut h = Handler::start(v, &["--settle", "300ms"]);
    h.wait_log("watching ");
    let first = email("a@example.com", "HALF-IN-PLACE", "first half\n", "");
    let mut f = fs::File::create(v.join("Approved/inplace.md")).expect("create");
    f.write_all(first.as_bytes()).expect("write");
    f.flush().expect("flush");
    // Five times --settle without a change, the file still open.
    std::thread::sleep(Duration::from_millis(1500));
    f.write_all(b"second half\n").expect("write rest");
    drop(f);
    let done = v.join("Done/inplace.md");
    assert!(
        wait_until(Duration::from_secs(10), || done.exists()
            && files(&v.join("Approved")).is_empty()),
        "{}",
        h.stderr()
    );
    let mails = smtp.with_subject_containing("HALF-IN-PLACE");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].body().trim_end(), "first half\nsecond half");
    assert_eq!(body_of(&done), "first half\nsecond half\n");
    assert!(
        h.stderr()
            .contains("is open for writing in another process; it is read once closed"),
        "{}",
        h.stderr()
    );
    assert!(
        files(&v.join("Failed")).is_empty(),
        "{:?}",
        files(&v.join("Failed"))
    );
    h.stop();
}

/// The SMTP fixture holding every message at DATA until `$AIE_GATE/release` exists;
/// `$AIE_GATE/data` appears when a message is being held.
const GATE_WRAPPER: &str = r#"
import asyncio, importlib.util, os
spec = importlib.util.spec_from_file_location("smtp_fixture", os.environ["AIE_SMTP_FIXTURE"])
fixture = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixture)
GATE = os.environ["AIE_GATE"]

class Handler(fixture.Handler):
    async def handle_DATA(self, server, session, envelope):
        open(os.path.join(GATE, "data"), "w").close()
        while not os.path.exists(os.path.join(GATE, "release")):
            await asyncio.sleep(0.01)
        return await super().handle_DATA(server, session, envelope)

fixture.Handler = Handler
fixture.main()
"#;

impl Smtp {
    /// [`GATE_WRAPPER`] around the usual fixture, gated by files in `gate`.
    fn start_gated(dir: &Path, gate: &Path) -> Smtp {
        let n = SPAWNS.fetch_add(1, Ordering::Relaxed);
        let script = dir.join(format!("smtp-gate-{n}.py"));
        fs::write(&script, GATE_WRAPPER).expect("write wrapper");
        fs::create_dir_all(gate).expect("gate dir");
        let out = dir.join(format!("smtp-out-{n}"));
        let ready = dir.join(format!("smtp-ready-{n}"));
        let err = dir.join(format!("smtp-{n}.err"));
        let child = Command::new(python())
            .arg(&script)
            .args(["--port", "0", "--out"])
            .arg(&out)
            .arg("--ready")
            .arg(&ready)
            .env("AIE_SMTP_FIXTURE", FIXTURE)
            .env("AIE_GATE", gate)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(fs::File::create(&err).expect("smtp stderr")))
            .spawn()
            .expect("spawn gated fixture");
        let mut s = Smtp {
            child: Some(child),
            port: 0,
            out,
        };
        assert!(
            wait_until(Duration::from_secs(15), || ready.exists()),
            "gated SMTP fixture did not start: {}",
            fs::read_to_string(&err).unwrap_or_default()
        );
        s.port = fs::read_to_string(&ready)
            .expect("ready file")
            .trim()
            .parse()
            .expect("port");
        s
    }
}

/// `text` without the frontmatter lines of the keys the handler sets.
fn without_result_fields(text: &str) -> String {
    const SET: &[&str] = &[
        "status:",
        "result:",
        "executed_at:",
        "failed_at:",
        "error:",
        "message_id:",
        "smtp_reply:",
    ];
    text.split_inclusive('\n')
        .filter(|l| !SET.iter().any(|k| l.starts_with(k)))
        .collect()
}

#[test]
fn a_file_changed_after_its_action_started_is_archived_as_executed_and_not_run_again() {
    let tv = new_vault();
    let v = &tv.vault;
    let gate = tv.dir.path().join("gate");
    let smtp = Smtp::start_gated(tv.dir.path(), &gate);
    smtp_toml(v, smtp.port, false, "");
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    // A comment and hand-made quoting: kept as written.
    let one = "---\ntype: approval_request\naction: send_email   # what to do\nto: 'a@example.com'\nsubject: \"CHANGED-token\"\nstatus: pending\n---\nversion one\n";
    approve(v, "changed.md", one);
    // The message is in the server's hands: change the file in place, then let it go.
    assert!(
        wait_until(Duration::from_secs(10), || gate.join("data").exists()),
        "{}",
        h.stderr()
    );
    let two = one.replace("version one", "version two, edited in place");
    fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(v.join("Approved/changed.md"))
        .and_then(|mut f| f.write_all(two.as_bytes()))
        .expect("edit in place");
    fs::write(gate.join("release"), "").expect("release");
    let (done, failed) = (v.join("Done/changed.md"), v.join("Failed/changed.md"));
    assert!(
        wait_until(Duration::from_secs(10), || done.exists()
            && failed.exists()
            && files(&v.join("Approved")).is_empty()),
        "{}",
        h.stderr()
    );
    // What was sent is what is archived in Done/: the file as read, byte for byte, with
    // the result fields added.
    let mails = smtp.with_subject_containing("CHANGED-token");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].body().trim_end(), "version one");
    let archived = fs::read_to_string(&done).expect("done");
    assert_eq!(without_result_fields(&archived), without_result_fields(one));
    assert_eq!(field(&done, "result").as_deref(), Some("sent"));
    assert_eq!(field(&done, "status").as_deref(), Some("done"));
    assert_eq!(field(&done, "message_id"), mails[0].header("Message-ID"));
    // The changed version was not carried out: it waits in Failed/, whole, with the reason.
    let refused = fs::read_to_string(&failed).expect("failed");
    assert_eq!(without_result_fields(&refused), without_result_fields(&two));
    assert_eq!(field(&failed, "result").as_deref(), Some("refused"));
    assert_eq!(
        field(&failed, "error").as_deref(),
        Some(
            "Approved/changed.md was changed after its action had started: the version carried \
             out is Done/changed.md; this version was not carried out (move it back to \
             Approved/ to approve it)"
        )
    );
    h.stop();
}

// ---------------------------------------------------------------------------------------
// The same approval under two names (sync-conflict copies).
// ---------------------------------------------------------------------------------------

#[test]
fn a_sync_conflict_copy_is_refused_as_a_duplicate_even_after_a_restart() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    let original = "---\ntype: approval_request\naction: send_email\nto: client@example.com\nsubject: \"DUP-token Q3 report\"\nstatus: pending\n---\nHere is the Q3 report.\n";
    approve(v, "report.md", original);
    let done = v.join("Done/report.md");
    assert!(
        wait_until(Duration::from_secs(10), || done.exists()),
        "{}",
        h.stderr()
    );
    // The copy a sync tool made, re-saved by an editor: other quoting, spacing, key order,
    // `status`, line ends, an added note, a trailing blank line.
    let copy = "---\r\naction:   send_email\r\ntype: 'approval_request'\r\nsubject: DUP-token Q3 report\r\nto: [\"Client@Example.com\"]\r\nstatus: approved\r\nnote: conflicted copy\r\n---\r\nHere is the Q3 report.\r\n\r\n";
    approve(v, "report (1).md", copy);
    let failed = v.join("Failed/report (1).md");
    assert!(
        wait_until(Duration::from_secs(10), || failed.exists()),
        "{}",
        h.stderr()
    );
    let executed_at = field(&done, "executed_at").expect("executed_at");
    assert_eq!(field(&failed, "result").as_deref(), Some("refused"));
    assert_eq!(
        field(&failed, "error"),
        Some(format!(
            "duplicate of Done/report.md (sent at {executed_at}): the same send_email with the \
             same content was carried out within the last 7 days; to carry it out again, add \
             `allow_duplicate: true`"
        ))
    );
    // A LinkedIn post and its copy: the same rule for a local action.
    let post = "---\ntype: approval_request\naction: linkedin_post\n---\nDUP-post: we shipped\n";
    approve(v, "post.md", post);
    assert!(wait_until(Duration::from_secs(10), || v
        .join("Done/post.md")
        .exists()));
    approve(v, "post (1).md", &post.replace("---\nDUP", "---\n\nDUP"));
    assert!(wait_until(Duration::from_secs(10), || v
        .join("Failed/post (1).md")
        .exists()));
    assert!(
        field(&v.join("Failed/post (1).md"), "error")
            .is_some_and(|e| e.starts_with("duplicate of Done/post.md (queued at ")),
        "{:?}",
        field(&v.join("Failed/post (1).md"), "error")
    );
    // Different content is a different approval; `allow_duplicate: true` runs a copy.
    approve(
        v,
        "report (2).md",
        &original.replace("Q3 report.", "Q3 report, corrected."),
    );
    approve(
        v,
        "report (3).md",
        &original.replace("status: pending", "allow_duplicate: true"),
    );
    assert!(
        wait_until(Duration::from_secs(10), || v
            .join("Done/report (2).md")
            .exists()
            && v.join("Done/report (3).md").exists()),
        "{}",
        h.stderr()
    );
    // Durable: after a restart a copy is still refused.
    let (st, _) = h.stop();
    assert_eq!(st.and_then(|s| s.code()), Some(0));
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    approve(v, "report (4).md", copy);
    let failed4 = v.join("Failed/report (4).md");
    assert!(
        wait_until(Duration::from_secs(10), || failed4.exists()),
        "{}",
        h.stderr()
    );
    assert!(
        field(&failed4, "error").is_some_and(|e| e.starts_with("duplicate of Done/report")),
        "{:?}",
        field(&failed4, "error")
    );
    assert_eq!(smtp.with_subject_containing("DUP-token").len(), 3);
    let queue = fs::read_to_string(v.join("LINKEDIN_QUEUE.md")).expect("queue");
    assert_eq!(queue.matches("DUP-post").count(), 1, "{queue}");
    h.stop();
}
