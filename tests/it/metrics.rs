//! The metrics endpoint of a running supervisor, checked with Prometheus' own tools
//! (`promtool`, Debian package `prometheus`): the classic text format passes
//! `promtool check metrics`, OpenMetrics passes promtool's OpenMetrics parser, each is
//! served when asked for, and families come in a stable order.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

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
/// `_total`). Returns the sample lines' `name{labels}` in order.
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
        if line == "# EOF" || line.is_empty() {
            continue;
        }
        let key = line.rsplit_once(' ').unwrap().0.to_string();
        let metric = key.split('{').next().unwrap();
        let (family, family_kind) = kind.clone().unwrap_or_else(|| panic!("no TYPE for {line}"));
        let want = if openmetrics && family_kind == "counter" {
            format!("{family}_total")
        } else {
            family.clone()
        };
        assert_eq!(metric, want, "{line} under # TYPE {family} {family_kind}");
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
        let _ = std::fs::remove_dir_all(dir.path().join("blocks"));
    }

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
