//! `[supervisor] metrics = "127.0.0.1:9464"`: Prometheus metrics over HTTP (`GET
//! /metrics`). Values come from the same status report as `ai-employee status --json`,
//! taken at scrape time.
//!
//! Two formats, chosen by the request's `Accept` header: the classic Prometheus text
//! format (`text/plain; version=0.0.4`) and OpenMetrics 1.0 (`application/openmetrics-text`,
//! what Prometheus itself asks for first, and the answer when the request states no
//! preference). Both carry `# HELP` and `# TYPE` for every family; families come in a
//! fixed order and samples in the table's order, so two scrapes of the same state are
//! byte-identical.

use std::net::SocketAddr;

use ai_employee_vault::control::{Request, StatusReport};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::control::Call;

const PREFIX: &str = "ai_employee_";

/// The two exposition formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The classic Prometheus text format, version 0.0.4.
    Text,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The format to answer a request with `Accept: accept` (content negotiation with
/// q-values). OpenMetrics when it is preferred, when both are equally welcome (`*/*`) and
/// when the header is missing or names neither; the classic format when `text/plain`
/// (any version) is preferred.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::OpenMetrics;
    };
    // The best q of each format (None: not acceptable at all).
    let (mut text, mut open): (Option<f32>, Option<f32>) = (None, None);
    let better = |slot: &mut Option<f32>, q: f32| {
        if slot.is_none_or(|old| q > old) {
            *slot = Some(q);
        }
    };
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if q.is_nan() || q <= 0.0 {
            continue;
        }
        match media.as_str() {
            "application/openmetrics-text" => better(&mut open, q),
            "text/plain" => better(&mut text, q),
            // A wildcard is worth less than a named type of the same q.
            "*/*" => {
                better(&mut open, q * 0.999);
                better(&mut text, q * 0.998);
            }
            "text/*" => better(&mut text, q * 0.999),
            "application/*" => better(&mut open, q * 0.999),
            _ => {}
        }
    }
    match (text, open) {
        (Some(t), Some(o)) if t > o => Format::Text,
        (Some(_), None) => Format::Text,
        _ => Format::OpenMetrics,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

/// One metric family: its samples are `(child name or None, value)`.
struct Family {
    /// Without the prefix, and for a counter without `_total`.
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Option<String>, Value)>,
}

