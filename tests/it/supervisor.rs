//! The supervisor with real child processes and real signals.

use std::time::{Duration, Instant};

use crate::common::*;

const FAST: &str = "[supervisor]\nhealth_interval = \"30s\"\nstop_timeout = \"2s\"\n\n";

/// A child that records its start and then waits (exits on SIGTERM, like most programs).
fn recorder(marker: &std::path::Path) -> String {
    format!(
        "echo \"start $$ $(date +%s%N)\" >> {m}; exec sleep 1000",
        m = marker.display()
    )
}

#[test]
fn kill_9_of_a_child_restarts_it_with_the_configured_backoff() {
    let tv = TestVault::new();
    let m = tv.path("m");
    let backoff =
        "backoff = { initial = \"200ms\", factor = 2, max = \"800ms\", reset_after = \"1m\" }";
    tv.write_config(&format!(
        "{FAST}{}",
        sh_process("w", &recorder(&m), backoff)
    ));
    let mut sup = tv.start();
    let expected = [200u128, 400, 800, 800];
    for (n, want_ms) in expected.iter().enumerate() {
        assert!(
            wait_until(Duration::from_secs(10), || starts(&m).len() == n + 1),
            "start #{n}"
        );
        let (pid, _) = starts(&m)[n];
        let killed_at = now_ns();
        signal(pid, libc::SIGKILL);
        assert!(
            wait_until(Duration::from_secs(10), || starts(&m).len() == n + 2),
            "no restart after kill -9 #{n}\n{}",
            tv.system_log()
        );
        let (new_pid, started_ns) = starts(&m)[n + 1];
        assert_ne!(new_pid, pid);
        let delay_ms = (started_ns.saturating_sub(killed_at)) / 1_000_000;
        assert!(
            delay_ms + 2 >= *want_ms,
            "restart #{} after {delay_ms} ms, wanted >= {want_ms} ms",
            n + 1
        );
        assert!(!alive(pid));
    }
    let log = tv.system_log();
    assert!(log.contains("exited with signal SIGKILL"), "{log}");
    assert!(log.contains("restarting in 800ms"), "{log}");
    assert!(log.contains("restart #4"), "{log}");
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
}

/// An exit by a real-time signal (one nix's `Signal` has no name for) is seen and
/// restarted like any crash.
#[cfg(target_os = "linux")]
#[test]
fn a_child_killed_by_a_real_time_signal_is_restarted() {
    let tv = TestVault::new();
    let m = tv.path("m");
    let backoff = "backoff = { initial = \"0s\" }";
    tv.write_config(&format!(
        "{FAST}{}",
        sh_process("w", &recorder(&m), backoff)
    ));
    let mut sup = tv.start();
    assert!(
        wait_until(Duration::from_secs(10), || starts(&m).len() == 1),
        "{}",
        tv.system_log()
    );
    let (pid, _) = starts(&m)[0];
    signal(pid, 40);
    assert!(
        wait_until(Duration::from_secs(10), || starts(&m).len() == 2),
        "no restart after signal 40\n{}",
        tv.system_log()
    );
    let log = tv.system_log();
    assert!(log.contains("exited with signal 40 after"), "{log}");
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
}

