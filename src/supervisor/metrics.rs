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
//!
//! The task loop's families come from `<vault>/.ai-employee/tasks.json` (the loop replaces
//! it atomically), read off the event loop at scrape time, only when it exists; only the
//! counts are deserialised, not the tasks themselves (see [`TaskCounts`]). A file that
//! cannot be read or used never fails the scrape: it shows as
//! `ai_employee_tasks_snapshot_ok 0` (and, in the classic format, a comment saying why).

use std::net::SocketAddr;
use std::path::Path;

use ai_employee_vault::control::{Request, StatusReport};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::agent::snapshot::{self, DURATION_BUCKETS, TaskState, Totals};
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
    Histogram,
}

/// One metric family.
struct Family {
    /// Without the prefix, and for a counter without `_total`.
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<Sample>,
}

struct Sample {
    /// After the family name: `_bucket`, `_sum`, `_count` for a histogram; counters get
    /// `_total` in any case.
    suffix: &'static str,
    /// One label, or none.
    label: Option<(&'static str, String)>,
    value: Value,
}

impl Sample {
    fn plain(value: Value) -> Sample {
        Sample {
            suffix: "",
            label: None,
            value,
        }
    }

    fn labelled(key: &'static str, label: String, value: Value) -> Sample {
        Sample {
            suffix: "",
            label: Some((key, label)),
            value,
        }
    }
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
            .filter_map(|c| Some(Sample::labelled("name", c.name.clone(), f(c)?)))
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
            help: "Restarts by the supervisor (after a crash or failed health check) since it started.",
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
            samples: vec![Sample::plain(Value::Float(report.supervisor.uptime_secs))],
        },
        Family {
            name: "supervisor_healthy",
            help: "1 if every child is as it should be (status exit 0).",
            kind: Kind::Gauge,
            samples: vec![Sample::plain(Value::Int(i64::from(
                report.health == ai_employee_vault::control::Health::Healthy,
            )))],
        },
    ]
}

/// What the scrape found of the task loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Tasks {
    /// No `tasks.json`: the loop never ran in this vault; no task families at all.
    Absent,
    /// A file that cannot be read or used, and why: `ai_employee_tasks_snapshot_ok 0`.
    Unusable(String),
    Ok(Box<TaskCounts>),
}

/// The task states, in the order of their samples.
const STATES: [TaskState; 6] = [
    TaskState::Pending,
    TaskState::Running,
    TaskState::WaitingApproval,
    TaskState::Retry,
    TaskState::AwaitingRunApproval,
    TaskState::NeedsReview,
];

/// The parts of the snapshot (`crate::agent::snapshot::Snapshot`) the metrics need: of
/// `tasks`, only how many are in each state (each task's other fields are skipped
/// without being kept).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskCounts {
    pub version: u32,
    pub pid: u32,
    pub written_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub paused: bool,
    /// How many tasks are in each of [`STATES`].
    #[serde(deserialize_with = "count_states")]
    pub tasks: [u64; STATES.len()],
    pub totals: Totals,
    /// The work queue's part, when the loop uses one (its `runs` are skipped).
    #[serde(default)]
    pub queue: Option<QueueCounts>,
}

/// The numbers of the snapshot's `queue` (`crate::agent::snapshot::QueueView`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QueueCounts {
    pub reachable: bool,
    pub in_flight: u64,
    pub workers_alive: u64,
    #[serde(default)]
    pub worker_runs: std::collections::BTreeMap<String, u32>,
    #[serde(default)]
    pub metrics: Option<crate::queue::QueueMetrics>,
    #[serde(default)]
    pub results_applied: u64,
    #[serde(default)]
    pub results_refused: u64,
    #[serde(default)]
    pub results_stale: u64,
    #[serde(default)]
    pub republished: u64,
}

