//! A private Dovecot per test: its own config, run/state/log folders and mail homes in a
//! temp dir, free loopback ports (IMAP with STARTTLS, and IMAPS), a self-signed
//! certificate made with rcgen, passwd-file users, and optionally the oauth2 passdb or no
//! IDLE. Runs as root (mail owned by `nobody`, as Dovecot refuses UID 0 for mail) and as
//! an ordinary user (everything as that user). Stopped on drop.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{wait_child, wait_until};

pub const DOVECOT: &str = "/usr/sbin/dovecot";
pub const LDA: &str = "/usr/lib/dovecot/dovecot-lda";
pub const DOVEADM: &str = "/usr/bin/doveadm";
pub const PASSWORD: &str = "s3cret-pw-not-in-logs";

/// What the server offers.
#[derive(Default, Clone)]
pub struct Setup {
    /// Leave IDLE out of the capabilities (clients must poll).
    pub no_idle: bool,
    /// Check XOAUTH2 tokens at this introspection URL (Dovecot's oauth2 passdb).
    pub oauth_introspect: Option<String>,
    /// Serve this certificate and key (PEM files) instead of a fresh self-signed one.
    pub cert: Option<(PathBuf, PathBuf)>,
}

pub struct Dovecot {
    dir: PathBuf,
    conf: PathBuf,
    pub imap_port: u16,
    pub imaps_port: u16,
    pub cert: PathBuf,
    child: Option<Child>,
    /// uid and gid that own the mail.
    owner: (u32, u32),
}

