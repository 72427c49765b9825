//! What an agent run answered. Claude Code's `--output-format json` prints one JSON object
//! (`{"type":"result","subtype":"success","is_error":false,"result":"…","session_id":"…",
//! "total_cost_usd":0.03,"num_turns":4,"usage":{…}}`); any other agent prints text. The
//! task's status is the last status line of the result text (see [`status_line`]).

use serde::Serialize;

/// What the run said, read from its standard output.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Answer {
    /// The output was Claude Code's JSON result.
    pub json: bool,
    /// `is_error` of the JSON result.
    pub is_error: bool,
    /// `result` of the JSON result, or the whole text output.
    pub text: String,
    pub session_id: Option<String>,
    pub cost_usd: Option<f64>,
    pub turns: Option<u32>,
    /// `usage`, kept as it came.
    pub usage: Option<serde_json::Value>,
    pub status: Status,
}

/// The status line the prompt asks the agent to end with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Status {
    /// `STATUS: done`
    Done,
    /// `STATUS: waiting for approval`
    WaitingApproval,
    /// `STATUS: failed: <reason>`
    Failed(String),
    /// No status line.
    #[default]
    Missing,
}

/// Read a run's standard output (at most the loop's cap of it).
pub fn parse_output(stdout: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(stdout).into_owned();
    let status = status_line(&text);
    Answer {
        text,
        status,
        ..Answer::default()
    }
}

/// The last status line of `text`.
pub fn status_line(_text: &str) -> Status {
    Status::Missing
}

/// Whether a run that ended with `exit_code` and this answer (and this tail of its
/// standard error) shows that the agent cannot run at all (not logged in, no API key):
/// the one-line reason.
pub fn needs_setup(_exit_code: Option<i32>, _answer: &Answer, _stderr: &str) -> Option<String> {
    None
}
