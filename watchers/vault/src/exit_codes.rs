//! Exit codes are API: scripts, systemd and launchd act on them.

/// Clean run: the supervisor shut down after Ctrl+C / SIGTERM, or a command succeeded.
pub const OK: i32 = 0;
/// A runtime failure that is not the user's input (an I/O error in the vault, say).
pub const FAILURE: i32 = 1;
/// The command line could not be parsed (clap's own code).
pub const USAGE: i32 = 2;
/// Another supervisor already holds this vault's lock (`EX_TEMPFAIL`).
pub const LOCKED: i32 = 75;
/// The vault could not be created or written (`EX_CANTCREAT`).
pub const CANT_CREATE: i32 = 73;
/// The process table or a watcher's configuration is invalid or missing (`EX_CONFIG`).
/// A child that exits with this code is shown as needing setup and is not restarted.
pub const CONFIG: i32 = 78;
/// A second Ctrl+C forced the shutdown: children were SIGKILLed without grace.
pub const FORCED: i32 = 130;
