//! `.ai-employee/tasks.json`: the loop's current state, replaced atomically (at most a few
//! times a second) for `ai-employee tasks`, the supervisor's `/metrics` and
//! `tasks health`. The vault stays the source of truth (each task's frontmatter); this is
//! a view of it that is cheap to read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The file name under `.ai-employee/`.
pub const FILE_NAME: &str = "tasks.json";
/// Bumped on incompatible changes.
pub const VERSION: u32 = 1;

/// Upper bounds (seconds) of the run-duration histogram's buckets (`+Inf` implied).
pub const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The file's contents. Readers use the default `T` ([`TaskView`]); the loop writes it
/// with [`TaskViewRef`]s borrowed from its own table (the same JSON, no copy of every
/// task's strings while it is written).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot<T = TaskView> {
    pub version: u32,
    /// The loop's pid.
    pub pid: u32,
    pub written_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    /// The stop file exists or `tasks pause` was given: no new task starts.
    pub paused: bool,
    /// Set when the agent cannot run (missing binary, not logged in): the one-line reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_setup: Option<String>,
    pub max_concurrent: u32,
    /// Mean wall time of the last completed runs, for estimates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_run_ms: Option<u64>,
    /// Every task the loop knows of, in queue order: running first, then by score.
    pub tasks: Vec<T>,
    /// Counters since the event log began (the loop folds `Logs/tasks.jsonl` at start).
    pub totals: Totals,
    /// The same for today (local date).
    pub today: Totals,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_completion: Option<DateTime<Utc>>,
    /// The work queue to workers on other hosts, when `[agent] queue` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueView>,
}

impl<T> Default for Snapshot<T> {
    fn default() -> Self {
        Snapshot {
            version: 0,
            pid: 0,
            written_at: None,
            started_at: None,
            paused: false,
            needs_setup: None,
            max_concurrent: 0,
            recent_run_ms: None,
            tasks: Vec::new(),
            totals: Totals::default(),
            today: Totals::default(),
            last_completion: None,
            queue: None,
        }
    }
}

/// What the counts of the Dashboard's section and the health rules need of a task.
pub trait Stated {
    fn state(&self) -> TaskState;
}

impl Stated for TaskView {
    fn state(&self) -> TaskState {
        self.state
    }
}

/// The loop's view of the work queue (docs/workers.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueView {
    /// The queue's URL, without a password.
    pub url: String,
    /// Whether it answered at the last try.
    pub reachable: bool,
    /// `queue_unreachable`: `local` or `wait`.
    pub unreachable_mode: String,
    /// `worker_timeout`, in seconds.
    pub worker_timeout_s: u64,
    /// Runs published and not yet answered (as the vault says).
    pub in_flight: u64,
    /// Workers seen within `worker_timeout`.
    pub workers_alive: u64,
    /// Each live worker's runs in hand, by name.
    #[serde(default)]
    pub worker_runs: std::collections::BTreeMap<String, u32>,
    /// The newest heartbeat of a live worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_worker_seen: Option<DateTime<Utc>>,
    /// The streams' counts, as last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<crate::queue::QueueMetrics>,
    /// Results since the loop started: applied, refused (a failed attempt when current),
    /// and fenced off as stale.
    pub results_applied: u64,
    pub results_refused: u64,
    pub results_stale: u64,
    /// Runs published again because Redis had lost them.
    pub republished: u64,
    /// Where each run on the queue is.
    #[serde(default)]
    pub runs: Vec<RemoteRunView>,
}

/// One run on the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteRunView {
    pub task: String,
    pub attempt: u32,
    pub published_at: DateTime<Utc>,
    /// The worker that has it (from its heartbeat); none while it waits in the queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub done: u64,
    pub failed: u64,
    pub rejected: u64,
    pub needs_review: u64,
    pub invalid: u64,
    pub retries: u64,
    /// Agent runs, and those that ended in an error (`RunResult::is_error`).
    pub runs: u64,
    pub run_errors: u64,
    pub cost_usd: f64,
    pub turns: u64,
    /// Run durations: counts per bucket of [`DURATION_BUCKETS`] plus one for `+Inf`
    /// (not cumulative), and their sum in seconds.
    pub duration_counts: Vec<u64>,
    pub duration_sum_s: f64,
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// In Needs_Action/, ready when a slot is free.
    Pending,
    /// Waiting for a person to approve running it at all.
    AwaitingRunApproval,
    /// An agent runs it now.
    Running,
    /// The agent drafted approval requests; waiting for their outcome.
    WaitingApproval,
    /// A failed attempt; the next one at `retry_at`.
    Retry,
    /// No decision within `approval_timeout`.
    NeedsReview,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::AwaitingRunApproval => "awaiting_run_approval",
            TaskState::Running => "running",
            TaskState::WaitingApproval => "waiting_approval",
            TaskState::Retry => "retry",
            TaskState::NeedsReview => "needs_review",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    /// The file stem.
    pub id: String,
    /// Vault-relative path of the task file now.
    pub file: String,
    pub title: String,
    pub state: TaskState,
    pub score: f64,
    /// Runs so far (including a running one).
    pub attempt: u32,
    pub queued_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    /// The agent's pid while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Approval requests it waits for (vault-relative).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<String>,
    #[serde(default)]
    pub cost_usd: f64,
    #[serde(default)]
    pub turns: u64,
}