#[test]
fn a_crashing_child_follows_the_backoff_sequence() {
    let tv = TestVault::new();
    let m = tv.path("m");
    let script = format!("echo \"start $$ $(date +%s%N)\" >> {}; exit 3", m.display());
    let backoff =
        "backoff = { initial = \"100ms\", factor = 2, max = \"400ms\", reset_after = \"1m\" }";
    tv.write_config(&format!("{FAST}{}", sh_process("crash", &script, backoff)));
    let mut sup = tv.start();
    assert!(
        wait_until(Duration::from_secs(15), || starts(&m).len() >= 6),
        "{}",
        tv.system_log()
    );
    let s = starts(&m);
    let gaps: Vec<u128> = s
        .windows(2)
        .map(|w| (w[1].1 - w[0].1) / 1_000_000)
        .collect();
    for (gap, want) in gaps.iter().zip([100u128, 200, 400, 400, 400]) {
        assert!(*gap + 2 >= want, "gaps {gaps:?}");
    }
    assert!(tv.system_log().contains("exited with code 3"));
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_at_stop_timeout_with_its_grandchild() {
    let tv = TestVault::new();
    let gc = tv.path("gc.pid");
    let ready = tv.path("ready");
    let script = format!(
        "trap '' TERM; sleep 1000 & echo $! > {gc}; echo $$ > {ready}; while :; do sleep 1; done",
        gc = gc.display(),
        ready = ready.display()
    );
    tv.write_config(&format!(
        "[supervisor]\nstop_timeout = \"1s\"\n\n{}",
        sh_process("stubborn", &script, "")
    ));
    let mut sup = tv.start();
    assert!(wait_until(Duration::from_secs(10), || tv
        .read("ready")
        .trim()
        .parse::<i32>()
        .is_ok()));
    let child: i32 = tv.read("ready").trim().parse().unwrap_or(0);
    let grandchild: i32 = tv.read("gc.pid").trim().parse().unwrap_or(0);
    assert!(alive(child) && alive(grandchild));
    let t0 = Instant::now();
    sup.signal(libc::SIGTERM);
    let st = sup
        .wait_exit(Duration::from_secs(10))
        .expect("supervisor did not exit");
    let took = t0.elapsed();
    assert_eq!(st.code(), Some(0));
    assert!(
        took >= Duration::from_millis(1000),
        "exited after {took:?}, before stop_timeout"
    );
    assert!(wait_until(Duration::from_secs(2), || !alive(child)
        && !alive(grandchild)));
    let log = tv.system_log();
    assert!(
        log.contains("did not stop within 1s; sending SIGKILL"),
        "{log}"
    );
}

#[test]
fn ctrl_c_during_backoff_cancels_the_pending_restart() {
    let tv = TestVault::new();
    let m = tv.path("m");
    let script = format!("echo \"start $$ $(date +%s%N)\" >> {}; exit 1", m.display());
    tv.write_config(&format!(
        "{FAST}{}",
        sh_process("w", &script, "backoff = { initial = \"3s\" }")
    ));
    let mut sup = tv.start();
    assert!(wait_until(Duration::from_secs(10), || tv
        .system_log()
        .contains("restarting in 3s")));
    let t0 = Instant::now();
    sup.signal(libc::SIGINT);
    let st = sup.wait_exit(Duration::from_secs(10)).expect("no exit");
    assert_eq!(st.code(), Some(0));
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "waited for the backoff: {:?}",
        t0.elapsed()
    );
    assert_eq!(starts(&m).len(), 1, "a child was spawned during shutdown");
    let log = tv.system_log();
    assert!(log.contains("pending restart cancelled"), "{log}");
    assert!(tv.dashboard().contains("✗ Offline"));
}

