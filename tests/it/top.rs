//! `ai-employee top` in a real terminal: a tmux pane running a shell, keys sent with
//! `send-keys`, the screen read with `capture-pane`, against a real supervisor with `sh`
//! children. Skipped (SKIPPED: …) where tmux is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ai_employee::agent::snapshot::{Snapshot, TaskState, TaskView};
use serde_json::Value;

use crate::common::{BIN, Supervisor, TestVault, sh_process, signal, wait_until};

const LONG: Duration = Duration::from_secs(20);
/// The pane's shell prompt (PS1 without its trailing space: capture-pane drops it).
const PROMPT: &str = "PROMPT$";

/// A tmux server of its own (socket in the test's temp dir) with one pane running `sh`.
struct Tmux {
    sock: PathBuf,
}

impl Tmux {
    fn start(dir: &Path, width: u16, height: u16) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            println!("SKIPPED: tmux is not installed");
            return None;
        }
        let t = Tmux {
            sock: dir.join("tmux.sock"),
        };
        let o = t.tmux(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            &format!("env PS1='{PROMPT} ' sh"),
        ]);
        assert!(
            o.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            wait_until(LONG, || t.screen().contains(PROMPT)),
            "no prompt"
        );
        Some(t)
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.sock)
            .args(["-f", "/dev/null"])
            .args(args)
            .env_remove("TMUX")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    /// Keys by tmux's names (`q`, `Escape`, `Down`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend(keys);
        assert!(self.tmux(&args).status.success());
    }

    /// A command line typed into the shell.
    fn type_line(&self, line: &str) {
        assert!(
            self.tmux(&["send-keys", "-t", "t", "-l", line])
                .status
                .success()
        );
        self.keys(&["Enter"]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    fn format(&self, f: &str) -> String {
        let o = self.tmux(&["display-message", "-p", "-t", "t", f]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    fn alternate_on(&self) -> bool {
        self.format("#{alternate_on}") == "1"
    }

    /// Wait until the screen satisfies `cond`; the screen, or a failure showing it.
    fn wait_screen(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let ok = wait_until(LONG, || {
            last = self.screen();
            cond(&last)
        });
        assert!(ok, "screen never showed {what}:\n{last}");
        last
    }

    /// The pid of the program the pane's shell runs now (`top`).
    fn foreground_pid(&self) -> i32 {
        let shell: i32 = self.format("#{pane_pid}").parse().expect("pane pid");
        let mut found = None;
        assert!(
            wait_until(LONG, || {
                found = children_of(shell).into_iter().next();
                found.is_some()
            }),
            "nothing runs in the pane"
        );
        found.unwrap_or_default()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// The processes whose parent is `parent` (`pgrep -P`: Linux and macOS).
fn children_of(parent: i32) -> Vec<i32> {
    let o = Command::new("pgrep")
        .args(["-P", &parent.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run pgrep");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn status_json(tv: &TestVault) -> Value {
    let o = Command::new(BIN)
        .args(["status", "--json", "--vault"])
        .arg(&tv.vault)
        .stdin(Stdio::null())
        .output()
        .expect("status");
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

fn child(v: &Value, name: &str) -> (String, Option<i64>) {
    let c = v["children"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or(Value::Null);
    (
        c["state"].as_str().unwrap_or("").to_string(),
        c["pid"].as_i64(),
    )
}

/// Wait until `name` is running; its pid.
fn running_pid(tv: &TestVault, name: &str, not: Option<i64>) -> i64 {
    let mut pid = None;
    assert!(
        wait_until(LONG, || {
            let (state, p) = child(&status_json(tv), name);
            pid = p;
            state == "running" && p.is_some() && p != not
        }),
        "{name} not running (again)"
    );
    pid.unwrap_or_default()
}

fn table() -> String {
    format!(
        "{}{}{}",
        sh_process("alpha", "echo alpha says hi $$; exec sleep 1000", ""),
        sh_process("beta", "echo beta says hi $$; exec sleep 1000", ""),
        sh_process(
            "crasher",
            "exit 3",
            "backoff = { initial = \"1h\", max = \"1h\" }"
        )
    )
}

fn start_supervisor(tv: &TestVault) -> Supervisor {
    tv.write_config(&table());
    let sup = tv.start();
    running_pid(tv, "alpha", None);
    running_pid(tv, "beta", None);
    sup
}

fn top_line(tv: &TestVault) -> String {
    format!("{BIN} top --vault {} --interval 100ms", tv.vault.display())
}

/// The screen's line starting with the cell `first` has `words` next to each other after
/// it (columns are padded: compared word by word).
fn row_has(screen: &str, first: &str, words: &[&str]) -> bool {
    screen.lines().any(|l| {
        let cells: Vec<&str> = l.split_whitespace().collect();
        cells.first() == Some(&first) && cells[1..].windows(words.len()).any(|w| w == words)
    })
}

#[test]
fn keys_stop_start_restart_follow_pause_and_q_restores_the_terminal() {
    let tv = TestVault::new();
    let Some(tmux) = Tmux::start(tv.dir.path(), 100, 30) else {
        return;
    };
    let mut sup = start_supervisor(&tv);
    // A queue as a task loop last wrote it (no loop runs: top says so).
    let snapshot = Snapshot {
        max_concurrent: 1,
        tasks: vec![
            TaskView::new("EMAIL_first", TaskState::Running, 0.92, chrono::Utc::now()),
            TaskView::new("FILE_second", TaskState::Pending, 0.55, chrono::Utc::now()),
        ],
        ..Snapshot::default()
    };
    let state = tv.vault.join(".ai-employee");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("tasks.json"),
        serde_json::to_vec(&snapshot).unwrap(),
    )
    .unwrap();
    let before = tv.path("stty-before");
    tmux.type_line(&format!("stty -g > {}", before.display()));
    assert!(wait_until(LONG, || before.exists()));
    tmux.type_line(&top_line(&tv));

    // The children with their state and pid.
    let alpha = running_pid(&tv, "alpha", None);
    let beta = running_pid(&tv, "beta", None);
    tmux.wait_screen("both children", |s| {
        row_has(s, "alpha", &["running", &alpha.to_string()])
            && row_has(s, "beta", &["running", &beta.to_string()])
    });
    assert!(tmux.alternate_on());
    tmux.wait_screen("the queue", |s| {
        s.contains("Tasks: 1 running (of 1), 1 pending")
            && row_has(s, "EMAIL_first", &["running", "0.92"])
            && row_has(s, "FILE_second", &["pending", "0.55"])
            && s.contains("(last written by a loop that is not running)")
    });

    // r asks, y restarts: a new pid, in `status` too.
    tmux.keys(&["r"]);
    tmux.wait_screen("the question", |s| s.contains("restart alpha? (y/n)"));
    tmux.keys(&["y"]);
    let alpha2 = running_pid(&tv, "alpha", Some(alpha));
    tmux.wait_screen("the new pid", |s| {
        row_has(s, "alpha", &["running", &alpha2.to_string()])
            && s.contains(&format!("alpha running (pid {alpha2})"))
    });

    // Another key than y cancels.
    tmux.keys(&["j", "s"]);
    tmux.wait_screen("the question", |s| s.contains("stop beta? (y/n)"));
    tmux.keys(&["n"]);
    tmux.wait_screen("the cancel", |s| s.contains("stop beta: cancelled"));
    assert_eq!(child(&status_json(&tv), "beta").1, Some(beta));

    // s + y stops the selected child, t starts it.
    tmux.keys(&["s"]);
    tmux.wait_screen("the question", |s| s.contains("stop beta? (y/n)"));
    tmux.keys(&["y"]);
    assert!(wait_until(LONG, || child(&status_json(&tv), "beta").0 == "stopped"));
    tmux.wait_screen("beta stopped", |s| {
        row_has(s, "beta", &["stopped"]) && s.contains("beta stopped (SIGTERM)")
    });
    tmux.keys(&["t"]);
    let beta2 = running_pid(&tv, "beta", None);
    tmux.wait_screen("beta running", |s| {
        row_has(s, "beta", &["running", &beta2.to_string()])
    });

    // l follows the selected child's log; Esc goes back to the system log.
    tmux.keys(&["l"]);
    tmux.wait_screen("beta's log", |s| {
        s.contains("Logs/beta.log")
            && s.contains(&format!("beta says hi {beta}"))
            && s.contains(&format!("beta says hi {beta2}"))
            && !s.contains("alpha says hi")
    });
    tmux.keys(&["Escape"]);
    tmux.wait_screen("the system log", |s| {
        s.contains("Logs/system.log") && !s.contains("Logs/beta.log")
    });

    // A start that fails: the command's error on the status line.
    tmux.keys(&["j", "t"]);
    tmux.wait_screen("the failure", |s| {
        s.lines()
            .any(|l| l.starts_with("start crasher failed: crasher exited at once"))
    });

    // p pauses tasks (the stop file) and resumes them.
    let stop = tv.vault.join(".claude_stop");
    tmux.keys(&["p"]);
    tmux.wait_screen("paused", |s| s.contains("tasks PAUSED"));
    assert!(stop.exists());
    tmux.keys(&["p"]);
    tmux.wait_screen("resumed", |s| {
        s.contains("resumed: tasks start again") && !s.contains("tasks PAUSED")
    });
    assert!(!stop.exists());

    // ? shows the keys; any key closes it.
    tmux.keys(&["?"]);
    tmux.wait_screen("the help", |s| s.contains("follow its log"));
    tmux.keys(&["x"]);
    tmux.wait_screen("no help", |s| !s.contains("follow its log"));

    // q: the shell again, out of the alternate screen, the tty settings as before.
    tmux.keys(&["q"]);
    let s = tmux.wait_screen("the prompt", |s| {
        !s.contains(" children ") && s.trim_end().ends_with(PROMPT)
    });
    assert!(!s.contains("q quit"), "{s}");
    assert!(wait_until(LONG, || !tmux.alternate_on()));
    let after = tv.path("stty-after");
    tmux.type_line(&format!("echo rc=$?; stty -g > {}", after.display()));
    tmux.wait_screen("exit 0", |s| s.contains("rc=0"));
    assert!(wait_until(LONG, || {
        std::fs::read_to_string(&after).is_ok_and(|a| !a.is_empty())
    }));
    assert_eq!(
        std::fs::read_to_string(&before).unwrap(),
        std::fs::read_to_string(&after).unwrap(),
        "the terminal settings were not restored"
    );
    sup.stop();
}

#[test]
fn a_small_window_without_a_supervisor_a_resize_then_sigterm_and_sighup() {
    let tv = TestVault::new();
    let Some(tmux) = Tmux::start(tv.dir.path(), 40, 12) else {
        return;
    };
    tmux.type_line(&top_line(&tv));
    // No supervisor yet: said on the screen, and top keeps asking.
    tmux.wait_screen("no supervisor", |s| s.contains("no supervisor is"));
    assert!(tmux.alternate_on());
    let mut sup = start_supervisor(&tv);
    let alpha = running_pid(&tv, "alpha", None);
    let s = tmux.wait_screen("the children, narrow", |s| {
        row_has(s, "alpha", &["running", &alpha.to_string()])
    });
    // 40 columns: the least useful columns are dropped.
    assert!(!s.contains("LAST EXIT"), "{s}");
    assert!(s.contains("NAME"), "{s}");

    // Resized: the frame follows (all the columns again).
    assert!(
        tmux.tmux(&["resize-window", "-t", "t", "-x", "100", "-y", "30"])
            .status
            .success()
    );
    tmux.wait_screen("every column", |s| s.contains("LAST EXIT"));

    let top = tmux.foreground_pid();
    signal(top, libc::SIGTERM);
    tmux.wait_screen("the prompt", |s| !s.contains(" children "));
    assert!(wait_until(LONG, || !tmux.alternate_on()));
    // Raw mode off: the line discipline's icanon and echo are on again.
    tmux.type_line(
        "echo rc=$?; stty -a | tr ' ' '\\n' | grep -x -e -icanon -e icanon -e -echo -e echo | tr '\\n' ' '; echo",
    );
    tmux.wait_screen("the exit status", |s| s.contains("rc=143"));
    // The answer's line: `icanon echo` (raw mode would print `-icanon -echo`).
    tmux.wait_screen("icanon and echo on", |s| {
        s.lines().any(|l| l.trim() == "icanon echo")
    });

    // SIGHUP (the terminal closed, or a kill -HUP): the same way out.
    tmux.type_line("clear");
    tmux.wait_screen("a clear screen", |s| !s.contains("rc=143"));
    tmux.type_line(&top_line(&tv));
    tmux.wait_screen("top again", |s| row_has(s, "alpha", &["running"]));
    assert!(tmux.alternate_on());
    signal(tmux.foreground_pid(), libc::SIGHUP);
    assert!(wait_until(LONG, || !tmux.alternate_on()));
    tmux.type_line("echo rc=$?");
    tmux.wait_screen("the exit status", |s| s.contains("rc=129"));
    sup.stop();
}

#[test]
fn not_a_terminal_is_a_usage_error() {
    let tv = TestVault::new();
    let o = Command::new(BIN)
        .args(["top", "--vault"])
        .arg(&tv.vault)
        .stdin(Stdio::null())
        .output()
        .expect("top");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("status --watch"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Bytes `pid` has written (to the terminal, here: nothing else is written without a
/// supervisor to ask).
fn written(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar: ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// Times the main thread of `pid` went to sleep and woke (one poll at least each).
fn wakeups(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("voluntary_ctxt_switches:")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn an_unchanged_poll_draws_nothing_and_ctrl_c_quits() {
    if !cfg!(target_os = "linux") {
        println!("SKIPPED: reads /proc");
        return;
    }
    let tv = TestVault::new();
    let Some(tmux) = Tmux::start(tv.dir.path(), 80, 24) else {
        return;
    };
    // No supervisor: every poll gives the same screen.
    tmux.type_line(&top_line(&tv));
    tmux.wait_screen("no supervisor", |s| s.contains("no supervisor is running"));
    let top = tmux.foreground_pid();
    let (bytes, woke) = (written(top), wakeups(top));
    // At least ten polls (every 100 ms) later: not a byte more on the terminal.
    assert!(wait_until(LONG, || wakeups(top) >= woke + 10));
    assert_eq!(written(top), bytes, "top redrew an unchanged screen");
    // A key that changes the screen is drawn.
    tmux.keys(&["?"]);
    tmux.wait_screen("the help", |s| s.contains("follow its log"));
    assert!(written(top) > bytes);
    tmux.keys(&["x"]);
    tmux.wait_screen("no help", |s| !s.contains("follow its log"));
    // Ctrl+L draws every cell again.
    let bytes = written(top);
    tmux.keys(&["C-l"]);
    assert!(wait_until(LONG, || written(top) > bytes + 100));
    // Ctrl+C (a key in raw mode) quits as q does.
    tmux.keys(&["C-c"]);
    assert!(wait_until(LONG, || !tmux.alternate_on()));
    tmux.type_line("echo rc=$?");
    tmux.wait_screen("exit 0", |s| s.contains("rc=0"));
}
