//! `ai-employee agent`, the task loop: real processes (the loop, a stand-in agent that
//! speaks Claude Code's JSON, `tests/fixtures/agent/fake-claude`, its grandchildren), real
//! files, the real approval handler and a real SMTP server. Every wait is on a condition
//! with a deadline.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::approvals::{Handler, Smtp, field, files, new_vault, smtp_toml};
use crate::common::{BIN, TestVault, alive, wait_child, wait_until};

const FAKE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/agent/fake-claude"
);
const LONG: Duration = Duration::from_secs(30);

/// The table: the stand-in agent, fast retries, plus `extra` keys in `[agent]`.
fn table(tv: &TestVault, extra: &str) {
    let retry = if extra.contains("retry_delays") {
        ""
    } else {
        "retry_delays = [\"100ms\"]\n"
    };
    tv.write_config(&format!(
        "[agent]\ncommand = [\"{FAKE}\", \"-p\", \"{{prompt}}\", \"--output-format\", \"json\", \
         \"--permission-mode\", \"acceptEdits\"]\n{retry}kill_after = \"300ms\"\n{extra}\n"
    ));
}

fn task(tv: &TestVault, name: &str, front: &str, directive: &str) {
    let text = format!("---\ntype: task\n{front}---\n# {name}\n\nfake: {directive}\n");
    let tmp = tv.vault.join(format!("Needs_Action/.{name}.tmp"));
    fs::write(&tmp, text).expect("write task");
    fs::rename(
        &tmp,
        tv.vault.join("Needs_Action").join(format!("{name}.md")),
    )
    .expect("publish");
}

fn markers(tv: &TestVault) -> PathBuf {
    tv.path("markers")
}