#[test]
fn sigkill_of_the_supervisor_takes_children_and_grandchildren_down() {
    let tv = TestVault::new();
    let mut table = String::from(FAST);
    for i in 0..5 {
        let script = format!(
            "sleep 1000 & echo $! >> {gc}; echo $$ >> {c}; exec sleep 1000",
            gc = tv.path("gc").display(),
            c = tv.path("c").display()
        );
        table.push_str(&sh_process(&format!("w{i}"), &script, ""));
    }
    tv.write_config(&table);
    let mut sup = tv.start();
    let pids = |f: &str| -> Vec<i32> {
        tv.read(f)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    assert!(wait_until(Duration::from_secs(10), || pids("c").len() == 5
        && pids("gc").len() == 5));
    let all: Vec<i32> = pids("c").into_iter().chain(pids("gc")).collect();
    assert!(all.iter().all(|p| alive(*p)));
    sup.signal(libc::SIGKILL);
    let _ = sup.wait_exit(Duration::from_secs(5));
    assert!(
        wait_until(Duration::from_secs(2), || all.iter().all(|p| !alive(*p))),
        "still alive 2 s after kill -9: {:?}",
        all.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
}

#[test]
fn one_supervisor_per_vault_and_a_stale_lock_does_not_block() {
    let tv = TestVault::new();
    let m = tv.path("m");
    tv.write_config(&format!("{FAST}{}", sh_process("w", &recorder(&m), "")));
    let mut first = tv.start();
    assert!(wait_until(Duration::from_secs(10), || starts(&m).len() == 1));
    let mut second = tv.start();
    let st = second
        .wait_exit(Duration::from_secs(10))
        .expect("second supervisor kept running");
    assert_eq!(st.code(), Some(75));
    let err = second.console();
    assert!(
        err.contains(&format!("already supervised by pid {}", first.pid())),
        "{err}"
    );
    // A supervisor killed outright leaves its lock file behind; it must not block.
    first.signal(libc::SIGKILL);
    let _ = first.wait_exit(Duration::from_secs(5));
    let mut third = tv.start();
    assert!(
        wait_until(Duration::from_secs(10), || starts(&m).len() == 2),
        "{}",
        third.console()
    );
    assert_eq!(third.stop().map(|s| s.code()), Some(Some(0)));
}

#[test]
fn exit_78_means_needs_setup_and_no_restart() {
    let tv = TestVault::new();
    let m = tv.path("m");
    let script = format!(
        "echo \"start $$ $(date +%s%N)\" >> {}; echo 'missing credentials' >&2; exit 78",
        m.display()
    );
    tv.write_config(&format!(
        "{FAST}{}",
        sh_process("setup", &script, "backoff = { initial = \"0s\" }")
    ));
    let mut sup = tv.start();
    assert!(
        wait_until(Duration::from_secs(10), || tv
            .dashboard()
            .contains("Needs Setup")),
        "{}",
        tv.dashboard()
    );
    // Nothing failed: the system waits for set-up, it is not degraded.
    assert!(
        wait_until(Duration::from_secs(10), || {
            tv.dashboard().contains(
            "| ⚙ Needs Setup | System Online (0 running); waiting for set-up: setup (run `ai-employee setup`) |"
        )
        }),
        "{}",
        tv.dashboard()
    );
    assert!(!tv.dashboard().contains("⚠ Degraded"), "{}", tv.dashboard());
    assert_eq!(starts(&m).len(), 1);
    assert!(wait_until(Duration::from_secs(5), || tv
        .read("vault/Logs/setup.log")
        .contains("missing credentials")));
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
    assert_eq!(starts(&m).len(), 1, "restarted after exit 78");
}

#[test]
fn child_output_goes_to_its_log_and_dashboard_shows_online_then_offline() {
    let tv = TestVault::new();
    let script = "echo hello from stdout; echo hello from stderr >&2; exec sleep 1000";
    tv.write_config(&format!("{FAST}{}", sh_process("talker", script, "")));
    let mut sup = tv.start();
    assert!(wait_until(Duration::from_secs(10), || {
        let l = tv.read("vault/Logs/talker.log");
        l.contains("hello from stdout") && l.contains("hello from stderr")
    }));
    assert!(wait_until(Duration::from_secs(10), || tv
        .dashboard()
        .contains("✓ Online")));
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
    let d = tv.dashboard();
    let offline = d.find("✗ Offline").expect("offline row");
    let online = d.find("✓ Online").expect("online row");
    assert!(offline < online, "newest first:\n{d}");
    let console = sup.console();
    assert!(console.contains("Session statistics"), "{console}");
    assert!(console.contains("talker"), "{console}");
}

#[test]
fn reload_changes_exactly_the_entries_it_should() {
    let tv = TestVault::new();
    let pidfile = |n: &str| tv.path(&format!("{n}.pid"));
    let script = |n: &str, v: &str| {
        format!(
            "echo $$ >> {}; echo {v} > /dev/null; exec sleep 1000",
            pidfile(n).display()
        )
    };
    let table = |entries: &[(&str, &str, &str)]| {
        let mut t = String::from(FAST);
        for (n, v, extra) in entries {
            t.push_str(&sh_process(n, &script(n, v), extra));
        }
        t
    };
    tv.write_config(&table(&[
        ("keep", "1", ""),
        ("change", "1", ""),
        ("remove", "1", ""),
        ("disable", "1", ""),
    ]));
    let mut sup = tv.start();
    let pids = |n: &str| -> Vec<i32> {
        tv.read(&format!("{n}.pid"))
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    };
    assert!(wait_until(Duration::from_secs(10), || [
        "keep", "change", "remove", "disable"
    ]
    .iter()
    .all(|n| pids(n).len() == 1)));
    let keep = pids("keep")[0];
    let change = pids("change")[0];
    let remove = pids("remove")[0];
    let disable = pids("disable")[0];
    tv.write_config(&table(&[
        (
            "keep",
            "1",
            "description = \"only the description changed\"",
        ),
        ("change", "2", ""),
        ("disable", "1", "enabled = false"),
        ("added", "1", ""),
    ]));
    sup.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || pids("change").len() == 2
            && pids("added").len() == 1
            && !alive(remove)
            && !alive(disable)),
        "{}",
        tv.system_log()
    );
    assert!(alive(keep), "untouched child was restarted");
    assert_eq!(pids("keep"), vec![keep]);
    assert!(!alive(change));
    assert!(alive(pids("change")[1]));
    assert_eq!(
        pids("disable").len(),
        1,
        "a disabled entry was started again"
    );
    let log = tv.system_log();
    assert!(
        log.contains(
            "reload: added added; removed remove; changed change; disabled disable; 1 unchanged"
        ),
        "{log}"
    );
    // A broken table is refused and nothing changes.
    tv.write_config("[[process]]\nname = 1\n");
    sup.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(10), || tv
        .system_log()
        .contains("keeping the current process table")));
    assert!(alive(keep) && alive(pids("change")[1]) && alive(pids("added")[0]));
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
}

