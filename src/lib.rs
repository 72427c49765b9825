//! ai-employee: a process supervisor for a personal AI employee's watchers.
//!
//! Start at `docs/ARCHITECTURE.md` for the crate graph and the event flow. This crate is
//! the binary's side: the command line, the process table, the control socket's server,
//! processes and the supervisor. What it shares with the watchers (the vault, logs,
//! units, the control protocol) is the `ai_employee_vault` crate; each watcher is its own
//! crate under `watchers/`.

/// The task loop (`ai-employee agent`): Needs_Action/ → agent → Done/.
pub mod agent;
/// clap types for the command line (no logic).
pub mod cli;
/// One module per subcommand.
pub mod commands;
/// The process table: TOML → validated model, errors with file:line:column.
pub mod config;
/// The control socket's server (in the supervisor); the protocol and the client are in
/// `ai_employee_vault::control`.
pub mod control;
/// Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature; and in the unit
/// tests, which replay every input in `fuzz/regressions/`).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
/// The only place that spawns, signals and reaps processes; the orphan guardian.
pub mod process;
/// The work queue to agent workers on other hosts (Redis Streams), and the worker.
pub mod queue;
/// The per-child state machine (pure), backoff (pure), and the async runtime.
pub mod supervisor;
