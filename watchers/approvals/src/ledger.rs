//! The ledger that makes execution exactly-once across crashes, and remembers what was
//! carried out (for the duplicate rule).
//!
//! `<vault>/.ai-employee/approvals.ledger`, one JSON record per line, written with one
//! `O_APPEND` write each. An approval is identified by its file name and the SHA-256 of
//! its bytes. For every execution the handler appends, in this order:
//!
//! 1. `intent` (fsynced) — *before* the external call;
//! 2. `transient` (fsynced) — the call failed without effect; the file stays in
//!    `Approved/` and a later attempt writes a new `intent`;
//!    or `final` (fsynced) — the decision: which folder, under which name, with which
//!    fields, and for a carried-out action its content key; written before the file is
//!    moved;
//! 3. `done` — the file has been moved.
//!
//! Replaying the records gives each identity a [`State`]; `docs/approvals.md` walks
//! through every crash point. The file is a [`Journal`]: a torn last line (a crash in the
//! middle of a write, which therefore never returned and never let the call start) is not
//! a record, and is cut off when the ledger is opened.
//!
//! **Compaction.** The file is rewritten with one record per identity that still matters
//! — unfinished business (an open intent, a decision not yet moved, transient attempts
//! of the last [`REMEMBER`]) and what was carried out (or may have been) in the last
//! [`REMEMBER`] — when it holds more than twice that plus [`SLACK`] records: at start and
//! while running. The new file is written beside the old one, fsynced, and renamed over
//! it (then the folder is fsynced): a crash leaves the old ledger or the new one, never
//! half of either.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ai_employee_vault::atomic::FileId;
use ai_employee_vault::journal::{Journal, json_line};
use ai_employee_vault::layout::Folder;
use ai_employee_vault::nofollow;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::outcome::{Decision, results};

/// An approval's identity: file name and SHA-256 (hex) of its content.
pub type Key = (String, String);

/// How long the ledger remembers what was carried out: an identical file (same name and
/// bytes) or the same action with the same content is refused within this time.
pub const REMEMBER: TimeDelta = TimeDelta::days(7);

/// Records beyond twice the live ones before the file is compacted.
pub const SLACK: u64 = 10_000;

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
        /// The content key of a carried-out action (the duplicate rule).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
    },
    /// The file was moved to its destination.
    Done {
        file: String,
        sha256: String,
        dest: String,
        at: String,
        /// The decision's result; written by compaction (otherwise known from the
        /// `final` before it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<String>,
        /// As in `final`; written by compaction.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        /// The file that was read is still in `Approved/` (this device and inode) with
        /// other bytes: it was changed after its action had started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        changed: Option<FileId>,
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
    /// No attempt in flight; `attempts` earlier attempts failed transiently, the last
    /// at `at`.
    Open {
        attempts: u32,
        last_error: Option<String>,
        at: String,
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
    Decided {
        decision: Box<Decision>,
        content: Option<String>,
    },
    /// Moved to `dest` (vault-relative; empty if the file had left `Approved/`).
    /// `result`: the decision's result (`None` when unknown).
    Finished {
        dest: String,
        at: String,
        result: Option<String>,
        content: Option<String>,
    },
}

/// An earlier approval with the same content that was carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    pub file: String,
    /// Where it went (vault-relative); empty if unknown.
    pub dest: String,
    pub result: String,
    pub at: String,
}

/// A file left in `Approved/` that was changed after its action had started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The identity that was carried out.
    pub sha: String,
    /// Where the version carried out went.
    pub dest: String,
    /// The file (device, inode) that was read and changed.
    pub id: FileId,
}

/// What is kept of a [`State::Finished`] identity, compactly: most of the ledger's
/// memory is these (one per approval carried out in the last [`REMEMBER`]).
#[derive(Debug, Clone, PartialEq)]
struct Remembered {
    /// `None`: `Done/<file name>`.
    dest: Option<Box<str>>,
    at: At,
    /// One of [`results::ONCE`]; `None` when unknown.
    result: Option<&'static str>,
    content: Option<ContentId>,
}

impl Remembered {
    /// The vault-relative destination of `file`.
    fn dest(&self, file: &str) -> String {
        self.dest
            .as_deref()
            .map_or_else(|| Folder::Done.rel(file), str::to_string)
    }
}

