//! What `send_email` puts on the SMTP wire, for approvals whose text and attachments
//! carry bare CRs and LFs, NUL bytes and SMTP smuggling attempts (a `.` line ended by a
//! bare LF or CR, followed by `MAIL FROM`/`RCPT TO`/`DATA`): the raw DATA bytes as a
//! capturing server records them, the messages aiosmtpd accepts, and the messages a real
//! Postfix delivers on a strict and on a lenient port. Then the certificate errors of
//! STARTTLS: an issuer nobody trusts, and a CA certificate used as the server's own.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};

use crate::approvals::{
    FROM, Handler, Smtp, approve, audit_lines, email, field, files, new_vault, smtp_toml,
    write_private,
};
use crate::common::wait_until;
use crate::postfix::{self, Postfix};

// ---------------------------------------------------------------------------------------
// The hostile approval.
// ---------------------------------------------------------------------------------------

/// A `.` line after a bare LF (or before one), each followed by a second transaction.
/// Every line is short and ASCII, so a MIME library that picks the "best" encoding picks
/// 7bit and sends the bytes as they are.
fn smuggling(tag: &str) -> Vec<u8> {
    let mut v = b"Quarterly report\n".to_vec();
    for (i, (before, after)) in [("\n", "\n"), ("\r\n", "\n"), ("\n", "\r\n")]
        .iter()
        .enumerate()
    {
        v.extend_from_slice(
            format!(
                "{before}.{after}MAIL FROM:<evil@example.com>{after}\
                 RCPT TO:<client@example.com>{after}DATA{after}\
                 From: <evil@example.com>{after}Subject: smuggled-{tag}-{i}{after}{after}\
                 not approved{after}"
            )
            .as_bytes(),
        );
    }
    v.extend_from_slice(b"\n.\nQUIT\nend of report\n");
    v
}

/// A `.` line between bare CRs (a server that ends lines at CR would stop there).
const CR_TXT: &[u8] = b"total\r.\rRSET\rQUIT\r";

/// ASCII with NUL bytes, bare CRs and bare LFs.
const RAW_BIN: &[u8] = b"a\0b\rc\nd\r.\re\0\n.\n\0";

/// The email text: a `.` line between bare CRs, a NUL, bare LFs; short lines.
const BODY: &str = "Dear client,\r.\rQUIT\rplease see the report.\nNUL here:\u{0}.\n.\nRegards\n";

/// Write the attachments under Inbox/ and approve an email carrying them.
fn approve_hostile(vault: &Path, name: &str, subject: &str, to: &str) -> Vec<(String, Vec<u8>)> {
    let atts = vec![
        ("smuggle.txt".to_string(), smuggling(subject)),
        ("cr.txt".to_string(), CR_TXT.to_vec()),
        ("raw.bin".to_string(), RAW_BIN.to_vec()),
    ];
    for (n, bytes) in &atts {
        fs::write(vault.join("Inbox").join(n), bytes).expect("attachment");
    }
    approve(
        vault,
        name,
        &email(
            to,
            subject,
            BODY,
            "attachments: [\"Inbox/smuggle.txt\", \"Inbox/cr.txt\", \"Inbox/raw.bin\"]\n",
        ),
    );
    atts
}

/// Wait until the approval left Approved/; its path in Done/ or Failed/.
fn finished(vault: &Path, name: &str, h: &Handler) -> std::path::PathBuf {
    let done = vault.join("Done").join(name);
    let failed = vault.join("Failed").join(name);
    let ok = wait_until(Duration::from_secs(20), || done.exists() || failed.exists());
    assert!(ok, "{name} not finished:\n{}", h.stderr());
    if failed.exists() {
        panic!(
            "{name} failed: {:?}\n{}",
            field(&failed, "error"),
            h.stderr()
        );
    }
    done
}

