//! The control socket: `<vault>/.ai-employee/control.sock`, a Unix stream socket that only
//! the supervisor's owner can use (mode 0600 in a 0700 folder, and every peer's uid is
//! checked). The protocol is one JSON object per line each way: a [`Request`], then one
//! [`Response`]; a connection may send several requests in turn. Documented for scripts
//! in `docs/operations.md`.
//!
//! ```text
//! → {"cmd":"status"}
//! ← {"ok":true,"status":{"health":"healthy","supervisor":{…},"children":[…]}}
//! → {"cmd":"stop","name":"gmail"}
//! ← {"ok":true,"message":"stopping gmail (pid 4242)"}
//! → {"cmd":"start","name":"nope"}
//! ← {"ok":false,"error":"no process named \"nope\" (known: filesystem, gmail)"}
//! ```
//!
//! This module holds the protocol types and the blocking [`client`] (the operator's
//! commands, and the approval handler's events); the server runs inside the supervisor
//! (`ai_employee::control`).

pub mod client;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::layout::Vault;

/// Version of the protocol, in every status report; bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the server reads (a request is a few dozen bytes).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The socket of the supervisor running on `vault`.
pub fn socket_path(vault: &Path) -> PathBuf {
    Vault::new(vault.to_path_buf()).control_socket()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Everything `ai-employee status` shows.
    Status,
    /// Start a stopped child (or one that needs setup, gave up or exited) now.
    Start { name: String },
    /// Stop a child; it stays stopped until `start` or the supervisor's next start.
    Stop { name: String },
    /// Stop (if running) and start again now, without backoff.
    Restart { name: String },
    /// Re-read the process table (the same as SIGHUP).
    Reload,
    /// Something a child wants the operator to hear about (an approval that failed):
    /// forwarded to the `[[notify]]` webhooks that subscribe to `event`.
    Event { event: String, details: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadReport>,
}

impl Response {
    pub fn ok(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            message: Some(message.into()),
            ..Response::default()
        }
    }

    pub fn error(error: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(error.into()),
            ..Response::default()
        }
    }
}

/// `healthy`: every enabled child runs (or rests as its policy says); `needs_setup`:
/// nothing failed, but some child waits for its owner's set-up (`ai-employee setup`), as
/// on a fresh install; `degraded`: some child is restarting, gave up or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Healthy,
    NeedsSetup,
    Degraded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub protocol: u32,
    pub health: Health,
    pub supervisor: SupervisorInfo,
    pub children: Vec<ChildStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupervisorInfo {
    pub pid: u32,
    pub version: String,
    /// RFC 3339.
    pub started_at: String,
    pub uptime_secs: f64,
    pub vault: String,
    /// The process table in force (a path, or `<built-in default>`).
    pub table: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildStatus {
    pub name: String,
    pub description: String,
    /// running, starting, backoff, stopping, stopped, disabled, exited, needs-setup, fatal.
    pub state: String,
    pub enabled: bool,
    pub pid: Option<i32>,
    pub uptime_secs: Option<f64>,
    /// Restarts by the supervisor since it started (after a crash or a failed health
    /// check).
    pub restarts: u32,
    /// Starts the operator asked for after the first (`start`, `restart`, a reload that
    /// changed the child's definition).
    #[serde(default)]
    pub manual_restarts: u32,
    pub last_exit: Option<LastExit>,
    pub rss_bytes: Option<u64>,
    /// Share of one CPU since the previous sample (at most one health interval ago).
    pub cpu_percent: Option<f64>,
    /// User + system CPU time of the running process.
    pub cpu_seconds: Option<f64>,
    /// Time left before the next start, in `backoff`.
    pub backoff_left_secs: Option<f64>,
    /// Why it needs setup or was given up on.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastExit {
    pub code: Option<i32>,
    /// `SIGKILL`, `SIGTERM`, …
    pub signal: Option<String>,
}

impl std::fmt::Display for LastExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.signal, self.code) {
            (Some(s), _) => f.write_str(s),
            (None, Some(c)) => write!(f, "exit {c}"),
            (None, None) => f.write_str("-"),
        }
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub disabled: Vec<String>,
    pub unchanged: Vec<String>,
    /// What the reload could not apply, one sentence each (also in the log).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl ReloadReport {
    /// `added x; changed y, z; 2 unchanged` or `no changes (4 unchanged)`.
    pub fn describe(&self) -> String {
        let part = |label: &str, v: &Vec<String>| {
            (!v.is_empty()).then(|| format!("{label} {}", v.join(", ")))
        };
        let parts: Vec<String> = [
            part("added", &self.added),
            part("removed", &self.removed),
            part("changed", &self.changed),
            part("disabled", &self.disabled),
        ]
        .into_iter()
        .flatten()
        .collect();
        if parts.is_empty() {
            format!("no changes ({} unchanged)", self.unchanged.len())
        } else {
            format!("{}; {} unchanged", parts.join("; "), self.unchanged.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_object_each() {
        let cases = [
            (Request::Status, r#"{"cmd":"status"}"#),
            (
                Request::Stop {
                    name: "gmail".into(),
                },
                r#"{"cmd":"stop","name":"gmail"}"#,
            ),
            (Request::Reload, r#"{"cmd":"reload"}"#),
        ];
        for (req, text) in cases {
            assert_eq!(serde_json::to_string(&req).unwrap(), text);
            assert_eq!(serde_json::from_str::<Request>(text).unwrap(), req);
        }
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"format_disk"}"#).is_err());
    }

    #[test]
    fn responses_leave_out_what_is_not_there() {
        assert_eq!(
            serde_json::to_string(&Response::error("no")).unwrap(),
            r#"{"ok":false,"error":"no"}"#
        );
    }

    #[test]
    fn reload_descriptions() {
        let mut r = ReloadReport {
            unchanged: vec!["a".into(), "b".into()],
            ..ReloadReport::default()
        };
        assert_eq!(r.describe(), "no changes (2 unchanged)");
        r.added.push("c".into());
        r.changed.extend(["d".to_string(), "e".to_string()]);
        assert_eq!(r.describe(), "added c; changed d, e; 2 unchanged");
    }
}
