//! `tasks metrics` and `tasks health` over real files: a `Logs/tasks.jsonl` and an
//! `.ai-employee/tasks.json` in a temp vault, the loop's lock held by a real `flock`.

use std::fs;
use std::path::Path;
use std::time::Duration;

use ai_employee::agent::events::{EventKind, RunResult, TaskEvent};
use ai_employee::agent::health::{Lock, State};
use ai_employee::agent::metrics;
use ai_employee::agent::snapshot::{Snapshot, TaskState, TaskView};
use ai_employee::commands::tasks::{health, metrics as metrics_cmd};
use ai_employee::config::model::AgentSettings;
use ai_employee_vault::layout::Vault;
use ai_employee_vault::lock::VaultLock;
use chrono::{DateTime, TimeDelta, Utc};

use crate::common::TestVault;

/// A vault with the folders the loop uses.
fn vault() -> (TestVault, Vault) {
    let tv = TestVault::new();
    let layout = Vault::new(tv.vault.clone());
    fs::create_dir_all(layout.logs_dir()).unwrap();
    fs::create_dir_all(layout.state_dir()).unwrap();
    (tv, layout)
}

fn event(ts: DateTime<Utc>, kind: EventKind, task: &str) -> TaskEvent {
    TaskEvent::new(ts, kind, task)
}

fn run(ts: DateTime<Utc>, task: &str, result: RunResult, ms: u64) -> TaskEvent {
    let mut e = event(ts, EventKind::Run, task);
    e.attempt = Some(1);
    e.iteration = Some(1);
    e.result = Some(result);
    e.duration_ms = Some(ms);
    e.cost_usd = Some(0.02);
    e.turns = Some(3);
    e
}

fn write_log(layout: &Vault, events: &[TaskEvent], tail: &str) {
    let mut text = String::new();
    for e in events {
        text.push_str(&serde_json::to_string(e).unwrap());
        text.push('\n');
    }
    text.push_str(tail);
    fs::write(layout.logs_dir().join("tasks.jsonl"), text).unwrap();
}

fn write_snapshot(layout: &Vault, s: &Snapshot) {
    fs::write(
        layout.state_file("tasks.json"),
        serde_json::to_vec_pretty(s).unwrap(),
    )
    .unwrap();
}

/// A task as the loop writes it into the snapshot.
fn task(id: &str, state: TaskState, now: DateTime<Utc>) -> TaskView {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "file": format!("Needs_Action/{id}.md"),
        "title": id,
        "state": state,
        "score": 0.3,
        "attempt": 0,
        "queued_at": now,
    }))
    .unwrap()
}

fn snapshot(now: DateTime<Utc>, tasks: Vec<TaskView>) -> Snapshot {
    Snapshot {
        version: 1,
        pid: std::process::id(),
        written_at: Some(now),
        started_at: Some(now - TimeDelta::hours(30)),
        max_concurrent: 2,
        tasks,
        last_completion: Some(now - TimeDelta::minutes(10)),
        ..Snapshot::default()
    }
}

/// Two days of a log: last week's tasks, then yesterday's, then the last hours'.
fn two_days(now: DateTime<Utc>) -> Vec<TaskEvent> {
    let mut out = Vec::new();
    let mut at = |hours_ago: i64, i: usize, ok: bool| {
        let ts = now - TimeDelta::hours(hours_ago) + TimeDelta::seconds(i as i64);
        let id = format!("T{hours_ago}_{i}");
        out.push(event(ts, EventKind::Queued, &id));
        out.push(run(
            ts,
            &id,
            if ok {
                RunResult::Done
            } else {
                RunResult::Crashed
            },
            1000 * (i as u64 + 1),
        ));
        if ok {
            out.push(event(ts, EventKind::Done, &id));
        } else {
            out.push(event(ts, EventKind::Retry, &id));
        }
    };
    for i in 0..10 {
        at(100, i, true);
    }
    for i in 0..10 {
        at(30, i, i % 2 == 0);
    }
    for i in 0..20 {
        at(2, i, i != 0);
    }
    out
}

#[test]
fn metrics_of_the_last_day_come_from_the_log_file() {
    let (tv, layout) = vault();
    let now = Utc::now();
    write_log(
        &layout,
        &two_days(now),
        // A line that never finished: not an event.
        "{\"ts\":\"2026-01-01T00:00:00Z\",\"event\":\"do",
    );
    let m = metrics::read(&tv.vault, now - TimeDelta::hours(24), now).unwrap();
    assert_eq!(
        (m.tasks_done, m.runs, m.run_errors, m.retries),
        (19, 20, 1, 1)
    );
    assert_eq!(m.duration_p50_ms, Some(10_000));
    assert_eq!(m.duration_p95_ms, Some(19_000));
    assert!((m.cost_usd - 0.4).abs() < 1e-9);
    assert_eq!(m.turns, 60);
    assert_eq!(m.skipped_lines, 0);
    assert_eq!(m.hours.iter().map(|h| h.done).sum::<u64>(), 19);

    let week = metrics::read(&tv.vault, now - TimeDelta::days(7), now).unwrap();
    assert_eq!((week.tasks_done, week.runs, week.run_errors), (34, 40, 6));

    // The command: exit 0, with or without --json.
    assert_eq!(
        metrics_cmd::metrics(&tv.vault, Duration::from_secs(86_400), true),
        0
    );
    assert_eq!(
        metrics_cmd::metrics(&tv.vault, Duration::from_secs(7 * 86_400), false),
        0
    );

    // The loop's start-up totals: the whole log.
    let (all, _today, skipped) =
        metrics::read_totals(&tv.vault, now - TimeDelta::hours(12)).unwrap();
    assert_eq!(
        (all.done, all.runs, all.run_errors, skipped),
        (34, 40, 6, 0)
    );
    assert_eq!(all.duration_counts.iter().sum::<u64>(), 40);
}

