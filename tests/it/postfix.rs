//! A private Postfix per test: its own config_directory, queue_directory and data
//! directory in a temp dir, the master daemon in the foreground (`master -c DIR -d`, as
//! root), two smtpd listeners on free loopback ports, and virtual(8) delivering every
//! message for @example.com into one maildir that the test reads and counts.
//!
//! - the **strict** port rejects any line that ends in a bare LF
//!   (`smtpd_forbid_bare_newline = reject`, and no exclusions: the default exclusions
//!   are `$mynetworks`, which would exempt loopback);
//! - the **lenient** port takes them (`smtpd_forbid_bare_newline = no`, Postfix's default
//!   before 3.9): a `.` line ended by a bare LF ends the message there, so whatever
//!   follows is read as commands. That is SMTP smuggling, as a mail server that follows
//!   the old default sees it.
//!
//! `reject` exists from Postfix 3.7.10 / 3.8.5 / 3.9 on (Debian 12 ships 3.7.11); with an
//! older stable release that has only `yes`, `yes` is used (it rejected bare LFs then).
//! Stopped on drop.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{wait_child, wait_until};

const POSTCONF: &str = "/usr/sbin/postconf";
const POSTFIX: &str = "/usr/sbin/postfix";

/// uid/gid that virtual(8) delivers as (`nobody`).
const MAIL_ID: u32 = 65534;

pub struct Postfix {
    dir: PathBuf,
    conf: PathBuf,
    pub strict_port: u16,
    pub lenient_port: u16,
    child: Option<Child>,
}

/// Where Postfix keeps its daemons (`postconf -d daemon_directory`), if installed.
fn daemon_directory() -> Option<PathBuf> {
    let out = Command::new(POSTCONF)
        .args(["-d", "-h", "daemon_directory"])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    dir.join("master").exists().then_some(dir)
}

/// Whether a Postfix can be started here (installed, and we are root, as its master must
/// be); prints why a test is skipped when not.
pub fn available() -> bool {
    if daemon_directory().is_none() {
        eprintln!("SKIPPED: Postfix is not installed (tests/run.sh installs postfix)");
        return false;
    }
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: a private Postfix needs root (its master daemon runs as root)");
        return false;
    }
    true
}

