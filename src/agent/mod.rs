//! The task loop (`ai-employee agent`): Needs_Action/ → score → approval gate → the AI
//! agent → Done/, Rejected/ or Failed/. See docs/agent.md for what it promises and
//! docs/ARCHITECTURE.md for how the parts fit.

/// The `## Tasks` section of Dashboard.md (pure formatting).
pub mod dashboard;
/// `Logs/tasks.jsonl`: one record per thing that happened to a task (the metrics' source).
pub mod events;
/// The agent's answer: Claude Code's JSON result or plain text → what happened.
pub mod outcome;
/// The priority score (pure).
pub mod score;
/// `.ai-employee/tasks.json`: what the loop shows `tasks`, `/metrics` and the Dashboard.
pub mod snapshot;
