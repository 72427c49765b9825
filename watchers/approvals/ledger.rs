//! The append-only ledger that makes execution exactly-once across crashes.
//!
//! `<vault>/.ai-employee/approvals.ledger`, one JSON record per line, written with one
//! `O_APPEND` write each. An approval is identified by its file name and the SHA-256 of
//! its bytes. For every execution the handler appends, in this order:
//!
//! 1. `intent` (fsynced) — *before* the external call;
//! 2. `transient` (fsynced) — the call failed without effect; the file stays in
//!    `Approved/` and a later attempt writes a new `intent`;
//!    or `final` (fsynced) — the decision: which folder, under which name, with which
//!    fields; written before the file is moved;
//! 3. `done` — the file has been moved.
//!
//! Replaying the records gives each identity a [`State`]; `docs/approvals.md` walks
//! through every crash point. A torn last line (a crash in the middle of a write, which
//! therefore never returned and never let the call start) is ignored.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::outcome::{Decision, results};

/// An approval's identity: file name and SHA-256 (hex) of its content.
pub type Key = (String, String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// About to execute (external call, or a local effect).
    Intent {
        file: String,
        sha256: String,
        attempt: u32,
        action: String,
        at: String,
        /// Where a local action leaves its mark (to check it after a crash).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        effect: Option<String>,
        /// The Message-ID of an email (kept on the file if the outcome is unknown, so a
        /// re-approval sends the same message again).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message_id: Option<String>,
    },
    /// The attempt failed without effect; may be retried.
    Transient {
        file: String,
        sha256: String,
        attempt: u32,
        at: String,
        error: String,
    },
    /// The decision: where the file goes and what is added to it.
    Final {
        file: String,
        sha256: String,
        at: String,
        decision: Decision,
    },
    /// The file was moved to its destination.
    Done {
        file: String,
        sha256: String,
        dest: String,
        at: String,
    },
}

impl Record {
    fn key(&self) -> Key {
        let (file, sha) = match self {
            Record::Intent { file, sha256, .. }
            | Record::Transient { file, sha256, .. }
            | Record::Final { file, sha256, .. }
            | Record::Done { file, sha256, .. } => (file, sha256),
        };
        (file.clone(), sha.clone())
    }
}

/// Where an identity stands after replay.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// No attempt in flight; `attempts` earlier attempts failed transiently.
    Open {
        attempts: u32,
        last_error: Option<String>,
    },
    /// An intent without an outcome: the handler stopped during the attempt.
    InFlight {
        attempt: u32,
        action: String,
        effect: Option<String>,
        message_id: Option<String>,
        at: String,
    },
    /// Decided but maybe not moved yet.
    Decided(Decision),
    /// Moved to `dest` (vault-relative; empty if the file had left `Approved/`).
    /// `result`: the decision's result (`None` when unknown).
    Finished {
        dest: String,
        at: String,
        result: Option<String>,
    },
}

#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: File,
    states: HashMap<Key, State>,
    /// The file does not end with a newline (a torn last record): start the next one on
    /// a fresh line.
    needs_newline: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("failed to open the ledger {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("failed to append to the ledger {path}: {source}")]
    Append { path: PathBuf, source: io::Error },
}

