//! Failures nobody would see otherwise: an exit between two health polls is reported as
//! an exit (with its code), never as a zombie; `Logs/` that cannot be written is said on
//! the console; a Dashboard row that failed (a full disk) is retried until it is written.
//!
//! The `Logs/` and full-disk tests mount a read-only bind mount or a small tmpfs, so they
//! need root (CI runs as root); elsewhere they say so and skip.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const LONG: Duration = Duration::from_secs(30);

/// The pid a log line is about: its `pid=N` field, or `(pid N` in the message (a field
/// the message says already is not repeated).
fn pid_of(line: &str) -> Option<i32> {
    if let Some((_, n)) = line.rsplit_once("pid=") {
        return n.trim().parse().ok();
    }
    let rest = line.split_once("(pid ")?.1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Children that exit every 50 ms while the health poll runs every millisecond: an exit
/// that lands between the poll's reap and its look at `/proc` used to be reported as
/// "health check failed: process is a zombie", and its exit code was lost.
#[test]
fn an_exit_between_health_polls_is_reaped_and_reported_with_its_code() {
    let tv = TestVault::new();
    let mut table = String::from("[supervisor]\nhealth_interval = \"1ms\"\n\n");
    for i in 0..12 {
        table.push_str(&sh_process(
            &format!("c{i}"),
            "sleep 0.05; exit 7",
            "backoff = { initial = \"10ms\", max = \"10ms\" }",
        ));
    }
    tv.write_config(&table);
    let mut sup = tv.start();
    assert!(
        wait_until(Duration::from_secs(60), || {
            tv.system_log().matches("exited with code 7").count() >= 400
        }),
        "{}",
        sup.console()
    );
    assert_eq!(sup.stop().and_then(|s| s.code()), Some(0));
    let log = tv.system_log();
    let zombies: Vec<&str> = log.lines().filter(|l| l.contains("zombie")).collect();
    assert!(
        zombies.is_empty(),
        "{} zombie reports:\n{}",
        zombies.len(),
        zombies.join("\n")
    );
    assert!(!log.contains("health check failed"), "{log}");
    // Every run that ended before the shutdown has its exit code in the log.
    let started: HashSet<i32> = log
        .lines()
        .filter(|l| l.contains(": started c") || l.contains(": restarted c"))
        .filter_map(pid_of)
        .collect();
    let exited: HashSet<i32> = log
        .lines()
        .filter(|l| l.contains("exited with code 7"))
        .filter_map(pid_of)
        .collect();
    let stopped_at_shutdown: HashSet<i32> = log
        .lines()
        .filter(|l| l.contains(": stopping c"))
        .filter_map(pid_of)
        .collect();
    assert!(!started.is_empty(), "no start found in the log:\n{log}");
    let unexplained: Vec<&i32> = started
        .iter()
        .filter(|p| !exited.contains(p) && !stopped_at_shutdown.contains(p))
        .collect();
    assert!(
        unexplained.is_empty(),
        "runs whose exit was never reported: {unexplained:?}"
    );
}

// ---- mounts (root only) ----

fn root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root to mount a read-only Logs/ or a small tmpfs (CI runs as root)");
    false
}

/// A mount made by a test, undone when dropped (also when the test fails).
struct Mount(PathBuf);

impl Mount {
    fn run(args: &[&str]) {
        let out = Command::new("mount")
            .args(args)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount {args:?}: {out:?}");
    }

    /// `dir` bound onto itself, read-only: even root gets EROFS there.
    fn read_only(dir: &Path) -> Mount {
        let d = dir.to_str().unwrap();
        Mount::run(&["--bind", d, d]);
        let m = Mount(dir.to_path_buf());
        Mount::run(&["-o", "remount,bind,ro", d]);
        m
    }

    /// A tmpfs of `size` on `dir`.
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        Mount::run(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            dir.to_str().unwrap(),
        ]);
        Mount(dir.to_path_buf())
    }

    fn umount(&mut self) {
        if self.0.as_os_str().is_empty() {
            return;
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
        self.0 = PathBuf::new();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.umount();
    }
}

/// Fill the filesystem of `dir` with a file `name` until ENOSPC.
fn fill(dir: &Path, name: &str) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join(name)).unwrap();
    let chunk = vec![b'x'; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    // The last partial blocks too.
    while f.write_all(b"x").is_ok() {}
}