/// Whether Dovecot is installed; prints why a test is skipped when it is not.
pub fn available() -> bool {
    let ok = Path::new(DOVECOT).exists() && Path::new(LDA).exists();
    if !ok {
        eprintln!("SKIPPED: {DOVECOT} is not installed (tests/run.sh installs dovecot-imapd)");
    }
    ok
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Dovecot {
    /// Start a server with user `alice` (password [`PASSWORD`]) under `parent`.
    pub fn start(parent: &Path, setup: Setup) -> Dovecot {
        let dir = parent.join("dovecot");
        for sub in ["run", "state", "mail"] {
            fs::create_dir_all(dir.join(sub)).expect("dovecot dirs");
        }
        let root = unsafe { libc::geteuid() } == 0;
        let owner = if root {
            (65534, 65534)
        } else {
            unsafe { (libc::getuid(), libc::getgid()) }
        };
        if root {
            // Mail processes run as `nobody`: it must reach the homes.
            for p in [parent, dir.as_path()] {
                fs::set_permissions(p, fs::Permissions::from_mode(0o755)).expect("chmod");
            }
            chown(dir.join("mail"), Some(owner.0), Some(owner.1)).expect("chown mail");
        }
        let cert = dir.join("cert.pem");
        match &setup.cert {
            Some((c, k)) => {
                fs::copy(c, &cert).expect("cert");
                fs::copy(k, dir.join("key.pem")).expect("key");
            }
            None => {
                let ck = rcgen::generate_simple_self_signed(vec![
                    "localhost".to_string(),
                    "127.0.0.1".to_string(),
                ])
                .expect("certificate");
                fs::write(&cert, ck.cert.pem()).expect("cert");
                fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).expect("key");
            }
        }
        fs::write(
            dir.join("passwd"),
            format!("alice:{{PLAIN}}{PASSWORD}::::::\n"),
        )
        .expect("passwd");
        fs::set_permissions(dir.join("passwd"), fs::Permissions::from_mode(0o644))
            .expect("chmod passwd");
        let mut d = Dovecot {
            conf: dir.join("dovecot.conf"),
            dir,
            imap_port: free_port(),
            imaps_port: free_port(),
            cert,
            child: None,
            owner,
        };
        d.write_conf(&setup, root);
        d.launch();
        d
    }

    fn write_conf(&self, setup: &Setup, root: bool) {
        let d = self.dir.display();
        let mut mechs = "plain login".to_string();
        let mut oauth_passdb = String::new();
        let mut plain_only = "";
        if let Some(url) = &setup.oauth_introspect {
            mechs.push_str(" xoauth2 oauthbearer");
            plain_only = "  mechanisms = plain login\n";
            fs::write(
                self.dir.join("oauth2.conf"),
                format!(
                    "introspection_url = {url}\nintrospection_mode = post\n\
                     username_attribute = username\nactive_attribute = active\n\
                     active_value = true\n"
                ),
            )
            .expect("oauth2.conf");
            oauth_passdb = format!(
                "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {d}/oauth2.conf\n}}\n"
            );
        }
        let capability = if setup.no_idle {
            "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UIDPLUS\n"
        } else {
            ""
        };
        let users = if root {
            String::new()
        } else {
            // Everything runs as the current user.
            let name = user_name();
            format!("default_internal_user = {name}\ndefault_login_user = {name}\n")
        };
        let (uid, gid) = self.owner;
        let text = format!(
            "base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             instance_name = aie-{port}\n\
             log_path = {d}/dovecot.log\n\
             protocols = imap\n\
             listen = 127.0.0.1\n\
             ssl = yes\n\
             ssl_cert = <{d}/cert.pem\n\
             ssl_key = <{d}/key.pem\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = {mechs}\n\
             first_valid_uid = 1\n\
             mail_location = maildir:~/Maildir\n\
             {capability}{users}\
             passdb {{\n  driver = passwd-file\n{plain_only}  args = scheme=PLAIN {d}/passwd\n}}\n\
             {oauth_passdb}\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={d}/mail/%u allow_all_users=yes\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {imap}\n  }}\n  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps}\n    ssl = yes\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n",
            port = self.imaps_port,
            imap = self.imap_port,
            imaps = self.imaps_port,
        );
        fs::write(&self.conf, text).expect("dovecot.conf");
    }

    fn launch(&mut self) {
        let out = fs::File::create(self.dir.join("master.out")).expect("master.out");
        let child = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("dup")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start dovecot");
        self.child = Some(child);
        let ports = [self.imap_port, self.imaps_port];
        let ok = wait_until(Duration::from_secs(15), || {
            ports
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
        });
        assert!(ok, "dovecot did not start:\n{}", self.log());
    }

    /// The server's own log and its master's output.
    pub fn log(&self) -> String {
        let a = fs::read_to_string(self.dir.join("master.out")).unwrap_or_default();
        let b = fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default();
        format!("{a}{b}")
    }

    /// Stop the server (its connections drop); wait until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            crate::common::signal(c.id() as i32, libc::SIGTERM);
            if wait_child(&mut c, Duration::from_secs(15)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let ports = [self.imap_port, self.imaps_port];
        let gone = wait_until(Duration::from_secs(10), || {
            ports
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_err())
        });
        assert!(gone, "dovecot still listening after stop");
    }

    /// Start it again on the same ports.
    pub fn restart(&mut self) {
        self.launch();
    }

    /// Deliver as an MTA would (dovecot-lda); needs the server running.
    pub fn deliver(&self, raw: impl AsRef<[u8]>) {
        let mut child = Command::new(LDA)
            .arg("-c")
            .arg(&self.conf)
            .args(["-d", "alice"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dovecot-lda");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(raw.as_ref())
            .expect("write message");
        let out = child.wait_with_output().expect("dovecot-lda");
        assert!(
            out.status.success(),
            "dovecot-lda failed ({}): {}{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Deliver with no server running: a file in the maildir's `new/`, as a local
    /// delivery agent writes it.
    pub fn deliver_offline(&self, raw: &str, n: usize) {
        let md = self.dir.join("mail/alice/Maildir");
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(md.join(sub)).expect("maildir");
        }
        let name = format!(
            "{}.M{n}P{}.test",
            crate::common::now_ns() / 1_000_000_000,
            std::process::id()
        );
        let tmp = md.join("tmp").join(&name);
        fs::write(&tmp, raw).expect("write");
        for p in [
            md.clone(),
            md.join("tmp"),
            md.join("new"),
            md.join("cur"),
            tmp.clone(),
        ] {
            let _ = chown(&p, Some(self.owner.0), Some(self.owner.1));
        }
        let _ = chown(
            self.dir.join("mail/alice"),
            Some(self.owner.0),
            Some(self.owner.1),
        );
        fs::rename(&tmp, md.join("new").join(&name)).expect("deliver");
    }

    /// IMAP APPEND over the plain port (to set flags such as `\Flagged` at delivery).
    pub fn append(&self, raw: &str, flags: &str) {
        let raw = raw.replace("\r\n", "\n").replace('\n', "\r\n");
        let mut s = TcpStream::connect(("127.0.0.1", self.imap_port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut r = BufReader::new(s.try_clone().expect("dup"));
        let mut line = String::new();
        r.read_line(&mut line).expect("greeting");
        let mut cmd = |tag: &str, text: String| {
            s.write_all(text.as_bytes()).expect("send");
            loop {
                line.clear();
                let n = r.read_line(&mut line).expect("answer");
                assert!(n > 0, "connection closed");
                if line.starts_with(tag) {
                    assert!(line.starts_with(&format!("{tag} OK")), "{line}");
                    return;
                }
            }
        };
        cmd("a", format!("a LOGIN alice \"{PASSWORD}\"\r\n"));
        cmd(
            "b",
            format!("b APPEND INBOX ({flags}) {{{}+}}\r\n{raw}\r\n", raw.len()),
        );
        cmd("c", "c LOGOUT\r\n".to_string());
    }

    /// `(uid, flags)` of every message in INBOX.
    pub fn flags(&self) -> Vec<(u32, String)> {
        let out = Command::new(DOVEADM)
            .arg("-c")
            .arg(&self.conf)
            .args(["fetch", "-u", "alice", "uid flags", "mailbox", "INBOX"])
            .output()
            .expect("doveadm");
        assert!(
            out.status.success(),
            "doveadm fetch: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut v = Vec::new();
        let mut uid = None;
        for l in text.lines() {
            if let Some(u) = l.strip_prefix("uid: ") {
                uid = u.trim().parse().ok();
            } else if let (Some(f), Some(u)) = (l.strip_prefix("flags:"), uid.take()) {
                v.push((u, f.trim().to_string()));
            }
        }
        v
    }

    /// Count of messages in the mailbox files (read without the server).
    pub fn message_files(&self) -> usize {
        let md = self.dir.join("mail/alice/Maildir");
        ["new", "cur"]
            .iter()
            .map(|s| fs::read_dir(md.join(s)).map(|d| d.count()).unwrap_or(0))
            .sum()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            crate::common::signal(c.id() as i32, libc::SIGTERM);
            if wait_child(&mut c, Duration::from_secs(10)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The current user's login name.
fn user_name() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; read at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() {
            return "nobody".into();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}