#[test]
fn health_follows_the_lock_the_snapshot_and_the_log() {
    let (tv, layout) = vault();
    let settings = AgentSettings::default();
    let now = Utc::now();
    write_log(&layout, &two_days(now), "");

    // No lock file and no snapshot: no loop.
    assert_eq!(health::lock_state(&layout), Lock::Unknown);
    assert_eq!(health::health(&tv.vault, true, &settings), 3);

    // The loop holds its lock and wrote a fresh snapshot.
    let lock = VaultLock::acquire(&layout.watcher_lock(health::LOOP_NAME)).unwrap();
    write_snapshot(
        &layout,
        &snapshot(now, vec![task("a", TaskState::Pending, now)]),
    );
    let h = health::assess(&tv.vault, &settings).unwrap();
    assert_eq!((h.state, h.reasons.len()), (State::Healthy, 0), "{h:?}");
    assert_eq!(health::health(&tv.vault, false, &settings), 0);

    // 34 tasks waiting.
    let many = (0..34)
        .map(|i| task(&format!("t{i}"), TaskState::Pending, now))
        .collect();
    write_snapshot(&layout, &snapshot(now, many));
    let h = health::assess(&tv.vault, &settings).unwrap();
    assert_eq!(h.state, State::Degraded);
    assert_eq!(h.reasons, ["backlog 34 tasks over max_backlog 20"]);
    assert_eq!(health::health(&tv.vault, true, &settings), 1);

    // The agent cannot run.
    let setup = Snapshot {
        needs_setup: Some("claude: not logged in".into()),
        ..snapshot(now, vec![])
    };
    write_snapshot(&layout, &setup);
    assert_eq!(
        health::assess(&tv.vault, &settings).unwrap().state,
        State::Unhealthy
    );
    assert_eq!(health::health(&tv.vault, false, &settings), 1);

    // A stricter error rate: 1 of the last day's 20 runs is 5 %.
    let strict = AgentSettings {
        max_error_rate: 0.04,
        ..AgentSettings::default()
    };
    write_snapshot(&layout, &snapshot(now, vec![]));
    let h = health::assess(&tv.vault, &strict).unwrap();
    assert_eq!(
        h.reasons,
        ["error rate 5% of 20 runs in the last 24 h over max_error_rate 4%"]
    );

    // The loop is gone: its lock is free.
    drop(lock);
    assert_eq!(health::lock_state(&layout), Lock::Free);
    assert_eq!(health::health(&tv.vault, true, &settings), 3);
}

#[test]
fn a_stale_snapshot_of_a_gone_pid_means_no_loop_and_a_broken_one_is_unknown() {
    let (tv, layout) = vault();
    let settings = AgentSettings::default();
    let now = Utc::now();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = child.id();
    child.wait().unwrap();
    let old = Snapshot {
        pid: gone,
        written_at: Some(now - TimeDelta::minutes(5)),
        ..snapshot(now, vec![])
    };
    write_snapshot(&layout, &old);
    let h = health::assess(&tv.vault, &settings).unwrap();
    assert_eq!(h.state, State::NotRunning, "{h:?}");
    assert!(
        h.reasons[0].contains(&format!("pid {gone} is gone")),
        "{h:?}"
    );
    assert_eq!(health::health(&tv.vault, false, &settings), 3);

    fs::write(layout.state_file("tasks.json"), "{\"version\":1,").unwrap();
    let e = health::assess(&tv.vault, &settings).unwrap_err();
    assert!(e.contains("tasks.json") && e.contains("line 1"), "{e}");
    assert_eq!(health::health(&tv.vault, true, &settings), 4);
}

#[test]
fn an_empty_vault_has_zero_metrics() {
    let tv = TestVault::new();
    fs::create_dir_all(&tv.vault).unwrap();
    let now = Utc::now();
    let m = metrics::read(&tv.vault, now - TimeDelta::days(7), now).unwrap();
    assert_eq!((m.tasks_done, m.runs, m.error_rate), (0, 0, None));
    assert_eq!(m.hours.len(), 7 * 24 + 1);
    assert_eq!(
        metrics_cmd::metrics(Path::new(&tv.vault), Duration::from_secs(3600), false),
        0
    );
}
