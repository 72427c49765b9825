//! `ai-employee tasks [--json] [--watch] [--verbose]`: the queue as the loop last wrote
//! it, with estimated start and finish times from the recent mean run time and the
//! concurrency.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};

use super::{NOT_RUNNING, loop_runs, read_snapshot};
use crate::agent::snapshot::{QueueView, RemoteRunView, Snapshot, TaskState, TaskView};
use crate::commands::status::Style;

pub fn run(vault: &Path, json: bool, watch: bool, verbose: bool, interval: Duration) -> i32 {
    let style = Style::detect();
    let tty = std::io::stdout().is_terminal();
    loop {
        let (text, code) = frame(vault, json, verbose, style);
        let mut out = std::io::stdout().lock();
        let mut all = String::new();
        if watch && tty {
            all.push_str("\x1b[H\x1b[2J");
        }
        all.push_str(&text);
        if out
            .write_all(all.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
            || !watch
        {
            return code;
        }
        drop(out);
        std::thread::sleep(interval);
    }
}

fn frame(vault: &Path, json: bool, verbose: bool, style: Style) -> (String, i32) {
    let running = loop_runs(vault);
    let snap = match read_snapshot(vault) {
        Ok(s) => s,
        Err(e) => {
            return (
                format!("ai-employee: {e}\n"),
                ai_employee_vault::exit_codes::FAILURE,
            );
        }
    };
    let code = if running { 0 } else { NOT_RUNNING };
    let pid = snap.as_ref().filter(|_| running).map(|s| s.pid);
    if json {
        let value = serde_json::json!({
            "running": running,
            "pid": pid,
            "vault": vault.display().to_string(),
            "snapshot": snap,
        });
        let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
        s.push('\n');
        return (s, code);
    }
    let mut out = String::new();
    match (running, &snap) {
        (false, _) => out.push_str(&format!(
            "no task loop is running on {} (start it with `ai-employee agent`, or the \
             supervisor's `agent` entry)\n",
            vault.display()
        )),
        (true, None) => out.push_str("the task loop is starting (no queue written yet)\n"),
        _ => {}
    }
    if let Some(s) = &snap {
        out.push_str(&render(s, Utc::now(), verbose, style, running));
    }
    (out, code)
}

/// An estimated start and finish.
pub type Estimate = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// Estimated start and finish of each task, in queue order.
pub fn estimates(s: &Snapshot, now: DateTime<Utc>) -> Vec<Estimate> {
    let avg = chrono::Duration::milliseconds(s.recent_run_ms.unwrap_or(0) as i64);
    let known = s.recent_run_ms.is_some();
    let mut slots: Vec<DateTime<Utc>> = Vec::new();
    let mut out = Vec::with_capacity(s.tasks.len());
    for t in &s.tasks {
        if t.state == TaskState::Running {
            let start = t.started_at.unwrap_or(now);
            let finish = (start + avg).max(now);
            slots.push(finish);
            out.push((Some(start), known.then_some(finish)));
        } else {
            out.push((None, None));
        }
    }
    let cap = s.max_concurrent.max(1) as usize;
    while slots.len() < cap {
        slots.push(now);
    }
    slots.sort();
    if !known || s.paused {
        return out;
    }
    for (i, t) in s.tasks.iter().enumerate() {
        let runnable = matches!(t.state, TaskState::Pending | TaskState::Retry);
        if !runnable {
            continue;
        }
        // The earliest free slot; a retry not before its time.
        let free = slots.remove(0);
        let start = match (t.state, t.retry_at) {
            (TaskState::Retry, Some(at)) => free.max(at),
            _ => free,
        };
        let finish = start + avg;
        let pos = slots.partition_point(|x| *x <= finish);
        slots.insert(pos, finish);
        out[i] = (Some(start), Some(finish));
    }
    out
}

/// `Tasks: 1 running (of 2), 3 pending, …` (`top` shows it too).
pub(crate) fn headline(s: &Snapshot) -> String {
    let count = |st: TaskState| s.tasks.iter().filter(|t| t.state == st).count();
    format!(
        "Tasks: {} running (of {}), {} pending, {} waiting for approval, {} to retry{}{}",
        count(TaskState::Running),
        s.max_concurrent,
        count(TaskState::Pending),
        count(TaskState::WaitingApproval) + count(TaskState::AwaitingRunApproval),
        count(TaskState::Retry),
        if count(TaskState::NeedsReview) > 0 {
            format!(", {} need review", count(TaskState::NeedsReview))
        } else {
            String::new()
        },
        if s.paused {
            " · PAUSED (.claude_stop)"
        } else {
            ""
        },
    )
}

pub fn render(
    s: &Snapshot,
    now: DateTime<Utc>,
    verbose: bool,
    style: Style,
    running: bool,
) -> String {
    let mut out = String::new();
    let head = headline(s);
    out.push_str(&style.bold(&head));
    out.push('\n');
    if let Some(why) = &s.needs_setup {
        out.push_str(&style.paint(
            "31",
            &format!("the agent needs setup: {why} (docs/agent.md)"),
        ));
        out.push('\n');
    }
    out.push_str(&format!(
        "Done today {} · failed today {} · cost today ${:.2}{}\n",
        s.today.done,
        s.today.failed,
        s.today.cost_usd,
        if running {
            ""
        } else {
            " (last written by a loop that is not running)"
        }
    ));
    if let Some(q) = &s.queue {
        out.push_str(&queue_line(q, now));
    }
    if s.tasks.is_empty() {
        out.push_str("The queue is empty.\n");
        return out;
    }
    let remote: std::collections::HashMap<&str, &RemoteRunView> = s
        .queue
        .iter()
        .flat_map(|q| q.runs.iter().map(|r| (r.task.as_str(), r)))
        .collect();
    let est = estimates(s, now);
    let rows: Vec<[String; 7]> = s
        .tasks
        .iter()
        .zip(&est)
        .map(|(t, (start, finish))| {
            [
                t.id.clone(),
                state_text(t, s.paused, now, remote.get(t.id.as_str()).copied()),
                format!("{:.2}", t.score),
                age(now - t.queued_at),
                t.attempt.to_string(),
                start.map_or("-".into(), |x| when(x, now)),
                finish.map_or("-".into(), |x| when(x, now)),
            ]
        })
        .collect();
    let header = [
        "TASK", "STATE", "SCORE", "WAIT", "ATTEMPT", "START", "FINISH",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    widths[0] = widths[0].min(48);
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c: String = c.chars().take(widths[i]).collect();
                format!("{c:<w$}", w = widths[i])
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    out.push_str(&style.dim(line(&header.map(String::from)).trim_end()));
    out.push('\n');
    for (r, t) in rows.iter().zip(&s.tasks) {
        let text = line(r);
        let code = match t.state {
            TaskState::Running => "32",
            TaskState::Pending => "0",
            TaskState::Retry | TaskState::WaitingApproval | TaskState::AwaitingRunApproval => "33",
            TaskState::NeedsReview => "31",
        };
        out.push_str(&if code == "0" {
            text.trim_end().to_string()
        } else {
            style.paint(code, text.trim_end())
        });
        out.push('\n');
        if verbose {
            out.push_str(&format!("    {} · {}\n", t.file, t.title));
            if let Some(d) = t.deadline {
                out.push_str(&format!(
                    "    deadline {}\n",
                    d.with_timezone(&Local).format("%Y-%m-%d %H:%M")
                ));
            }
            if let Some(e) = &t.last_error {
                out.push_str(&format!("    last error: {e}\n"));
            }
            for a in &t.approvals {
                out.push_str(&format!("    waits for {a}\n"));
            }
            if t.cost_usd > 0.0 {
                out.push_str(&format!("    cost ${:.4}, {} turns\n", t.cost_usd, t.turns));
            }
        }
    }
    out
}

/// The work queue's line (docs/workers.md).
fn queue_line(q: &QueueView, now: DateTime<Utc>) -> String {
    let seen = q
        .last_worker_seen
        .map(|t| format!(", last heartbeat {} ago", age(now - t)))
        .unwrap_or_default();
    if !q.reachable {
        return format!(
            "Queue {}: UNREACHABLE ({}), {} runs on workers{seen}\n",
            q.url,
            if q.unreachable_mode == "wait" {
                "no task starts meanwhile"
            } else {
                "tasks run on this host meanwhile"
            },
            q.in_flight
        );
    }
    format!(
        "Queue {}: {} runs on workers, {} workers alive{seen}\n",
        q.url, q.in_flight, q.workers_alive
    )
}

pub(crate) fn state_text(
    t: &TaskView,
    paused: bool,
    now: DateTime<Utc>,
    remote: Option<&RemoteRunView>,
) -> String {
    if t.state == TaskState::Running
        && let Some(r) = remote
    {
        return match (&r.worker, &r.host) {
            (Some(w), Some(h)) => format!(
                "on {w}@{h} for {}",
                age(now - r.taken_at.unwrap_or(r.published_at))
            ),
            (Some(w), None) => format!("on {w}"),
            _ => format!("queued for a worker for {}", age(now - r.published_at)),
        };
    }
    match t.state {
        TaskState::Pending if paused => "paused".into(),
        TaskState::Retry => match t.retry_at {
            Some(at) if at > now => format!("retry in {}", age(at - now)),
            _ => "retry now".into(),
        },
        TaskState::Running => match t.pid {
            Some(p) => format!("running (pid {p})"),
            None => "running".into(),
        },
        s => s.as_str().replace('_', " "),
    }
}

fn age(d: chrono::Duration) -> String {
    ai_employee_vault::units::format_age(d.num_milliseconds().max(0) as f64 / 1000.0)
}

fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if t <= now {
        "now".into()
    } else {
        format!("in {}", age(t - now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, state: TaskState, score: f64) -> TaskView {
        TaskView::new(id, state, score, Utc::now())
    }

    #[test]
    fn runs_on_the_queue_show_their_worker_or_that_they_wait_for_one() {
        let now = Utc::now();
        let ago = |s| now - chrono::Duration::seconds(s);
        let run = |task: &str, worker: Option<&str>| RemoteRunView {
            task: task.into(),
            attempt: 1,
            published_at: ago(300),
            worker: worker.map(str::to_string),
            host: worker.map(|w| format!("{w}.lan")),
            taken_at: worker.map(|_| ago(90)),
        };
        let mut a = view("a", TaskState::Running, 1.0);
        a.attempt = 1;
        let s = Snapshot {
            max_concurrent: 2,
            tasks: vec![a, view("b", TaskState::Running, 0.9)],
            queue: Some(QueueView {
                url: "redis://q:6379/0".into(),
                reachable: true,
                in_flight: 2,
                workers_alive: 1,
                last_worker_seen: Some(ago(2)),
                runs: vec![run("a", Some("build1")), run("b", None)],
                ..QueueView::default()
            }),
            ..Snapshot::default()
        };
        let text = render(&s, now, false, Style { colour: false }, true);
        assert!(
            text.contains(
                "Queue redis://q:6379/0: 2 runs on workers, 1 workers alive, last heartbeat 2s ago"
            ),
            "{text}"
        );
        assert!(text.contains("on build1@build1.lan for 1m30s"), "{text}");
        assert!(text.contains("queued for a worker for 5m"), "{text}");
    }

    #[test]
    fn estimates_fill_the_slots_in_order() {
        let now = Utc::now();
        let mut running = view("r", TaskState::Running, 1.0);
        running.started_at = Some(now);
        let s = Snapshot {
            max_concurrent: 2,
            recent_run_ms: Some(60_000),
            tasks: vec![
                running,
                view("a", TaskState::Pending, 0.9),
                view("b", TaskState::Pending, 0.8),
                view("c", TaskState::Pending, 0.7),
            ],
            ..Snapshot::default()
        };
        let e = estimates(&s, now);
        let min = |t: Option<DateTime<Utc>>| t.map(|t| (t - now).num_seconds());
        assert_eq!(min(e[0].1), Some(60));
        assert_eq!((min(e[1].0), min(e[1].1)), (Some(0), Some(60)));
        assert_eq!((min(e[2].0), min(e[2].1)), (Some(60), Some(120)));
        assert_eq!((min(e[3].0), min(e[3].1)), (Some(60), Some(120)));
    }
}
