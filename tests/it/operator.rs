//! The operator surface against a running supervisor with real children: `status`
//! (table, JSON, exit codes), `start` / `stop` / `restart`, `reload`, `logs -f` across
//! rotation, the control socket's owner check (a second uid), the metrics endpoint, and
//! `[[notify]]` webhooks (a receiver on loopback, one that hangs, one that is down).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{BIN, Supervisor, TestVault, alive, read_http_request, sh_process, wait_until};

const LONG: Duration = Duration::from_secs(20);

fn ctl(tv: &TestVault, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--vault")
        .arg(&tv.vault)
        .env_remove("AI_EMPLOYEE_VAULT")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run ai-employee")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn status_json(tv: &TestVault) -> (i32, Value) {
    let o = ctl(tv, &["status", "--json"]);
    let v = serde_json::from_slice(&o.stdout)
        .or_else(|_| serde_json::from_slice(&o.stderr))
        .unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), v)
}

fn child<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["children"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

fn state(tv: &TestVault, name: &str) -> String {
    let (_, v) = status_json(tv);
    child(&v, name)["state"].as_str().unwrap_or("").to_string()
}

/// Start the supervisor and wait until its socket answers and `ready` holds.
fn start(tv: &TestVault, ready: impl Fn(&Value) -> bool) -> Supervisor {
    let sup = tv.start();
    assert!(
        wait_until(LONG, || {
            let (code, v) = status_json(tv);
            code != 3 && ready(&v)
        }),
        "supervisor not ready: {}\n{}",
        sup.console(),
        tv.system_log()
    );
    sup
}

const SLEEPER: &str = "[[process]]\nname = \"sleeper\"\ncommand = \"sleep\"\nargs = [\"1000\"]\n";

/// Every state `status` shows, in one table.
fn all_states_table() -> String {
    format!(
        "{SLEEPER}\n{}{}{}{}",
        sh_process(
            "crasher",
            "exit 3",
            "backoff = { initial = \"1h\", max = \"1h\" }"
        ),
        sh_process("setup", "echo missing credentials >&2; exit 78", ""),
        sh_process(
            "hopeless",
            "exit 1",
            "backoff = { initial = \"0s\" }\nmax_restarts = 1\nrestart_window = \"1m\""
        ),
        "[[process]]\nname = \"off\"\ncommand = \"sleep\"\nargs = [\"1\"]\nenabled = false\n",
    )
}

fn all_states_ready(v: &Value) -> bool {
    child(v, "sleeper")["state"] == "running"
        && child(v, "crasher")["state"] == "backoff"
        && child(v, "setup")["state"] == "needs-setup"
        && child(v, "hopeless")["state"] == "fatal"
}

/// The table with what changes from run to run (pids, times, sizes, paths) replaced.
fn normalize_table(s: &str, tv: &TestVault) -> String {
    let vault = tv.vault.display().to_string();
    let table = tv.config.display().to_string();
    s.lines()
        .map(|l| {
            if l.starts_with("ai-employee ") {
                return "ai-employee [version] · pid [pid] · up [uptime] · degraded".to_string();
            }
            let l = l.replace(&vault, "[vault]").replace(&table, "[table]");
            let cells: Vec<&str> = l
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            if cells.len() == 8 && cells[0] != "NAME" {
                let v = |c: &str, tag: &str| {
                    if c == "-" {
                        "-".to_string()
                    } else {
                        tag.to_string()
                    }
                };
                let state = if cells[1].starts_with("backoff (") {
                    "backoff ([left])"
                } else {
                    cells[1]
                };
                return [
                    cells[0].to_string(),
                    state.to_string(),
                    v(cells[2], "[pid]"),
                    v(cells[3], "[uptime]"),
                    cells[4].to_string(),
                    cells[5].to_string(),
                    v(cells[6], "[rss]"),
                    v(cells[7], "[cpu]"),
                ]
                .join(" | ");
            }
            if cells.len() == 8 {
                return cells.join(" | ");
            }
            l
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The JSON with run-to-run values replaced by their kind.
fn normalize_json(mut v: Value, tv: &TestVault) -> Value {
    let sup = &mut v["supervisor"];
    for k in ["pid", "uptime_secs", "started_at", "version"] {
        sup[k] = Value::String(format!("[{k}]"));
    }
    sup["vault"] = Value::String(
        sup["vault"]
            .as_str()
            .unwrap_or("")
            .replace(&tv.vault.display().to_string(), "[vault]"),
    );
    sup["table"] = Value::String(
        sup["table"]
            .as_str()
            .unwrap_or("")
            .replace(&tv.config.display().to_string(), "[table]"),
    );
    if let Some(children) = v["children"].as_array_mut() {
        for c in children {
            for k in [
                "pid",
                "uptime_secs",
                "rss_bytes",
                "cpu_percent",
                "cpu_seconds",
                "backoff_left_secs",
            ] {
                if !c[k].is_null() {
                    c[k] = Value::String(format!("[{k}]"));
                }
            }
        }
    }
    v
}

#[test]
fn status_table_and_json_show_every_state_and_exit_1_when_degraded() {
    let tv = TestVault::new();
    tv.write_config(&all_states_table());
    let mut sup = start(&tv, all_states_ready);
    let o = ctl(&tv, &["status"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    insta::assert_snapshot!("status_table", normalize_table(&text(&o), &tv));
    let (code, v) = status_json(&tv);
    assert_eq!(code, 1);
    assert_eq!(v["supervisor"]["pid"], sup.pid());
    insta::assert_snapshot!(
        "status_json",
        serde_json::to_string_pretty(&normalize_json(v.clone(), &tv)).unwrap()
    );
    // The sleeper's pid is a live process, the others have none.
    let pid = child(&v, "sleeper")["pid"].as_i64().unwrap() as i32;
    assert!(alive(pid));
    assert!(child(&v, "sleeper")["rss_bytes"].as_u64().unwrap() > 0);
    assert!(child(&v, "crasher")["backoff_left_secs"].as_f64().unwrap() > 3000.0);
    assert!(sup.stop().is_some());
}

#[test]
fn status_exit_codes_healthy_degraded_not_running() {
    let tv = TestVault::new();
    tv.write_config(SLEEPER);
    // Not running: 3, table and JSON alike.
    let o = ctl(&tv, &["status"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(err(&o).contains("not running"), "{}", err(&o));
    let (code, v) = status_json(&tv);
    assert_eq!((code, v["health"].as_str()), (3, Some("not_running")));

    let mut sup = start(&tv, |v| child(v, "sleeper")["state"] == "running");
    assert_eq!(ctl(&tv, &["status"]).status.code(), Some(0));
    let (code, v) = status_json(&tv);
    assert_eq!((code, v["health"].as_str()), (0, Some("healthy")));

    // A child stopped by the operator is not a problem: still healthy.
    assert_eq!(ctl(&tv, &["stop", "sleeper"]).status.code(), Some(0));
    assert_eq!(status_json(&tv).0, 0);

    // Add a child that needs setup: nothing failed, so not degraded but needs setup, 5
    // (a fresh install looks like this).
    tv.write_config(&format!(
        "{SLEEPER}\n{}",
        sh_process("setup", "exit 78", "")
    ));
    assert_eq!(ctl(&tv, &["reload"]).status.code(), Some(0));
    assert!(wait_until(LONG, || state(&tv, "setup") == "needs-setup"));
    let (code, v) = status_json(&tv);
    assert_eq!((code, v["health"].as_str()), (5, Some("needs_setup")));
    // And a child that fails beside it: degraded wins, 1.
    tv.write_config(&format!(
        "{SLEEPER}\n{}\n{}",
        sh_process("setup", "exit 78", ""),
        sh_process(
            "crasher",
            "exit 1",
            "backoff = { initial = \"1h\", max = \"1h\" }"
        )
    ));
    assert_eq!(ctl(&tv, &["reload"]).status.code(), Some(0));
    assert!(wait_until(LONG, || state(&tv, "crasher") == "backoff"));
    let (code, v) = status_json(&tv);
    assert_eq!((code, v["health"].as_str()), (1, Some("degraded")));
    assert!(sup.stop().is_some());
    assert_eq!(status_json(&tv).0, 3, "the socket is gone after shutdown");
    assert!(!tv.vault.join(".ai-employee/control.sock").exists());
}

#[test]
fn status_exit_code_for_each_state() {
    let fatal = sh_process(
        "c",
        "exit 1",
        "backoff = { initial = \"0s\" }\nmax_restarts = 1\nrestart_window = \"1m\"",
    );
    let cases: [(&str, String, i32); 6] = [
        ("running", SLEEPER.replace("sleeper", "c"), 0),
        (
            "disabled",
            "[[process]]\nname = \"c\"\ncommand = \"sleep\"\nargs = [\"1\"]\nenabled = false\n"
                .into(),
            0,
        ),
        (
            "exited",
            sh_process("c", "exit 0", "restart = \"on-failure\""),
            0,
        ),
        (
            "backoff",
            sh_process(
                "c",
                "exit 1",
                "backoff = { initial = \"1h\", max = \"1h\" }",
            ),
            1,
        ),
        // Not degraded: nothing failed, the child waits for its set-up (a fresh install).
        ("needs-setup", sh_process("c", "exit 78", ""), 5),
        ("fatal", fatal, 1),
    ];
    for (want, table, code) in cases {
        let tv = TestVault::new();
        tv.write_config(&table);
        let mut sup = start(&tv, |v| child(v, "c")["state"] == want);
        let (json_code, v) = status_json(&tv);
        let table_code = ctl(&tv, &["status"]).status.code();
        assert_eq!((table_code, json_code), (Some(code), code), "{want}: {v}");
        assert!(sup.stop().is_some());
    }
}

#[test]
fn status_watch_redraws_until_interrupted() {
    let tv = TestVault::new();
    tv.write_config(SLEEPER);
    let mut sup = start(&tv, |v| child(v, "sleeper")["state"] == "running");
    let mut watch = Command::new(BIN)
        .args(["status", "--watch", "--interval", "100ms", "--vault"])
        .arg(&tv.vault)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("status --watch");
    let out = watch.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let l2 = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            l2.lock().unwrap().push(line);
        }
    });
    let reports = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("ai-employee ") && l.contains("healthy"))
            .count()
    };
    // Report after report, then the supervisor goes away and the view says so.
    assert!(wait_until(LONG, || reports() >= 3));
    assert!(sup.stop().is_some());
    let gone = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("ai-employee: not running"))
    };
    assert!(wait_until(LONG, gone), "{:?}", lines.lock().unwrap());
    assert!(
        alive(watch.id() as i32),
        "it keeps watching until interrupted"
    );
    crate::common::signal(watch.id() as i32, libc::SIGINT);
    assert!(
        crate::common::wait_child(&mut watch, LONG).is_some(),
        "exits on Ctrl+C"
    );
}

#[test]
fn stop_start_restart_one_child() {
    let tv = TestVault::new();
    // Restart at once after a crash: a stopped child that came back would show at once.
    tv.write_config(&format!(
        "{SLEEPER}backoff = {{ initial = \"0s\" }}\n\n[[process]]\nname = \"other\"\ncommand = \"sleep\"\nargs = [\"1000\"]\n"
    ));
    let mut sup = start(&tv, |v| {
        child(v, "sleeper")["state"] == "running" && child(v, "other")["state"] == "running"
    });
    let (_, v) = status_json(&tv);
    let pid = child(&v, "sleeper")["pid"].as_i64().unwrap() as i32;
    let other = child(&v, "other")["pid"].clone();

    let o = ctl(&tv, &["stop", "sleeper"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        text(&o).contains("sleeper stopped (SIGTERM)"),
        "{}",
        text(&o)
    );
    assert!(!alive(pid));
    // It stays stopped: polled for 0.7 s, in which a crashed child with this zero backoff
    // would have been restarted within a millisecond.
    let until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < until {
        assert_eq!(state(&tv, "sleeper"), "stopped");
    }
    // Stopping again is fine and says so.
    let o = ctl(&tv, &["stop", "sleeper"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).contains("not running"), "{}", text(&o));

    let o = ctl(&tv, &["start", "sleeper"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let (_, v) = status_json(&tv);
    let started = child(&v, "sleeper")["pid"].as_i64().unwrap() as i32;
    assert!(started != pid && alive(started));
    assert!(
        text(&o).contains(&format!("started sleeper (pid {started})")),
        "{}",
        text(&o)
    );

    let o = ctl(&tv, &["restart", "sleeper"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let (_, v) = status_json(&tv);
    let restarted = child(&v, "sleeper")["pid"].as_i64().unwrap() as i32;
    assert!(restarted != started && alive(restarted) && !alive(started));
    assert!(
        text(&o).contains(&format!("sleeper running (pid {restarted})")),
        "{}",
        text(&o)
    );
    // The other child was never touched.
    assert_eq!(child(&v, "other")["pid"], other);

    // Unknown names are refused with the known ones listed.
    let o = ctl(&tv, &["restart", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("no process named \"nope\" (known: sleeper, other)"),
        "{}",
        err(&o)
    );
    // No supervisor: 3.
    assert!(sup.stop().is_some());
    assert_eq!(ctl(&tv, &["stop", "sleeper"]).status.code(), Some(3));
}

#[test]
fn start_reports_a_child_that_exits_at_once() {
    let tv = TestVault::new();
    tv.write_config(&sh_process("setup", "exit 78", ""));
    let mut sup = start(&tv, |v| child(v, "setup")["state"] == "needs-setup");
    // One line each, saying what happened; no "started" before it.
    for (verb, outcome) in [("restart", "not restarted"), ("start", "not started")] {
        let o = ctl(&tv, &[verb, "setup"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert_eq!(text(&o), "", "{verb}");
        assert_eq!(
            err(&o),
            format!(
                "ai-employee: setup needs setup: exited 78 (needs configuration; see \
                 Logs/setup.log); {outcome}\n"
            ),
            "{verb}"
        );
    }
    // The operator's starts are counted apart from the supervisor's restarts.
    let (_, v) = status_json(&tv);
    let c = child(&v, "setup");
    assert_eq!(
        (c["restarts"].as_u64(), c["manual_restarts"].as_u64()),
        (Some(0), Some(2)),
        "{c}"
    );
    let table = text(&ctl(&tv, &["status"]));
    assert!(table.contains("0 (+2 manual)"), "{table}");
    let log = tv.system_log();
    assert!(log.contains("(pid "), "{log}");
    assert!(log.contains("on request; manual start #2)"), "{log}");
    assert!(!log.contains("restart #"), "{log}");
    assert!(sup.stop().is_some());
    // One Dashboard row for one state: the same "needs setup" three times is one row.
    let dashboard = tv.dashboard();
    assert_eq!(
        dashboard
            .lines()
            .filter(|l| l.contains("Needs Setup"))
            .count(),
        1,
        "{dashboard}"
    );
}

#[test]
fn reload_prints_what_changed_and_refuses_a_broken_table() {
    let tv = TestVault::new();
    // Off, so that the explicit reload is the one that applies the change.
    const MANUAL: &str = "[supervisor]\nreload_on_change = false\n\n";
    tv.write_config(&format!(
        "{MANUAL}{SLEEPER}\n{}",
        sh_process("gone", "sleep 1000", "")
    ));
    let mut sup = start(&tv, |v| child(v, "gone")["state"] == "running");
    tv.write_config(&format!(
        "{MANUAL}{SLEEPER}\n[[process]]\nname = \"new\"\ncommand = \"sleep\"\nargs = [\"999\"]\n"
    ));
    let o = ctl(&tv, &["reload"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        text(&o).trim(),
        "reloaded: added new; removed gone; 1 unchanged"
    );
    assert!(wait_until(LONG, || state(&tv, "new") == "running"));

    tv.write_config("[[process]]\nname = \"x\"\n");
    let o = ctl(&tv, &["reload"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(
        err(&o).contains("missing required key \"command\""),
        "{}",
        err(&o)
    );
    assert_eq!(state(&tv, "new"), "running", "the running table is kept");
    assert!(sup.stop().is_some());
}

/// Save `text` as an editor does: a new file renamed over the table.
fn save_like_an_editor(tv: &TestVault, text: &str) {
    let tmp = tv.config.with_extension("toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &tv.config).unwrap();
}

#[test]
fn a_saved_table_is_applied_and_a_broken_one_refused() {
    let tv = TestVault::new();
    tv.write_config(&format!(
        "{SLEEPER}\n{}",
        sh_process("old", "sleep 1000", "")
    ));
    let mut sup = start(&tv, |v| child(v, "old")["state"] == "running");
    let sleeper_pid = child(&status_json(&tv).1, "sleeper")["pid"].clone();

    // Disable one, add one, change one: applied without a `reload`.
    let edited = format!(
        "[[process]]\nname = \"sleeper\"\ncommand = \"sleep\"\nargs = [\"1001\"]\n\n{}{}",
        sh_process("old", "sleep 1000", "enabled = false"),
        sh_process("new", "sleep 1000", ""),
    );
    let saved = std::time::Instant::now();
    save_like_an_editor(&tv, &edited);
    assert!(
        wait_until(LONG, || {
            let v = status_json(&tv).1;
            child(&v, "new")["state"] == "running"
                && child(&v, "old")["state"] == "disabled"
                && child(&v, "sleeper")["state"] == "running"
                && child(&v, "sleeper")["pid"] != sleeper_pid
        }),
        "{}\n{}",
        sup.console(),
        tv.system_log()
    );
    eprintln!("saved change applied after {:?}", saved.elapsed());
    let console = sup.console();
    assert!(console.contains("changed: reloading"), "{console}");
    assert!(
        console.contains("reload: added new; changed sleeper; disabled old; 0 unchanged"),
        "{console}"
    );

    // A broken save: refused on the console and the Dashboard, the running table kept.
    save_like_an_editor(&tv, &format!("{edited}\n[[process]]\nname = \"x\"\n"));
    assert!(
        wait_until(LONG, || tv.dashboard().contains("Process_Table")),
        "{}\n{}",
        tv.dashboard(),
        sup.console()
    );
    let dashboard = tv.dashboard();
    let row = dashboard
        .lines()
        .find(|l| l.contains("Process_Table"))
        .unwrap();
    assert!(row.contains("✗ Refused"), "{row}");
    assert!(
        row.contains(&format!(
            "{}:17:1: process[4]: missing required key \"command\"",
            tv.config.display()
        )),
        "{row}"
    );
    assert!(
        sup.console()
            .contains("reload failed: keeping the current process table"),
        "{}",
        sup.console()
    );
    assert_eq!(state(&tv, "new"), "running", "the running table is kept");
    assert_eq!(state(&tv, "sleeper"), "running");
    assert!(sup.stop().is_some());
}

#[test]
fn with_reload_on_change_off_a_saved_table_waits_for_reload() {
    let tv = TestVault::new();
    let off = "[supervisor]\nreload_on_change = false\n\n";
    tv.write_config(&format!("{off}{SLEEPER}"));
    let mut sup = start(&tv, |v| child(v, "sleeper")["state"] == "running");
    save_like_an_editor(
        &tv,
        &format!(
            "[supervisor]\nreload_on_change = false\nmetrics = \"127.0.0.1:1\"\n\n{SLEEPER}\n{}",
            sh_process("late", "sleep 1000", "")
        ),
    );
    // Four times the settling time of a watched table: nothing may happen.
    assert!(
        !wait_until(Duration::from_secs(2), || child(
            &status_json(&tv).1,
            "late"
        ) != &Value::Null),
        "applied without a reload: {}",
        sup.console()
    );
    // The change was pending: the explicit reload is the one that applies it, and says
    // what it could not apply.
    let o = ctl(&tv, &["reload"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(text(&o).trim(), "reloaded: added late; 1 unchanged");
    assert_eq!(
        err(&o).trim(),
        "ai-employee: warning: a new metrics address takes effect when the supervisor restarts"
    );
    assert!(wait_until(LONG, || state(&tv, "late") == "running"));
    assert!(sup.stop().is_some());
}

#[test]
fn logs_prints_the_last_lines_and_follows_across_rotation() {
    let tv = TestVault::new();
    // Numbered lines, fast enough to rotate a 2 KiB log several times.
    tv.write_config(&sh_process(
        "counter",
        "i=0; while [ $i -lt 400 ]; do i=$((i+1)); echo \"line $i\"; sleep 0.005; done; sleep 1000",
        "log_max_size = \"2KiB\"\nlog_max_files = 2",
    ));
    let mut sup = tv.start();
    let log = tv.vault.join("Logs/counter.log");
    assert!(wait_until(LONG, || std::fs::read_to_string(&log)
        .is_ok_and(|s| s.contains("line 5\n"))));
    let mut follower = Command::new(BIN)
        .args(["logs", "counter", "-f", "-n", "3", "--vault"])
        .arg(&tv.vault)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("logs -f");
    let out = follower.stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(Vec::<u32>::new()));
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // Each line as logged: `YYYY-MM-DD HH:MM:SS.mmm line N`.
            if let Some(n) = line.split_once("line ").and_then(|(_, n)| n.parse().ok()) {
                s2.lock().unwrap().push(n);
            }
        }
    });
    let done = wait_until(Duration::from_secs(30), || {
        seen.lock().unwrap().last() == Some(&400)
    });
    let _ = follower.kill();
    let _ = follower.wait();
    let seen = seen.lock().unwrap().clone();
    assert!(
        done,
        "follower saw {} lines, last {:?}",
        seen.len(),
        seen.last()
    );
    // Every line from the first shown to the last, once each, in order: nothing lost or
    // repeated at a rotation.
    let first = seen[0];
    assert_eq!(seen, (first..=400).collect::<Vec<_>>());
    assert!(
        tv.vault.join("Logs/counter.log.1").exists(),
        "the log rotated"
    );

    // -n N without -f: exactly the last N lines of the system log.
    let o = ctl(&tv, &["logs", "-n", "2"]);
    assert_eq!(o.status.code(), Some(0));
    let sys = tv.system_log();
    let last2: Vec<&str> = sys
        .lines()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(text(&o).lines().collect::<Vec<_>>(), last2);
    let o = ctl(&tv, &["logs", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no log at"), "{}", err(&o));
    assert!(sup.stop().is_some());
}

/// A uid other than ours, for the socket's owner check: the one tests/run.sh creates,
/// else `nobody`.
fn other_user() -> Option<(u32, u32)> {
    for name in ["ai-employee-test", "nobody"] {
        if let Ok(Some(u)) = nix::unistd::User::from_name(name) {
            return Some((u.uid.as_raw(), u.gid.as_raw()));
        }
    }
    None
}

#[test]
fn another_user_is_refused_by_the_socket() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root to run a client as a second uid (CI runs as root)");
        return;
    }
    let (uid, gid) = other_user().expect("a second user (tests/run.sh creates ai-employee-test)");
    let tv = TestVault::new();
    tv.write_config(SLEEPER);
    let mut sup = start(&tv, |v| child(v, "sleeper")["state"] == "running");
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // The temp dirs above the vault must be traversable for the other user to get as far
    // as the socket at all.
    for dir in [tv.dir.path(), tv.vault.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let as_other = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--vault")
            .arg(&tv.vault)
            .uid(uid)
            .gid(gid)
            .env("NO_COLOR", "1")
            .output()
            .expect("run as the other user")
    };
    // First line of defence: the folder (0700) and the socket (0600).
    let sock = tv.vault.join(".ai-employee/control.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let o = as_other(&["status"]);
    assert_eq!(o.status.code(), Some(4), "{}", err(&o));
    assert!(err(&o).contains("Permission denied"), "{}", err(&o));
    // Second: with the file modes opened up, the server still refuses the peer's uid.
    std::fs::set_permissions(
        tv.vault.join(".ai-employee"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    for args in [&["status"][..], &["stop", "sleeper"][..]] {
        let o = as_other(args);
        assert_eq!(o.status.code(), Some(4), "{args:?}: {}", err(&o));
        assert!(
            err(&o).contains(&format!(
                "refused: the supervisor runs as uid 0, you are uid {uid}"
            )),
            "{}",
            err(&o)
        );
    }
    assert_eq!(
        state(&tv, "sleeper"),
        "running",
        "the refused stop did nothing"
    );
    assert!(
        tv.system_log()
            .contains(&format!("refused a connection from uid {uid}"))
    );
    assert!(sup.stop().is_some());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn metric(text: &str, name: &str, child: &str) -> Option<f64> {
    let prefix = format!("{name}{{name=\"{child}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn metrics_match_status_json() {
    let tv = TestVault::new();
    let port = free_port();
    tv.write_config(&format!(
        "[supervisor]\nmetrics = \"127.0.0.1:{port}\"\n\n{SLEEPER}\n{}",
        sh_process(
            "crasher",
            "exit 3",
            "backoff = { initial = \"1h\", max = \"1h\" }"
        )
    ));
    let mut sup = start(&tv, |v| {
        child(v, "sleeper")["state"] == "running" && child(v, "crasher")["state"] == "backoff"
    });
    // One restart for the sleeper, so the counter is not just zero.
    assert_eq!(ctl(&tv, &["restart", "sleeper"]).status.code(), Some(0));
    let (_, v) = status_json(&tv);
    let body = http_get(port, "/metrics");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("application/openmetrics-text"), "{body}");
    for name in ["sleeper", "crasher"] {
        let c = child(&v, name);
        let up = f64::from(c["state"] == "running");
        assert_eq!(
            metric(&body, "ai_employee_child_up", name),
            Some(up),
            "{name}"
        );
        assert_eq!(
            metric(&body, "ai_employee_child_restarts_total", name),
            c["restarts"].as_f64(),
            "{name}"
        );
    }
    assert_eq!(
        metric(&body, "ai_employee_child_last_exit_code", "crasher"),
        Some(3.0)
    );
    assert_eq!(
        metric(&body, "ai_employee_child_last_exit_code", "sleeper"),
        Some(143.0),
        "SIGTERM = 128 + 15"
    );
    // A sleeping process's memory does not move between the two requests.
    assert_eq!(
        metric(&body, "ai_employee_child_rss_bytes", "sleeper"),
        child(&v, "sleeper")["rss_bytes"].as_f64()
    );
    assert!(metric(&body, "ai_employee_child_cpu_seconds_total", "sleeper").is_some());
    assert!(
        body.contains("ai_employee_supervisor_uptime_seconds "),
        "{body}"
    );
    assert!(body.contains("ai_employee_supervisor_healthy 0"), "{body}");
    assert!(http_get(port, "/other").starts_with("HTTP/1.1 404"));
    assert!(sup.stop().is_some());
}

/// A webhook receiver on loopback: records each POST body; `hang` accepts and never
/// answers.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    fn start(hang: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let b2 = bodies.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().map_while(Result::ok) {
                if hang {
                    held.push(stream);
                    continue;
                }
                if let Some(body) = read_http_request(&stream)
                    .and_then(|r| serde_json::from_str::<Value>(&r.body).ok())
                {
                    b2.lock().unwrap().push(body);
                }
                let mut s = stream;
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Receiver { port, bodies }
    }

    fn events(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| b["event"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

#[test]
fn webhooks_get_exactly_the_configured_events() {
    let rx = Receiver::start(false);
    let tv = TestVault::new();
    tv.write_config(&format!(
        "[[notify]]\nwebhook = \"http://127.0.0.1:{}/hook\"\nevents = [\"child_fatal\", \"approval_failed\", \"system_offline\"]\n\n{}{}",
        rx.port,
        sh_process(
            "hopeless",
            "exit 1",
            "backoff = { initial = \"0s\" }\nmax_restarts = 1\nrestart_window = \"1m\""
        ),
        sh_process("setup", "exit 78", ""),
    ));
    let mut sup = start(&tv, |v| {
        child(v, "hopeless")["state"] == "fatal" && child(v, "setup")["state"] == "needs-setup"
    });
    assert!(
        wait_until(LONG, || rx.events() == ["child_fatal"]),
        "{:?}",
        rx.events()
    );
    let first = rx.bodies.lock().unwrap()[0].clone();
    assert_eq!(first["child"], "hopeless");
    assert!(
        first["details"].as_str().unwrap().contains("gave up"),
        "{first}"
    );
    assert!(
        first["text"].as_str().unwrap().contains("hopeless"),
        "{first}"
    );
    assert_eq!(first["vault"], tv.vault.display().to_string());
    // A child's event over the control socket (what the approval handler sends).
    let mut sock =
        std::os::unix::net::UnixStream::connect(tv.vault.join(".ai-employee/control.sock"))
            .unwrap();
    sock.write_all(b"{\"cmd\":\"event\",\"event\":\"approval_failed\",\"details\":\"send_email to a@b.c: 550 no such user\"}\n").unwrap();
    let mut reply = String::new();
    BufReader::new(&sock).read_line(&mut reply).unwrap();
    assert_eq!(reply.trim(), r#"{"ok":true,"message":"noted"}"#);
    assert!(
        wait_until(LONG, || rx.events().len() == 2),
        "{:?}",
        rx.events()
    );
    assert!(sup.stop().is_some());
    // system_offline goes out before the supervisor exits; child_needs_setup and
    // system_degraded were not subscribed to.
    assert_eq!(
        rx.events(),
        ["child_fatal", "approval_failed", "system_offline"]
    );
    assert_eq!(
        rx.bodies.lock().unwrap()[1]["details"],
        "send_email to a@b.c: 550 no such user"
    );
}

/// The task loop's events (`ai-employee agent` sends them like the approval handler):
/// each reaches the webhooks that subscribe to it, named in `text`; other names are
/// refused with the list of those a child may send.
#[test]
fn a_failed_task_reaches_the_webhook_as_task_failed() {
    let rx = Receiver::start(false);
    let tv = TestVault::new();
    tv.write_config(&format!(
        "[[notify]]\nwebhook = \"http://127.0.0.1:{}/hook\"\nevents = [\"task_failed\", \"tasks_unhealthy\"]\n\n{}",
        rx.port,
        sh_process("sleeper", "exec sleep 1000", ""),
    ));
    let mut sup = start(&tv, |v| child(v, "sleeper")["state"] == "running");
    let sock = tv.vault.join(".ai-employee/control.sock");
    let details = "Needs_Action/invoice-acme.md: 3 attempts failed: the agent exited with 1";
    for (event, want) in [
        ("task_needs_review", r#"{"ok":true,"message":"noted"}"#),
        ("task_failed", r#"{"ok":true,"message":"noted"}"#),
        (
            "child_fatal",
            r#"{"ok":false,"error":"unknown event \"child_fatal\" (children may send: approval_failed, task_failed, task_needs_review, tasks_unhealthy)"}"#,
        ),
    ] {
        let mut conn = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        let request = serde_json::json!({"cmd": "event", "event": event, "details": details});
        conn.write_all(format!("{request}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        BufReader::new(&conn).read_line(&mut reply).unwrap();
        assert_eq!(reply.trim(), want, "{event}");
    }
    assert!(
        wait_until(LONG, || rx.events() == ["task_failed"]),
        "{:?}",
        rx.events()
    );
    let body = rx.bodies.lock().unwrap()[0].clone();
    assert_eq!(body["details"], details);
    assert_eq!(body["child"], Value::Null);
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("ai-employee on ") && text.ends_with(&format!(": task failed: {details}")),
        "{text}"
    );
    assert!(
        tv.system_log()
            .contains(&format!("event task_failed: task failed: {details}")),
        "{}",
        tv.system_log()
    );
    assert!(sup.stop().is_some());
    assert_eq!(
        rx.events(),
        ["task_failed"],
        "task_needs_review was not subscribed to"
    );
}

#[test]
fn a_refused_approval_reaches_the_webhook_as_approval_failed() {
    let rx = Receiver::start(false);
    let tv = TestVault::new();
    tv.write_config(&format!(
        "[[notify]]\nwebhook = \"http://127.0.0.1:{}/hook\"\nevents = [\"approval_failed\"]\n\n\
         [[process]]\nname = \"approvals\"\ncommand = \"ai-employee\"\nargs = [\"watch\", \"approvals\", \"--dry-run\"]\n",
        rx.port
    ));
    let mut sup = start(&tv, |v| child(v, "approvals")["state"] == "running");
    let approved = tv.vault.join("Approved");
    std::fs::create_dir_all(&approved).unwrap();
    std::fs::write(
        approved.join("wire.md"),
        "---\ntype: approval_request\naction: wire_money\namount: 5000\nstatus: pending\n---\nPlease.\n",
    )
    .unwrap();
    assert!(
        wait_until(LONG, || rx.events() == ["approval_failed"]),
        "{:?}\n{}",
        rx.events(),
        tv.system_log()
    );
    let body = rx.bodies.lock().unwrap()[0].clone();
    let details = body["details"].as_str().unwrap();
    assert!(details.starts_with("wire.md: refused"), "{details}");
    assert!(details.contains("wire_money"), "{details}");
    assert!(sup.stop().is_some());
    assert_eq!(
        rx.events(),
        ["approval_failed"],
        "system_offline was not subscribed to"
    );
}

#[test]
fn a_hanging_or_dead_webhook_does_not_delay_restarts() {
    for hang in [true, false] {
        let rx = Receiver::start(hang);
        let port = if hang {
            rx.port
        } else {
            // Down: nothing listens there.
            free_port()
        };
        let tv = TestVault::new();
        let marker = tv.path("starts");
        tv.write_config(&format!(
            "[[notify]]\nwebhook = \"http://127.0.0.1:{port}/hook\"\ntimeout = \"30s\"\nretries = 3\n\n{}{}",
            sh_process("setup", "exit 78", ""),
            sh_process(
                "crasher",
                &format!("echo start $$ >> {}; sleep 0.05; exit 1", marker.display()),
                "backoff = { initial = \"0s\" }"
            ),
        ));
        let mut sup = tv.start();
        // The needs-setup and degraded events are queued for the webhook at once; the
        // crasher keeps being restarted meanwhile, every ~50 ms.
        let t0 = Instant::now();
        let count = || crate::common::lines(&marker).len();
        assert!(
            wait_until(Duration::from_secs(5), || count() >= 10),
            "hang={hang}: only {} starts in {:?}",
            count(),
            t0.elapsed()
        );
        assert!(sup.stop().is_some());
    }
}

/// `logs -f` ends at once on Ctrl+C (SIGINT), also when it was started with SIGINT
/// ignored, as a background job of a script is.
#[test]
fn logs_follow_ends_at_once_on_ctrl_c() {
    use std::os::unix::process::CommandExt;
    let tv = TestVault::new();
    std::fs::create_dir_all(tv.vault.join("Logs")).unwrap();
    std::fs::write(tv.vault.join("Logs/system.log"), "first line\n").unwrap();
    for ignored in [false, true] {
        let mut cmd = Command::new(BIN);
        cmd.args(["logs", "-f", "--vault"])
            .arg(&tv.vault)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if ignored {
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::signal(libc::SIGINT, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        let mut follower = cmd.spawn().unwrap();
        let mut out = BufReader::new(follower.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "first line\n");
        let sent = Instant::now();
        crate::common::signal(follower.id() as i32, libc::SIGINT);
        let st = crate::common::wait_child(&mut follower, Duration::from_secs(5));
        let took = sent.elapsed();
        eprintln!("logs -f (SIGINT ignored: {ignored}) exited {took:?} after SIGINT");
        let st = st.unwrap_or_else(|| panic!("still following 5 s after SIGINT ({ignored})"));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGINT), "{st:?}");
        assert!(took < Duration::from_millis(500), "took {took:?}");
    }
}

/// `init` names everything it created, the vault's own folder too; `check` counts in
/// the singular when there is one.
#[test]
fn init_and_check_say_what_they_did() {
    let tv = TestVault::new();
    let o = ctl(&tv, &["init"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let out = text(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("Vault {}:", tv.vault.display()), "{out}");
    assert_eq!(lines[1], "  created the vault folder", "{out}");
    assert!(lines.contains(&"  created ai-employee.toml"), "{out}");
    assert!(lines.iter().all(|l| l.trim_end() != "created"), "{out}");
    tv.write_config("[[process]]\nname = \"one\"\ncommand = \"/bin/true\"\n");
    let o = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&tv.config)
        .arg("--vault")
        .arg(&tv.vault)
        .output()
        .unwrap();
    assert_eq!(
        text(&o),
        format!("{}: ok (1 process, 1 enabled)\n", tv.config.display())
    );
}

/// An exported vault is neither shown in `--help` (set or not) nor put into the usage
/// line of a usage error as if it had been typed.
#[test]
fn help_and_usage_errors_do_not_show_the_exported_vault() {
    let run = |vault: Option<&str>, args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env_remove("AI_EMPLOYEE_VAULT");
        if let Some(v) = vault {
            cmd.env("AI_EMPLOYEE_VAULT", v);
        }
        cmd.output().unwrap()
    };
    for vault in [None, Some("/private/vault")] {
        let o = run(vault, &["status", "--help"]);
        assert_eq!(o.status.code(), Some(0));
        let help = text(&o);
        assert!(help.contains("[env: AI_EMPLOYEE_VAULT]"), "{help}");
        assert!(!help.contains("AI_EMPLOYEE_VAULT="), "{help}");
        assert!(!help.contains("/private/vault"), "{help}");

        let o = run(vault, &["start"]);
        assert_eq!(o.status.code(), Some(2));
        let e = err(&o);
        assert!(
            e.contains("Usage: ai-employee start <NAME>\n"),
            "{vault:?}: {e}"
        );
        assert!(
            !e.contains("--vault") && !e.contains("/private/vault"),
            "{e}"
        );
    }
}

#[test]
fn completions_and_man_page_come_from_the_command_line() {
    for shell in ["bash", "zsh", "fish"] {
        let o = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let s = text(&o);
        for word in ["status", "restart", "logs", "follow", "vault"] {
            assert!(s.contains(word), "{shell} completion lacks {word}");
        }
    }
    let o = Command::new(BIN).arg("man").output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let s = text(&o);
    assert!(
        s.starts_with(".ie") || s.contains(".TH ai-employee"),
        "{}",
        &s[..s.len().min(200)]
    );
    assert!(s.contains("status"));

    // Every page the main page names is written by `man --dir`.
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let main = std::fs::read_to_string(dir.path().join("ai-employee.1")).unwrap();
    let mut named = 0;
    for word in main.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '\\')) {
        // roff writes `ai\-employee\-init(1)` as `ai\-employee\-init`, then `(1)`.
        let page = word.replace("\\-", "-");
        if page.starts_with("ai-employee-") {
            named += 1;
            assert!(
                dir.path().join(format!("{page}.1")).exists(),
                "{page}(1) is named but not written"
            );
        }
    }
    assert!(named >= 10, "{named} pages named:\n{main}");
    for page in [
        "ai-employee-supervise.1",
        "ai-employee-watch-gmail.1",
        "ai-employee-tasks-add.1",
    ] {
        assert!(dir.path().join(page).exists(), "{page}");
    }
    assert!(!dir.path().join("ai-employee-__guardian.1").exists());
}

/// The task loop as the supervisor's child: a task whose every attempt crashes ends in
/// Failed/, and the loop's `task_failed` reaches the webhook through the supervisor.
#[test]
fn the_task_loop_under_the_supervisor_reports_a_failed_task_to_the_webhook() {
    const FAKE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/agent/fake-claude"
    );
    let rx = Receiver::start(false);
    let tv = TestVault::new();
    let markers = tv.path("markers");
    tv.write_config(&format!(
        "[[notify]]\nwebhook = \"http://127.0.0.1:{port}/hook\"\nevents = [\"task_failed\"]\n\n\
         [[process]]\nname = \"agent\"\ncommand = \"ai-employee\"\nargs = [\"agent\", \"--config\", \"{table}\"]\n\
         env = {{ FAKE_AGENT_MARKERS = \"{markers}\" }}\n\n\
         [agent]\ncommand = [\"{FAKE}\", \"-p\", \"{{prompt}}\", \"--output-format\", \"json\"]\n\
         max_attempts = 2\nretry_delays = [\"100ms\"]\n",
        port = rx.port,
        table = tv.config.display(),
        markers = markers.display(),
    ));
    let mut sup = start(&tv, |v| child(v, "agent")["state"] == "running");
    let task = tv.vault.join("Needs_Action/INVOICE.md");
    std::fs::write(&task, "---\ntitle: Invoice\n---\nfake: crash 4\n").unwrap();
    assert!(
        wait_until(LONG, || tv.vault.join("Failed/INVOICE.md").exists()),
        "{}",
        std::fs::read_to_string(tv.vault.join("Logs/agent.log")).unwrap_or_default()
    );
    assert!(
        wait_until(LONG, || rx.events() == ["task_failed"]),
        "{:?}",
        rx.events()
    );
    let body = rx.bodies.lock().unwrap()[0].clone();
    let details = body["details"].as_str().unwrap();
    assert!(
        details.contains("INVOICE failed after 2 attempts"),
        "{details}"
    );
    assert_eq!(child(&status_json(&tv).1, "agent")["state"], "running");
    sup.stop();
}

#[test]
fn reading_the_table_never_reloads_it_and_a_watching_supervisor_sleeps() {
    let tv = TestVault::new();
    tv.write_config(SLEEPER);
    let mut sup = start(&tv, |v| child(v, "sleeper")["state"] == "running");
    let reloads = |sup: &Supervisor| sup.console().matches("changed: reloading").count();
    // One saved change: one reload, which reads the table.
    save_like_an_editor(
        &tv,
        &format!("{SLEEPER}\n{}", sh_process("new", "sleep 1000", "")),
    );
    assert!(
        wait_until(LONG, || state(&tv, "new") == "running"),
        "{}",
        sup.console()
    );
    // Others read it too (an editor opening it, `cat`, a backup): none of that is a change.
    let folder = tv.config.parent().unwrap();
    for _ in 0..100 {
        let _ = std::fs::read_to_string(&tv.config).unwrap();
        let _ = std::fs::read_dir(folder).unwrap().count();
    }
    // Four times the settling time of a save: no second reload may start.
    assert!(
        !wait_until(Duration::from_secs(2), || reloads(&sup) > 1),
        "reads reloaded the table: {}",
        sup.console()
    );
    assert_eq!(reloads(&sup), 1, "{}", sup.console());
    // And watching the table costs nothing while nothing changes: under 5 % of 3 s.
    #[cfg(target_os = "linux")]
    {
        let window = Duration::from_secs(3);
        let used = crate::common::cpu_used_over(sup.pid(), window);
        assert!(
            used < window / 20,
            "the supervisor used {used:?} in {window:?}"
        );
    }
    assert!(sup.stop().is_some());
}