impl Ledger {
    /// Open (creating it `0600` if missing) and replay.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let err = |source| LedgerError::Open {
            path: path.to_path_buf(),
            source,
        };
        // Neither the file nor `.ai-employee/` is reached through a symlink.
        let mut file = crate::vault::nofollow::open_in_folder(
            path,
            crate::vault::nofollow::How::read_append(0o600),
        )
        .map_err(err)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(err)?;
        let needs_newline = bytes.last().is_some_and(|&b| b != b'\n');
        let mut states = HashMap::new();
        let mut skipped = 0usize;
        for line in bytes.split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(rec) => apply(&mut states, &rec),
                Err(_) => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::warn!(
                "ledger {}: ignored {skipped} unreadable line(s) (a write cut short by a crash)",
                path.display()
            );
        }
        Ok(Ledger {
            path: path.to_path_buf(),
            file,
            states,
            needs_newline,
        })
    }

    pub fn state(&self, key: &Key) -> Option<&State> {
        self.states.get(key)
    }

    /// Identities whose last record is an intent or a decision (unfinished business).
    pub fn unfinished(&self) -> Vec<(Key, State)> {
        let mut v: Vec<(Key, State)> = self
            .states
            .iter()
            .filter(|(_, s)| matches!(s, State::InFlight { .. } | State::Decided(_)))
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Append one record in a single write; `durable`: fsync before returning.
    pub fn append(&mut self, rec: Record, durable: bool) -> Result<(), LedgerError> {
        let mut line = Vec::with_capacity(256);
        if self.needs_newline {
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, &rec).map_err(|e| LedgerError::Append {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        line.push(b'\n');
        let result = write_once(&mut self.file, &line).and_then(|()| {
            if durable {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        result.map_err(|source| LedgerError::Append {
            path: self.path.clone(),
            source,
        })?;
        self.needs_newline = false;
        apply(&mut self.states, &rec);
        Ok(())
    }
}

/// One `write(2)` for the whole buffer (a short write is completed, which only happens on
/// a full disk or a signal).
fn write_once(file: &mut File, buf: &[u8]) -> io::Result<()> {
    let n = file.write(buf)?;
    if n < buf.len() {
        file.write_all(&buf[n..])?;
    }
    Ok(())
}

fn apply(states: &mut HashMap<Key, State>, rec: &Record) {
    let key = rec.key();
    let next = match rec {
        Record::Intent {
            attempt,
            action,
            effect,
            message_id,
            at,
            ..
        } => State::InFlight {
            attempt: *attempt,
            action: action.clone(),
            effect: effect.clone(),
            message_id: message_id.clone(),
            at: at.clone(),
        },
        Record::Transient { attempt, error, .. } => State::Open {
            attempts: *attempt,
            last_error: Some(error.clone()),
        },
        Record::Final { decision, .. } => State::Decided(decision.clone()),
        Record::Done { dest, at, .. } => State::Finished {
            dest: dest.clone(),
            at: at.clone(),
            result: match states.get(&key) {
                Some(State::Decided(d)) => Some(d.result.clone()),
                Some(State::InFlight { .. }) => Some(results::OUTCOME_UNKNOWN.to_string()),
                Some(State::Finished { result, .. }) => result.clone(),
                _ => None,
            },
        },
    };
    states.insert(key, next);
}

#[cfg(test)]
mod tests {
    use super::super::outcome::{Decision, Folder};
    use super::*;

    fn intent(file: &str, attempt: u32) -> Record {
        Record::Intent {
            file: file.into(),
            sha256: "aa".into(),
            attempt,
            action: "send_email".into(),
            at: "t".into(),
            effect: None,
            message_id: None,
        }
    }

    fn decision() -> Decision {
        Decision {
            folder: Folder::Done,
            dest: "Done/x.md".into(),
            result: "sent".into(),
            error: None,
            at: "t".into(),
            fields: vec![],
            final_sha256: "bb".into(),
            prefix: false,
        }
    }

    #[test]
    fn replay_gives_the_last_state_per_identity() -> Result<(), LedgerError> {
        let dir = tempfile::tempdir().map_err(|source| LedgerError::Open {
            path: PathBuf::new(),
            source,
        })?;
        let path = dir.path().join("l");
        let key = ("x.md".to_string(), "aa".to_string());
        {
            let mut l = Ledger::open(&path)?;
            l.append(intent("x.md", 1), true)?;
            l.append(
                Record::Transient {
                    file: "x.md".into(),
                    sha256: "aa".into(),
                    attempt: 1,
                    at: "t".into(),
                    error: "refused".into(),
                },
                true,
            )?;
            l.append(intent("x.md", 2), true)?;
        }
        let mut l = Ledger::open(&path)?;
        assert!(matches!(
            l.state(&key),
            Some(State::InFlight { attempt: 2, .. })
        ));
        assert_eq!(l.unfinished().len(), 1);
        l.append(
            Record::Final {
                file: "x.md".into(),
                sha256: "aa".into(),
                at: "t".into(),
                decision: decision(),
            },
            true,
        )?;
        let l = Ledger::open(&path)?;
        assert_eq!(l.state(&key), Some(&State::Decided(decision())));
        Ok(())
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_the_next_record_starts_fresh() -> Result<(), LedgerError> {
        let dir = tempfile::tempdir().map_err(|source| LedgerError::Open {
            path: PathBuf::new(),
            source,
        })?;
        let path = dir.path().join("l");
        let mut text = serde_json::to_string(&intent("a.md", 1)).unwrap_or_default();
        text.push('\n');
        text.push_str("{\"record\":\"intent\",\"file\":\"b.m");
        std::fs::write(&path, text).map_err(|source| LedgerError::Open {
            path: path.clone(),
            source,
        })?;
        let mut l = Ledger::open(&path)?;
        assert!(l.state(&("b.md".into(), "aa".into())).is_none());
        l.append(intent("c.md", 1), true)?;
        let l = Ledger::open(&path)?;
        assert!(l.state(&("a.md".into(), "aa".into())).is_some());
        assert!(l.state(&("c.md".into(), "aa".into())).is_some());
        Ok(())
    }
}
