//! The wire format: what the task loop publishes for a worker ([`TaskMessage`]) and what
//! a worker answers ([`ResultMessage`]), each as JSON in the `body` field of a stream
//! entry. Both carry `v` ([`VERSION`]); a reader refuses any other version and any field
//! it does not know, so a change of format is a new version, never a silent guess.
//!
//! Compatibility within a version: a field may be added only as optional, left out of
//! the JSON when it has its default, so that a message that does not use it is byte for
//! byte what an older build writes and reads. An older reader refuses a message that uses
//! it (an unknown field), which is the safe answer: `runner` below is such a field (a
//! worker that does not know containers refuses a run that asks for one).
//!
//! A stream entry also carries `task` and `attempt` as fields of their own, so that
//! [`super::QueueClient::outstanding`] can list what is in the streams without parsing
//! every body.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agent::events::RunResult;

/// The version of both messages this build writes and reads.
pub const VERSION: u32 = 1;

/// One run of a task, for a worker: everything it needs and nothing else (no credential,
/// no path of the home host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskMessage {
    pub v: u32,
    /// The task's id (its file stem in the vault).
    pub task_id: String,
    /// The attempt this run is: the fencing token. Only a result with the attempt the
    /// vault says is running is accepted.
    pub attempt: u32,
    /// The task file's text (frontmatter and body), written as `In_Progress/<task_id>.md`
    /// in the worker's scratch folder.
    pub task: String,
    /// `Company_Handbook.md`'s text (empty when the vault has none).
    pub handbook: String,
    /// The rendered prompt (`{prompt}` of the command).
    pub prompt: String,
    /// How to run the agent.
    pub agent: AgentSpec,
    pub published_at: DateTime<Utc>,
}

/// The `[agent]` settings a run needs (docs/agent.md); the worker fills the placeholders
/// with its scratch folder (`{vault}`), the task's id and the prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// `command`, as written in the table (placeholders not filled).
    pub command: Vec<String>,
    /// `resume`.
    pub resume: Vec<String>,
    /// The prompt of a resume after a run without a status line.
    pub continue_prompt: String,
    /// `verify`, run in the scratch folder.
    #[serde(default)]
    pub verify: Option<Vec<String>>,
    pub max_iterations: u32,
    /// `timeout`, in milliseconds.
    pub timeout_ms: u64,
    /// `kill_after`, in milliseconds.
    pub kill_after_ms: u64,
    /// Extra environment; the loop sends none of `[agent] env` by default (a worker's
    /// agent is logged in on its own host).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `[agent] runner`: `podman` asks for the run in a container (docs/workers.md,
    /// "Containers"); absent means a plain process. A worker started with `--runner
    /// podman` contains every run whatever this says; one without refuses `podman`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerKind>,
    /// `[agent] image`, with `runner = "podman"`: the image the loop expects. The
    /// worker's own `--image` is the one run (a different one is said in its log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// How a run asks to be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerKind {
    Process,
    Podman,
}

/// A worker's answer for one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultMessage {
    pub v: u32,
    pub task_id: String,
    /// The attempt of the [`TaskMessage`] this answers (its fencing token).
    pub attempt: u32,
    /// The worker's name (`--name`) and host.
    pub worker: String,
    pub host: String,
    /// How the run ended, classified as the local runner does (`src/agent/outcome.rs`).
    pub status: RunResult,
    /// Why, for a status other than done / waiting for approval.
    #[serde(default)]
    pub reason: Option<String>,
    pub cost_usd: f64,
    pub turns: u64,
    #[serde(default)]
    pub session_id: Option<String>,
    pub iterations: u32,
    /// What the agent wrote under `Plans/` and `Pending_Approval/` (nothing else is
    /// returned).
    pub files: Vec<FileOut>,
    pub finished_at: DateTime<Utc>,
}

/// One file the agent wrote: a vault-relative path (`Plans/x.md`) and its text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOut {
    pub path: String,
    pub content: String,
}

impl TaskMessage {
    /// The JSON of the message.
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings, numbers and maps of strings always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl ResultMessage {
    /// The JSON of the message.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