#[derive(Clone, Copy)]
enum Value {
    Int(i64),
    Float(f64),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Float(x) if x.is_nan() => f.write_str("NaN"),
            Value::Float(x) if x.is_infinite() => {
                f.write_str(if x > 0.0 { "+Inf" } else { "-Inf" })
            }
            // Rust never writes an exponent here; both formats accept plain decimals.
            Value::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// The families for a status report, in their fixed order.
fn families(report: &StatusReport) -> Vec<Family> {
    let per_child = |f: &dyn Fn(&ai_employee_vault::control::ChildStatus) -> Option<Value>| {
        report
            .children
            .iter()
            .filter_map(|c| Some((Some(c.name.clone()), f(c)?)))
            .collect::<Vec<_>>()
    };
    vec![
        Family {
            name: "child_up",
            help: "1 if the child is running.",
            kind: Kind::Gauge,
            samples: per_child(&|c| Some(Value::Int(i64::from(c.state == "running")))),
        },
        Family {
            name: "child_restarts",
            help: "Restarts since the supervisor started.",
            kind: Kind::Counter,
            samples: per_child(&|c| Some(Value::Int(i64::from(c.restarts)))),
        },
        Family {
            name: "child_last_exit_code",
            help: "Exit code of the last run (128 + signal number when killed by a signal).",
            kind: Kind::Gauge,
            samples: per_child(&|c| c.last_exit.as_ref().map(|e| Value::Int(exit_code(e)))),
        },
        Family {
            name: "child_rss_bytes",
            help: "Resident set size of the running process.",
            kind: Kind::Gauge,
            samples: per_child(&|c| {
                c.rss_bytes
                    .map(|b| Value::Int(i64::try_from(b).unwrap_or(i64::MAX)))
            }),
        },
        Family {
            name: "child_cpu_seconds",
            help: "User + system CPU time of the running process.",
            kind: Kind::Counter,
            samples: per_child(&|c| c.cpu_seconds.map(Value::Float)),
        },
        Family {
            name: "supervisor_uptime_seconds",
            help: "Seconds since the supervisor started.",
            kind: Kind::Gauge,
            samples: vec![(None, Value::Float(report.supervisor.uptime_secs))],
        },
        Family {
            name: "supervisor_healthy",
            help: "1 if every child is as it should be (status exit 0).",
            kind: Kind::Gauge,
            samples: vec![(
                None,
                Value::Int(i64::from(
                    report.health == ai_employee_vault::control::Health::Healthy,
                )),
            )],
        },
    ]
}

/// The metrics text for a status report, in `format`.
pub fn render(report: &StatusReport, format: Format) -> String {
    let mut out = String::new();
    for family in families(report) {
        // A family without samples (no child has exited yet) is left out, as the
        // official clients do.
        if family.samples.is_empty() {
            continue;
        }
        let total = if family.kind == Kind::Counter {
            "_total"
        } else {
            ""
        };
        let sample_name = format!("{PREFIX}{}{total}", family.name);
        // Classic: HELP and TYPE name the sample (`…_total`); OpenMetrics: the family.
        let family_name = match format {
            Format::Text => sample_name.clone(),
            Format::OpenMetrics => format!("{PREFIX}{}", family.name),
        };
        let kind = match family.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        out += &format!(
            "# HELP {family_name} {}\n# TYPE {family_name} {kind}\n",
            escape_help(family.help, format)
        );
        for (child, value) in family.samples {
            out += &match child {
                Some(name) => format!(
                    "{sample_name}{{name=\"{}\"}} {value}\n",
                    escape_label(&name)
                ),
                None => format!("{sample_name} {value}\n"),
            };
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// HELP text: backslash and line feed escaped (and, in OpenMetrics, the double quote).
fn escape_help(s: &str, format: Format) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Format::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A label value: backslash, double quote and line feed escaped (both formats).
fn escape_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Shell convention: a signal death is 128 + its number.
fn exit_code(e: &ai_employee_vault::control::LastExit) -> i64 {
    match (e.code, &e.signal) {
        (Some(c), _) => i64::from(c),
        (None, Some(name)) => name
            .parse::<nix::sys::signal::Signal>()
            .map_or(-1, |s| 128 + s as i64),
        (None, None) => -1,
    }
}

/// Serve `GET /metrics` on `addr` from the current runtime.
pub async fn serve(addr: SocketAddr, calls: mpsc::UnboundedSender<Call>) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics: cannot listen on {addr}: {e}; metrics are off");
            return;
        }
    };
    info!("metrics: serving http://{addr}/metrics");
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(calls);
    if let Err(e) = axum::serve(listener, app).await {
        warn!("metrics: server stopped: {e}");
    }
}

async fn scrape(
    State(calls): State<mpsc::UnboundedSender<Call>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let format = negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let (reply, answer) = oneshot::channel();
    let sent = calls.send(Call {
        request: Request::Status,
        reply,
    });
    let status = match (sent, answer.await) {
        (Ok(()), Ok(r)) => r.status,
        _ => None,
    };
    match status {
        Some(s) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, format.content_type()),
                (header::VARY, "Accept"),
            ],
            render(&s, format),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::VARY, "Accept"),
            ],
            "the supervisor is shutting down\n".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use ai_employee_vault::control::ChildStatus;

    use super::*;
    use crate::supervisor::fixtures::{self, killed_by};

    fn report() -> StatusReport {
        let child = |name: &str, state: &str| ChildStatus {
            description: name.into(),
            restarts: 2,
            ..fixtures::child(name, state)
        };
        let mut a = child("zeta", "running");
        a.rss_bytes = Some(4096);
        a.cpu_seconds = Some(0.5);
        let mut b = child("alpha", "backoff");
        b.last_exit = killed_by("SIGKILL");
        fixtures::report(1, 12.25, vec![a, b])
    }

    #[test]
    fn negotiation() {
        use Format::*;
        let cases = [
            (None, OpenMetrics),
            (Some(""), OpenMetrics),
            (Some("*/*"), OpenMetrics),
            (Some("application/json"), OpenMetrics),
            (Some("text/plain"), Text),
            (Some("text/plain;version=0.0.4"), Text),
            (Some("text/plain; version=0.0.4; charset=utf-8"), Text),
            (Some("text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), Text),
            (
                Some("application/openmetrics-text; version=1.0.0"),
                OpenMetrics,
            ),
            (
                Some(
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                     version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ),
                OpenMetrics,
            ),
            (Some("application/openmetrics-text;q=0.2, text/plain"), Text),
            (Some("text/plain;q=0, */*"), OpenMetrics),
            (Some("text/*"), Text),
            (Some("TEXT/PLAIN"), Text),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn classic_text_names_help_and_type_after_the_sample() {
        let text = render(&report(), Format::Text);
        assert!(text.contains(
            "# HELP ai_employee_child_restarts_total Restarts since the supervisor started.\n\
             # TYPE ai_employee_child_restarts_total counter\n\
             ai_employee_child_restarts_total{name=\"zeta\"} 2\n\
             ai_employee_child_restarts_total{name=\"alpha\"} 2\n"
        ));
        assert!(text.contains("ai_employee_child_last_exit_code{name=\"alpha\"} 137\n"));
        assert!(text.contains("ai_employee_child_cpu_seconds_total{name=\"zeta\"} 0.5\n"));
        assert!(text.contains("ai_employee_supervisor_uptime_seconds 12.25\n"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn openmetrics_names_the_family_and_ends_with_eof() {
        let text = render(&report(), Format::OpenMetrics);
        assert!(text.contains(
            "# TYPE ai_employee_child_restarts counter\n\
             ai_employee_child_restarts_total{name=\"zeta\"} 2\n"
        ));
        assert!(
            text.ends_with("ai_employee_supervisor_healthy 0\n# EOF\n"),
            "{text}"
        );
    }

    #[test]
    fn the_same_state_renders_the_same_bytes() {
        for f in [Format::Text, Format::OpenMetrics] {
            assert_eq!(render(&report(), f), render(&report(), f));
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("a\"b\\\n", Format::Text), "a\"b\\\\\\n");
        assert_eq!(escape_help("a\"b", Format::OpenMetrics), "a\\\"b");
        assert_eq!(Value::Float(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(Value::Float(f64::NAN).to_string(), "NaN");
        assert_eq!(Value::Float(1e21).to_string(), "1e21");
    }
}
