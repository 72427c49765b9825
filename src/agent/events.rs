//! `Logs/tasks.jsonl`: the task loop's append-only event log, one JSON object per line
//! (a `journal::Journal`, so a torn last line is never read as a record). Trends
//! (`tasks metrics`) are computed from it, not from counters.
//!
//! ```text
//! {"ts":"2026-12-06T05:00:00.123Z","event":"queued","task":"EMAIL_20261206T050000_hello"}
//! {"ts":"…","event":"started","task":"…","attempt":1,"iteration":1}
//! {"ts":"…","event":"run","task":"…","attempt":1,"iteration":1,"result":"done","duration_ms":5120,"cost_usd":0.031,"turns":4}
//! {"ts":"…","event":"done","task":"…","attempt":1,"duration_ms":6001,"cost_usd":0.031,"turns":4}
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The file name under `Logs/`.
pub const FILE_NAME: &str = "tasks.jsonl";

/// One line of `Logs/tasks.jsonl`. Unknown fields are ignored when reading (newer
/// versions may add some); `ts` is always UTC with milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEvent {
    pub ts: DateTime<Utc>,
    pub event: EventKind,
    /// The task's id (its file stem); empty for loop-wide events (`paused`, `resumed`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<u32>,
    /// `run` only: how the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RunResult>,
    /// `run`: the run's wall time; `done`/`failed`/`rejected`/`needs_review`: from queued
    /// to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// `run`: this run's cost; final events: the task's total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u32>,
    /// `retry`: when the next attempt starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    /// Why (failures, retries, invalid tasks), one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TaskEvent {
    pub fn new(ts: DateTime<Utc>, event: EventKind, task: impl Into<String>) -> TaskEvent {
        TaskEvent {
            ts,
            event,
            task: task.into(),
            attempt: None,
            iteration: None,
            result: None,
            duration_ms: None,
            cost_usd: None,
            turns: None,
            retry_at: None,
            error: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A task was found in Needs_Action/ for the first time.
    Queued,
    /// A task waits for a person to approve running it (a request in Pending_Approval/).
    ApprovalRequested,
    /// A person approved running it.
    RunApproved,
    /// An agent run started (claimed into In_Progress/).
    Started,
    /// An agent run ended (`result` says how; `duration_ms`, `cost_usd`, `turns`).
    Run,
    /// The agent drafted approval requests; the task waits for their outcome.
    WaitingApproval,
    /// A failed attempt; the next one is at `retry_at`.
    Retry,
    /// The task reached Done/.
    Done,
    /// The task reached Failed/ (last attempt failed, or invalid).
    Failed,
    /// The task reached Rejected/ (a person rejected it or one of its actions).
    Rejected,
    /// No decision within `approval_timeout`: a person should look at it.
    NeedsReview,
    /// The task file could not be read as a task (→ Failed/ with the reason).
    Invalid,
    /// An operator asked for a retry (`tasks retry`).
    RetryRequested,
    /// The loop was paused (stop file or `tasks pause`).
    Paused,
    /// The loop was resumed.
    Resumed,
}

/// How one agent run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunResult {
    /// The agent said the task is done (and `verify`, if any, passed).
    Done,
    /// The agent drafted approval requests and waits for them.
    WaitingApproval,
    /// The agent said it failed, or answered `is_error`.
    Failed,
    /// Exited non-zero without a usable answer.
    Crashed,
    /// Ran past `timeout` and was stopped.
    Timeout,
    /// Ended without a status line (resumed if iterations remain).
    NoStatus,
    /// `verify` failed after the agent said done.
    VerifyFailed,
    /// The loop stopped (or died) while it ran; counted as an attempt.
    Interrupted,
    /// The agent cannot run at all (missing binary, not logged in).
    NeedsSetup,
}

impl RunResult {
    /// Whether the run counts as an error for the error rate.
    pub fn is_error(self) -> bool {
        !matches!(self, RunResult::Done | RunResult::WaitingApproval)
    }
}