/// A [`TaskView`] borrowed from the loop's table, for writing: serialised to the same
/// JSON (a unit test holds the two together).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct TaskViewRef<'a> {
    pub id: &'a str,
    pub file: FileRef<'a>,
    pub title: &'a str,
    pub state: TaskState,
    pub score: f64,
    pub attempt: u32,
    pub queued_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub approvals: &'a [String],
    pub cost_usd: f64,
    pub turns: u64,
}

/// A task file's vault-relative path (`In_Progress/x.md`), written without building it.
#[derive(Debug, Clone, Copy)]
pub struct FileRef<'a>(pub ai_employee_vault::layout::Folder, pub &'a str);

impl Serialize for FileRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}/{}", self.0.name(), self.1))
    }
}

impl TaskView {
    /// A task in `Needs_Action/` with nothing but its id, state, score and queue time
    /// (tests build the rest from it).
    pub fn new(id: &str, state: TaskState, score: f64, queued_at: DateTime<Utc>) -> TaskView {
        TaskView {
            id: id.into(),
            file: format!("Needs_Action/{id}.md"),
            title: id.into(),
            state,
            score,
            attempt: 0,
            queued_at,
            started_at: None,
            retry_at: None,
            last_error: None,
            priority: None,
            deadline: None,
            pid: None,
            approvals: Vec::new(),
            cost_usd: 0.0,
            turns: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_employee_vault::layout::Folder;

    /// The loop writes [`TaskViewRef`]s; readers parse [`TaskView`]s: the same JSON for
    /// the same task, with every optional field absent and present.
    #[test]
    fn borrowed_view_writes_what_readers_read() {
        let t0 = "2026-12-06T10:00:00Z".parse().unwrap();
        let t1 = "2026-12-06T11:30:00.250Z".parse().unwrap();
        let approvals = vec!["Pending_Approval/EMAIL_x.md".to_string()];
        let mut full = TaskView::new("t \"1\"", TaskState::WaitingApproval, 1.25, t0);
        full.file = "In_Progress/t \"1\".md".into();
        full.title = "Pay \\ invoice ✓".into();
        full.attempt = 3;
        full.started_at = Some(t1);
        full.retry_at = Some(t1);
        full.last_error = Some("exit 1\nline".into());
        full.priority = Some("high".into());
        full.deadline = Some(t1);
        full.pid = Some(42);
        full.approvals = approvals.clone();
        full.cost_usd = 0.5;
        full.turns = 7;
        let full_ref = TaskViewRef {
            id: "t \"1\"",
            file: FileRef(Folder::InProgress, "t \"1\".md"),
            title: "Pay \\ invoice ✓",
            state: TaskState::WaitingApproval,
            score: 1.25,
            attempt: 3,
            queued_at: t0,
            started_at: Some(t1),
            retry_at: Some(t1),
            last_error: Some("exit 1\nline"),
            priority: Some("high"),
            deadline: Some(t1),
            pid: Some(42),
            approvals: &approvals,
            cost_usd: 0.5,
            turns: 7,
        };
        let bare = TaskView::new("b", TaskState::Pending, 0.0, t0);
        let bare_ref = TaskViewRef {
            id: "b",
            file: FileRef(Folder::NeedsAction, "b.md"),
            title: "b",
            state: TaskState::Pending,
            score: 0.0,
            attempt: 0,
            queued_at: t0,
            started_at: None,
            retry_at: None,
            last_error: None,
            priority: None,
            deadline: None,
            pid: None,
            approvals: &[],
            cost_usd: 0.0,
            turns: 0,
        };
        for (owned, borrowed) in [(&full, full_ref), (&bare, bare_ref)] {
            let a = serde_json::to_string(owned).unwrap();
            let b = serde_json::to_string(&borrowed).unwrap();
            assert_eq!(a, b);
            let back: TaskView = serde_json::from_str(&b).unwrap();
            assert_eq!(&back, owned);
        }
    }
}
