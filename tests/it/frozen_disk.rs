//! A stalled disk never stops supervision: `Logs/` on a file system that is frozen
//! (`fsfreeze -f`, every `write()` there blocks in the kernel until the thaw) while a
//! chatty child writes output. A child killed during the freeze is restarted, `status`
//! answers, and a SIGTERM stops the supervisor, all before the thaw; the log lines queued
//! meanwhile reach the files once the disk answers again.
//!
//! Needs root and a loop device (a tmpfs cannot be frozen, so `Logs/` is a small ext4
//! image mounted with `-o loop`); CI runs as root. Elsewhere it says why and skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(30);
/// How long the supervisor gets to react while the disk is frozen. The freeze lasts
/// until the test thaws it, so without the fix nothing happens within this window.
const WHILE_FROZEN: Duration = Duration::from_secs(10);

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(cmd).args(args).stdin(Stdio::null()).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{cmd} {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("{cmd}: {e}")),
    }
}

/// A small ext4 on a loop device mounted on `dir`; thawed, unmounted and detached when
/// dropped (also when the test fails: a frozen file system left behind would hang every
/// later writer on it).
struct Ext4 {
    dir: PathBuf,
}

/// The file system frozen; thawed when dropped. Declared after the supervisor, so that
/// a failing test thaws before it kills the supervisor and waits for it (a process
/// blocked in a write to a frozen file system cannot die before the thaw).
struct Frozen(PathBuf);

impl Frozen {
    fn thaw(mut self) {
        run("fsfreeze", &["-u", self.0.to_str().unwrap()]).expect("fsfreeze -u");
        self.0 = PathBuf::new();
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = run("fsfreeze", &["-u", self.0.to_str().unwrap_or("")]);
        }
    }
}

impl Ext4 {
    /// None (with the reason printed) when this machine cannot do it.
    fn mount(image: &Path, dir: &Path) -> Option<Ext4> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to mount and freeze a file system (CI runs as root)");
            return None;
        }
        if let Err(e) = run("losetup", &["-f"]) {
            eprintln!("skipped: no free loop device: {e}");
            return None;
        }
        let img = image.to_str()?;
        let d = dir.to_str()?;
        let made = run("truncate", &["-s", "32M", img])
            .and_then(|()| run("mkfs.ext4", &["-q", "-F", img]))
            .and_then(|()| run("mount", &["-o", "loop", img, d]));
        if let Err(e) = made {
            eprintln!("skipped: cannot mount an ext4 image on a loop device: {e}");
            return None;
        }
        Some(Ext4 {
            dir: dir.to_path_buf(),
        })
    }

    fn freeze(&self) -> Frozen {
        let f = Frozen(self.dir.clone());
        run("fsfreeze", &["-f", self.dir.to_str().unwrap()]).expect("fsfreeze -f");
        f
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = run("fsfreeze", &["-u", self.dir.to_str().unwrap_or("")]);
        // `-o loop` set the device to detach itself at the unmount.
        if run("umount", &[self.dir.to_str().unwrap_or("")]).is_err() {
            let _ = run("umount", &["-l", self.dir.to_str().unwrap_or("")]);
        }
    }
}

/// `ai-employee status`, killed if it has not answered within `within`.
fn status(tv: &TestVault, within: Duration) -> Option<String> {
    let out = tv.path(&format!("status-{}.out", now_ns()));
    let mut c = Command::new(BIN)
        .arg("status")
        .arg("--vault")
        .arg(&tv.vault)
        .env_remove("AI_EMPLOYEE_VAULT")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    match wait_child(&mut c, within) {
        Some(_) => Some(std::fs::read_to_string(&out).unwrap_or_default()),
        None => {
            let _ = c.kill();
            let _ = c.wait();
            None
        }
    }
}

#[test]
fn a_frozen_logs_disk_does_not_stop_restarts_status_or_a_stop() {
    let tv = TestVault::new();
    let logs = tv.vault.join("Logs");
    std::fs::create_dir_all(&logs).unwrap();
    let Some(disk) = Ext4::mount(&tv.path("logs.img"), &logs) else {
        return;
    };
    // The victim records its starts outside the frozen disk, so a restarted victim does
    // not itself wait for the thaw. The rest of the vault (the records journal under
    // .ai-employee/, Dashboard.md) is not on the frozen disk either.
    let marker = tv.path("starts");
    tv.write_config(&format!(
        "{}\n{}",
        sh_process("chatty", "while :; do echo tick; sleep 0.02; done", ""),
        sh_process(
            "victim",
            &format!(
                "echo \"start $$ $(date +%s%N)\" >> {}; exec sleep 1000",
                marker.display()
            ),
            "backoff = { initial = \"100ms\", max = \"100ms\" }",
        ),
    ));
    let mut sup = tv.start();
    assert!(
        wait_until(LONG, || starts(&marker).len() == 1
            && tv.read("vault/Logs/chatty.log").contains("tick")
            && tv.system_log().contains("victim")),
        "{}",
        sup.console()
    );

    // Frozen: the chatty child's output can no longer be written.
    let frozen = disk.freeze();
    let (victim, _) = starts(&marker)[0];
    signal(victim, libc::SIGKILL);
    let restarted = wait_until(WHILE_FROZEN, || starts(&marker).len() == 2);
    assert!(
        restarted,
        "the victim killed during the freeze was not restarted before the thaw:\n{}",
        sup.console()
    );
    let answer = status(&tv, WHILE_FROZEN);
    assert!(
        answer
            .as_deref()
            .is_some_and(|a| a.contains("chatty") && a.contains("victim")),
        "status did not answer during the freeze: {answer:?}\n{}",
        sup.console()
    );

    // Thawed: what was queued meanwhile is written, in order (the restart's lines are in
    // system.log after the thaw, and the chatty child's log grows again).
    let before = tv.read("vault/Logs/chatty.log").len();
    frozen.thaw();
    assert!(
        wait_until(LONG, || tv
            .system_log()
            .contains("victim: exited with signal SIGKILL")
            && tv.read("vault/Logs/chatty.log").len() > before),
        "{}\n{}",
        tv.system_log(),
        sup.console()
    );

    // Frozen again, then a stop: the supervisor stops its children and says that it
    // stopped before the thaw, and what it could not write.
    let frozen = disk.freeze();
    sup.signal(libc::SIGTERM);
    assert!(
        wait_until(WHILE_FROZEN, || {
            let c = sup.console();
            c.contains("supervisor stopped") && c.contains("were not written to Logs/")
        }),
        "the stop waited for the frozen disk:\n{}",
        sup.console()
    );
    let second = starts(&marker)[1].0;
    assert!(
        wait_until(LONG, || !alive(second)),
        "the victim was not stopped"
    );
    frozen.thaw();
    let st = sup.wait_exit(LONG);
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{}", sup.console());
}