/// What the recipient sees: the message decodes, the text is the approved one (line
/// breaks as CRLF), the attachments are byte for byte the files, and there is no trace
/// of a second message.
fn check_decoded(raw: &[u8], subject: &str, atts: &[(String, Vec<u8>)]) {
    let msg = MessageParser::default()
        .parse(raw)
        .unwrap_or_else(|| panic!("not a message:\n{}", String::from_utf8_lossy(raw)));
    assert_eq!(msg.subject(), Some(subject));
    let text = msg.body_text(0).expect("a text part");
    let want = BODY.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(
        text.replace("\r\n", "\n").trim_end(),
        want.trim_end(),
        "the email text"
    );
    let got: Vec<(String, Vec<u8>)> = msg
        .attachments()
        .map(|a| {
            (
                a.attachment_name().unwrap_or("?").to_string(),
                a.contents().to_vec(),
            )
        })
        .collect();
    assert_eq!(got.len(), atts.len(), "{got:?}");
    for ((gn, gb), (wn, wb)) in got.iter().zip(atts) {
        assert_eq!(gn, wn);
        assert!(gb == wb, "{wn}: {gb:?} != {wb:?}");
    }
}

// ---------------------------------------------------------------------------------------
// A capturing SMTP server: the raw bytes of each DATA, up to the strict end CRLF . CRLF.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct Session {
    commands: Vec<String>,
    data: Vec<Vec<u8>>,
}

struct RawSmtp {
    port: u16,
    sessions: Arc<Mutex<Vec<Session>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawSmtp {
    fn start() -> RawSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, stop2) = (sessions.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let idx = {
                    let mut all = s2.lock().expect("lock");
                    all.push(Session::default());
                    all.len() - 1
                };
                serve(conn, &s2, idx);
            }
        });
        RawSmtp {
            port,
            sessions,
            stop,
            thread: Some(thread),
        }
    }

    fn sessions(&self) -> Vec<Session> {
        self.sessions.lock().expect("lock").clone()
    }
}

/// One SMTP session: commands are lines ending in LF; DATA runs to CRLF . CRLF.
fn serve(conn: TcpStream, sessions: &Mutex<Vec<Session>>, idx: usize) {
    let mut w = conn.try_clone().expect("dup");
    let mut r = BufReader::new(conn);
    let _ = w.write_all(b"220 raw.test ESMTP capture\r\n");
    loop {
        let mut line = Vec::new();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let cmd = String::from_utf8_lossy(&line).trim_end().to_string();
        sessions.lock().expect("lock")[idx]
            .commands
            .push(cmd.clone());
        let verb = cmd
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-raw.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                let _ = w.write_all(b"221 bye\r\n");
                return;
            }
            "DATA" => {
                let _ = w.write_all(b"354 go ahead\r\n");
                let mut data = Vec::new();
                loop {
                    match r.read_until(b'\n', &mut data) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if data == b".\r\n" {
                        data.clear();
                        break;
                    }
                    if data.ends_with(b"\r\n.\r\n") {
                        data.truncate(data.len() - 3);
                        break;
                    }
                }
                sessions.lock().expect("lock")[idx].data.push(data);
                b"250 2.0.0 captured\r\n"
            }
            _ => b"500 what?\r\n",
        };
        let _ = w.write_all(reply);
    }
}

impl Drop for RawSmtp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Offsets of every CR not followed by LF, LF not preceded by CR, and NUL.
fn bare(data: &[u8]) -> Vec<(usize, &'static str)> {
    let mut out = Vec::new();
    for (i, &b) in data.iter().enumerate() {
        match b {
            b'\r' if data.get(i + 1) != Some(&b'\n') => out.push((i, "bare CR")),
            b'\n' if i == 0 || data[i - 1] != b'\r' => out.push((i, "bare LF")),
            0 => out.push((i, "NUL")),
            _ => {}
        }
    }
    out
}

/// Where a lenient server (one that ends a line at CR, LF or CRLF) would see the end of
/// the message: every line that is exactly ".".
fn lenient_ends(data: &[u8]) -> usize {
    let text = String::from_utf8_lossy(data);
    text.split("\r\n")
        .flat_map(|l| l.split(['\r', '\n']))
        .filter(|l| *l == ".")
        .count()
}