#[test]
fn a_stale_heartbeat_restarts_the_child() {
    let tv = TestVault::new();
    let m = tv.path("m");
    // Beats once, then goes quiet.
    let script = format!(
        "echo \"start $$ $(date +%s%N)\" >> {}; touch \"$AI_EMPLOYEE_HEARTBEAT\"; exec sleep 1000",
        m.display()
    );
    tv.write_config(&format!(
        "[supervisor]\nhealth_interval = \"100ms\"\nstop_timeout = \"2s\"\n\n{}",
        sh_process(
            "quiet",
            &script,
            "heartbeat_timeout = \"300ms\"\nbackoff = { initial = \"0s\" }"
        )
    ));
    let mut sup = tv.start();
    assert!(
        wait_until(Duration::from_secs(10), || starts(&m).len() >= 2),
        "{}",
        tv.system_log()
    );
    let s = starts(&m);
    assert!(
        (s[1].1 - s[0].1) / 1_000_000 >= 300,
        "restarted before the heartbeat went stale"
    );
    assert!(
        tv.system_log().contains("health check failed: heartbeat"),
        "{}",
        tv.system_log()
    );
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
}

#[test]
fn a_child_over_max_memory_is_restarted() {
    let tv = TestVault::new();
    let m = tv.path("m");
    let script = format!(
        "echo \"start $$ $(date +%s%N)\" >> {}; exec sleep 1000",
        m.display()
    );
    // sleep(1) needs well over 4 KiB resident.
    tv.write_config(&format!(
        "[supervisor]\nhealth_interval = \"100ms\"\n\n{}",
        sh_process(
            "big",
            &script,
            "max_memory = \"4KiB\"\nbackoff = { initial = \"0s\" }"
        )
    ));
    let mut sup = tv.start();
    assert!(
        wait_until(Duration::from_secs(10), || starts(&m).len() >= 2),
        "{}",
        tv.system_log()
    );
    assert!(
        tv.system_log().contains("over max_memory"),
        "{}",
        tv.system_log()
    );
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
}

#[test]
fn a_bad_table_exits_78_with_file_line_column() {
    let tv = TestVault::new();
    tv.write_config(
        "[[process]]\nname = \"x\"\ncommand = \"/bin/true\"\nrestart = \"sometimes\"\n",
    );
    let mut sup = tv.start();
    let st = sup.wait_exit(Duration::from_secs(10)).expect("no exit");
    assert_eq!(st.code(), Some(78));
    let err = sup.console();
    assert!(
        err.starts_with(&format!("{}:4:", tv.config.display())),
        "{err}"
    );
}

#[test]
fn a_second_ctrl_c_kills_at_once() {
    let tv = TestVault::new();
    let ready = tv.path("ready");
    let script = format!(
        "trap '' TERM INT; echo $$ > {}; while :; do sleep 1; done",
        ready.display()
    );
    tv.write_config(&format!(
        "[supervisor]\nstop_timeout = \"30s\"\n\n{}",
        sh_process("stubborn", &script, "")
    ));
    let mut sup = tv.start();
    assert!(wait_until(Duration::from_secs(10), || tv
        .read("ready")
        .trim()
        .parse::<i32>()
        .is_ok()));
    let child: i32 = tv.read("ready").trim().parse().unwrap_or(0);
    sup.signal(libc::SIGINT);
    assert!(wait_until(Duration::from_secs(10), || tv
        .system_log()
        .contains("stopping all children")));
    let t0 = Instant::now();
    sup.signal(libc::SIGINT);
    let st = sup
        .wait_exit(Duration::from_secs(10))
        .expect("no exit after the second Ctrl+C");
    assert_eq!(st.code(), Some(130));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    assert!(wait_until(Duration::from_secs(2), || !alive(child)));
    assert!(tv.dashboard().contains("forced shutdown"));
}

