//! `ai-employee workers [--json]`: the workers in the queue's registry and the queue's
//! counts, from the `[agent] queue` of the vault's table.
//!
//! Exit status: 0 listed, 3 no queue configured or it is unreachable (as `status` says a
//! supervisor is not running), 78 the table or `credentials/queue.toml` is invalid.

use std::path::Path;
use std::time::Duration;

use ai_employee_vault::exit_codes;
use chrono::{DateTime, Utc};

use super::status::NOT_RUNNING;
use crate::config;
use crate::queue::{QueueClient, QueueMetrics, WorkerInfo};

pub fn run(vault: &Path, explicit: Option<&Path>, json: bool) -> i32 {
    let settings = match config::load(vault, explicit) {
        Ok(cfg) => cfg.agent.queue,
        Err(errors) => {
            eprintln!("{errors}");
            return exit_codes::CONFIG;
        }
    };
    let Some(url) = settings.url else {
        return super::fail(
            NOT_RUNNING,
            "no queue configured: set [agent] queue = \"redis://host:6379/0\" (docs/workers.md)",
        );
    };
    let credentials = match crate::queue::credentials::load_vault(vault) {
        Ok(c) => c,
        Err(e) => return super::fail(exit_codes::CONFIG, e),
    };
    let rt = match super::runtime("failed to start the runtime") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let read = rt.block_on(async {
        let mut c = QueueClient::connect(&url, &credentials).await?;
        let workers = c.workers().await?;
        let metrics = c.metrics().await?;
        Ok::<_, crate::queue::QueueError>((workers, metrics))
    });
    let (workers, metrics) = match read {
        Ok(r) => r,
        Err(crate::queue::QueueError::Setup(why)) => return super::fail(exit_codes::CONFIG, why),
        Err(e) => return super::fail(NOT_RUNNING, e),
    };
    let now = Utc::now();
    if json {
        let v = serde_json::json!({
            "queue": crate::queue::client::redacted(&url),
            "worker_timeout_s": settings.worker_timeout.as_secs(),
            "metrics": metrics,
            "workers": workers.iter().map(|w| {
                let mut v = serde_json::to_value(w).unwrap_or_default();
                v["alive"] = alive(w, now, settings.worker_timeout).into();
                v
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!(
            "{}",
            table(&url, &workers, &metrics, now, settings.worker_timeout)
        );
    }
    exit_codes::OK
}

fn alive(w: &WorkerInfo, now: DateTime<Utc>, timeout: Duration) -> bool {
    (now - w.last_seen)
        .to_std()
        .map_or(true, |ago| ago <= timeout)
}

/// The table `workers` prints.
pub fn table(
    url: &str,
    workers: &[WorkerInfo],
    m: &QueueMetrics,
    now: DateTime<Utc>,
    timeout: Duration,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "queue {}: {} waiting, {} running on workers, {} results to apply, {} reclaimed",
        crate::queue::client::redacted(url),
        m.tasks_length.saturating_sub(m.tasks_pending),
        m.tasks_pending,
        m.results_length,
        m.reclaims
    );
    if workers.is_empty() {
        out.push_str("no worker has registered\n");
        return out;
    }
    let rows: Vec<[String; 6]> = workers
        .iter()
        .map(|w| {
            let ago = (now - w.last_seen).to_std().unwrap_or_default();
            let seen = format!(
                "{} ago{}",
                ai_employee_vault::units::format_duration(Duration::from_secs(ago.as_secs())),
                if alive(w, now, timeout) {
                    ""
                } else {
                    " (gone)"
                }
            );
            let tasks = if w.current.is_empty() {
                "-".to_string()
            } else {
                w.current
                    .iter()
                    .map(|c| format!("{}#{}", c.task_id, c.attempt))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            [
                w.name.clone(),
                w.host.clone(),
                format!("{}/{}", w.current.len(), w.concurrency),
                seen,
                tasks,
                w.version.clone(),
            ]
        })
        .collect();
    let head = ["NAME", "HOST", "RUNS", "LAST SEEN", "TASKS", "VERSION"];
    let mut width = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = width[i]);
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(head));
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
    out
}
