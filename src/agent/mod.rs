//! The task loop (`ai-employee agent`): Needs_Action/ → score → approval gate → the AI
//! agent → Done/, Rejected/ or Failed/. See docs/agent.md for what it promises and
//! docs/ARCHITECTURE.md for how the parts fit.

/// Runs in podman containers: the `podman run` / `podman rm` argv (pure).
pub mod container;
/// The `## Tasks` section of Dashboard.md (pure formatting).
pub mod dashboard;
/// The loop: discovery, scheduling, claiming, what each attempt's end means.
pub mod engine;
/// `Logs/tasks.jsonl`: one record per thing that happened to a task (the metrics' source).
pub mod events;
/// The approval gate's files: run requests, drafts linked to a task, where each is now.
pub mod gate;
/// The loop's health from its snapshot and the last day's metrics (`tasks health`).
pub mod health;
/// Task metrics: a fold over `Logs/tasks.jsonl` in a time window (`tasks metrics`).
pub mod metrics;
/// The agent's answer: Claude Code's JSON result or plain text → what happened.
pub mod outcome;
/// One short run of the agent to see it can run (`ai-employee setup agent`).
pub mod probe;
/// The prompt template and how it is filled.
pub mod prompt;
/// One attempt: agent runs, resumes, `verify`, timeouts, logs.
pub mod runner;
/// The priority score (pure).
pub mod score;
/// `.ai-employee/tasks.json`: what the loop shows `tasks`, `/metrics` and the Dashboard.
pub mod snapshot;
/// Task files: the facts, the loop's keys in the frontmatter, safe edits and moves.
pub mod task;
