//! What was seen, per mailbox: its UIDVALIDITY and the UID high-water mark, in
//! `<vault>/.ai-employee/gmail.state` (JSON, written atomically). The mark is advanced
//! only after the tasks of every message below it are durable, so a crash never skips a
//! message; the task ledger (`gmail.seen`) keeps a message seen twice from making two
//! tasks.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use ai_employee_vault::json_state::{self, LoadError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub uidvalidity: u32,
    /// Every message with a UID up to this one was looked at.
    pub last_uid: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    mailboxes: BTreeMap<String, Mark>,
}

/// The state file and its contents.
#[derive(Debug)]
pub struct State {
    path: PathBuf,
    file: File,
}

impl State {
    /// Read the state (a missing file is an empty state).
    pub fn load(path: &Path) -> Result<State, LoadError> {
        let file = json_state::load(path, "remove it to start over from the unread mail")?;
        Ok(State {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn get(&self, mailbox: &str) -> Option<Mark> {
        self.file.mailboxes.get(mailbox).copied()
    }

    /// Record `mark` for `mailbox` (durably) if it changed.
    pub fn set(&mut self, mailbox: &str, mark: Mark) -> io::Result<()> {
        if self.get(mailbox) == Some(mark) {
            return Ok(());
        }
        let old = self.file.mailboxes.insert(mailbox.to_string(), mark);
        let bytes = serde_json::to_vec(&self.file).map_err(io::Error::other)?;
        let written = json_state::save(&self.path, &bytes);
        if let Err(e) = written {
            match old {
                Some(o) => self.file.mailboxes.insert(mailbox.to_string(), o),
                None => self.file.mailboxes.remove(mailbox),
            };
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_survive_a_reload() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = tmp.path().join("gmail.state");
        let mut s = State::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.get("INBOX"), None);
        let m = Mark {
            uidvalidity: 9,
            last_uid: 42,
        };
        s.set("INBOX", m).unwrap_or_else(|e| panic!("{e}"));
        let s = State::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.get("INBOX"), Some(m));
        std::fs::write(&path, "{oops").unwrap_or_else(|e| panic!("{e}"));
        let err = State::load(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("is damaged"), "{err}");
    }
}