/// The strict value of `smtpd_forbid_bare_newline` this Postfix knows.
fn strict_value() -> &'static str {
    let out = Command::new(POSTCONF)
        .arg("-d")
        .output()
        .expect("postconf -d");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("smtpd_forbid_bare_newline ="),
        "this Postfix has no smtpd_forbid_bare_newline (it came with 3.5.23, 3.6.13, 3.7.9, \
         3.8.4 and 3.9)"
    );
    // Releases with `normalize` (and `reject`) also have a reject code parameter; there,
    // `yes` means `normalize`, which does not reject.
    if text.contains("smtpd_forbid_bare_newline_reject_code") {
        "reject"
    } else {
        "yes"
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Postfix {
    /// Start a Postfix under `parent` (made traversable for the delivery agent).
    pub fn start(parent: &Path) -> Postfix {
        let daemons = daemon_directory().expect("postfix installed");
        let dir = parent.join("postfix");
        let conf = dir.join("conf");
        for sub in ["conf", "queue", "data", "mail"] {
            fs::create_dir_all(dir.join(sub)).expect("postfix dirs");
        }
        for p in [parent, dir.as_path()] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let postfix_user = nix::unistd::User::from_name("postfix")
            .ok()
            .flatten()
            .expect("user postfix (created by the Debian package)");
        chown(dir.join("data"), Some(postfix_user.uid.as_raw()), None).expect("chown data");
        chown(dir.join("mail"), Some(MAIL_ID), Some(MAIL_ID)).expect("chown mail");
        let pf = Postfix {
            conf: conf.clone(),
            strict_port: free_port(),
            lenient_port: free_port(),
            dir,
            child: None,
        };
        let d = pf.dir.display();
        fs::write(
            conf.join("main.cf"),
            format!(
                "compatibility_level = 3.6\n\
                 queue_directory = {d}/queue\n\
                 data_directory = {d}/data\n\
                 mail_owner = postfix\n\
                 setgid_group = postdrop\n\
                 myhostname = postfix-test.localdomain\n\
                 mydestination =\n\
                 inet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\n\
                 mynetworks = 127.0.0.0/8\n\
                 maillog_file = {d}/postfix.log\n\
                 maillog_file_prefixes = {d}\n\
                 smtpd_forbid_bare_newline_exclusions =\n\
                 smtpd_relay_restrictions = permit_mynetworks, reject\n\
                 virtual_mailbox_domains = example.com\n\
                 virtual_mailbox_base = {d}/mail\n\
                 virtual_mailbox_maps = static:box/\n\
                 virtual_uid_maps = static:{MAIL_ID}\n\
                 virtual_gid_maps = static:{MAIL_ID}\n\
                 virtual_minimum_uid = 1\n\
                 alias_maps =\n\
                 alias_database =\n\
                 default_transport = error:no mail leaves the test\n\
                 biff = no\n"
            ),
        )
        .expect("main.cf");
        let strict = strict_value();
        let (s, l) = (pf.strict_port, pf.lenient_port);
        // chroot "n" everywhere: the daemons run in place, not in the queue directory.
        fs::write(
            conf.join("master.cf"),
            format!(
                "127.0.0.1:{s} inet n - n - - smtpd -o smtpd_forbid_bare_newline={strict}\n\
                 127.0.0.1:{l} inet n - n - - smtpd -o smtpd_forbid_bare_newline=no\n\
                 pickup unix n - n 60 1 pickup\n\
                 cleanup unix n - n - 0 cleanup\n\
                 qmgr unix n - n 300 1 qmgr\n\
                 rewrite unix - - n - - trivial-rewrite\n\
                 bounce unix - - n - 0 bounce\n\
                 defer unix - - n - 0 bounce\n\
                 trace unix - - n - 0 bounce\n\
                 verify unix - - n - 1 verify\n\
                 flush unix n - n 1000 0 flush\n\
                 proxymap unix - - n - - proxymap\n\
                 smtp unix - - n - - smtp\n\
                 showq unix n - n - - showq\n\
                 error unix - - n - - error\n\
                 retry unix - - n - - error\n\
                 discard unix - - n - - discard\n\
                 virtual unix - n n - - virtual\n\
                 anvil unix - - n - 1 anvil\n\
                 scache unix - - n - 1 scache\n\
                 postlog unix-dgram n - n - 1 postlogd\n"
            ),
        )
        .expect("master.cf");
        // `postfix check` creates the queue directories with their owners and modes.
        let out = Command::new(POSTFIX)
            .arg("-c")
            .arg(&conf)
            .arg("check")
            .output()
            .expect("postfix check");
        assert!(
            out.status.success(),
            "postfix check failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pf = pf;
        let master_out = fs::File::create(pf.dir.join("master.out")).expect("master.out");
        let child = Command::new(daemons.join("master"))
            .arg("-c")
            .arg(&pf.conf)
            .arg("-d")
            .stdin(Stdio::null())
            .stdout(Stdio::from(master_out.try_clone().expect("dup")))
            .stderr(Stdio::from(master_out))
            .spawn()
            .expect("start postfix master");
        pf.child = Some(child);
        let ports = [pf.strict_port, pf.lenient_port];
        let up = wait_until(Duration::from_secs(20), || {
            ports
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
        });
        assert!(up, "postfix did not start:\n{}", pf.log());
        pf
    }

    /// The master's output and Postfix's log.
    pub fn log(&self) -> String {
        let a = fs::read_to_string(self.dir.join("master.out")).unwrap_or_default();
        let b = fs::read_to_string(self.dir.join("postfix.log")).unwrap_or_default();
        format!("{a}{b}")
    }

    /// SMTP sessions that ended (smtpd's "disconnect from" lines).
    pub fn sessions_ended(&self) -> usize {
        self.log()
            .lines()
            .filter(|l| l.contains("postfix/smtpd[") && l.contains(" disconnect from "))
            .count()
    }

    /// Messages still in the queue (received, not yet delivered or bounced).
    pub fn queued(&self) -> usize {
        fn count(p: &Path) -> usize {
            match fs::read_dir(p) {
                Ok(rd) => rd
                    .flatten()
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => count(&e.path()),
                        Ok(_) => 1,
                        Err(_) => 0,
                    })
                    .sum(),
                Err(_) => 0,
            }
        }
        ["maildrop", "incoming", "active", "deferred", "hold"]
            .iter()
            .map(|q| count(&self.dir.join("queue").join(q)))
            .sum()
    }

    /// Wait until `sessions` SMTP sessions have ended and every message they brought
    /// was delivered: after that nothing more can arrive from them.
    pub fn settle(&self, sessions: usize) {
        let ok = wait_until(Duration::from_secs(20), || {
            self.sessions_ended() >= sessions && self.queued() == 0
        });
        assert!(
            ok,
            "postfix did not settle ({} of {sessions} sessions ended, {} queued):\n{}",
            self.sessions_ended(),
            self.queued(),
            self.log()
        );
    }

    /// Every delivered message (maildir files, oldest first).
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let md = self.dir.join("mail/box");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .flat_map(|s| fs::read_dir(md.join(s)).into_iter().flatten().flatten())
            .map(|e| {
                let t = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (t, e.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|(_, p)| fs::read(p).expect("read delivered message"))
            .collect()
    }
}

impl Drop for Postfix {
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