/// A record's time: seconds since the epoch, or (from a hand-made ledger) the text.
#[derive(Debug, Clone, PartialEq)]
enum At {
    Secs(i64),
    Text(Box<str>),
}

impl At {
    fn parse(at: &str) -> At {
        match DateTime::parse_from_rfc3339(at) {
            Ok(t) if stamp(t.timestamp()).as_deref() == Some(at) => At::Secs(t.timestamp()),
            _ => At::Text(at.into()),
        }
    }

    fn text(&self) -> String {
        match self {
            At::Secs(s) => stamp(*s).unwrap_or_default(),
            At::Text(t) => t.to_string(),
        }
    }

    /// Within [`REMEMBER`] before `now` (a time that cannot be read counts as recent).
    fn recent(&self, now: DateTime<Utc>) -> bool {
        match self {
            At::Secs(s) => now.timestamp().saturating_sub(*s) <= REMEMBER.num_seconds(),
            At::Text(t) => recent(t, now),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as the handler writes times.
fn stamp(secs: i64) -> Option<String> {
    DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// A content key as 32 bytes (the key is a SHA-256 in hex; anything else is hashed).
type ContentId = [u8; 32];

fn content_id(content: &str) -> ContentId {
    let mut id = [0u8; 32];
    let hex = content.as_bytes();
    let ok = hex.len() == 64
        && hex.chunks(2).zip(id.iter_mut()).all(|(pair, out)| {
            let digit = |c: u8| (c as char).to_digit(16).filter(|_| !c.is_ascii_uppercase());
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => {
                    *out = (h * 16 + l) as u8;
                    true
                }
                _ => false,
            }
        });
    if ok {
        return id;
    }
    use sha2::Digest;
    sha2::Sha256::digest(content.as_bytes()).into()
}

fn content_text(id: &ContentId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `&'static` form of a result that [`Remembered`] keeps.
fn once_result(r: &str) -> Option<&'static str> {
    results::ONCE.iter().copied().find(|x| *x == r)
}

#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    /// The file (see [`ai_employee_vault::journal`]).
    journal: Journal,
    /// Identities with business left (transient attempts, an intent, a decision).
    states: HashMap<Rc<Key>, State>,
    /// Identities carried out (or maybe), remembered for [`REMEMBER`].
    finished: HashMap<Rc<Key>, Remembered>,
    /// Content key → the latest identity that carried it out.
    by_content: HashMap<ContentId, Rc<Key>>,
    /// File name → a changed file left behind under that name.
    changed: HashMap<String, Changed>,
    /// Records in the file.
    records: u64,
    /// Compact when `records` reaches this.
    compact_at: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("failed to open the ledger {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("failed to append to the ledger {path}: {source}")]
    Append { path: PathBuf, source: io::Error },
    #[error("failed to compact the ledger {path}: {source}")]
    Compact { path: PathBuf, source: io::Error },
}

/// Replay prunes what it no longer needs every this many records, so a long ledger is
/// read in bounded memory.
const PRUNE_EVERY: u64 = 100_000;

impl Ledger {
    /// Open (creating it `0600` if missing), replay, and compact if it is mostly history.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        Ledger::open_at(path, Utc::now())
    }

    /// [`Ledger::open`] with the time that decides what is old.
    pub fn open_at(path: &Path, now: DateTime<Utc>) -> Result<Ledger, LedgerError> {
        let err = |source| LedgerError::Open {
            path: path.to_path_buf(),
            source,
        };
        // Neither the file nor `.ai-employee/` is reached through a symlink. A torn last
        // line (a write that never returned, so the call it was to precede never started)
        // is cut off.
        let (dir, name) = nofollow::folder_of(path).map_err(err)?;
        let (journal, torn) = Journal::open(dir, name).map_err(err)?;
        let mut reader = journal.reader().map_err(err)?;
        let mut l = Ledger {
            path: path.to_path_buf(),
            journal,
            states: HashMap::new(),
            finished: HashMap::new(),
            by_content: HashMap::new(),
            changed: HashMap::new(),
            records: 0,
            compact_at: SLACK,
        };
        let mut skipped = usize::from(torn > 0);
        let mut records = 0u64;
        let mut since_prune = 0u64;
        while let Some(line) = reader.next_line().map_err(err)? {
            match serde_json::from_slice::<Record>(line.bytes) {
                Ok(rec) => {
                    records += 1;
                    since_prune += 1;
                    l.apply(&rec);
                    if since_prune >= PRUNE_EVERY.max(l.identities() as u64) {
                        l.prune(now);
                        since_prune = 0;
                    }
                }
                Err(_) => skipped += 1,
            }
        }
        drop(reader);
        l.records = records;
        if skipped > 0 {
            tracing::warn!(
                "ledger {}: ignored {skipped} unreadable line(s) (a write cut short by a crash)",
                path.display()
            );
        }
        l.prune(now);
        if records > PRUNE_EVERY {
            release_freed_memory();
        }
        let live = l.identities() as u64;
        l.compact_at = 2 * live + SLACK;
        if l.records >= l.compact_at {
            let before = l.records;
            l.compact(now).map_err(|e| match e {
                LedgerError::Compact { source, .. } => err(source),
                other => other,
            })?;
            tracing::info!(
                "ledger {}: compacted, {before} records → {}",
                path.display(),
                l.records
            );
            release_freed_memory();
        }
        Ok(l)
    }

    pub fn state(&self, key: &Key) -> Option<State> {
        if let Some(s) = self.states.get(key) {
            return Some(s.clone());
        }
        let r = self.finished.get(key)?;
        Some(State::Finished {
            dest: r.dest(&key.0),
            at: r.at.text(),
            result: r.result.map(str::to_string),
            content: r.content.as_ref().map(content_text),
        })
    }

    /// How many identities the ledger holds.
    pub fn identities(&self) -> usize {
        self.states.len() + self.finished.len()
    }

    /// Records in the file now.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Identities whose last record is an intent or a decision (unfinished business).
    pub fn unfinished(&self) -> Vec<(Key, State)> {
        let mut v: Vec<(Key, State)> = self
            .states
            .iter()
            .filter(|(_, s)| matches!(s, State::InFlight { .. } | State::Decided { .. }))
            .map(|(k, s)| ((**k).clone(), s.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The latest approval with this content key that was carried out (`sent`, `queued`,
    /// `recorded`) within [`REMEMBER`] before `now`.
    pub fn executed(&self, content: &str, now: DateTime<Utc>) -> Option<Executed> {
        let key = self.by_content.get(&content_id(content))?;
        let found = match (self.states.get(key), self.finished.get(key)) {
            (Some(State::Decided { decision, .. }), _) => Some((
                decision.dest.clone(),
                decision.result.clone(),
                At::parse(&decision.at),
            )),
            (None, Some(r)) => r
                .result
                .map(|result| (r.dest(&key.0), result.to_string(), r.at.clone())),
            _ => None,
        };
        let (dest, result, at) = found?;
        if !results::EXECUTED.contains(&result.as_str()) || !at.recent(now) {
            return None;
        }
        Some(Executed {
            file: key.0.clone(),
            dest,
            result,
            at: at.text(),
        })
    }

    /// A file under `name` left in `Approved/` after it was changed during its action.
    pub fn changed_after(&self, name: &str) -> Option<&Changed> {
        self.changed.get(name)
    }

    /// Append one record in a single write; `durable`: fsync before returning. Compacts
    /// the file afterwards when it has grown enough (a failure there is logged; the
    /// record is written either way).
    pub fn append(&mut self, rec: Record, durable: bool) -> Result<(), LedgerError> {
        let mut line = Vec::with_capacity(256);
        // A write cut short (a full disk stores the first bytes) is cut off the journal
        // again, so the next record never starts glued to a fragment.
        json_line(&mut line, &rec)
            .and_then(|()| self.journal.append(&line, durable))
            .map_err(|source| LedgerError::Append {
                path: self.path.clone(),
                source,
            })?;
        self.records += 1;
        self.apply(&rec);
        if self.records >= self.compact_at {
            let now = Utc::now();
            self.prune(now);
            let before = self.records;
            match self.compact(now) {
                Ok(()) => tracing::info!(
                    "ledger {}: compacted, {before} records → {}",
                    self.path.display(),
                    self.records
                ),
                Err(e) => {
                    tracing::warn!("{e}; trying again later");
                    self.compact_at = self.records + SLACK;
                }
            }
        }
        Ok(())
    }

    /// Forget what is no longer needed at `now` (see the module documentation).
    fn prune(&mut self, now: DateTime<Utc>) {
        self.states.retain(|_, s| match s {
            State::Open { at, .. } => recent(at, now),
            _ => true,
        });
        self.finished.retain(|_, r| r.at.recent(now));
        let (states, finished) = (&self.states, &self.finished);
        self.by_content.retain(|_, k| {
            matches!(states.get(k), Some(State::Decided { .. })) || finished.contains_key(k)
        });
        self.changed
            .retain(|name, c| finished.contains_key(&(name.clone(), c.sha.clone())));
    }

    /// Rewrite the file with one record per identity still held (after [`Ledger::prune`]).
    fn compact(&mut self, now: DateTime<Utc>) -> Result<(), LedgerError> {
        self.prune(now);
        let err = |source| LedgerError::Compact {
            path: self.path.clone(),
            source,
        };
        // Identities with business left are few: their records are made at once. The
        // many remembered ones are written one by one, in order, to keep memory flat.
        enum Entry {
            Full(Box<Record>),
            Remembered(Rc<Key>),
        }
        let sort_secs = |at: &At| match at {
            At::Secs(s) => *s,
            At::Text(_) => i64::MAX,
        };
        let mut entries: Vec<(bool, i64, Entry)> = Vec::with_capacity(self.identities());
        for (key, state) in &self.states {
            let (file, sha256) = (key.0.clone(), key.1.clone());
            let (at, rec) = match state {
                State::Open {
                    attempts,
                    last_error,
                    at,
                } => (
                    at,
                    Record::Transient {
                        file,
                        sha256,
                        attempt: *attempts,
                        at: at.clone(),
                        error: last_error.clone().unwrap_or_default(),
                    },
                ),
                State::InFlight {
                    attempt,
                    action,
                    effect,
                    message_id,
                    at,
                } => (
                    at,
                    Record::Intent {
                        file,
                        sha256,
                        attempt: *attempt,
                        action: action.clone(),
                        at: at.clone(),
                        effect: effect.clone(),
                        message_id: message_id.clone(),
                    },
                ),
                State::Decided { decision, content } => (
                    &decision.at,
                    Record::Final {
                        file,
                        sha256,
                        at: decision.at.clone(),
                        decision: (**decision).clone(),
                        content: content.clone(),
                    },
                ),
                // Not kept in `states`.
                State::Finished { .. } => continue,
            };
            entries.push((false, sort_secs(&At::parse(at)), Entry::Full(Box::new(rec))));
        }
        for (key, r) in &self.finished {
            let changed = self.changed.get(&key.0).is_some_and(|c| c.sha == key.1);
            entries.push((changed, sort_secs(&r.at), Entry::Remembered(key.clone())));
        }
        // Oldest first, so the latest carried-out identity of a content key is replayed
        // last; the "changed" marks after everything else, which would clear them.
        entries.sort_by_key(|e| (e.0, e.1));
        let count = entries.len() as u64;
        let (finished, changed) = (&self.finished, &self.changed);
        self.journal
            .replace(true, &mut |out| {
                for (_, _, entry) in entries.drain(..) {
                    let rec = match entry {
                        Entry::Full(rec) => *rec,
                        Entry::Remembered(key) => {
                            let Some(r) = finished.get(&key) else {
                                continue;
                            };
                            let changed =
                                changed.get(&key.0).filter(|c| c.sha == key.1).map(|c| c.id);
                            Record::Done {
                                file: key.0.clone(),
                                sha256: key.1.clone(),
                                dest: r.dest(&key.0),
                                at: r.at.text(),
                                result: Some(r.result.unwrap_or(UNKNOWN_RESULT).to_string()),
                                content: r.content.as_ref().map(content_text),
                                changed,
                            }
                        }
                    };
                    json_line(out, &rec)?;
                }
                Ok(())
            })
            .map_err(err)?;
        self.records = count;
        self.compact_at = 2 * count + SLACK;
        Ok(())
    }

    fn apply(&mut self, rec: &Record) {
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
            Record::Transient {
                attempt, error, at, ..
            } => State::Open {
                attempts: *attempt,
                last_error: Some(error.clone()),
                at: at.clone(),
            },
            Record::Final {
                decision, content, ..
            } => State::Decided {
                decision: Box::new(decision.clone()),
                content: content.clone(),
            },
            Record::Done {
                dest,
                at,
                result,
                content,
                changed,
                file,
                sha256,
            } => {
                let (prev_result, prev_content) = match self.state(&key) {
                    Some(State::Decided { decision, content }) => {
                        (Some(decision.result.clone()), content)
                    }
                    Some(State::InFlight { .. }) => {
                        (Some(results::OUTCOME_UNKNOWN.to_string()), None)
                    }
                    Some(State::Finished {
                        result, content, ..
                    }) => (result, content),
                    _ => (None, None),
                };
                match changed {
                    Some(id) => {
                        self.changed.insert(
                            file.clone(),
                            Changed {
                                sha: sha256.clone(),
                                dest: dest.clone(),
                                id: *id,
                            },
                        );
                    }
                    None => {
                        self.changed.remove(file);
                    }
                }
                State::Finished {
                    dest: dest.clone(),
                    at: at.clone(),
                    result: result.clone().or(prev_result),
                    content: content.clone().or(prev_content),
                }
            }
        };
        let key = match self.states.get_key_value(&key) {
            Some((k, _)) => k.clone(),
            None => match self.finished.get_key_value(&key) {
                Some((k, _)) => k.clone(),
                None => Rc::new(key),
            },
        };
        match next {
            State::Finished {
                dest,
                at,
                result,
                content,
            } => {
                self.states.remove(&key);
                let result = match result.as_deref().filter(|r| *r != UNKNOWN_RESULT) {
                    None => None,
                    Some(r) => match once_result(r) {
                        Some(r) => Some(r),
                        // Refused, failed, rehearsed: nothing was carried out, and an
                        // identical file runs as if new: nothing to remember.
                        None => {
                            self.finished.remove(&key);
                            self.changed.retain(|n, c| !(*n == key.0 && c.sha == key.1));
                            return;
                        }
                    },
                };
                let content = content.as_deref().map(content_id);
                if let (Some(r), Some(c)) = (result, content)
                    && results::EXECUTED.contains(&r)
                {
                    self.by_content.insert(c, key.clone());
                }
                let dest = (dest != Folder::Done.rel(&key.0)).then(|| dest.into_boxed_str());
                self.finished.insert(
                    key,
                    Remembered {
                        dest,
                        at: At::parse(&at),
                        result,
                        content,
                    },
                );
            }
            next => {
                self.finished.remove(&key);
                if let State::Decided {
                    decision,
                    content: Some(c),
                } = &next
                    && results::EXECUTED.contains(&decision.result.as_str())
                {
                    self.by_content.insert(content_id(c), key.clone());
                }
                self.states.insert(key, next);
            }
        }
    }
}

/// Give the memory freed after replaying a long ledger back to the system (glibc keeps
/// it otherwise, and the process would look as large as the history it read).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How compaction writes a remembered identity whose result is not known (a ledger from
/// before results were recorded with `done`).
const UNKNOWN_RESULT: &str = "unknown";

/// Whether `at` (RFC 3339) is within [`REMEMBER`] before `now`. A time that cannot be read
/// counts as recent (kept rather than forgotten).
fn recent(at: &str, now: DateTime<Utc>) -> bool {
    match DateTime::parse_from_rfc3339(at) {
        Ok(t) => now.signed_duration_since(t.with_timezone(&Utc)) <= REMEMBER,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::super::outcome::{Decision, Destination};
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
            folder: Destination::Done,
            dest: "Done/x.md".into(),
            result: "sent".into(),
            error: None,
            at: "t".into(),
            fields: vec![],
            final_sha256: "bb".into(),
            prefix: false,
        }
    }

    fn open_err(source: io::Error) -> LedgerError {
        LedgerError::Open {
            path: PathBuf::new(),
            source,
        }
    }

    /// A temporary folder, and the path of a ledger in it.
    fn temp_ledger_path() -> Result<(tempfile::TempDir, PathBuf), LedgerError> {
        let dir = tempfile::tempdir().map_err(open_err)?;
        let path = dir.path().join("l");
        Ok((dir, path))
    }

    #[test]
    fn replay_gives_the_last_state_per_identity() -> Result<(), LedgerError> {
        let (_dir, path) = temp_ledger_path()?;
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
                content: None,
            },
            true,
        )?;
        let l = Ledger::open(&path)?;
        assert_eq!(
            l.state(&key),
            Some(State::Decided {
                decision: Box::new(decision()),
                content: None
            })
        );
        Ok(())
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_the_next_record_starts_fresh() -> Result<(), LedgerError> {
        let (_dir, path) = temp_ledger_path()?;
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

    fn at(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// A carried-out (or not) approval as the handler records it: intent, final, done.
    fn executed(l: &mut Ledger, file: &str, sha: &str, result: &str, content: &str, when: &str) {
        let mut d = decision();
        d.result = result.into();
        d.dest = format!("Done/{file}");
        d.at = when.into();
        for rec in [
            Record::Intent {
                file: file.into(),
                sha256: sha.into(),
                attempt: 1,
                action: "send_email".into(),
                at: when.into(),
                effect: None,
                message_id: None,
            },
            Record::Final {
                file: file.into(),
                sha256: sha.into(),
                at: when.into(),
                decision: d,
                content: Some(content.into()),
            },
            Record::Done {
                file: file.into(),
                sha256: sha.into(),
                dest: format!("Done/{file}"),
                at: when.into(),
                result: None,
                content: None,
                changed: None,
            },
        ] {
            l.append(rec, false).expect("append");
        }
    }

    #[test]
    fn what_was_carried_out_is_remembered_for_seven_days() -> Result<(), LedgerError> {
        let (_dir, path) = temp_ledger_path()?;
        let now = Utc::now();
        let mut l = Ledger::open_at(&path, now)?;
        executed(
            &mut l,
            "a.md",
            "s1",
            "sent",
            "C",
            &at(now - TimeDelta::days(1)),
        );
        executed(&mut l, "r.md", "s2", "refused", "R", &at(now));
        executed(&mut l, "d.md", "s3", "dry_run", "D", &at(now));
        let e = l.executed("C", now).expect("remembered");
        assert_eq!((e.dest.as_str(), e.result.as_str()), ("Done/a.md", "sent"));
        assert!(l.executed("C", now + TimeDelta::days(5)).is_some());
        assert!(l.executed("C", now + TimeDelta::days(7)).is_none());
        assert!(l.executed("R", now).is_none(), "refused is not carried out");
        assert!(
            l.executed("D", now).is_none(),
            "a dry run is not carried out"
        );
        // Across a restart.
        let l = Ledger::open_at(&path, now)?;
        assert_eq!(l.executed("C", now), Some(e));
        Ok(())
    }

    #[test]
    fn compaction_keeps_what_exactly_once_and_duplicates_need() -> Result<(), LedgerError> {
        let (_dir, path) = temp_ledger_path()?;
        let now = Utc::now();
        let (recent, old) = (at(now - TimeDelta::hours(1)), at(now - TimeDelta::days(30)));
        let mut l = Ledger::open_at(&path, now)?;
        for i in 0..50 {
            executed(
                &mut l,
                &format!("old{i}.md"),
                "s",
                "sent",
                &format!("O{i}"),
                &old,
            );
        }
        executed(&mut l, "sent.md", "s", "sent", "S", &recent);
        executed(&mut l, "unknown.md", "s", "outcome_unknown", "U", &recent);
        executed(&mut l, "refused.md", "s", "refused", "X", &recent);
        // Carried out twice (the second with allow_duplicate): the latest is named.
        executed(
            &mut l,
            "twice.md",
            "s",
            "sent",
            "T",
            &at(now - TimeDelta::hours(3)),
        );
        executed(&mut l, "twice (1).md", "s", "sent", "T", &recent);
        l.append(intent("inflight.md", 2), true)?;
        l.append(
            Record::Transient {
                file: "retry.md".into(),
                sha256: "aa".into(),
                attempt: 3,
                at: recent.clone(),
                error: "451".into(),
            },
            true,
        )?;
        l.append(
            Record::Final {
                file: "decided.md".into(),
                sha256: "aa".into(),
                at: old.clone(),
                decision: decision(),
                content: None,
            },
            true,
        )?;
        executed(
            &mut l,
            "sent.md",
            "older",
            "sent",
            "S0",
            &at(now - TimeDelta::days(2)),
        );
        // A changed file left behind.
        l.append(
            Record::Done {
                file: "sent.md".into(),
                sha256: "s".into(),
                dest: "Done/sent.md".into(),
                at: recent.clone(),
                result: None,
                content: None,
                changed: Some((7, 42)),
            },
            true,
        )?;
        let keys = [
            ("sent.md", "s"),
            ("sent.md", "older"),
            ("unknown.md", "s"),
            ("twice.md", "s"),
            ("twice (1).md", "s"),
            ("inflight.md", "aa"),
            ("retry.md", "aa"),
            ("decided.md", "aa"),
        ];
        let before: HashMap<Key, Option<State>> = keys
            .iter()
            .map(|(f, s)| {
                let k = (f.to_string(), s.to_string());
                (k.clone(), l.state(&k))
            })
            .collect();
        assert!(before.values().all(Option::is_some));
        l.compact(now).map_err(|e| open_err(io::Error::other(e)))?;
        let text = std::fs::read_to_string(&path).map_err(open_err)?;
        assert_eq!(text.lines().count(), 8, "{text}");
        for l in [&l, &Ledger::open_at(&path, now)?] {
            let key = |f: &str, s: &str| (f.to_string(), s.to_string());
            assert_eq!(l.identities(), 8);
            for (k, state) in &before {
                assert_eq!(&l.state(k), state, "{k:?}");
            }
            assert!(l.state(&key("old0.md", "s")).is_none());
            assert!(l.state(&key("refused.md", "s")).is_none());
            assert!(l.executed("O1", now).is_none());
            assert_eq!(
                l.executed("S", now).map(|e| e.dest),
                Some("Done/sent.md".into())
            );
            assert_eq!(
                l.executed("T", now).map(|e| e.file),
                Some("twice (1).md".into())
            );
            assert!(l.executed("U", now).is_none());
            assert_eq!(
                l.changed_after("sent.md"),
                Some(&Changed {
                    sha: "s".into(),
                    dest: "Done/sent.md".into(),
                    id: (7, 42)
                })
            );
        }
        Ok(())
    }

    #[test]
    fn a_long_history_is_compacted_at_open_and_while_appending() -> Result<(), LedgerError> {
        let (_dir, path) = temp_ledger_path()?;
        let now = Utc::now();
        let old = at(now - TimeDelta::days(30));
        {
            let mut text = String::new();
            for i in 0..(SLACK + 10) {
                let rec = Record::Done {
                    file: format!("f{i}.md"),
                    sha256: "s".into(),
                    dest: String::new(),
                    at: old.clone(),
                    result: Some("sent".into()),
                    content: None,
                    changed: None,
                };
                text.push_str(&serde_json::to_string(&rec).unwrap_or_default());
                text.push('\n');
            }
            std::fs::write(&path, text).map_err(open_err)?;
        }
        let mut l = Ledger::open_at(&path, now)?;
        assert_eq!(l.records(), 0);
        assert_eq!(std::fs::metadata(&path).map_err(open_err)?.len(), 0);
        // Growing again: compacted once the threshold is reached; appends still land.
        for i in 0..SLACK {
            l.append(
                Record::Done {
                    file: format!("g{i}.md"),
                    sha256: "s".into(),
                    dest: String::new(),
                    at: at(now),
                    result: Some("refused".into()),
                    content: None,
                    changed: None,
                },
                false,
            )?;
        }
        assert!(l.records() < 10, "{}", l.records());
        l.append(intent("after.md", 1), true)?;
        let l = Ledger::open_at(&path, now)?;
        assert!(l.state(&("after.md".into(), "aa".into())).is_some());
        assert_eq!(l.identities(), 1);
        Ok(())
    }
}