/// `Logs/` read-only from the start: the console says that `system.log` and a child's log
/// cannot be written (instead of silence), a needs-setup child is not sent to a log that
/// does not exist, and writing resumes (and says so) once `Logs/` is writable again.
#[test]
fn an_unwritable_logs_folder_is_reported_on_the_console_and_writing_resumes() {
    if !root() {
        return;
    }
    let tv = TestVault::new();
    let logs = tv.vault.join("Logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut ro = Mount::read_only(&logs);
    assert!(
        std::fs::write(logs.join("probe"), "x").is_err(),
        "Logs/ is still writable"
    );
    tv.write_config(&format!(
        "{}\n{}",
        sh_process(
            "setup",
            "echo 'missing credentials/setup.toml'; exit 78",
            ""
        ),
        sh_process("chatty", "while :; do echo tick; sleep 0.1; done", ""),
    ));
    let mut sup = tv.start();
    assert!(
        wait_until(LONG, || {
            let c = sup.console();
            c.contains("Logs/system.log")
                && c.contains("Logs/chatty.log")
                && c.contains("needs setup")
        }),
        "{}",
        sup.console()
    );
    let console = sup.console();
    let line = |needle: &str| {
        console
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}:\n{console}"))
            .to_string()
    };
    assert!(
        line("Logs/system.log").contains("Read-only file system"),
        "{console}"
    );
    assert!(
        line("Logs/chatty.log").contains("Read-only file system"),
        "{console}"
    );
    // The child that needs setup: its output could not be kept, so "see Logs/setup.log"
    // would send the reader nowhere.
    let setup = line("needs setup");
    assert!(!setup.contains("see Logs/setup.log"), "{setup}");
    assert!(setup.contains("Logs/setup.log"), "{setup}");
    assert!(setup.contains("could not be written"), "{setup}");
    assert!(
        wait_until(LONG, || tv.dashboard().contains("Needs Setup")),
        "{}",
        tv.dashboard()
    );
    let dashboard = tv.dashboard();
    assert!(!dashboard.contains("see Logs/setup.log"), "{dashboard}");

    // Writable again: the chatty child's output lands in its log, and the console says
    // how much was lost meanwhile.
    ro.umount();
    assert!(
        wait_until(LONG, || tv.read("vault/Logs/chatty.log").contains("tick")),
        "{}",
        sup.console()
    );
    assert!(
        wait_until(LONG, || sup
            .console()
            .contains("Logs/chatty.log can be written again")),
        "{}",
        sup.console()
    );
    assert_eq!(sup.stop().and_then(|s| s.code()), Some(0));
    assert!(
        sup.console()
            .contains("Logs/system.log can be written again"),
        "{}",
        sup.console()
    );
    assert!(
        tv.system_log().contains("supervisor stopped"),
        "{}",
        tv.system_log()
    );
}

/// A full disk: the Degraded row cannot be written. It is retried until it is, and the
/// newest state ends on top, so Dashboard.md never keeps saying Online while `status`
/// says degraded.
#[test]
fn a_dashboard_row_that_failed_on_a_full_disk_is_retried_and_the_newest_state_wins() {
    if !root() {
        return;
    }
    let tv = TestVault::new();
    std::fs::create_dir_all(&tv.vault).unwrap();
    let _disk = Mount::tmpfs(&tv.vault, "4m");
    let marker = tv.path("m");
    tv.write_config(&sh_process(
        "w",
        &format!(
            "echo \"start $$ $(date +%s%N)\" >> {}; exec sleep 1000",
            marker.display()
        ),
        "backoff = { initial = \"300ms\", max = \"300ms\", reset_after = \"1500ms\" }",
    ));
    let mut sup = tv.start();
    assert!(
        wait_until(LONG, || tv.dashboard().contains("✓ Online")),
        "{}",
        sup.console()
    );
    let rows_before = tv.dashboard().matches("| System_Status |").count();
    fill(&tv.vault, "filler");

    // Degraded (restarting), then Online again once it has run for reset_after: two rows
    // that both fail.
    let (pid, _) = starts(&marker)[0];
    signal(pid, libc::SIGKILL);
    assert!(
        wait_until(LONG, || sup.console().contains("failed to update")),
        "{}",
        sup.console()
    );
    let status = |tv: &TestVault| {
        Command::new(BIN)
            .args(["status", "--vault"])
            .arg(&tv.vault)
            .env_remove("AI_EMPLOYEE_VAULT")
            .output()
            .unwrap()
            .status
            .code()
    };
    // Back to healthy (exit 0) while the disk is still full: both rows are pending.
    assert!(
        wait_until(LONG, || status(&tv) == Some(0)),
        "{}",
        sup.console()
    );
    assert_eq!(
        tv.dashboard().matches("| System_Status |").count(),
        rows_before,
        "a row was written to a full disk?"
    );
    std::fs::remove_file(tv.vault.join("filler")).unwrap();
    // Both rows arrive (the Online one may only have been queued after the space came
    // back), the newest on top, as `status` says.
    let top_two = |tv: &TestVault| -> Vec<String> {
        tv.dashboard()
            .lines()
            .filter(|l| l.contains("| System_Status |"))
            .take(2)
            .map(str::to_string)
            .collect()
    };
    assert!(
        wait_until(LONG, || {
            let rows = top_two(&tv);
            rows.len() == 2 && rows[0].contains("✓ Online") && rows[1].contains("⚠ Degraded")
        }),
        "{}\n{}",
        sup.console(),
        tv.dashboard()
    );
    assert_eq!(status(&tv), Some(0));
    assert!(
        wait_until(LONG, || sup
            .console()
            .contains("Dashboard.md updated again")),
        "{}",
        sup.console()
    );
    assert_eq!(sup.stop().and_then(|s| s.code()), Some(0));
}

/// A child whose `cwd` is missing: the log and the Dashboard name the folder, not the
/// program (which exists).
#[test]
fn a_missing_cwd_is_named_at_spawn() {
    let tv = TestVault::new();
    tv.write_config(&sh_process("nowhere", "exit 0", "cwd = \"Gone/Folder\""));
    let mut sup = tv.start();
    let missing = tv.vault.join("Gone/Folder");
    let expected = format!("cwd {} does not exist", missing.display());
    assert!(
        wait_until(LONG, || tv.system_log().contains(&expected)),
        "{}\n{}",
        tv.system_log(),
        sup.console()
    );
    assert!(
        !tv.system_log().contains("No such file or directory"),
        "{}",
        tv.system_log()
    );
    assert!(
        wait_until(LONG, || tv.dashboard().contains(&expected)),
        "{}",
        tv.dashboard()
    );
    sup.stop();
}