#[test]
fn a_crash_loop_writes_one_degraded_row_not_one_per_restart() {
    let tv = TestVault::new();
    let m = tv.path("m");
    let script = format!("echo \"start $$ $(date +%s%N)\" >> {}; exit 1", m.display());
    let mut table = String::from(FAST);
    table.push_str(&sh_process(
        "loop",
        &script,
        "backoff = { initial = \"20ms\", max = \"40ms\" }",
    ));
    table.push_str(&sh_process("steady", "exec sleep 1000", ""));
    tv.write_config(&table);
    let mut sup = tv.start();
    assert!(wait_until(Duration::from_secs(20), || starts(&m).len() >= 40));
    assert!(wait_until(Duration::from_secs(10), || tv
        .dashboard()
        .contains("⚠ Degraded")));
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
    let d = tv.dashboard();
    let degraded: Vec<&str> = d.lines().filter(|l| l.contains("⚠ Degraded")).collect();
    assert_eq!(degraded.len(), 1, "{d}");
    assert!(degraded[0].contains("loop restarting"), "{d}");
    assert!(
        !d.contains("✓ Online"),
        "a crash loop is never online:\n{d}"
    );
}

#[test]
fn a_stopped_process_fails_its_health_check() {
    let tv = TestVault::new();
    let m = tv.path("m");
    tv.write_config(&format!(
        "[supervisor]\nhealth_interval = \"100ms\"\n\n{}",
        sh_process("w", &recorder(&m), "backoff = { initial = \"0s\" }")
    ));
    let mut sup = tv.start();
    assert!(wait_until(Duration::from_secs(10), || starts(&m).len() == 1));
    let (pid, _) = starts(&m)[0];
    signal(pid, libc::SIGSTOP);
    assert!(
        wait_until(Duration::from_secs(10), || starts(&m).len() == 2),
        "{}",
        tv.system_log()
    );
    // The log is written by its own thread: the line may land just after the restart.
    assert!(
        wait_until(Duration::from_secs(5), || tv
            .system_log()
            .contains("process is stopped")),
        "{}",
        tv.system_log()
    );
    assert!(wait_until(Duration::from_secs(5), || !alive(pid)));
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
}

#[test]
fn leftovers_of_a_dead_supervisor_are_cleaned_up_but_reused_pids_are_not_touched() {
    use std::os::unix::process::CommandExt;
    let tv = TestVault::new();
    // Two unrelated process groups: one recorded with its true start time (a leftover of
    // a previous supervisor), one recorded with a different start time (a reused pid).
    let spawn_group = || {
        std::process::Command::new("/bin/sleep")
            .arg("1000")
            .process_group(0)
            .spawn()
            .expect("spawn sleep")
    };
    let mut leftover = spawn_group();
    let mut stranger = spawn_group();
    let start_time = |pid: u32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let rest = &s[s.rfind(')').map(|i| i + 2).unwrap_or(0)..];
        rest.split_whitespace()
            .nth(19)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let state = tv.vault.join(".ai-employee");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("children"),
        format!(
            "+{} {} old\n+{} {} reused\n",
            leftover.id(),
            start_time(leftover.id()),
            stranger.id(),
            start_time(stranger.id()) + 1
        ),
    )
    .unwrap();
    tv.write_config(&format!("{FAST}{}", sh_process("w", "exec sleep 1000", "")));
    let mut sup = tv.start();
    let st = wait_child(&mut leftover, Duration::from_secs(10));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        st.and_then(|s| s.signal()),
        Some(libc::SIGKILL),
        "leftover not killed"
    );
    assert!(
        matches!(stranger.try_wait(), Ok(None)),
        "a reused pid was killed"
    );
    // The kill comes first; its log line reaches system.log through the log writer.
    assert!(
        wait_until(Duration::from_secs(10), || tv
            .system_log()
            .contains("left running by a previous supervisor")),
        "{}",
        tv.system_log()
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
}