fn count_states<'de, D: Deserializer<'de>>(d: D) -> Result<[u64; STATES.len()], D::Error> {
    #[derive(Deserialize)]
    struct StateOnly {
        state: TaskState,
    }
    struct Counter;
    impl<'de> Visitor<'de> for Counter {
        type Value = [u64; STATES.len()];
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of tasks")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut n = [0u64; STATES.len()];
            while let Some(t) = seq.next_element::<StateOnly>()? {
                if let Some(i) = STATES.iter().position(|&s| s == t.state) {
                    n[i] += 1;
                }
            }
            Ok(n)
        }
    }
    d.deserialize_seq(Counter)
}

/// `tasks.json` larger than this is not read (10,000 tasks take about 3 MB).
const TASKS_LIMIT: u64 = 64 * 1024 * 1024;

/// Read the task loop's snapshot in `vault` (blocking: call it off the event loop). A
/// symlink on the way is not followed.
pub fn read_tasks(vault: &Path) -> Tasks {
    let rel = Path::new(ai_employee_vault::layout::STATE_DIR).join(snapshot::FILE_NAME);
    let bytes = match ai_employee_vault::nofollow::Dir::open(vault)
        .and_then(|d| d.read(&rel, Some(TASKS_LIMIT)))
    {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Tasks::Absent,
        Err(e) => return Tasks::Unusable(format!("cannot read {}: {e}", rel.display())),
    };
    let counts: TaskCounts = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => return Tasks::Unusable(format!("{}: {e}", rel.display())),
    };
    if counts.version != snapshot::VERSION {
        return Tasks::Unusable(format!(
            "{}: version {}, this supervisor reads version {}",
            rel.display(),
            counts.version,
            snapshot::VERSION
        ));
    }
    if !process_exists(counts.pid) {
        return Tasks::Unusable(format!(
            "{}: stale, the task loop that wrote it (pid {}) is not running",
            rel.display(),
            counts.pid
        ));
    }
    Tasks::Ok(Box::new(counts))
}

/// Whether a process `pid` exists (signal 0; one of another user counts).
fn process_exists(pid: u32) -> bool {
    use nix::errno::Errno;
    match i32::try_from(pid) {
        Ok(p) if p > 0 => !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None),
            Err(Errno::ESRCH)
        ),
        _ => false,
    }
}

/// A count as a sample value.
fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A counter's float: never negative, never NaN.
fn amount(x: f64) -> Value {
    Value::Float(if x.is_finite() && x > 0.0 { x } else { 0.0 })
}

/// The task loop's families, in their fixed order (none when there is no snapshot).
fn task_families(tasks: &Tasks, now: DateTime<Utc>) -> Vec<Family> {
    let ok = |v: bool| Family {
        name: "tasks_snapshot_ok",
        help: "1 if .ai-employee/tasks.json could be read and its task loop is running.",
        kind: Kind::Gauge,
        samples: vec![Sample::plain(Value::Int(i64::from(v)))],
    };
    let c = match tasks {
        Tasks::Absent => return Vec::new(),
        Tasks::Unusable(_) => return vec![ok(false)],
        Tasks::Ok(c) => c,
    };
    let t = &c.totals;
    let counter = |name, help, value| Family {
        name,
        help,
        kind: Kind::Counter,
        samples: vec![Sample::plain(value)],
    };
    vec![
        ok(true),
        Family {
            name: "tasks_snapshot_age_seconds",
            help: "Seconds since the task loop last wrote .ai-employee/tasks.json.",
            kind: Kind::Gauge,
            samples: c
                .written_at
                .map(|w| {
                    let age = (now - w).num_milliseconds().max(0) as f64 / 1000.0;
                    Sample::plain(Value::Float(age))
                })
                .into_iter()
                .collect(),
        },
        Family {
            name: "tasks",
            help: "Tasks the loop knows of, by state.",
            kind: Kind::Gauge,
            samples: STATES
                .iter()
                .zip(c.tasks)
                .map(|(s, n)| Sample::labelled("state", s.as_str().to_string(), int(n)))
                .collect(),
        },
        Family {
            name: "tasks_paused",
            help: "1 if no new task starts (the stop file, or tasks pause).",
            kind: Kind::Gauge,
            samples: vec![Sample::plain(Value::Int(i64::from(c.paused)))],
        },
        Family {
            name: "task_outcomes",
            help: "Tasks finished, by outcome.",
            kind: Kind::Counter,
            samples: [
                ("done", t.done),
                ("failed", t.failed),
                ("rejected", t.rejected),
                ("needs_review", t.needs_review),
                ("invalid", t.invalid),
            ]
            .into_iter()
            .map(|(o, n)| Sample::labelled("outcome", o.to_string(), int(n)))
            .collect(),
        },
        counter("task_runs", "Agent runs.", int(t.runs)),
        counter(
            "task_run_errors",
            "Agent runs that ended in an error.",
            int(t.run_errors),
        ),
        counter(
            "task_retries",
            "Attempts scheduled again after a failure.",
            int(t.retries),
        ),
        Family {
            name: "task_run_duration_seconds",
            help: "Wall time of agent runs.",
            kind: Kind::Histogram,
            samples: duration_samples(t),
        },
        counter(
            "task_cost_usd",
            "What agent runs cost, in US dollars, as the agent reported it.",
            amount(t.cost_usd),
        ),
        counter("task_turns", "Agent turns.", int(t.turns)),
    ]
    .into_iter()
    .chain(c.queue.as_ref().map(queue_families).into_iter().flatten())
    .collect()
}

