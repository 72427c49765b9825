//! ai-employee: a process supervisor for a personal AI employee's watchers.
//!
//! Start at `docs/ARCHITECTURE.md` for the event flow.

/// clap types for the command line (no logic).
pub mod cli;
/// One module per subcommand.
pub mod commands;
/// The process table: TOML → validated model, errors with file:line:column.
pub mod config;
/// The control socket: protocol, server (in the supervisor) and client (the commands).
pub mod control;
/// Exit codes (API for scripts and service managers).
pub mod exit_codes;
/// Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature; and in the unit
/// tests, which replay every input in `fuzz/regressions/`).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
/// The HTTP client set-up shared by webhooks, OAuth and the WhatsApp API.
pub mod http;
/// Size-rotated log files and the system log.
pub mod logs;
/// The only place that spawns, signals and reaps processes; the orphan guardian.
pub mod process;
/// The per-child state machine (pure), backoff (pure), and the async runtime.
pub mod supervisor;
/// Vault layout, atomic writes, Dashboard.md, the supervisor lock.
pub mod vault;
/// The watchers shipped in the binary (`ai-employee watch <name>`).
#[path = "../watchers/mod.rs"]
pub mod watchers;