#[test]
fn a_killed_guardian_is_replaced_and_still_protects_the_children() {
    let tv = TestVault::new();
    let c = tv.path("c");
    tv.write_config(&format!(
        "{FAST}{}",
        sh_process(
            "w",
            &format!("echo $$ > {}; exec sleep 1000", c.display()),
            ""
        )
    ));
    let mut sup = tv.start();
    assert!(wait_until(Duration::from_secs(10), || tv
        .read("c")
        .trim()
        .parse::<i32>()
        .is_ok()));
    let child: i32 = tv.read("c").trim().parse().unwrap_or(0);
    let guardians = || -> Vec<i32> {
        let out = std::process::Command::new("pgrep")
            .args(["-P", &sup.pid().to_string()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        out.lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .filter(|p| *p != child)
            .collect()
    };
    assert!(wait_until(Duration::from_secs(5), || guardians().len() == 1));
    let first = guardians()[0];
    signal(first, libc::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(5), || guardians().len() == 1
            && guardians()[0] != first),
        "{}",
        tv.system_log()
    );
    sup.signal(libc::SIGKILL);
    let _ = sup.wait_exit(Duration::from_secs(5));
    assert!(
        wait_until(Duration::from_secs(2), || !alive(child)),
        "child outlived the supervisor"
    );
}

#[test]
fn systemd_notify_ready_watchdog_and_stopping() {
    let tv = TestVault::new();
    let sock_path = tv.path("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    tv.write_config(&format!(
        "{FAST}{}",
        sh_process("w", "env; exec sleep 1000", "")
    ));
    let mut sup = tv.start_with(&[
        ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "200000"),
    ]);
    let mut got = Vec::<String>::new();
    let recv_until = |want: &str, got: &mut Vec<String>| {
        let end = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 512];
        while Instant::now() < end {
            if let Ok(n) = sock.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).to_string());
                if got.last().is_some_and(|m| m.contains(want)) {
                    return true;
                }
            }
        }
        false
    };
    assert!(recv_until("READY=1", &mut got), "{got:?}");
    assert!(recv_until("WATCHDOG=1", &mut got), "{got:?}");
    assert!(recv_until("WATCHDOG=1", &mut got), "{got:?}");
    sup.signal(libc::SIGTERM);
    assert!(recv_until("STOPPING=1", &mut got), "{got:?}");
    assert_eq!(
        sup.wait_exit(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
    // The child gets its heartbeat path and the vault, not the service manager's socket.
    let env = tv.read("vault/Logs/w.log");
    assert!(env.contains("AI_EMPLOYEE_HEARTBEAT="), "{env}");
    assert!(env.contains("AI_EMPLOYEE_VAULT="), "{env}");
    assert!(
        !env.contains("NOTIFY_SOCKET") && !env.contains("WATCHDOG_USEC"),
        "{env}"
    );
}

#[test]
fn sigterm_during_start_up_still_shuts_down_cleanly() {
    for _ in 0..5 {
        let tv = TestVault::new();
        let c = tv.path("c");
        let mut table = String::from(FAST);
        for i in 0..20 {
            table.push_str(&sh_process(
                &format!("w{i}"),
                &format!("echo $$ >> {}; exec sleep 1000", c.display()),
                "",
            ));
        }
        tv.write_config(&table);
        let mut sup = tv.start();
        let lock = tv.vault.join(".ai-employee/supervisor.lock");
        let pid = sup.pid().to_string();
        assert!(wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&lock).is_ok_and(|t| t.trim() == pid)
        }));
        sup.signal(libc::SIGTERM);
        let st = sup.wait_exit(Duration::from_secs(10)).expect("no exit");
        assert_eq!(st.code(), Some(0), "{}", sup.console());
        let started: Vec<i32> = tv
            .read("c")
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        assert!(wait_until(Duration::from_secs(2), || started
            .iter()
            .all(|p| !alive(*p))));
    }
}

