//! Counters the loop keeps (and shows in the snapshot): folded from `Logs/tasks.jsonl`
//! at start, then counted as events happen.

use std::path::Path;

use ai_employee_vault::journal::Reader;
use ai_employee_vault::nofollow;
use chrono::{DateTime, Local, Utc};

use super::events::{EventKind, TaskEvent};
use super::snapshot::{DURATION_BUCKETS, Totals};

/// Count one event.
pub fn count(t: &mut Totals, ev: &TaskEvent) {
    match ev.event {
        EventKind::Done => t.done += 1,
        EventKind::Failed => t.failed += 1,
        EventKind::Rejected => t.rejected += 1,
        EventKind::NeedsReview => t.needs_review += 1,
        EventKind::Invalid => t.invalid += 1,
        EventKind::Retry => t.retries += 1,
        EventKind::Run => {
            t.runs += 1;
            if ev.result.is_some_and(|r| r.is_error()) {
                t.run_errors += 1;
            }
            t.cost_usd += ev
                .cost_usd
                .filter(|c| c.is_finite() && *c >= 0.0)
                .unwrap_or(0.0);
            t.turns += u64::from(ev.turns.unwrap_or(0));
            if let Some(ms) = ev.duration_ms {
                let s = ms as f64 / 1000.0;
                if t.duration_counts.len() != DURATION_BUCKETS.len() + 1 {
                    t.duration_counts = vec![0; DURATION_BUCKETS.len() + 1];
                }
                let i = DURATION_BUCKETS
                    .iter()
                    .position(|b| s <= *b)
                    .unwrap_or(DURATION_BUCKETS.len());
                t.duration_counts[i] += 1;
                t.duration_sum_s += s;
            }
        }
        _ => {}
    }
}

/// All-time and today's (local date) totals of the event log at `path`; empty when it
/// cannot be read.
pub fn fold(path: &Path, now: DateTime<Utc>) -> (Totals, Totals) {
    let mut all = Totals::default();
    let mut today = Totals::default();
    let day = now.with_timezone(&Local).date_naive();
    let Ok((dir, name)) = nofollow::folder_of(path) else {
        return (all, today);
    };
    let Ok(mut reader) = Reader::open(&dir, &name) else {
        return (all, today);
    };
    while let Ok(Some(line)) = reader.next_line() {
        let Ok(ev) = serde_json::from_slice::<TaskEvent>(line.bytes) else {
            continue;
        };
        count(&mut all, &ev);
        if ev.ts.with_timezone(&Local).date_naive() == day {
            count(&mut today, &ev);
        }
    }
    (all, today)
}