/// The message as the sender meant it: SMTP transparency undone.
fn unstuff(data: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split("\r\n").collect();
    lines
        .iter()
        .map(|l| l.strip_prefix('.').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

#[test]
fn the_wire_carries_canonical_crlf_only_and_one_transaction_per_approval() {
    let tv = new_vault();
    let v = &tv.vault;
    let server = RawSmtp::start();
    smtp_toml(v, server.port, false, "");
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    let atts = approve_hostile(v, "hostile.md", "WIRE-raw", "client@example.com");
    let done = finished(v, "hostile.md", &h);
    assert_eq!(field(&done, "result").as_deref(), Some("sent"));
    h.stop();
    let sessions = server.sessions();
    assert_eq!(sessions.len(), 1, "one connection: {sessions:?}");
    let s = &sessions[0];
    let mails = s.commands.iter().filter(|c| c.starts_with("MAIL ")).count();
    assert_eq!(mails, 1, "one transaction: {:?}", s.commands);
    assert_eq!(s.data.len(), 1);
    let data = &s.data[0];
    let shown = String::from_utf8_lossy(data);
    let bad = bare(data);
    assert!(bad.is_empty(), "not canonical CRLF: {bad:?} in\n{shown}");
    assert_eq!(
        lenient_ends(data),
        0,
        "a lenient server would end the message early and read the rest as commands:\n{shown}"
    );
    for (i, line) in shown.split("\r\n").enumerate() {
        assert!(line.len() <= 998, "line {i} has {} octets", line.len());
    }
    // Nothing after DATA but the client's QUIT.
    let after: Vec<&String> = s
        .commands
        .iter()
        .skip_while(|c| !c.eq_ignore_ascii_case("DATA"))
        .skip(1)
        .collect();
    assert!(
        after.iter().all(|c| c.eq_ignore_ascii_case("QUIT")),
        "{after:?}"
    );
    check_decoded(&unstuff(data), "WIRE-raw", &atts);
    let text = String::from_utf8_lossy(data);
    for part in ["smuggle.txt", "cr.txt", "raw.bin"] {
        let header = text
            .split("\r\n\r\n")
            .find(|h| h.contains(&format!("filename=\"{part}\"")))
            .unwrap_or_else(|| panic!("no part {part}:\n{text}"));
        assert!(
            header.contains("Content-Transfer-Encoding: base64"),
            "{part}: {header}"
        );
    }
}

#[test]
fn aiosmtpd_receives_one_message_with_the_attachments_byte_for_byte() {
    let tv = new_vault();
    let v = &tv.vault;
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(v, smtp.port, false, "");
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    let atts = approve_hostile(v, "hostile.md", "WIRE-aiosmtpd", "client@example.com");
    finished(v, "hostile.md", &h);
    // The session is over once the approval is in Done/ (QUIT is answered before the
    // handler moves the file): every message it brought is stored.
    h.stop();
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].rcpt_tos, ["client@example.com"]);
    assert_eq!(mails[0].mail_from, "ai@example.com");
    check_decoded(mails[0].data.as_bytes(), "WIRE-aiosmtpd", &atts);
}

/// `smtp.toml` replaced atomically (a new inode: the handler sees the change at once).
fn point_at(vault: &Path, port: u16) {
    let tmp = vault.join("credentials/.smtp.toml.tmp");
    write_private(
        &tmp,
        &format!(
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"{FROM}\"\ntimeout = \"5s\"\n"
        ),
    );
    fs::rename(&tmp, vault.join("credentials/smtp.toml")).expect("replace smtp.toml");
}

