//! What the supervisor and every watcher share: the vault (its layout, the one way to its
//! files without following links, atomic writes, frontmatter, Dashboard.md, the lock),
//! log files, durations and sizes, exit codes, the HTTP client set-up, the control
//! socket's protocol and client, and what every watcher needs (its start-up, credentials,
//! OAuth, TLS, the exactly-once task sink).
//!
//! This crate depends on no other crate of the workspace; the supervisor and each watcher
//! crate depend on it. See `docs/ARCHITECTURE.md` for the crate graph.

/// Atomic writes of user-owned files; whether others have a file open (leases).
pub mod atomic;
/// The shared command-line bits (`--vault`) every command and watcher takes.
pub mod cli;
/// The control socket's protocol types and the blocking client (the server is in the
/// supervisor).
pub mod control;
/// Credentials files in `credentials/` and secrets that never print.
pub mod credentials;
/// Dashboard.md: the merge with other writers.
pub mod dashboard;
/// Exit codes (API for scripts and service managers).
pub mod exit_codes;
/// Changes to the names in a few folders, without the events of reads (a watcher's own).
pub mod folder_events;
/// YAML frontmatter of task and approval files; typed task frontmatter.
pub mod frontmatter;
/// `credentials/github.toml`, repository names and pagination links of the GitHub REST
/// API (the issues watcher and the approval handler's `github_comment`).
pub mod github;
/// The HTTP client set-up shared by webhooks, OAuth and the WhatsApp API.
pub mod http;
/// The append-only journal every ledger is written as (one torn-tail rule).
pub mod journal;
/// A watcher's JSON state file (`gmail.state`, `github.state`): load and atomic save.
pub mod json_state;
/// The vault's folders and `init`.
pub mod layout;
/// The vault lock (one supervisor, one instance of each watcher).
pub mod lock;
/// Size-rotated log files and the system log.
pub mod logs;
/// The one way to the vault's files: folder descriptors, `openat2` / `O_NOFOLLOW`.
pub mod nofollow;
/// OAuth token refresh under a lock (IMAP and SMTP).
pub mod oauth;
/// A sorted on-disk index of fixed-size keys (the compacted ledgers).
pub mod sorted_index;
/// Every file-system system call beyond `std` (the one home for `unsafe` on files):
/// `*at` calls, `openat2`, renames with flags, leases, `flock`, `syncfs`, sparse files.
pub mod sys;
/// The task sink's ledger of seen message keys.
pub mod task_ledger;
/// Exactly-once task files: staging, ledger, no-replace publish.
pub mod tasks;
/// `ca_file` and certificate errors explained (IMAP and SMTP).
pub mod tls;
/// TOML with spans: fields, `file:line:column` diagnostics, every problem at once (the
/// process table and the credentials files).
pub mod toml_fields;
/// Durations ("500ms", "1m30s") and sizes ("10MiB"): parsing and formatting.
pub mod units;
/// The one watcher start-up (`run_watcher`): vault, logging, signals, heartbeat, lock, exit codes.
pub mod watcher;

pub use layout::Vault;
