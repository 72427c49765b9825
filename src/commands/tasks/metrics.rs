//! `ai-employee tasks metrics [--since 24h] [--json]`: the numbers of a window of
//! `Logs/tasks.jsonl` (docs/agent.md ("Metrics and health") defines them), as a short table or as JSON.
//!
//! Exit status: 0, or 1 when the log cannot be read.

use std::path::Path;
use std::time::Duration;

use ai_employee_vault::exit_codes;
use ai_employee_vault::units::format_duration;
use chrono::{DateTime, TimeDelta, Utc};

use crate::agent::events;
use crate::agent::metrics::{self, Metrics};
use crate::commands::fail;
use crate::commands::status::Style;

/// Hours the per-hour rows show at most (the newest).
const SHOWN_HOURS: usize = 24;

pub fn metrics(vault: &Path, since: Duration, json: bool) -> i32 {
    let until = Utc::now();
    let m = match metrics::read(vault, window_start(until, since), until) {
        Ok(m) => m,
        Err(e) => return fail(exit_codes::FAILURE, e),
    };
    if m.skipped_lines > 0 {
        eprintln!(
            "ai-employee: Logs/{}: {} line(s) in the window could not be read as events (left out)",
            events::FILE_NAME,
            m.skipped_lines
        );
    }
    if json {
        match serde_json::to_string_pretty(&m) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(exit_codes::FAILURE, e),
        }
    } else {
        print!("{}", render(&m, since, Style::detect()));
    }
    exit_codes::OK
}

/// `until - since`, or the earliest time there is when that is before it.
pub fn window_start(until: DateTime<Utc>, since: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(since)
        .ok()
        .and_then(|d| until.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The table. Pure (metrics in, text out), so it is pinned by snapshot tests.
pub fn render(m: &Metrics, since: Duration, style: Style) -> String {
    let when = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M").to_string();
    let mut out = format!(
        "task metrics, last {} ({} → {} UTC)\n\n",
        format_duration(since),
        when(m.since),
        when(m.until)
    );
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    let rows: [(&str, String, String); 10] = [
        (
            "done",
            m.tasks_done.to_string(),
            format!(
                "failed {} · rejected {} · needs review {} · invalid {}",
                m.failed, m.rejected, m.needs_review, m.invalid
            ),
        ),
        (
            "throughput/h",
            format!("{:.2}", m.throughput_per_hour),
            String::new(),
        ),
        ("runs", m.runs.to_string(), String::new()),
        (
            "error rate",
            opt(m.error_rate.map(|r| format!("{:.1}%", r * 100.0))),
            format!("{} of {} runs", m.run_errors, m.runs),
        ),
        ("retries", m.retries.to_string(), String::new()),
        (
            "p50",
            opt(m.duration_p50_ms.map(format_ms)),
            "a run's wall time".into(),
        ),
        ("p95", opt(m.duration_p95_ms.map(format_ms)), String::new()),
        ("cost USD", format!("{:.2}", m.cost_usd), String::new()),
        (
            "per done task",
            opt(m.cost_per_done_usd.map(|c| format!("{c:.4}"))),
            "USD".into(),
        ),
        ("turns", m.turns.to_string(), String::new()),
    ];
    let key_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let val_w = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    for (key, value, note) in &rows {
        let line = format!("{key:<key_w$}  {value:>val_w$}  {}", style.dim(note));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let shown = &m.hours[m.hours.len().saturating_sub(SHOWN_HOURS)..];
    if let Some(first) = shown.first() {
        out.push_str(&format!(
            "\nper hour, {} → now (UTC), one mark an hour:\n",
            first.start.format("%H:%M")
        ));
        for (label, counts) in [
            ("done", shown.iter().map(|h| h.done).collect::<Vec<_>>()),
            ("failed", shown.iter().map(|h| h.failed).collect()),
        ] {
            let max = counts.iter().copied().max().unwrap_or(0);
            out.push_str(&format!("{label:<6}  {}  max {max}\n", sparkline(&counts)));
        }
    }
    out
}

/// One mark per count: `.` for none, else `▂`…`█` by its share of the largest.
fn sparkline(counts: &[u64]) -> String {
    const MARKS: [char; 7] = ['▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = counts.iter().copied().max().unwrap_or(0);
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                '.'
            } else {
                let level = (c * MARKS.len() as u64)
                    .div_ceil(max)
                    .clamp(1, MARKS.len() as u64);
                MARKS[level as usize - 1]
            }
        })
        .collect()
}

/// `850ms`, `5.1s`, `2m05s`, `1h02m`.
fn format_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        ai_employee_vault::units::format_age(ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::events::{EventKind, RunResult};
    use crate::agent::metrics::Record;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_table_shows_every_number_and_the_last_hours() {
        let until = t("2026-12-06T12:30:00Z");
        let mut records = Vec::new();
        for h in 0..30i64 {
            let ts = until - TimeDelta::hours(h);
            for _ in 0..(h % 5) {
                records.push(Record {
                    ts,
                    kind: EventKind::Done,
                    result: None,
                    duration_ms: None,
                    cost_usd: None,
                    turns: None,
                });
            }
            records.push(Record {
                ts,
                kind: if h % 7 == 0 {
                    EventKind::Failed
                } else {
                    EventKind::Run
                },
                result: Some(if h % 3 == 0 {
                    RunResult::Crashed
                } else {
                    RunResult::Done
                }),
                duration_ms: Some(1_000 * (h as u64 + 1)),
                cost_usd: Some(0.05),
                turns: Some(3),
            });
        }
        records.sort_by_key(|r| r.ts);
        let since = Duration::from_secs(2 * 86_400);
        let m = metrics::fold(records, window_start(until, since), until);
        insta::assert_snapshot!(render(&m, since, Style { colour: false }));
    }

    #[test]
    fn an_empty_window_shows_dashes_not_zeros_for_rates() {
        let until = t("2026-12-06T12:30:00Z");
        let since = Duration::from_secs(3600);
        let m = metrics::fold([], window_start(until, since), until);
        let text = render(&m, since, Style { colour: false });
        assert!(text.contains("error rate        -"), "{text}");
        assert!(text.contains("p95               -"), "{text}");
        assert!(text.contains("done    ..  max 0"), "{text}");
    }

    #[test]
    fn sparklines_scale_to_the_largest_count() {
        assert_eq!(sparkline(&[0, 1, 7, 14, 3]), ".▂▅█▃");
        assert_eq!(sparkline(&[0, 0]), "..");
        assert_eq!(sparkline(&[]), "");
    }

    #[test]
    fn a_window_before_the_earliest_time_starts_there() {
        let until = t("2026-12-06T12:30:00Z");
        assert_eq!(
            window_start(until, Duration::from_secs(60)),
            t("2026-12-06T12:29:00Z")
        );
        assert_eq!(window_start(until, Duration::MAX), DateTime::<Utc>::MIN_UTC);
    }

    #[test]
    fn durations_read_in_their_largest_units() {
        assert_eq!(format_ms(850), "850ms");
        assert_eq!(format_ms(5_120), "5.1s");
        assert_eq!(format_ms(125_000), "2m05s");
    }
}