/// After a `kill -9` of the supervisor, the next start says so: a log line and an Offline
/// row naming the previous pid and when it was last seen. A clean stop says nothing.
#[test]
fn the_start_after_a_kill_9_says_the_previous_run_ended_uncleanly() {
    let tv = TestVault::new();
    tv.write_config(&format!("{FAST}{}", sh_process("w", "exec sleep 1000", "")));
    let mut first = tv.start();
    assert!(wait_until(Duration::from_secs(10), || tv
        .system_log()
        .contains("started w (pid")));
    let first_pid = first.pid();
    first.signal(libc::SIGKILL);
    let _ = first.wait_exit(Duration::from_secs(5));
    let killed_at = chrono::Local::now();

    let mut second = tv.start();
    let said = format!("the previous run (pid {first_pid}) ended without a clean stop");
    assert!(
        wait_until(Duration::from_secs(10), || tv.system_log().contains(&said)),
        "{}",
        tv.system_log()
    );
    assert!(second.console().contains(&said), "{}", second.console());
    assert!(
        wait_until(Duration::from_secs(10), || tv.dashboard().contains(&said)),
        "{}",
        tv.dashboard()
    );
    // "last seen at" the time of the kill, to the second (the file times it is read from
    // were written just before).
    let line = tv
        .system_log()
        .lines()
        .find(|l| l.contains(&said))
        .unwrap()
        .to_string();
    let seen = line
        .rsplit("last seen at ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    let seen = chrono::NaiveDateTime::parse_from_str(&seen, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("{e}: {line}"));
    let gap = killed_at.naive_local().signed_duration_since(seen);
    assert!((0..=5).contains(&gap.num_seconds()), "{line}");
    assert_eq!(second.stop().map(|s| s.code()), Some(Some(0)));

    // After that clean stop, the next start is quiet.
    let mut third = tv.start();
    assert!(wait_until(Duration::from_secs(10), || tv
        .system_log()
        .matches("started w (pid")
        .count()
        == 3));
    assert_eq!(third.stop().map(|s| s.code()), Some(Some(0)));
    assert_eq!(tv.system_log().matches("without a clean stop").count(), 1);
}

/// What the console and the log say at a stop by SIGTERM, in one small session: no
/// "Ctrl+C again" (nobody can press it), singular counts, a disabled child called
/// disabled, and the pid once per line.
#[test]
fn a_sigterm_session_is_told_as_it_is() {
    let tv = TestVault::new();
    tv.write_config(&format!(
        "{FAST}{}{}",
        sh_process("w", "exec sleep 1000", ""),
        sh_process("off", "exec sleep 1000", "enabled = false")
    ));
    let mut sup = tv.start();
    assert!(wait_until(Duration::from_secs(10), || sup
        .console()
        .contains("1 process started")));
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
    let console = sup.console();
    assert!(console.contains("(2 processes, 1 enabled)"), "{console}");
    assert!(
        console.contains("received SIGTERM: stopping all children\n"),
        "{console}"
    );
    assert!(!console.contains("Ctrl+C again"), "{console}");
    assert!(console.contains(", 1 start, 0 restarts"), "{console}");
    let off = console
        .lines()
        .find(|l| l.trim_start().starts_with("off "))
        .unwrap_or_else(|| panic!("{console}"));
    assert!(off.contains("disabled"), "{off}");
    let log = tv.system_log();
    let started = log.lines().find(|l| l.contains("started w (pid")).unwrap();
    assert!(!started.contains("pid="), "{started}");
    assert!(
        log.contains("1 start, 0 restarts, 0 manual starts, 0 crashes"),
        "{log}"
    );
}

/// Child output is stamped with the time each line was read, a line written in two
/// pieces once; `log_timestamps = false` leaves it as written.
#[test]
fn child_log_lines_carry_the_time_they_were_read() {
    let tv = TestVault::new();
    tv.write_config(&format!(
        "{FAST}{}{}",
        sh_process(
            "stamped",
            "printf 'first\\n'; printf 'half '; sleep 0.2; printf 'and half\\n'; exec sleep 1000",
            ""
        ),
        sh_process(
            "plain",
            "echo as written; exec sleep 1000",
            "log_timestamps = false"
        )
    ));
    let mut sup = tv.start();
    assert!(wait_until(Duration::from_secs(10), || tv
        .read("vault/Logs/stamped.log")
        .contains("and half\n")
        && tv.read("vault/Logs/plain.log").contains("as written")));
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
    let log = tv.read("vault/Logs/stamped.log");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    let today = chrono::Local::now().format("%Y-%m-%d ").to_string();
    for (line, text) in lines.iter().zip(["first", "half and half"]) {
        // `2026-12-06 20:31:05.123 text`
        assert!(line.starts_with(&today), "{line}");
        assert_eq!(&line[24..], text, "{line}");
        assert!(
            chrono::NaiveDateTime::parse_from_str(&line[..23], "%Y-%m-%d %H:%M:%S%.3f").is_ok(),
            "{line}"
        );
    }
    assert_eq!(tv.read("vault/Logs/plain.log"), "as written\n");
}

#[test]
fn a_child_is_told_its_heartbeat_timeout_and_only_its_own() {
    let tv = TestVault::new();
    tv.write_config(&format!(
        "{FAST}{}{}",
        sh_process("told", "env; exec sleep 1000", "heartbeat_timeout = \"9s\""),
        sh_process("untold", "env; exec sleep 1000", "")
    ));
    // One from a supervisor above this one (its own child's) must not pass through.
    let mut sup = tv.start_with(&[("AI_EMPLOYEE_HEARTBEAT_USEC", "7")]);
    let env_of = |name: &str| tv.read(&format!("vault/Logs/{name}.log"));
    assert!(
        wait_until(Duration::from_secs(10), || env_of("told")
            .contains("AI_EMPLOYEE_VAULT=")
            && env_of("untold").contains("AI_EMPLOYEE_VAULT=")),
        "{}",
        tv.system_log()
    );
    let told = env_of("told");
    assert!(
        told.lines()
            .any(|l| l.ends_with(" AI_EMPLOYEE_HEARTBEAT_USEC=9000000")),
        "{told}"
    );
    assert!(
        !env_of("untold").contains("AI_EMPLOYEE_HEARTBEAT_USEC"),
        "{}",
        env_of("untold")
    );
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)));
}