/// `runs.log` lines of the stand-in agent.
fn runs(tv: &TestVault) -> Vec<Vec<String>> {
    fs::read_to_string(markers(tv).join("runs.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect()
}

/// The most agents the stand-in saw running at once (its `start` lines).
fn most_at_once(tv: &TestVault) -> Option<u32> {
    runs(tv)
        .iter()
        .filter(|r| r[0] == "start")
        .filter_map(|r| r.get(4).and_then(|n| n.parse::<u32>().ok()))
        .max()
}

/// Task ids in the order their runs started.
fn start_order(tv: &TestVault) -> Vec<String> {
    runs(tv)
        .into_iter()
        .filter(|r| r.first().map(String::as_str) == Some("start"))
        .filter_map(|r| r.get(3).cloned())
        .collect()
}

/// Task ids in the order the loop started them (`started` events of Logs/tasks.jsonl).
fn loop_starts(tv: &TestVault) -> Vec<String> {
    fs::read_to_string(tv.vault.join("Logs/tasks.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "started")
        .filter_map(|v| v["task"].as_str().map(str::to_string))
        .collect()
}

struct Loop {
    child: Option<Child>,
    err: PathBuf,
}

impl Loop {
    fn start(tv: &TestVault, args: &[&str]) -> Loop {
        let err = tv.path(&format!("agent-{}.err", crate::common::now_ns()));
        let mut cmd = Command::new(BIN);
        cmd.args(["agent", "--vault"])
            .arg(&tv.vault)
            .arg("--config")
            .arg(&tv.config)
            .args(args)
            .env_remove("AI_EMPLOYEE_VAULT")
            .env_remove("AI_EMPLOYEE_HEARTBEAT")
            .env("FAKE_AGENT_MARKERS", markers(tv))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                fs::File::create(err.with_extension("out")).expect("out"),
            ))
            .stderr(Stdio::from(fs::File::create(&err).expect("err")));
        Loop {
            child: Some(cmd.spawn().expect("spawn the loop")),
            err,
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        fs::read_to_string(self.err.with_extension("out")).unwrap_or_default()
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(-1, |c| c.id() as i32)
    }

    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let st = wait_child(self.child.as_mut()?, timeout)?;
        self.child = None;
        Some(st)
    }

    fn wait_log(&self, needle: &str) {
        assert!(
            wait_until(LONG, || self.log().contains(needle)),
            "no {needle:?} in the loop's log:\n{}",
            self.log()
        );
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn stop(&mut self) -> Option<i32> {
        crate::common::signal(self.pid(), libc::SIGTERM);
        self.wait(LONG).and_then(|s| s.code())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The pid of the stand-in agent's grandchild (`fake: sleep` / `hang`) for `task`, once
/// it has started (its marker is written atomically).
fn grandchild_of(tv: &TestVault, task: &str, l: &Loop) -> i32 {
    let marker = markers(tv).join(format!("grandchild.{task}"));
    let pid = || fs::read_to_string(&marker).ok()?.trim().parse::<i32>().ok();
    assert!(
        wait_until(LONG, || pid().is_some()),
        "the agent of {task} did not start:\n{}",
        l.log()
    );
    pid().unwrap_or(-1)
}

fn in_folder(tv: &TestVault, folder: &str) -> Vec<String> {
    files(&tv.vault.join(folder))
        .into_iter()
        .filter(|n| n.ends_with(".md"))
        .collect()
}

fn wait_in(tv: &TestVault, rel: &str, l: &Loop) {
    assert!(
        wait_until(LONG, || tv.vault.join(rel).exists()),
        "no {rel}; loop log:\n{}",
        l.log()
    );
}

fn tasks_cli(tv: &TestVault, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .arg("tasks")
        .arg("--vault")
        .arg(&tv.vault)
        .args(args)
        .env_remove("AI_EMPLOYEE_VAULT")
        .env("NO_COLOR", "1")
        .output()
        .expect("run tasks");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn once_drives_every_task_to_done_and_an_invalid_one_to_failed_with_its_reason() {
    let tv = new_vault();
    table(&tv, "");
    for i in 1..=3 {
        task(&tv, &format!("T{i}"), "priority: high\n", "done");
    }
    // A note a person dropped, without frontmatter.
    fs::write(
        tv.vault.join("Needs_Action/note.md"),
        "# Call the bank\nfake: done\n",
    )
    .unwrap();
    fs::write(
        tv.vault.join("Needs_Action/BAD.md"),
        "---\ntitle: [\n---\nbody\n",
    )
    .unwrap();
    // Over the 1 MiB a task file is read up to, by far.
    fs::write(
        tv.vault.join("Needs_Action/BIG.md"),
        format!("---\ntitle: big\n---\n{}", "x".repeat(3 << 20)),
    )
    .unwrap();
    let mut l = Loop::start(&tv, &["--once"]);
    let st = l.wait(LONG).and_then(|s| s.code());
    assert_eq!(st, Some(0), "{}", l.log());
    assert_eq!(
        in_folder(&tv, "Done"),
        ["T1.md", "T2.md", "T3.md", "note.md"]
    );
    // Too large to be read is not a task: in Failed/ with the reason, not retried forever.
    let why = fs::read_to_string(tv.vault.join("Failed/BIG.md.error.txt")).unwrap_or_default();
    assert!(why.contains("larger than 1024 KiB"), "{why:?}\n{}", l.log());
    assert!(in_folder(&tv, "Needs_Action").is_empty() && in_folder(&tv, "In_Progress").is_empty());
    // What the frontmatter edits replaced is removed (off the loop's thread) before it exits.
    for f in ["Needs_Action", "In_Progress", "Done"] {
        let left: Vec<String> = fs::read_dir(tv.vault.join(f))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(".tmp-task-"))
            .collect();
        assert!(left.is_empty(), "{f}: {left:?}");
    }
    let done = tv.vault.join("Done/T1.md");
    assert_eq!(field(&done, "state").as_deref(), Some("done"));
    assert_eq!(field(&done, "status").as_deref(), Some("done"));
    assert_eq!(field(&done, "attempt").as_deref(), Some("1"));
    assert_eq!(field(&done, "cost_usd").as_deref(), Some("0.01"));
    assert!(field(&done, "session_id").is_some());
    // The invalid one: in Failed/ with the reason beside it, and a Dashboard row.
    assert_eq!(in_folder(&tv, "Failed"), ["BAD.md", "BIG.md"]);
    let why = fs::read_to_string(tv.vault.join("Failed/BAD.md.error.txt")).unwrap();
    assert!(why.contains("frontmatter is not valid YAML"), "{why}");
    let dash = tv.dashboard();
    assert!(
        dash.contains("| Task_Failed | ✗ Invalid | BAD: frontmatter"),
        "{dash}"
    );
    assert!(dash.contains("Done today 4"), "{dash}");
    // The event log has one done per task and the runs' costs.
    let events = fs::read_to_string(tv.vault.join("Logs/tasks.jsonl")).unwrap();
    assert_eq!(events.matches("\"event\":\"done\"").count(), 4, "{events}");
    assert_eq!(events.matches("\"event\":\"invalid\"").count(), 2);
    // Each agent's output is in its own log.
    let log = fs::read_to_string(tv.vault.join("Logs/agent/T1.log")).unwrap();
    assert!(log.contains("STATUS: done"), "{log}");
}

/// A task file a person is still writing in place (created, open, half written) is not
/// read until its writer closes it: the loop acts on a close after writing or a rename
/// into the folder, never on the bare creation.
#[cfg(target_os = "linux")]
#[test]
fn a_task_file_still_being_written_waits_for_its_close() {
    use std::io::Write;
    let tv = new_vault();
    table(&tv, "");
    let mut l = Loop::start(&tv, &[]);
    l.wait_log("task loop started");
    let mut slow = fs::File::create(tv.vault.join("Needs_Action/SLOW.md")).unwrap();
    slow.write_all(b"---\ntitle: Slow\n").unwrap();
    // A complete task published after it: done once the loop has taken the events that
    // came after SLOW's creation.
    task(&tv, "QUICK", "", "done");
    wait_in(&tv, "Done/QUICK.md", &l);
    assert_eq!(in_folder(&tv, "Needs_Action"), ["SLOW.md"], "{}", l.log());
    slow.write_all(b"---\n# Slow\n\nfake: done\n").unwrap();
    drop(slow);
    wait_in(&tv, "Done/SLOW.md", &l);
    let done = fs::read_to_string(tv.vault.join("Done/SLOW.md")).unwrap();
    assert!(
        done.contains("title: Slow") && done.contains("fake: done"),
        "{done}"
    );
    assert_eq!(l.stop(), Some(0), "{}", l.log());
}

/// A filesystem task's copy (`FILE_…` beside its note `FILE_….md`) is not a task: it
/// moves with its note and the prompt names it. Another name ending in `.md` beside a
/// file of the same stem is a task of its own, and that file is left where it is.
#[test]
fn a_filesystem_tasks_copy_moves_with_it_and_only_theirs_is_a_copy() {
    let tv = new_vault();
    table(&tv, "");
    let na = tv.vault.join("Needs_Action");
    fs::write(na.join("FILE_20261207T000000Z_report.pdf"), "%PDF-1.4\n").unwrap();
    task(&tv, "FILE_20261207T000000Z_report.pdf", "", "done");
    fs::write(na.join("notes"), "a person's file\n").unwrap();
    task(&tv, "notes", "", "done");
    let mut l = Loop::start(&tv, &["--once"]);
    assert_eq!(l.wait(LONG).and_then(|s| s.code()), Some(0), "{}", l.log());
    assert_eq!(
        files(&tv.vault.join("Done")),
        [
            "FILE_20261207T000000Z_report.pdf",
            "FILE_20261207T000000Z_report.pdf.md",
            "notes.md"
        ]
    );
    assert_eq!(files(&na), ["notes"]);
    assert!(files(&tv.vault.join("In_Progress")).is_empty());
    let prompts = fs::read_to_string(markers(&tv).join("prompts.FILE_20261207T000000Z_report.pdf"))
        .unwrap_or_default();
    assert!(
        prompts.contains("In_Progress/FILE_20261207T000000Z_report.pdf"),
        "{prompts}"
    );
}

/// A loop killed after writing a task's final state but before its event (or its move):
/// the next start moves the task and writes the missing event, once: a task whose event
/// was written is not counted again.
#[test]
fn a_final_state_left_in_progress_is_moved_with_its_event_once() {
    let tv = new_vault();
    table(&tv, "");
    let finished = |id: &str| {
        format!(
            "---\ntype: task\nstate: done\nstatus: done\nattempt: 2\n\
             queued_at: 2026-12-06T10:00:00Z\nstarted_at: 2026-12-06T10:00:01Z\n\
             finished_at: 2026-12-06T10:00:03Z\ncost_usd: 0.5\n---\n# {id}\n"
        )
    };
    fs::write(tv.vault.join("In_Progress/LOST.md"), finished("LOST")).unwrap();
    fs::write(tv.vault.join("In_Progress/KEPT.md"), finished("KEPT")).unwrap();
    // KEPT's event was written before the kill; LOST's was not.
    fs::write(
        tv.vault.join("Logs/tasks.jsonl"),
        "{\"ts\":\"2026-12-06T10:00:03Z\",\"event\":\"done\",\"task\":\"KEPT\",\"attempt\":2}\n",
    )
    .unwrap();
    let mut l = Loop::start(&tv, &["--once"]);
    assert_eq!(l.wait(LONG).and_then(|s| s.code()), Some(0), "{}", l.log());
    assert_eq!(in_folder(&tv, "Done"), ["KEPT.md", "LOST.md"]);
    let events = fs::read_to_string(tv.vault.join("Logs/tasks.jsonl")).unwrap();
    let done_of = |id: &str| {
        events
            .lines()
            .filter(|l| {
                l.contains("\"event\":\"done\"") && l.contains(&format!("\"task\":\"{id}\""))
            })
            .count()
    };
    assert_eq!((done_of("LOST"), done_of("KEPT")), (1, 1), "{events}");
    let lost = events
        .lines()
        .find(|l| l.contains("\"task\":\"LOST\"") && l.contains("\"event\":\"done\""))
        .unwrap();
    assert!(
        lost.contains("\"attempt\":2") && lost.contains("\"cost_usd\":0.5"),
        "{lost}"
    );
}

#[test]
fn dry_run_shows_the_order_and_changes_nothing() {
    let tv = new_vault();
    table(&tv, "");
    task(&tv, "LOW", "priority: low\n", "done");
    task(&tv, "HIGH", "priority: high\n", "done");
    let before = fs::read_to_string(tv.vault.join("Needs_Action/LOW.md")).unwrap();
    let mut l = Loop::start(&tv, &["--once", "--dry-run"]);
    assert_eq!(l.wait(LONG).and_then(|s| s.code()), Some(0), "{}", l.log());
    let out = l.stdout();
    let (h, lo) = (out.find("would run HIGH"), out.find("would run LOW"));
    assert!(h.is_some() && lo.is_some() && h < lo, "{out}");
    assert_eq!(
        fs::read_to_string(tv.vault.join("Needs_Action/LOW.md")).unwrap(),
        before
    );
    assert!(runs(&tv).is_empty(), "no agent ran");
    assert!(!tv.vault.join("Logs/tasks.jsonl").exists());
}

#[test]
fn order_by_score_concurrency_never_exceeded_and_a_high_arrival_takes_the_next_slot() {
    let tv = new_vault();
    table(
        &tv,
        "max_concurrent = 2\nvip_senders = [\"ceo@example.com\"]\n",
    );
    // Paused while the queue fills, so that the order is the score's alone.
    assert_eq!(tasks_cli(&tv, &["pause"]).0, Some(3), "paused, no loop yet");
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(60)).to_rfc3339();
    task(&tv, "L1", "priority: low\n", "sleep 1");
    task(&tv, "M1", "priority: medium\n", "sleep 1");
    task(&tv, "H1", "priority: high\n", "sleep 1");
    task(
        &tv,
        "D1",
        &format!("priority: medium\ndeadline: {soon}\n"),
        "sleep 1",
    );
    task(
        &tv,
        "V1",
        "priority: high\nfrom: \"The CEO <ceo@example.com>\"\n",
        "sleep 1",
    );
    let mut l = Loop::start(&tv, &[]);
    l.wait_log("paused");
    // Queue view while paused: all five, highest score first.
    assert!(wait_until(LONG, || tasks_cli(&tv, &["--json"])
        .1
        .contains("\"L1\"")));
    let (code, json, _) = tasks_cli(&tv, &["--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ids: Vec<&str> = v["snapshot"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["V1", "D1", "H1", "M1", "L1"]);
    assert!(runs(&tv).is_empty(), "nothing starts while paused");
    let resumed = Instant::now();
    assert_eq!(tasks_cli(&tv, &["resume"]).0, Some(0));
    assert!(
        wait_until(LONG, || start_order(&tv).len() >= 2),
        "{}",
        l.log()
    );
    eprintln!("first start {:?} after resume", resumed.elapsed());
    // A high-priority arrival while both slots are busy goes before M1 and L1.
    task(&tv, "H2", "priority: high\n", "sleep 1");
    assert!(
        wait_until(LONG, || start_order(&tv).len() == 6),
        "{}",
        l.log()
    );
    // The loop's own record of its starts: two agents started in the same instant may
    // write their own start lines in either order.
    let order = loop_starts(&tv);
    assert_eq!(
        order[..2].iter().collect::<std::collections::BTreeSet<_>>(),
        ["D1", "V1"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .iter()
            .collect()
    );
    assert_eq!(&order[2..], ["H1", "H2", "M1", "L1"], "{order:?}");
    assert!(
        wait_until(LONG, || in_folder(&tv, "Done").len() == 6),
        "{}",
        l.log()
    );
    let most = most_at_once(&tv);
    assert_eq!(most, Some(2), "never more than max_concurrent at once");
    assert_eq!(l.stop(), Some(0));
}

/// A run's end frees its slot before the task is finished: the next task's agent is
/// started first, then the ended task's final state written and moved, without ever more
/// agents than `max_concurrent`.
#[test]
fn a_freed_slot_goes_to_the_next_task_before_the_ended_one_is_finished() {
    let tv = new_vault();
    table(&tv, "max_concurrent = 1\n");
    task(&tv, "A1", "priority: high\n", "done");
    task(&tv, "B1", "priority: low\n", "done");
    let mut l = Loop::start(&tv, &["--once"]);
    assert_eq!(l.wait(LONG).and_then(|s| s.code()), Some(0), "{}", l.log());
    assert_eq!(in_folder(&tv, "Done"), ["A1.md", "B1.md"]);
    let events: Vec<(String, String)> = fs::read_to_string(tv.vault.join("Logs/tasks.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            Some((
                v["event"].as_str()?.to_string(),
                v["task"].as_str()?.to_string(),
            ))
        })
        .filter(|(e, _)| e == "started" || e == "done")
        .collect();
    let at = |e: &str, t: &str| events.iter().position(|x| x.0 == e && x.1 == t);
    assert!(
        at("started", "B1") < at("done", "A1") && at("done", "A1").is_some(),
        "{events:?}"
    );
    let most = most_at_once(&tv);
    assert_eq!(most, Some(1), "never more than max_concurrent at once");
}

#[test]
fn failures_are_retried_then_failed_and_a_success_on_retry_clears_the_error() {
    let tv = new_vault();
    table(&tv, "max_attempts = 3\n");
    task(&tv, "CRASH", "", "crash 3");
    task(&tv, "JUNK", "", "garbage");
    task(&tv, "SAYS", "", "fail the printer is on fire");
    task(&tv, "FLAKY", "", "fail_times 1");
    let mut l = Loop::start(&tv, &[]);
    assert!(
        wait_until(LONG, || in_folder(&tv, "Failed").len() == 3
            && in_folder(&tv, "Done").len() == 1),
        "{}",
        l.log()
    );
    let crash = tv.vault.join("Failed/CRASH.md");
    assert_eq!(field(&crash, "attempt").as_deref(), Some("3"));
    assert_eq!(field(&crash, "state").as_deref(), Some("failed"));
    // The reason names the exit and the first line the agent wrote on its standard error.
    assert_eq!(
        field(&crash, "last_error").as_deref(),
        Some("the agent exited 3: fake agent: crashing with exit 3")
    );
    assert!(
        field(&tv.vault.join("Failed/JUNK.md"), "last_error")
            .unwrap()
            .contains("without a status line")
    );
    assert_eq!(
        field(&tv.vault.join("Failed/SAYS.md"), "last_error").as_deref(),
        Some("the printer is on fire")
    );
    let flaky = tv.vault.join("Done/FLAKY.md");
    assert_eq!(field(&flaky, "attempt").as_deref(), Some("2"));
    assert_eq!(
        field(&flaky, "last_error"),
        None,
        "a success clears the error"
    );
    assert!(
        wait_until(LONG, || tv
            .dashboard()
            .contains("| Task_Failed | ✗ Failed | CRASH:")),
        "{}",
        tv.dashboard()
    );
    let starts = start_order(&tv);
    assert_eq!(starts.iter().filter(|t| *t == "CRASH").count(), 3);
    assert_eq!(l.stop(), Some(0));
}

/// `verify` (bounded iteration): a check that fails after the agent says done is fed back
/// into a resumed session of the same attempt, with the check's own words; one that
/// never passes ends the attempt after `max_iterations`, and the task fails with them.
#[test]
fn a_failed_verify_is_fed_into_the_next_iteration_then_escalates() {
    use std::os::unix::fs::PermissionsExt;
    let tv = new_vault();
    // Fails its first run for FIXED, every run for BROKEN; one line on each stream.
    let check = tv.path("check");
    let counts = tv.path("check-runs");
    fs::create_dir_all(&counts).unwrap();
    fs::write(
        &check,
        format!(
            "#!/bin/sh\nf={}/$1\necho x >> \"$f\"\nif [ \"$1\" = FIXED ] && [ $(wc -l < \"$f\") -gt 1 ]; \
             then exit 0; fi\necho \"ran 3 tests for $1\"\necho \"FAILED test_total: expected 2, \
             got 3\" >&2\nexit 1\n",
            counts.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&check, fs::Permissions::from_mode(0o755)).unwrap();
    table(
        &tv,
        &format!(
            "verify = [\"{}\", \"{{task}}\"]\nmax_iterations = 3\nmax_attempts = 1\n",
            check.display()
        ),
    );
    task(&tv, "FIXED", "", "done");
    task(&tv, "BROKEN", "", "done");
    let mut l = Loop::start(&tv, &[]);
    wait_in(&tv, "Done/FIXED.md", &l);
    wait_in(&tv, "Failed/BROKEN.md", &l);
    let runs_of = |t: &str| {
        fs::read_to_string(counts.join(t))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(runs_of("FIXED"), 2);
    assert_eq!(runs_of("BROKEN"), 3, "one check per iteration");
    // The second prompt of FIXED resumes the session with what the check printed, both
    // streams.
    let prompts = fs::read_to_string(markers(&tv).join("prompts.FIXED")).unwrap();
    let second = prompts.split("=== ").nth(2).expect("a second prompt");
    let (header, _) = second.split_once('\n').unwrap();
    assert!(!header.ends_with(" -"), "a resumed session: {prompts}");
    assert!(second.contains("ran 3 tests for FIXED"), "{prompts}");
    assert!(
        second.contains("FAILED test_total: expected 2, got 3"),
        "{prompts}"
    );
    assert_eq!(
        start_order(&tv).iter().filter(|t| *t == "BROKEN").count(),
        3,
        "max_iterations runs in the one attempt"
    );
    let why = field(&tv.vault.join("Failed/BROKEN.md"), "last_error").unwrap();
    assert!(why.starts_with("verify failed: "), "{why}");
    assert_eq!(l.stop(), Some(0));
}

/// A task file that stops being a task between its discovery and its claim (it grew past
/// the 1 MiB a task is read up to, written without a close the loop would notice): the
/// claim cannot mark it running, and the look at it in `In_Progress/` that follows sends it
/// to `Failed/` with the reason; no agent runs it.
#[test]
fn a_task_that_became_invalid_before_its_claim_goes_to_failed() {
    use std::io::Write;
    let tv = new_vault();
    table(&tv, "");
    fs::write(tv.vault.join(".claude_stop"), "").unwrap();
    let mut l = Loop::start(&tv, &[]);
    l.wait_log("paused");
    task(&tv, "GROWN", "", "done");
    assert!(wait_until(LONG, || tasks_cli(&tv, &["--json"])
        .1
        .contains("\"GROWN\"")));
    // Appended and kept open: no close-after-write event reaches the loop.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(tv.vault.join("Needs_Action/GROWN.md"))
        .unwrap();
    f.write_all("x".repeat(2 << 20).as_bytes()).unwrap();
    fs::remove_file(tv.vault.join(".claude_stop")).unwrap();
    // The reason is written beside the task once it is in Failed/.
    wait_in(&tv, "Failed/GROWN.md.error.txt", &l);
    drop(f);
    let why = fs::read_to_string(tv.vault.join("Failed/GROWN.md.error.txt")).unwrap_or_default();
    assert!(why.contains("larger than 1024 KiB"), "{why:?}\n{}", l.log());
    assert!(start_order(&tv).is_empty(), "no agent ran it");
    assert_eq!(l.stop(), Some(0));
}

#[test]
fn a_timeout_kills_the_agents_whole_group() {
    let tv = new_vault();
    table(&tv, "timeout = \"1s\"\nmax_attempts = 1\n");
    task(&tv, "HANG", "", "hang 60");
    let mut l = Loop::start(&tv, &[]);
    wait_in(&tv, "Failed/HANG.md", &l);
    assert!(
        field(&tv.vault.join("Failed/HANG.md"), "last_error")
            .unwrap()
            .contains("timed out")
    );
    let gc = grandchild_of(&tv, "HANG", &l);
    assert!(
        wait_until(Duration::from_secs(5), || !alive(gc)),
        "grandchild {gc} survived"
    );
    assert_eq!(l.stop(), Some(0));
}

/// The loop SIGKILLed after an agent started but (as if) before its group was recorded:
/// the next start still finds the agent and its grandchild, by the marker in their
/// environment, and kills them before it runs the task again.
#[test]
fn an_agent_left_behind_unrecorded_is_killed_at_the_next_start() {
    let tv = new_vault();
    table(&tv, "");
    task(&tv, "ORPHAN", "", "hang 60");
    let mut l = Loop::start(&tv, &[]);
    let gc = grandchild_of(&tv, "ORPHAN", &l);
    let agent: i32 = fs::read_to_string(markers(&tv).join("pid.ORPHAN"))
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(-1);
    assert!(agent > 1 && gc > 1);
    l.kill9();
    // The record of groups is gone, as when the loop died before writing it.
    let _ = fs::remove_file(tv.vault.join(".ai-employee/agent-groups"));
    assert!(
        alive(gc),
        "the grandchild outlived the loop until its next start"
    );
    let mut l = Loop::start(&tv, &[]);
    assert!(
        wait_until(Duration::from_secs(10), || !alive(agent) && !alive(gc)),
        "agent {agent} or grandchild {gc} survived the next start:\n{}",
        l.log()
    );
    l.wait_log("found by its AI_EMPLOYEE_AGENT_OF marker");
    assert_eq!(l.stop(), Some(0));
}

#[test]
fn an_agent_that_is_not_logged_in_is_a_setup_problem_not_a_failed_task() {
    let tv = new_vault();
    table(&tv, "");
    task(&tv, "T", "", "notloggedin");
    let mut l = Loop::start(&tv, &[]);
    let st = l.wait(LONG).and_then(|s| s.code());
    assert_eq!(st, Some(78), "{}", l.log());
    let log = l.log();
    assert!(
        log.contains("Not logged in") && log.contains("docs/agent.md"),
        "{log}"
    );
    // The task keeps its attempts and runs once the agent is set up.
    let t = tv.vault.join("In_Progress/T.md");
    assert_eq!(field(&t, "attempt").as_deref(), Some("0"));
    assert_eq!(field(&t, "state").as_deref(), Some("pending"));
    // A missing agent binary: 78 at once, one line.
    tv.write_config("[agent]\ncommand = [\"/nonexistent/claude\", \"-p\", \"{prompt}\"]\n");
    let mut l = Loop::start(&tv, &[]);
    assert_eq!(l.wait(LONG).and_then(|s| s.code()), Some(78));
    assert!(
        l.log()
            .contains("\"/nonexistent/claude\" cannot be started"),
        "{}",
        l.log()
    );
}

#[test]
fn a_sensitive_task_runs_only_after_a_person_approves_it() {
    let tv = new_vault();
    table(&tv, "");
    task(
        &tv,
        "DEPLOY",
        "title: \"Deploy the site to production\"\n",
        "done",
    );
    task(&tv, "DELETE", "title: \"Delete the old backups\"\n", "done");
    let mut h = Handler::start(&tv.vault, &[]);
    let mut l = Loop::start(&tv, &[]);
    wait_in(&tv, "Pending_Approval/RUN_DEPLOY.md", &l);
    wait_in(&tv, "Pending_Approval/RUN_DELETE.md", &l);
    let req = tv.vault.join("Pending_Approval/RUN_DEPLOY.md");
    assert_eq!(field(&req, "action").as_deref(), Some("run_task"));
    assert_eq!(field(&req, "task").as_deref(), Some("DEPLOY"));
    assert!(
        wait_until(LONG, || tasks_cli(&tv, &[])
            .1
            .matches("awaiting run approval")
            .count()
            == 2),
        "{}",
        tasks_cli(&tv, &[]).1
    );
    assert!(
        runs(&tv).is_empty(),
        "the agent did not start before the approval"
    );
    // A person approves one and rejects the other.
    fs::rename(&req, tv.vault.join("Approved/RUN_DEPLOY.md")).unwrap();
    fs::rename(
        tv.vault.join("Pending_Approval/RUN_DELETE.md"),
        tv.vault.join("Rejected/RUN_DELETE.md"),
    )
    .unwrap();
    wait_in(&tv, "Done/DEPLOY.md", &l);
    wait_in(&tv, "Rejected/DELETE.md", &l);
    assert_eq!(start_order(&tv), ["DEPLOY"]);
    assert_eq!(
        field(&tv.vault.join("Done/RUN_DEPLOY.md"), "result").as_deref(),
        Some("approved")
    );
    assert_eq!(l.stop(), Some(0));
    h.stop();
}

#[test]
fn a_drafted_email_is_sent_once_after_approval_and_the_task_finishes() {
    let tv = new_vault();
    table(&tv, "approval_timeout = \"3s\"\n");
    let smtp = Smtp::start(tv.dir.path(), 0, false, 0);
    smtp_toml(&tv.vault, smtp.port, false, "");
    task(&tv, "REPLY", "", "draft_email client@example.com");
    task(&tv, "NOPE", "", "draft_email other@example.com");
    task(&tv, "SLOW", "", "draft_email late@example.com");
    let mut h = Handler::start(&tv.vault, &[]);
    let mut l = Loop::start(&tv, &[]);
    for t in ["REPLY", "NOPE", "SLOW"] {
        wait_in(&tv, &format!("Pending_Approval/APPROVAL_{t}_email.md"), &l);
    }
    assert!(wait_until(LONG, || tasks_cli(&tv, &["--json"])
        .1
        .matches("waiting_approval")
        .count()
        >= 2));
    // The person approves one, rejects one and leaves the third.
    fs::rename(
        tv.vault.join("Pending_Approval/APPROVAL_REPLY_email.md"),
        tv.vault.join("Approved/APPROVAL_REPLY_email.md"),
    )
    .unwrap();
    fs::rename(
        tv.vault.join("Pending_Approval/APPROVAL_NOPE_email.md"),
        tv.vault.join("Rejected/APPROVAL_NOPE_email.md"),
    )
    .unwrap();
    wait_in(&tv, "Done/REPLY.md", &l);
    wait_in(&tv, "Rejected/NOPE.md", &l);
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1, "sent exactly once: {mails:?}");
    // REPLY ran twice: the draft, then the resume with the outcome; never drafted again.
    assert_eq!(start_order(&tv).iter().filter(|t| *t == "REPLY").count(), 2);
    let drafts = fs::read_to_string(markers(&tv).join("drafts.log")).unwrap();
    assert_eq!(drafts.matches("REPLY ").count(), 1, "{drafts}");
    // No decision within approval_timeout: the task needs a person.
    assert!(
        wait_until(LONG, || field(
            &tv.vault.join("In_Progress/SLOW.md"),
            "state"
        )
        .as_deref()
            == Some("needs_review")),
        "{}",
        l.log()
    );
    assert!(wait_until(LONG, || tv
        .dashboard()
        .contains("| Task_Review | ⚠ Needs review | SLOW:")));
    assert_eq!(l.stop(), Some(0));
    h.stop();
}

#[test]
fn the_stop_file_pauses_new_starts_and_tasks_retry_runs_a_failed_task_again() {
    let tv = new_vault();
    table(&tv, "max_attempts = 1\n");
    task(&tv, "A", "", "crash 1");
    let mut l = Loop::start(&tv, &[]);
    wait_in(&tv, "Failed/A.md", &l);
    fs::write(tv.vault.join(".claude_stop"), "").unwrap();
    l.wait_log("paused");
    task(&tv, "B", "", "done");
    // B is queued but does not start while paused.
    assert!(wait_until(LONG, || tasks_cli(&tv, &["--json"])
        .1
        .contains("\"B\"")));
    assert_eq!(start_order(&tv), ["A"]);
    let (code, out, _) = tasks_cli(&tv, &["retry", "A"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(wait_until(LONG, || tasks_cli(&tv, &["--json"])
        .1
        .contains("\"A\"")));
    fs::remove_file(tv.vault.join(".claude_stop")).unwrap();
    wait_in(&tv, "Done/B.md", &l);
    assert!(
        wait_until(LONG, || start_order(&tv).len() == 3),
        "{:?}",
        start_order(&tv)
    );
    let (code, out, _) = tasks_cli(
        &tv,
        &[
            "add",
            "Call the bank",
            "--priority",
            "high",
            "--deadline",
            "2h",
        ],
    );
    assert_eq!(code, Some(0));
    assert!(out.trim().starts_with("Needs_Action/TASK_"), "{out}");
    assert!(
        wait_until(LONG, || in_folder(&tv, "Done").len() == 2),
        "{}",
        l.log()
    );
    assert_eq!(l.stop(), Some(0));
}

/// A person removes a task's file while its agent runs. When the run ends there is no file
/// left to write its state into: the loop forgets the task (it went on editing a file that
/// was gone, "trying again later", every minute for as long as it ran) and goes on.
#[test]
fn a_task_removed_while_its_agent_runs_is_forgotten_when_the_run_ends() {
    let tv = new_vault();
    table(&tv, "");
    task(&tv, "GONE", "", "sleep 600");
    let mut l = Loop::start(&tv, &[]);
    let sleeper = grandchild_of(&tv, "GONE", &l);
    fs::remove_file(tv.vault.join("In_Progress/GONE.md")).unwrap();
    crate::common::signal(sleeper, libc::SIGTERM); // the agent then answers "done"
    l.wait_log("In_Progress/GONE.md is gone");
    assert!(
        wait_until(LONG, || !tasks_cli(&tv, &["--json"]).1.contains("GONE")),
        "still listed: {}",
        tasks_cli(&tv, &["--json"]).1
    );
    // The loop goes on with the next task; nothing was made of the removed one.
    task(&tv, "NEXT", "", "done");
    wait_in(&tv, "Done/NEXT.md", &l);
    for folder in ["Needs_Action", "In_Progress", "Done", "Failed"] {
        assert!(
            !in_folder(&tv, folder).contains(&"GONE.md".to_string()),
            "GONE.md in {folder}/"
        );
    }
    let log = l.log();
    assert!(!log.contains("cannot record the end"), "{log}");
    assert_eq!(l.stop(), Some(0));
}

/// Crash injection: the loop SIGKILLed at random moments while 500 tasks run. Every task
/// reaches Done/ exactly once; a run the kill interrupted counts as an attempt.
#[test]
fn crash_injection_500_tasks_and_50_kills() {
    let tv = new_vault();
    table(
        &tv,
        "max_concurrent = 10\nmax_attempts = 100\nretry_delays = [\"0s\"]\n",
    );
    const N: usize = 500;
    for i in 0..N {
        task(&tv, &format!("T{i:04}"), "", "done");
    }
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while in_folder(&tv, "Done").len() < N && Instant::now() < deadline {
        let mut l = Loop::start(&tv, &[]);
        if kills < 50 {
            // Killed while it works: after its first start of this round.
            let before = start_order(&tv).len();
            assert!(
                wait_until(LONG, || start_order(&tv).len() > before
                    || in_folder(&tv, "Done").len() == N),
                "round {kills}: {before} starts; runs.log {:?}; agent.err:\n{}",
                fs::read_dir(markers(&tv)).map(|d| d.count()).ok(),
                l.log()
                    .lines()
                    .filter(|l| !l.contains("queued"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(next() % 200));
            l.kill9();
            kills += 1;
        } else {
            assert!(
                wait_until(Duration::from_secs(120), || in_folder(&tv, "Done").len()
                    == N),
                "{}",
                l.log()
            );
            assert_eq!(l.stop(), Some(0));
        }
    }
    let done = in_folder(&tv, "Done");
    assert_eq!(done.len(), N, "every task in Done/ exactly once");
    assert!(
        done.iter().all(|n| !n.contains("-2.md")),
        "no task done twice"
    );
    assert!(in_folder(&tv, "Needs_Action").is_empty() && in_folder(&tv, "In_Progress").is_empty());
    assert!(in_folder(&tv, "Failed").is_empty());
    // Every run the agent started was counted as an attempt (a run the kill interrupted
    // too); a claim killed before its agent started may count one more.
    let mut per_task = std::collections::HashMap::new();
    for t in start_order(&tv) {
        *per_task.entry(t).or_insert(0u32) += 1;
    }
    let mut attempts = 0;
    for n in &done {
        let a: u32 = field(&tv.vault.join("Done").join(n), "attempt")
            .unwrap()
            .parse()
            .unwrap();
        let id = n.trim_end_matches(".md");
        let ran = per_task.get(id).copied().unwrap_or(0);
        assert!(
            ran >= 1 && a >= ran,
            "{id}: {a} attempts counted, {ran} runs"
        );
        attempts += a;
    }
    let starts = start_order(&tv).len() as u32;
    eprintln!("{N} tasks, {kills} kills: {starts} agent runs, {attempts} attempts counted");
}