#[test]
fn postfix_strict_and_lenient_each_deliver_exactly_one_message_per_approval() {
    if !postfix::available() {
        return;
    }
    let tv = new_vault();
    let v = &tv.vault;
    let pf = Postfix::start(tv.dir.path());
    // The lenient port first: there a smuggled message would be delivered.
    point_at(v, pf.lenient_port);
    let mut h = Handler::start(v, &[]);
    h.wait_log("watching ");
    let atts = approve_hostile(v, "lenient.md", "WIRE-lenient", "client@example.com");
    let done = finished(v, "lenient.md", &h);
    assert_eq!(field(&done, "result").as_deref(), Some("sent"));
    pf.settle(1);
    let msgs = pf.messages();
    let shown = |m: &[Vec<u8>]| {
        m.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
            .join("\n=====\n")
    };
    assert_eq!(msgs.len(), 1, "lenient port:\n{}", shown(&msgs));
    check_decoded(&msgs[0], "WIRE-lenient", &atts);
    // The strict port: a bare LF anywhere would be refused with 550.
    point_at(v, pf.strict_port);
    let atts = approve_hostile(v, "strict.md", "WIRE-strict", "client@example.com");
    let done = finished(v, "strict.md", &h);
    assert_eq!(field(&done, "result").as_deref(), Some("sent"));
    pf.settle(2);
    let msgs = pf.messages();
    assert_eq!(msgs.len(), 2, "strict port:\n{}", shown(&msgs));
    check_decoded(&msgs[1], "WIRE-strict", &atts);
    for m in &msgs {
        let text = String::from_utf8_lossy(m);
        assert!(!text.contains("Return-Path: <evil@"), "{text}");
    }
    assert!(!pf.log().contains("bare <LF> received"), "{}", pf.log());
    h.stop();
    let audit = audit_lines(v);
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(files(&v.join("Failed")).is_empty());
}

// ---------------------------------------------------------------------------------------
// STARTTLS certificate errors.
// ---------------------------------------------------------------------------------------

/// aiosmtpd offering (and requiring) STARTTLS with this certificate.
fn tls_sink(dir: &Path, cert: &Path, key: &Path) -> Smtp {
    Smtp::spawn(
        dir,
        &[
            "--port".to_string(),
            "0".to_string(),
            "--tls-cert".to_string(),
            cert.display().to_string(),
            "--tls-key".to_string(),
            key.display().to_string(),
        ],
    )
}

/// `smtp.toml` for STARTTLS to 127.0.0.1:`port`, with or without a `ca_file`.
fn starttls_toml(vault: &Path, port: u16, ca: Option<&Path>) {
    let ca = ca
        .map(|p| format!("ca_file = {:?}\n", p.display().to_string()))
        .unwrap_or_default();
    let tmp = vault.join("credentials/.smtp.toml.tmp");
    write_private(
        &tmp,
        &format!(
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"starttls\"\nfrom = \"{FROM}\"\ntimeout = \"5s\"\n{ca}"
        ),
    );
    fs::rename(&tmp, vault.join("credentials/smtp.toml")).expect("replace smtp.toml");
}

/// Wait until `name` is in Failed/; its `error`. Asserts it was tried once, not retried.
fn failed_at_once(vault: &Path, name: &str, h: &Handler) -> String {
    let failed = vault.join("Failed").join(name);
    let ok = wait_until(Duration::from_secs(20), || failed.exists());
    assert!(ok, "{name} not in Failed/:\n{}", h.stderr());
    assert_eq!(field(&failed, "result").as_deref(), Some("failed"));
    let lines: Vec<serde_json::Value> = audit_lines(vault)
        .into_iter()
        .filter(|l| l["parameters"]["file"] == name)
        .collect();
    assert_eq!(lines.len(), 1, "tried more than once: {lines:?}");
    assert_eq!(lines[0]["result"], "failed");
    field(&failed, "error").expect("error")
}