/// The work queue's families (docs/workers.md), when the loop uses one.
fn queue_families(q: &QueueCounts) -> Vec<Family> {
    let gauge = |name, help, value| Family {
        name,
        help,
        kind: Kind::Gauge,
        samples: vec![Sample::plain(value)],
    };
    let m = q.metrics.unwrap_or_default();
    let mut out = vec![
        gauge(
            "queue_reachable",
            "1 if the work queue (Redis) answered at the loop's last try.",
            Value::Int(i64::from(q.reachable)),
        ),
        gauge(
            "queue_in_flight",
            "Runs published for workers and not yet answered, as the vault says.",
            int(q.in_flight),
        ),
        gauge(
            "queue_depth",
            "Runs in the tasks stream that no worker has taken yet.",
            int(m.tasks_length.saturating_sub(m.tasks_pending)),
        ),
        gauge(
            "queue_pending",
            "Runs a worker has taken and not yet answered.",
            int(m.tasks_pending),
        ),
        gauge(
            "queue_results_waiting",
            "Answers in the results stream not yet applied to the vault.",
            int(m.results_length),
        ),
        Family {
            name: "queue_reclaims",
            help: "Runs a worker took over from a dead or stalled one.",
            kind: Kind::Counter,
            samples: vec![Sample::plain(int(m.reclaims))],
        },
        gauge(
            "queue_workers",
            "Workers seen within worker_timeout.",
            int(q.workers_alive),
        ),
        Family {
            name: "queue_worker_runs",
            help: "Runs each live worker has in hand.",
            kind: Kind::Gauge,
            samples: q
                .worker_runs
                .iter()
                .map(|(w, n)| Sample::labelled("worker", w.clone(), int(u64::from(*n))))
                .collect(),
        },
        Family {
            name: "queue_results",
            help: "Workers' answers since the loop started: applied, refused (invalid), stale (fenced off).",
            kind: Kind::Counter,
            samples: [
                ("applied", q.results_applied),
                ("refused", q.results_refused),
                ("stale", q.results_stale),
            ]
            .into_iter()
            .map(|(o, n)| Sample::labelled("outcome", o.to_string(), int(n)))
            .collect(),
        },
    ];
    out.push(Family {
        name: "queue_republished",
        help: "Runs published again because Redis had lost them.",
        kind: Kind::Counter,
        samples: vec![Sample::plain(int(q.republished))],
    });
    out
}

