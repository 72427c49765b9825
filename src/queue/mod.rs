//! The work queue to agent workers on other hosts, on Redis Streams with consumer groups
//! (docs/workers.md).
//!
//! The vault on the home host stays the one source of truth: Redis only carries runs to
//! workers and their answers back. A worker (`ai-employee worker`, [`worker`]) never holds
//! a credential of the vault and never sends anything; it runs the agent in a scratch
//! folder and returns the files the agent wrote under `Plans/` and `Pending_Approval/`.
//!
//! # Keys (prefix `ai-employee`)
//!
//! | key | type | who writes | who reads |
//! |---|---|---|---|
//! | `ai-employee:tasks` | stream, group `workers` | the loop ([`QueueClient::publish`]) | workers |
//! | `ai-employee:results` | stream, group `loop` | workers ([`QueueClient::publish_result`]) | the loop |
//! | `ai-employee:workers` | hash: name → [`WorkerInfo`] JSON | workers' heartbeats | `workers`, the loop |
//! | `ai-employee:reclaims` | counter | workers ([`QueueClient::reclaim`]) | metrics |
//!
//! Each stream entry has the fields `task`, `attempt` and `body` (the JSON of a
//! [`wire::TaskMessage`] or [`wire::ResultMessage`]). An entry is deleted once it is
//! acknowledged, so a stream's length is what is still outstanding.
//!
//! # How the task loop uses it (the engine's wiring)
//!
//! 1. At start, and whenever [`QueueClient::server_run_id`] changes:
//!    [`QueueClient::ensure_groups`], then [`QueueClient::outstanding`]; every task the
//!    vault says is running on a worker (`state: running`, its `attempt`) that is in
//!    neither stream was lost with Redis's data: publish it again with the same attempt.
//! 2. A runnable task: claim it into `In_Progress/` as for a local run (the attempt
//!    counted and written in its frontmatter first), then [`QueueClient::publish`] a
//!    [`wire::TaskMessage`] with that attempt (the fencing token).
//! 3. Read [`QueueClient::read_results`] (it returns the loop's own unacknowledged
//!    entries first after a connect, so a crash between reading and acknowledging loses
//!    nothing). For each [`Incoming`]:
//!    - `result: Err(refusal)`: the worker's answer is not acceptable (bad schema, a path
//!      outside `Plans/`/`Pending_Approval/`, too big). If [`fence`] accepts its attempt,
//!      treat it as a failed attempt (retry with backoff, the refusal as `last_error`);
//!      write nothing. Then [`QueueClient::ack_result`].
//!    - `Ok(valid)`: [`fence`]`(valid.message.attempt, running)` where `running` is the
//!      attempt the task file says runs on a worker (None when it is not `running`).
//!      [`Verdict::Stale`]: acknowledge and change nothing (a late answer from a stalled
//!      worker whose entry was reclaimed and already answered, or an old attempt).
//!      [`Verdict::Accept`]: write the files with [`write_files`] (no-replace; a file
//!      already there with the same text counts as written, so a replay after a crash is
//!      harmless; a different one is a [`Written::Conflict`], left alone), then apply the
//!      status exactly as a local run's `RunResult` (done, waiting for approval, retry …),
//!      make it durable, and only then [`QueueClient::ack_result`].
//! 4. Redis unreachable ([`QueueError::is_unreachable`]): log once, then per
//!    `[agent] queue_unreachable` run locally or wait; the client reconnects by itself on
//!    the next call.
//! 5. Metrics: [`QueueClient::metrics`]; workers: [`QueueClient::workers`] (a worker not
//!    seen for `worker_timeout` is gone).
//!
//! Delivery is at least once (an entry is acknowledged only after its answer is
//! published, a result only after it is durable in the vault); completion is exactly once
//! because the vault decides: the fencing token and no-replace writes.

/// The Redis client: publish, read, acknowledge, reclaim, the registry.
pub mod client;
/// `credentials/queue.toml` (and a worker's `--credentials` file).
pub mod credentials;
/// What arrives from the queue is checked here before anything uses it.
pub mod validate;
/// The messages: task and result, versioned JSON.
pub mod wire;
/// `ai-employee worker`: takes runs from the queue, runs the agent, answers.
pub mod worker;
/// Writing a result's files into the vault (no-replace).
mod write;

pub use client::{
    Credentials, CurrentTask, Incoming, Outstanding, QueueClient, QueueError, QueueMetrics,
    TaskDelivery, Verdict, WorkerInfo, fence,
};
pub use validate::{Limits, Refusal, ValidResult, validate_result};
pub use write::{Written, write_files};
