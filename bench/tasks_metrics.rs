//! Task metrics over a long event log: writes 1,000,000 events of `Logs/tasks.jsonl` into
//! a temp vault and times `tasks metrics` (`ai_employee::agent::metrics::read`) for a
//! 7-day and a 24-hour window, and the whole-log fold the loop makes at start-up.
//!
//! ```text
//! cargo run --release --example tasks_metrics            # 1,000,000 events, best of 5
//! cargo run --release --example tasks_metrics -- 200000 3
//! ```
//! Two logs: one whose events all fall in the last 7 days (`--since 7d` reads it all), one
//! whose events span a year (`--since 24h` reads the last day's 1/365 of it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use ai_employee::agent::events::{EventKind, RunResult, TaskEvent};
use ai_employee::agent::metrics;
use chrono::{DateTime, TimeDelta, Utc};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map_or(1_000_000, |a| a.parse().expect("events"));
    let reps: u32 = args.next().map_or(5, |a| a.parse().expect("repetitions"));
    let now = Utc::now();
    println!("{n} events, best of {reps}");

    let week = tempfile::tempdir().unwrap();
    let size = write_log(
        week.path(),
        n,
        now,
        TimeDelta::days(7) - TimeDelta::minutes(1),
    );
    println!("log A: all in the last 7 days, {:.1} MiB", mib(size));
    time("  --since 7d ", reps, || {
        let m = metrics::read(week.path(), now - TimeDelta::days(7), now).unwrap();
        m.runs + m.tasks_done
    });
    time("  --since 24h", reps, || {
        let m = metrics::read(week.path(), now - TimeDelta::hours(24), now).unwrap();
        m.runs + m.tasks_done
    });
    time("  totals (whole log, start-up)", reps, || {
        let (all, _, _) = metrics::read_totals(week.path(), now - TimeDelta::hours(12)).unwrap();
        all.runs + all.done
    });

    let year = tempfile::tempdir().unwrap();
    let size = write_log(year.path(), n, now, TimeDelta::days(365));
    println!("log B: a year, {:.1} MiB", mib(size));
    time("  --since 24h", reps, || {
        let m = metrics::read(year.path(), now - TimeDelta::hours(24), now).unwrap();
        m.runs + m.tasks_done
    });
    time("  --since 7d ", reps, || {
        let m = metrics::read(year.path(), now - TimeDelta::days(7), now).unwrap();
        m.runs + m.tasks_done
    });
}

/// Best wall time of `reps` runs of `f`, and what it counted.
fn time(label: &str, reps: u32, mut f: impl FnMut() -> u64) {
    let mut best = Duration::MAX;
    let mut counted = 0;
    for _ in 0..reps {
        let t = Instant::now();
        counted = f();
        best = best.min(t.elapsed());
    }
    println!(
        "{label}: {:8.1} ms  ({counted} runs + done in the window)",
        best.as_secs_f64() * 1000.0
    );
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `n` events, evenly over `span` before `now`, in the loop's shape: each task is
/// queued, started, run, and done (1 in 10 runs fails and is retried). Returns the size.
fn write_log(vault: &Path, n: u64, now: DateTime<Utc>, span: TimeDelta) -> u64 {
    std::fs::create_dir_all(vault.join("Logs")).unwrap();
    let path = vault.join("Logs/tasks.jsonl");
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    let start = now - span;
    let step_ns = span.num_nanoseconds().unwrap() / n as i64;
    let mut i = 0u64;
    let mut task = 0u64;
    while i < n {
        let id = format!(
            "EMAIL_20261206T{:06}_invoice-for-client-{task}",
            task % 1_000_000
        );
        let fails = task % 10 == 9;
        let kinds: &[EventKind] = if fails {
            &[
                EventKind::Queued,
                EventKind::Started,
                EventKind::Run,
                EventKind::Retry,
            ]
        } else {
            &[
                EventKind::Queued,
                EventKind::Started,
                EventKind::Run,
                EventKind::Done,
            ]
        };
        for &kind in kinds {
            if i == n {
                break;
            }
            let ts = start + TimeDelta::nanoseconds(step_ns * i as i64);
            // Milliseconds, as the loop writes them.
            let ts = DateTime::from_timestamp_millis(ts.timestamp_millis()).unwrap();
            let mut e = TaskEvent::new(ts, kind, id.as_str());
            match kind {
                EventKind::Started => {
                    e.attempt = Some(1);
                    e.iteration = Some(1);
                }
                EventKind::Run => {
                    e.attempt = Some(1);
                    e.iteration = Some(1);
                    e.result = Some(if fails {
                        RunResult::Crashed
                    } else {
                        RunResult::Done
                    });
                    e.duration_ms = Some(1_000 + (task * 7919) % 120_000);
                    e.cost_usd = Some(0.031);
                    e.turns = Some(4);
                }
                EventKind::Retry => {
                    e.retry_at = Some(ts + TimeDelta::minutes(1));
                    e.error = Some("the agent exited with status 1".into());
                }
                EventKind::Done => {
                    e.duration_ms = Some(6_001);
                    e.cost_usd = Some(0.031);
                    e.turns = Some(4);
                }
                _ => {}
            }
            serde_json::to_writer(&mut out, &e).unwrap();
            out.write_all(b"\n").unwrap();
            i += 1;
        }
        task += 1;
    }
    out.flush().unwrap();
    std::fs::metadata(&path).unwrap().len()
}