/// The run-duration histogram: cumulative buckets of [`DURATION_BUCKETS`] and `+Inf`,
/// then sum and count. Counts beyond the known buckets go to `+Inf` only.
fn duration_samples(t: &Totals) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut cumulative = 0u64;
    for (i, le) in DURATION_BUCKETS.iter().enumerate() {
        cumulative = cumulative.saturating_add(t.duration_counts.get(i).copied().unwrap_or(0));
        out.push(Sample {
            suffix: "_bucket",
            label: Some(("le", Value::Float(*le).to_string())),
            value: int(cumulative),
        });
    }
    let count = t
        .duration_counts
        .iter()
        .fold(0u64, |a, &n| a.saturating_add(n));
    out.push(Sample {
        suffix: "_bucket",
        label: Some(("le", "+Inf".to_string())),
        value: int(count),
    });
    out.push(Sample {
        suffix: "_sum",
        label: None,
        value: amount(t.duration_sum_s),
    });
    out.push(Sample {
        suffix: "_count",
        label: None,
        value: int(count),
    });
    out
}

/// The metrics text for a status report and the task loop's snapshot, in `format`.
pub fn render(report: &StatusReport, tasks: &Tasks, format: Format) -> String {
    render_at(report, tasks, format, Utc::now())
}

fn render_at(report: &StatusReport, tasks: &Tasks, format: Format, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    if let (Tasks::Unusable(why), Format::Text) = (tasks, format) {
        // OpenMetrics allows no free comments; the classic format does.
        out += &format!(
            "# task metrics left out: {}
",
            one_line(why)
        );
    }
    let all = families(report)
        .into_iter()
        .chain(task_families(tasks, now));
    for family in all {
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
        let base = format!("{PREFIX}{}", family.name);
        // Classic: HELP and TYPE name a counter's sample (`…_total`); OpenMetrics: the
        // family.
        let family_name = match format {
            Format::Text => format!("{base}{total}"),
            Format::OpenMetrics => base.clone(),
        };
        let kind = match family.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        };
        out += &format!(
            "# HELP {family_name} {}\n# TYPE {family_name} {kind}\n",
            escape_help(family.help, format)
        );
        for s in family.samples {
            let suffix = if family.kind == Kind::Counter {
                total
            } else {
                s.suffix
            };
            out += &match s.label {
                Some((key, v)) => format!(
                    "{base}{suffix}{{{key}=\"{}\"}} {}\n",
                    escape_label(&v),
                    s.value
                ),
                None => format!("{base}{suffix} {}\n", s.value),
            };
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
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
        Some(s) => {
            let vault = std::path::PathBuf::from(&s.supervisor.vault);
            let tasks = tokio::task::spawn_blocking(move || read_tasks(&vault))
                .await
                .unwrap_or_else(|e| Tasks::Unusable(format!("the read failed: {e}")));
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, format.content_type()),
                    (header::VARY, "Accept"),
                ],
                render(&s, &tasks, format),
            )
        }
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
        let text = render(&report(), &Tasks::Absent, Format::Text);
        assert!(text.contains(
            "# HELP ai_employee_child_restarts_total Restarts by the supervisor (after a crash or failed health check) since it started.\n\
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
        let text = render(&report(), &Tasks::Absent, Format::OpenMetrics);
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
            assert_eq!(
                render(&report(), &Tasks::Absent, f),
                render(&report(), &Tasks::Absent, f)
            );
        }
    }

    fn counts() -> TaskCounts {
        let json = r#"{"version":1,"pid":1,"written_at":"2026-12-06T05:10:00Z","paused":true,
            "tasks":[{"id":"a","state":"running","title":"x","extra":[1,{"b":2}]},
                     {"state":"pending"},{"state":"pending"},{"state":"needs_review"}],
            "totals":{"done":14,"failed":1,"rejected":2,"needs_review":1,"invalid":0,
                      "retries":3,"runs":20,"run_errors":4,"cost_usd":0.42,"turns":99,
                      "duration_counts":[1,2,0,0,0,0,0,0,0,0,5],"duration_sum_s":4000.5},
            "today":{"done":0,"failed":0,"rejected":0,"needs_review":0,"invalid":0,
                     "retries":0,"runs":0,"run_errors":0,"cost_usd":0.0,"turns":0,
                     "duration_counts":[],"duration_sum_s":0.0}}"#;
        serde_json::from_str(json).expect("a valid snapshot")
    }

    #[test]
    fn only_the_counts_of_the_snapshot_are_read() {
        let c = counts();
        // pending, running, waiting_approval, retry, awaiting_run_approval, needs_review
        assert_eq!(c.tasks, [2, 1, 0, 0, 0, 1]);
        assert_eq!(c.totals.runs, 20);
        // What the loop writes is read back the same.
        let snap = crate::agent::snapshot::Snapshot::<crate::agent::snapshot::TaskView> {
            version: 1,
            tasks: Vec::new(),
            ..Default::default()
        };
        let back: TaskCounts =
            serde_json::from_str(&serde_json::to_string(&snap).expect("serialises"))
                .expect("parses");
        assert_eq!(back.tasks, [0; 6]);
    }

    #[test]
    fn queue_families_come_from_the_snapshots_queue() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T05:10:02.5Z")
            .expect("a valid time")
            .with_timezone(&Utc);
        let snap = crate::agent::snapshot::Snapshot::<crate::agent::snapshot::TaskView> {
            version: 1,
            pid: std::process::id(),
            queue: Some(crate::agent::snapshot::QueueView {
                url: "redis://q:6379/0".into(),
                reachable: true,
                in_flight: 7,
                workers_alive: 2,
                worker_runs: [("b\"1".to_string(), 3), ("m".to_string(), 1)].into(),
                metrics: Some(crate::queue::QueueMetrics {
                    tasks_length: 5,
                    tasks_pending: 4,
                    results_length: 2,
                    results_pending: 1,
                    reclaims: 9,
                    workers: 2,
                }),
                results_applied: 40,
                results_refused: 1,
                results_stale: 3,
                republished: 6,
                ..Default::default()
            }),
            ..Default::default()
        };
        let c: TaskCounts =
            serde_json::from_str(&serde_json::to_string(&snap).expect("serialises"))
                .expect("parses");
        let text = render_at(&report(), &Tasks::Ok(Box::new(c)), Format::Text, now);
        for want in [
            "ai_employee_queue_reachable 1\n",
            "ai_employee_queue_in_flight 7\n",
            "ai_employee_queue_depth 1\n",
            "ai_employee_queue_pending 4\n",
            "ai_employee_queue_results_waiting 2\n",
            "ai_employee_queue_reclaims_total 9\n",
            "ai_employee_queue_workers 2\n",
            "ai_employee_queue_worker_runs{worker=\"b\\\"1\"} 3\n\
             ai_employee_queue_worker_runs{worker=\"m\"} 1\n",
            "ai_employee_queue_results_total{outcome=\"applied\"} 40\n\
             ai_employee_queue_results_total{outcome=\"refused\"} 1\n\
             ai_employee_queue_results_total{outcome=\"stale\"} 3\n",
            "ai_employee_queue_republished_total 6\n",
        ] {
            assert!(text.contains(want), "{want}\nnot in\n{text}");
        }
        // Without a queue, none of them.
        let text = render_at(&report(), &Tasks::Ok(Box::new(counts())), Format::Text, now);
        assert!(!text.contains("queue_"), "{text}");
    }

    #[test]
    fn task_families() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T05:10:02.5Z")
            .expect("a valid time")
            .with_timezone(&Utc);
        let text = render_at(&report(), &Tasks::Ok(Box::new(counts())), Format::Text, now);
        for want in [
            "ai_employee_tasks_snapshot_ok 1\n",
            "ai_employee_tasks_snapshot_age_seconds 2.5\n",
            "ai_employee_tasks{state=\"pending\"} 2\n\
             ai_employee_tasks{state=\"running\"} 1\n\
             ai_employee_tasks{state=\"waiting_approval\"} 0\n\
             ai_employee_tasks{state=\"retry\"} 0\n\
             ai_employee_tasks{state=\"awaiting_run_approval\"} 0\n\
             ai_employee_tasks{state=\"needs_review\"} 1\n",
            "ai_employee_tasks_paused 1\n",
            "ai_employee_task_outcomes_total{outcome=\"done\"} 14\n",
            "ai_employee_task_outcomes_total{outcome=\"invalid\"} 0\n",
            "ai_employee_task_runs_total 20\n",
            "ai_employee_task_run_errors_total 4\n",
            "ai_employee_task_retries_total 3\n",
            "# TYPE ai_employee_task_run_duration_seconds histogram\n\
             ai_employee_task_run_duration_seconds_bucket{le=\"1.0\"} 1\n\
             ai_employee_task_run_duration_seconds_bucket{le=\"5.0\"} 3\n\
             ai_employee_task_run_duration_seconds_bucket{le=\"15.0\"} 3\n",
            "ai_employee_task_run_duration_seconds_bucket{le=\"3600.0\"} 3\n\
             ai_employee_task_run_duration_seconds_bucket{le=\"+Inf\"} 8\n\
             ai_employee_task_run_duration_seconds_sum 4000.5\n\
             ai_employee_task_run_duration_seconds_count 8\n",
            "ai_employee_task_cost_usd_total 0.42\n",
            "ai_employee_task_turns_total 99\n",
        ] {
            assert!(text.contains(want), "{want}\nnot in\n{text}");
        }
        // Nothing of the tasks without a snapshot; a comment and snapshot_ok 0 for an
        // unusable one (the comment only where the format allows it).
        let none = render(&report(), &Tasks::Absent, Format::Text);
        assert!(!none.contains("task"), "{none}");
        let bad = Tasks::Unusable("tasks.json: expected value\nat line 1".into());
        let text = render(&report(), &bad, Format::Text);
        assert!(
            text.starts_with("# task metrics left out: tasks.json: expected value at line 1\n")
        );
        assert!(text.ends_with(
            "# TYPE ai_employee_tasks_snapshot_ok gauge\nai_employee_tasks_snapshot_ok 0\n"
        ));
        let om = render(&report(), &bad, Format::OpenMetrics);
        assert!(
            om.ends_with("ai_employee_tasks_snapshot_ok 0\n# EOF\n"),
            "{om}"
        );
        assert!(!om.contains("left out"));
    }

    #[test]
    fn snapshots_that_cannot_be_used() {
        let vault = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_tasks(vault.path()), Tasks::Absent);
        let state = vault.path().join(".ai-employee");
        std::fs::create_dir(&state).expect("mkdir");
        let file = state.join("tasks.json");
        let unusable = |text: &str| {
            std::fs::write(&file, text).expect("write");
            match read_tasks(vault.path()) {
                Tasks::Unusable(why) => why,
                other => panic!("{text}: {other:?}"),
            }
        };
        assert!(unusable("{\"version\":1,").contains("tasks.json"));
        let mut c = serde_json::to_value(crate::agent::snapshot::Snapshot::<
            crate::agent::snapshot::TaskView,
        > {
            version: 2,
            pid: std::process::id(),
            ..Default::default()
        })
        .expect("serialises");
        assert!(unusable(&c.to_string()).contains("version 2"));
        c["version"] = 1.into();
        c["pid"] = 0.into();
        assert!(unusable(&c.to_string()).contains("is not running"));
        c["pid"] = std::process::id().into();
        std::fs::write(&file, c.to_string()).expect("write");
        assert!(matches!(read_tasks(vault.path()), Tasks::Ok(_)));
        // A symlink is not followed.
        std::fs::remove_file(&file).expect("rm");
        let elsewhere = vault.path().join("elsewhere.json");
        std::fs::write(&elsewhere, c.to_string()).expect("write");
        std::os::unix::fs::symlink(&elsewhere, &file).expect("symlink");
        assert!(unusable(&c.to_string()).contains("cannot read"));
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
