//! The metrics endpoint of a running supervisor, checked with Prometheus' own tools
//! (`promtool`, Debian package `prometheus`): the classic text format passes
//! `promtool check metrics`, OpenMetrics passes promtool's OpenMetrics parser, each is
//! served when asked for, and families come in a stable order.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ai_employee::agent::snapshot::{Snapshot, TaskState, TaskView};

use crate::common::*;

const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` with an optional `Accept`: (content type, body).
fn scrape(port: u16, accept: Option<&str>) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect metrics");
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (content_type, body.to_string())
}

fn promtool() -> &'static str {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "promtool not found: install the Debian package `prometheus` (tests/run.sh does)"
    );
    "promtool"
}

/// `promtool check metrics < body`: (exit code, its output).
fn check_metrics(body: &str) -> (Option<i32>, String) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// promtool's OpenMetrics parser (`tsdb create-blocks-from openmetrics`). It wants a
/// timestamp on every sample, so one is added; everything else is parsed as served.
fn parse_openmetrics(body: &str, dir: &Path) -> (Option<i32>, String) {
    let stamped: String = body
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                format!("{l}\n")
            } else {
                format!("{l} 1700000000\n")
            }
        })
        .collect();
    let input = dir.join("scrape.om");
    std::fs::write(&input, stamped).unwrap();
    let out = Command::new(promtool())
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.join("blocks"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Every sample's family was introduced by `# HELP` and `# TYPE` (classic: under the
/// sample's own name; OpenMetrics: under the family name, counters' samples with
/// `_total`; histograms' samples with `_bucket`, `_sum`, `_count` in both). Returns the sample lines' `name{labels}` in order.
fn assert_described(body: &str, openmetrics: bool) -> Vec<String> {
    let mut help: Option<String> = None;
    let mut kind: Option<(String, String)> = None;
    let mut series = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_whitespace().next().map(str::to_string);
            kind = None;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut w = rest.split_whitespace();
            let name = w.next().unwrap().to_string();
            assert_eq!(
                help.as_deref(),
                Some(name.as_str()),
                "TYPE without HELP: {line}"
            );
            kind = Some((name, w.next().unwrap().to_string()));
            continue;
        }
        // `# EOF`, and other comments (the classic format allows them).
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let key = line.rsplit_once(' ').unwrap().0.to_string();
        let metric = key.split('{').next().unwrap();
        let (family, family_kind) = kind.clone().unwrap_or_else(|| panic!("no TYPE for {line}"));
        let want: Vec<String> = match family_kind.as_str() {
            "counter" if openmetrics => vec![format!("{family}_total")],
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{family}{s}"))
                .collect(),
            _ => vec![family.clone()],
        };
        assert!(
            want.iter().any(|w| w == metric),
            "{line} under # TYPE {family} {family_kind}"
        );
        series.push(key);
    }
    series
}

#[test]
fn promtool_accepts_both_formats_from_a_running_supervisor() {
    let tv = TestVault::new();
    let port = free_port();
    tv.write_config(&format!(
        "[supervisor]\nmetrics = \"127.0.0.1:{port}\"\n\n{}\n{}\n{}",
        sh_process("sleeper", "exec sleep 1000", ""),
        sh_process(
            "crasher",
            "exit 3",
            "backoff = { initial = \"1h\", max = \"1h\" }"
        ),
        sh_process("killed", "kill -9 $$", "restart = \"never\""),
    ));
    let mut sup = tv.start();
    let ready = || {
        let (_, body) = scrape(port, Some("text/plain"));
        body.contains("ai_employee_child_last_exit_code{name=\"crasher\"} 3")
            && body.contains("ai_employee_child_last_exit_code{name=\"killed\"} 137")
            && body.contains("ai_employee_child_up{name=\"sleeper\"} 1")
    };
    assert!(
        wait_until(Duration::from_secs(20), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()
            && ready()),
        "{}\n{}",
        sup.console(),
        tv.system_log()
    );

    assert_promtool_accepts_both(port);

    // Stable order: families in the documented order, samples in the table's order,
    // the same on every scrape.
    let (_, first) = scrape(port, Some("text/plain"));
    let families: Vec<&str> = first
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        families,
        [
            "ai_employee_child_up",
            "ai_employee_child_restarts_total",
            "ai_employee_child_last_exit_code",
            "ai_employee_child_rss_bytes",
            "ai_employee_child_cpu_seconds_total",
            "ai_employee_supervisor_uptime_seconds",
            "ai_employee_supervisor_healthy",
        ]
    );
    let series = assert_described(&first, false);
    let ups: Vec<&String> = series
        .iter()
        .filter(|s| s.starts_with("ai_employee_child_up{"))
        .collect();
    assert_eq!(
        ups,
        [
            "ai_employee_child_up{name=\"sleeper\"}",
            "ai_employee_child_up{name=\"crasher\"}",
            "ai_employee_child_up{name=\"killed\"}",
        ]
    );
    for _ in 0..20 {
        let (_, again) = scrape(port, Some("text/plain"));
        assert_eq!(assert_described(&again, false), series);
    }
    assert!(sup.stop().is_some());
}