#[test]
fn starttls_certificate_errors_fail_the_approval_at_once_naming_ca_file() {
    let tv = new_vault();
    let v = &tv.vault;
    let pki = crate::certs::make(&tv.dir.path().join("pki"));
    let good = tls_sink(tv.dir.path(), &pki.server_cert, &pki.server_key);
    starttls_toml(v, good.port, None);
    // Fast retries: a certificate error counted as transient would be retried at once.
    let mut h = Handler::start(
        v,
        &[
            "--retry-initial",
            "50ms",
            "--retry-max",
            "100ms",
            "--max-attempts",
            "5",
        ],
    );
    h.wait_log("watching ");
    // No ca_file: the private CA is unknown.
    approve(
        v,
        "unknown.md",
        &email("a@example.com", "TLS-unknown", "x\n", ""),
    );
    let error = failed_at_once(v, "unknown.md", &h);
    assert_eq!(
        error,
        format!(
            "SMTP 127.0.0.1:{}: STARTTLS failed: the server's certificate is not accepted: it \
             was not issued by a certificate authority this program trusts (the public roots; \
             no `ca_file` is set). A certificate error does not pass by waiting: if the \
             server uses a certificate from a private CA or a self-signed one, save that CA \
             certificate (PEM) in credentials/ and name it with `ca_file` in \
             credentials/smtp.toml; see docs/approvals.md",
            good.port
        )
    );
    // With the CA in ca_file the same server is trusted.
    starttls_toml(v, good.port, Some(&pki.ca));
    approve(
        v,
        "trusted.md",
        &email("a@example.com", "TLS-trusted", "x\n", ""),
    );
    let done = finished(v, "trusted.md", &h);
    assert_eq!(field(&done, "result").as_deref(), Some("sent"));
    assert_eq!(good.mails().len(), 1);
    // A server that presents a CA certificate as its own.
    let rogue = tls_sink(tv.dir.path(), &pki.ca_as_server_cert, &pki.ca_as_server_key);
    starttls_toml(v, rogue.port, Some(&pki.ca_as_server_cert));
    approve(
        v,
        "rogue.md",
        &email("a@example.com", "TLS-rogue", "x\n", ""),
    );
    let error = failed_at_once(v, "rogue.md", &h);
    assert!(
        error.contains("STARTTLS failed: the server's certificate is not accepted: the server presents a CA certificate as its own"),
        "{error}"
    );
    assert!(
        error.contains("`ca_file` in credentials/smtp.toml"),
        "{error}"
    );
    assert!(rogue.mails().is_empty());
    // SMTPS (TLS from the first byte) with a certificate nobody trusts: the same.
    let smtps = Smtp::spawn(
        tv.dir.path(),
        &[
            "--port".to_string(),
            "0".to_string(),
            "--tls-cert".to_string(),
            pki.server_cert.display().to_string(),
            "--tls-key".to_string(),
            pki.server_key.display().to_string(),
            "--smtps".to_string(),
        ],
    );
    let tmp = v.join("credentials/.smtp.toml.tmp");
    write_private(
        &tmp,
        &format!(
            "host = \"127.0.0.1\"\nport = {}\ntls = \"tls\"\nfrom = \"{FROM}\"\ntimeout = \"5s\"\n",
            smtps.port
        ),
    );
    fs::rename(&tmp, v.join("credentials/smtp.toml")).expect("replace smtp.toml");
    approve(
        v,
        "smtps.md",
        &email("a@example.com", "TLS-smtps", "x\n", ""),
    );
    let error = failed_at_once(v, "smtps.md", &h);
    assert!(
        error.starts_with(&format!(
            "SMTP 127.0.0.1:{}: connect failed: the server's certificate is not accepted: it \
             was not issued by a certificate authority this program trusts",
            smtps.port
        )),
        "{error}"
    );
    assert!(smtps.mails().is_empty());
    // A ca_file that is not there: refused with its name, nothing sent.
    starttls_toml(v, good.port, Some(&tv.dir.path().join("missing.pem")));
    approve(
        v,
        "missing-ca.md",
        &email("a@example.com", "TLS-missing", "x\n", ""),
    );
    let error = failed_at_once(v, "missing-ca.md", &h);
    assert!(
        error.contains("cannot read ca_file") && error.contains("missing.pem"),
        "{error}"
    );
    h.stop();
    assert_eq!(good.mails().len(), 1);
}
