//! The `## Tasks` section of Dashboard.md: what the loop shows a person at a glance. Pure:
//! the loop writes it with `ai_employee_vault::dashboard::update` (with a failure row) or
//! `replace_section`, which keep everything else in the file as it is.
//!
//! ```markdown
//! ## Tasks
//! <!-- ai-employee:tasks (kept current by the task loop; edits inside are replaced) -->
//! Pending 3 · Running 2 · Waiting for approval 1 · Done today 14 · Failed today 1 · Cost today $0.42
//! Updated 2026-12-06 05:10:03
//! <!-- /ai-employee:tasks -->
//! ```

use std::fmt::Write;

use ai_employee_vault::dashboard::Section;
use chrono::{DateTime, TimeZone};

use super::snapshot::{Snapshot, Stated, TaskState};

/// The markers' id (`<!-- ai-employee:tasks … -->`).
pub const SECTION_ID: &str = "tasks";

/// The one line of counts. Waiting for approval counts both tasks whose run waits for
/// approval and tasks whose drafted actions do; tasks waiting to retry, tasks that need
/// review, a paused loop and an agent that needs setup are named only when so.
pub fn summary<T: Stated>(snap: &Snapshot<T>) -> String {
    let count = |states: &[TaskState]| {
        snap.tasks
            .iter()
            .filter(|t| states.contains(&t.state()))
            .count()
    };
    let mut line = format!(
        "Pending {} · Running {} · Waiting for approval {}",
        count(&[TaskState::Pending]),
        count(&[TaskState::Running]),
        count(&[TaskState::WaitingApproval, TaskState::AwaitingRunApproval]),
    );
    for (label, n) in [
        ("Retrying", count(&[TaskState::Retry])),
        ("Needs review", count(&[TaskState::NeedsReview])),
    ] {
        if n > 0 {
            // Writing to a String cannot fail.
            let _ = write!(line, " · {label} {n}");
        }
    }
    let cost = if snap.today.cost_usd.is_finite() {
        snap.today.cost_usd.max(0.0)
    } else {
        0.0
    };
    // Writing to a String cannot fail.
    let _ = write!(
        line,
        " · Done today {} · Failed today {} · Cost today ${cost:.2}",
        snap.today.done, snap.today.failed
    );
    if snap.paused {
        line.push_str(" · Paused");
    }
    if let Some(why) = &snap.needs_setup {
        // Writing to a String cannot fail.
        let _ = write!(line, " · Needs setup: {why}");
    }
    line
}

/// The whole section: [`summary`] and when it was written (`now`, in the zone given:
/// local time, as the status rows).
pub fn section<T: Stated, Tz: TimeZone>(snap: &Snapshot<T>, now: &DateTime<Tz>) -> Section
where
    Tz::Offset: std::fmt::Display,
{
    section_of(summary(snap), now)
}

/// The section around a [`summary`] line already made.
pub fn section_of<Tz: TimeZone>(summary: String, now: &DateTime<Tz>) -> Section
where
    Tz::Offset: std::fmt::Display,
{
    Section {
        id: SECTION_ID.to_string(),
        heading: "## Tasks".to_string(),
        note: "kept current by the task loop; edits inside are replaced".to_string(),
        lines: vec![
            summary,
            format!("Updated {}", now.format("%Y-%m-%d %H:%M:%S")),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::snapshot::TaskView;
    use chrono::{FixedOffset, Utc};

    fn task(state: TaskState) -> TaskView {
        TaskView::new("t", state, 0.0, Utc::now())
    }

    fn snap(states: &[TaskState]) -> Snapshot {
        let mut s = Snapshot {
            tasks: states.iter().map(|&st| task(st)).collect(),
            ..Snapshot::default()
        };
        s.today.done = 14;
        s.today.failed = 1;
        s.today.cost_usd = 0.4249;
        s
    }

    #[test]
    fn the_line_of_the_docs() {
        use TaskState::*;
        let s = snap(&[Running, Running, Pending, Pending, Pending, WaitingApproval]);
        assert_eq!(
            summary(&s),
            "Pending 3 · Running 2 · Waiting for approval 1 · Done today 14 · Failed today 1 · Cost today $0.42"
        );
    }

    #[test]
    fn other_states_and_conditions_are_named_only_when_so() {
        use TaskState::*;
        let mut s = snap(&[
            AwaitingRunApproval,
            WaitingApproval,
            Retry,
            NeedsReview,
            NeedsReview,
        ]);
        s.paused = true;
        s.needs_setup = Some("claude not found on PATH".into());
        s.today.cost_usd = f64::NAN;
        assert_eq!(
            summary(&s),
            "Pending 0 · Running 0 · Waiting for approval 2 · Retrying 1 · Needs review 2 · \
             Done today 14 · Failed today 1 · Cost today $0.00 · Paused · Needs setup: claude \
             not found on PATH"
        );
        assert_eq!(
            summary(&Snapshot::<crate::agent::snapshot::TaskView>::default()),
            "Pending 0 · Running 0 · Waiting for approval 0 · Done today 0 · Failed today 0 · Cost today $0.00"
        );
    }

    #[test]
    fn the_section_says_when() {
        let zone = FixedOffset::east_opt(3600).expect("a valid offset");
        let now = zone
            .with_ymd_and_hms(2026, 12, 6, 5, 10, 3)
            .single()
            .expect("a valid time");
        let sec = section(&snap(&[]), &now);
        assert_eq!(sec.id, "tasks");
        assert_eq!(sec.heading, "## Tasks");
        assert_eq!(sec.lines[1], "Updated 2026-12-06 05:10:03");
        assert_eq!(sec.lines.len(), 2);
    }
}