/// Both formats, asked for in the ways clients ask, pass promtool.
fn assert_promtool_accepts_both(port: u16) {
    // The classic text format, asked for the way Prometheus' older servers and most
    // tools ask: promtool's linter finds nothing.
    for accept in [
        "text/plain;version=0.0.4",
        "text/plain",
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    ] {
        let (content_type, body) = scrape(port, Some(accept));
        assert_eq!(
            content_type, "text/plain; version=0.0.4; charset=utf-8",
            "Accept: {accept}"
        );
        let (code, out) = check_metrics(&body);
        assert_eq!(
            code,
            Some(0),
            "Accept: {accept}: promtool says:\n{out}\n{body}"
        );
        assert!(out.trim().is_empty(), "promtool lint: {out}");
        assert!(!body.contains("# EOF"), "{body}");
        assert_described(&body, false);
    }

    // OpenMetrics, asked for the way Prometheus asks (and with no Accept at all).
    let dir = tempfile::tempdir().unwrap();
    for accept in [
        Some(PROMETHEUS_ACCEPT),
        Some("application/openmetrics-text"),
        None,
    ] {
        let (content_type, body) = scrape(port, accept);
        assert_eq!(
            content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "Accept: {accept:?}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
        let (code, out) = parse_openmetrics(&body, dir.path());
        assert_eq!(
            code,
            Some(0),
            "Accept: {accept:?}: promtool says:\n{out}\n{body}"
        );
        assert_described(&body, true);
        // A leftover from the previous format checked; absent the first time.
        let _ = std::fs::remove_dir_all(dir.path().join("blocks"));
    }
}

/// The task loop's snapshot as the loop writes it (`tasks` states as given, pid: this
/// test process, alive), replaced atomically.
fn write_tasks_json(vault: &Path, states: &[TaskState]) {
    let task = |i: usize, state: TaskState| TaskView {
        id: format!("task-{i}"),
        file: format!("Needs_Action/task-{i}.md"),
        title: format!("A task with a title of a realistic length, number {i}"),
        state,
        score: 0.5,
        attempt: 1,
        queued_at: chrono::Utc::now(),
        started_at: Some(chrono::Utc::now()),
        retry_at: None,
        last_error: Some("the agent said something went wrong".into()),
        priority: Some("high".into()),
        deadline: None,
        pid: None,
        approvals: vec![format!("Pending_Approval/task-{i}-email.md")],
        cost_usd: 0.01,
        turns: 3,
    };
    let mut snap = Snapshot {
        version: 1,
        pid: std::process::id(),
        written_at: Some(chrono::Utc::now()),
        max_concurrent: 2,
        tasks: states
            .iter()
            .enumerate()
            .map(|(i, &s)| task(i, s))
            .collect(),
        ..Snapshot::default()
    };
    snap.totals.done = 7;
    snap.totals.failed = 2;
    snap.totals.runs = 11;
    snap.totals.run_errors = 2;
    snap.totals.cost_usd = 1.25;
    snap.totals.duration_counts = vec![0, 3, 4, 2, 0, 0, 0, 0, 0, 1, 1];
    snap.totals.duration_sum_s = 9000.0;
    let state = vault.join(".ai-employee");
    let tmp = state.join("tasks.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&snap).unwrap()).unwrap();
    std::fs::rename(&tmp, state.join("tasks.json")).unwrap();
}

#[test]
fn task_families_come_from_the_loops_snapshot_and_pass_promtool() {
    let tv = TestVault::new();
    let port = free_port();
    tv.write_config(&format!(
        "[supervisor]\nmetrics = \"127.0.0.1:{port}\"\n\n{}",
        sh_process("sleeper", "exec sleep 1000", ""),
    ));
    let mut sup = tv.start();
    assert!(
        wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
                && scrape(port, Some("text/plain"))
                    .1
                    .contains("ai_employee_child_up{name=\"sleeper\"} 1")
        }),
        "{}",
        sup.console()
    );
    // No snapshot: no task families at all.
    let (_, body) = scrape(port, Some("text/plain"));
    assert!(!body.contains("task"), "{body}");

    let vault = tv.path("vault");
    use TaskState::*;
    write_tasks_json(
        &vault,
        &[Running, Pending, Pending, WaitingApproval, NeedsReview],
    );
    let (_, body) = scrape(port, Some("text/plain"));
    for want in [
        "ai_employee_tasks_snapshot_ok 1\n",
        "ai_employee_tasks{state=\"pending\"} 2\n",
        "ai_employee_tasks{state=\"running\"} 1\n",
        "ai_employee_tasks{state=\"retry\"} 0\n",
        "ai_employee_task_outcomes_total{outcome=\"failed\"} 2\n",
        "ai_employee_task_run_duration_seconds_bucket{le=\"15.0\"} 7\n",
        "ai_employee_task_run_duration_seconds_count 11\n",
        "ai_employee_task_cost_usd_total 1.25\n",
        "ai_employee_tasks_paused 0\n",
    ] {
        assert!(body.contains(want), "{want} not in\n{body}");
    }
    let families: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter(|l| l.contains("task"))
        .collect();
    assert_eq!(
        families,
        [
            "ai_employee_tasks_snapshot_ok gauge",
            "ai_employee_tasks_snapshot_age_seconds gauge",
            "ai_employee_tasks gauge",
            "ai_employee_tasks_paused gauge",
            "ai_employee_task_outcomes_total counter",
            "ai_employee_task_runs_total counter",
            "ai_employee_task_run_errors_total counter",
            "ai_employee_task_retries_total counter",
            "ai_employee_task_run_duration_seconds histogram",
            "ai_employee_task_cost_usd_total counter",
            "ai_employee_task_turns_total counter",
        ]
    );
    assert_promtool_accepts_both(port);

    // With the work queue (docs/workers.md): its families too, valid for promtool.
    let path = vault.join(".ai-employee/tasks.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["queue"] = serde_json::to_value(ai_employee::agent::snapshot::QueueView {
        url: "redis://127.0.0.1:6379/0".into(),
        reachable: true,
        in_flight: 4,
        workers_alive: 2,
        worker_runs: [("build1".to_string(), 3), ("mini".to_string(), 1)].into(),
        metrics: Some(ai_employee::queue::QueueMetrics {
            tasks_length: 4,
            tasks_pending: 3,
            reclaims: 2,
            ..Default::default()
        }),
        results_applied: 10,
        ..Default::default()
    })
    .unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&v).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let (_, body) = scrape(port, Some("text/plain"));
    for want in [
        "ai_employee_queue_in_flight 4\n",
        "ai_employee_queue_depth 1\n",
        "ai_employee_queue_worker_runs{worker=\"build1\"} 3\n",
        "ai_employee_queue_results_total{outcome=\"applied\"} 10\n",
        "ai_employee_queue_reclaims_total 2\n",
    ] {
        assert!(body.contains(want), "{want} not in\n{body}");
    }
    assert_promtool_accepts_both(port);

    // 10,000 tasks (about 3 MB): the scrape stays cheap.
    let many: Vec<TaskState> = (0..10_000).map(|i| [Pending, Retry][i % 2]).collect();
    write_tasks_json(&vault, &many);
    let size = std::fs::metadata(vault.join(".ai-employee/tasks.json"))
        .unwrap()
        .len();
    let start = std::time::Instant::now();
    let (_, body) = scrape(port, Some("text/plain"));
    let took = start.elapsed();
    assert!(
        body.contains("ai_employee_tasks{state=\"retry\"} 5000\n"),
        "{body}"
    );
    eprintln!("a scrape with 10,000 tasks ({size} bytes of tasks.json) took {took:?}");

    // A damaged snapshot: the scrape still works, says so, and stays valid.
    std::fs::write(
        vault.join(".ai-employee/tasks.json"),
        "{\"version\": 1, \"pi",
    )
    .unwrap();
    let (_, body) = scrape(port, Some("text/plain"));
    assert!(body.contains("ai_employee_tasks_snapshot_ok 0\n"), "{body}");
    assert!(
        body.contains("# task metrics left out: .ai-employee/tasks.json: "),
        "{body}"
    );
    assert!(!body.contains("ai_employee_tasks{"), "{body}");
    assert_promtool_accepts_both(port);
    assert!(sup.stop().is_some());
}