/// The watchers that sleep until their next event or check (the filesystem watcher, the
/// approval handler) wake for their heartbeat too: under a 3 s timeout (a beat every
/// second), neither is restarted for it, though both would sleep longer without it.
#[test]
fn sleeping_watchers_beat_often_enough_for_a_short_heartbeat_timeout() {
    let tv = TestVault::new();
    tv.write_config(
        "[supervisor]\nhealth_interval = \"100ms\"\nstop_timeout = \"5s\"\n\n\
         [[process]]\nname = \"filesystem\"\ncommand = \"ai-employee\"\n\
         args = [\"watch\", \"filesystem\"]\nheartbeat_timeout = \"3s\"\n\n\
         [[process]]\nname = \"approvals\"\ncommand = \"ai-employee\"\n\
         args = [\"watch\", \"approvals\"]\nheartbeat_timeout = \"3s\"\n",
    );
    let mut sup = tv.start();
    let mtime = |name: &str| {
        std::fs::symlink_metadata(tv.vault.join(".ai-employee/heartbeat").join(name))
            .and_then(|m| m.modified())
            .ok()
    };
    // Eight beats of each seen: more than twice the timeout with the same children.
    let mut seen: [Vec<std::time::SystemTime>; 2] = [Vec::new(), Vec::new()];
    let eight = wait_until(Duration::from_secs(30), || {
        for (i, name) in ["filesystem", "approvals"].iter().enumerate() {
            if let Some(m) = mtime(name)
                && seen[i].last() != Some(&m)
            {
                seen[i].push(m);
            }
        }
        seen.iter().all(|s| s.len() >= 8)
    });
    let log = tv.system_log();
    assert!(
        eight,
        "beats seen: filesystem {}, approvals {}\n{log}",
        seen[0].len(),
        seen[1].len()
    );
    assert!(
        !log.contains("health check failed"),
        "restarted for its heartbeat:\n{log}"
    );
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)), "{log}");
}

#[test]
fn the_task_loop_beats_often_enough_for_a_short_heartbeat_timeout() {
    let tv = TestVault::new();
    // 1.5 s: a third of it is 0.5 s, well under the 10 s a child beats at by default.
    tv.write_config(&format!(
        "[supervisor]\nhealth_interval = \"100ms\"\nstop_timeout = \"5s\"\n\n\
         [agent]\ncommand = [\"/bin/true\", \"-p\", \"{{prompt}}\"]\n\n\
         [[process]]\nname = \"agent\"\ncommand = \"ai-employee\"\n\
         args = [\"agent\", \"--config\", {:?}]\nheartbeat_timeout = \"1500ms\"\n",
        tv.config.display().to_string()
    ));
    let mut sup = tv.start();
    let beat = tv.vault.join(".ai-employee/heartbeat/agent");
    let mtime = || {
        std::fs::symlink_metadata(&beat)
            .and_then(|m| m.modified())
            .ok()
    };
    // Five beats seen: more than three timeouts' worth of time with the same child.
    let mut seen = Vec::new();
    let five = wait_until(Duration::from_secs(20), || {
        if let Some(m) = mtime()
            && seen.last() != Some(&m)
        {
            seen.push(m);
        }
        seen.len() >= 5
    });
    let log = tv.system_log();
    assert!(five, "{} beats seen\n{log}", seen.len());
    assert!(
        !log.contains("health check failed"),
        "restarted for its heartbeat:\n{log}"
    );
    assert_eq!(sup.stop().map(|s| s.code()), Some(Some(0)), "{log}");
}
