//! The task loop (`ai-employee agent`): Needs_Action/ → score → approval gate → the AI
//! agent → Done/, Rejected/ or Failed/. See docs/agent.md for what it promises and
//! docs/ARCHITECTURE.md for how the parts fit.

/// `Logs/tasks.jsonl`: one record per thing that happened to a task (the metrics' source).
pub mod events;
/// The loop's health from its snapshot and the last day's metrics (`tasks health`).
pub mod health;
/// Task metrics: a fold over `Logs/tasks.jsonl` in a time window (`tasks metrics`).
pub mod metrics;
/// The agent's answer: Claude Code's JSON result or plain text → what happened.
pub mod outcome;
/// The priority score (pure).
pub mod score;
/// `.ai-employee/tasks.json`: what the loop shows `tasks`, `/metrics` and the Dashboard.
pub mod snapshot;
