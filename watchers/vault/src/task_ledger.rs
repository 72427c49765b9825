//! The task sink's ledger of seen message keys (see [`crate::tasks`]), in two
//! parts under `.ai-employee/`:
//!
//! - `<watcher>.seen`, the journal ([`crate::journal`]): one JSON line
//!   `{"key":…,"task":…}` per task, appended and fsynced before the task is published. Its keys are also held in memory (as
//!   16-byte digests).
//! - `<watcher>.seen.index`, the compacted keys: the 16-byte SHA-256 prefix of every key
//!   moved out of the journal, sorted, looked up on disk (a binary search with `pread`),
//!   never loaded ([`SortedIndex`]).
//!
//! Exactly-once needs every key ever recorded, forever (a message can be delivered
//! again at any time, and a mailbox rescanned when the state file is lost): nothing is
//! dropped, only made small, 16 bytes on disk and none in memory. The task names are
//! needed only to tell, at start, staged files that were committed from those that were
//! not; only tasks still staged need them, so the rest are dropped.
//!
//! **Compaction** (when the journal has [`COMPACT_EVERY`] lines, checked after a batch
//! and at open): (1) the journal's keys are merged into the index, which is replaced
//! atomically (temp file, fsync, rename, fsync of the folder); (2) the journal is
//! replaced, the same way, by its lines for tasks still in staging (usually none). A crash
//! before (1)'s rename leaves the old index and the whole journal; between (1) and (2), a
//! new index that also holds the journal's keys (a key in both is simply seen); during (2)
//! the whole journal or the short one. In every case each recorded key is in the index or
//! the journal, and each committed staged task is named by the journal. Since the folder
//! is fsynced after (1) and before (2) starts, a power loss cannot keep the short journal
//! and lose the new index.

use std::collections::HashSet;
use std::io;

use serde::{Deserialize, Serialize};

use crate::journal::{Journal, json_line};
use crate::nofollow::Dir;
use crate::sorted_index::{KEY_LEN, SortedIndex, key_of};

/// Journal lines that trigger a compaction.
pub const COMPACT_EVERY: usize = 65_536;
const MAGIC: [u8; 8] = *b"AIESEEN1";

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    task: String,
}

pub struct SeenLedger {
    /// `<watcher>.seen` in the state folder (see [`crate::journal`]).
    journal: Journal,
    journal_lines: usize,
    /// Digests of the journal's keys.
    recent: HashSet<[u8; KEY_LEN]>,
    index: SortedIndex,
    /// Journal lines at which the next compaction is tried.
    compact_at: usize,
}

/// What [`SeenLedger::open`] found besides the ledger.
pub struct Opened {
    pub ledger: SeenLedger,
    /// The staged task names the journal names (committed before a crash).
    pub committed: HashSet<String>,
}

impl SeenLedger {
    /// Open (creating) the ledger of `watcher` in the state folder `state`. `staged`: the
    /// names in the staging folder, to tell which of them the journal names.
    pub fn open(state: &Dir, watcher: &str, staged: &HashSet<String>) -> io::Result<Opened> {
        let index = SortedIndex::open(state, format!("{watcher}.seen.index"), MAGIC, KEY_LEN)?;
        let (journal, torn) = Journal::open(state.try_clone()?, format!("{watcher}.seen"))?;
        let journal_path = journal.path();
        if torn > 0 {
            tracing::warn!(
                "{}: cutting off a torn last line ({torn} bytes)",
                journal_path.display()
            );
        }
        // Streamed: a long journal (left by a version without compaction) is read
        // without holding it in memory.
        let mut digests: Vec<[u8; KEY_LEN]> = Vec::new();
        let mut committed = HashSet::new();
        let mut kept = Vec::new();
        let mut kept_keys = HashSet::new();
        let mut reader = journal.reader()?;
        while let Some(line) = reader.next_line()? {
            match serde_json::from_slice::<Line>(line.bytes) {
                Ok(l) => {
                    let k = key_of(l.key.as_bytes());
                    if staged.contains(&l.task) {
                        kept.extend_from_slice(line.bytes);
                        kept.push(b'\n');
                        kept_keys.insert(k);
                        committed.insert(l.task);
                    }
                    digests.push(k);
                }
                Err(e) => tracing::warn!(
                    "{}:{}: skipping a line that does not parse: {e}",
                    journal_path.display(),
                    line.number
                ),
            }
        }
        let mut ledger = SeenLedger {
            journal,
            journal_lines: digests.len(),
            recent: HashSet::new(),
            index,
            compact_at: COMPACT_EVERY,
        };
        if digests.len() >= COMPACT_EVERY {
            // Compacted at once, from the list (no set of every key in memory).
            ledger.index.merge(digests)?;
            ledger.replace_journal(&kept, kept_keys)?;
        } else {
            ledger.recent = digests.into_iter().collect();
        }
        Ok(Opened { ledger, committed })
    }

    /// Whether a task was recorded for `key`.
    pub fn seen(&self, key: &str) -> io::Result<bool> {
        let k = key_of(key.as_bytes());
        Ok(self.recent.contains(&k) || self.index.find(&k)?.is_some())
    }

    /// How many keys are remembered (a key recorded again after a crash in the middle of
    /// a compaction may count twice).
    pub fn remembered(&self) -> u64 {
        self.index.len() + self.recent.len() as u64
    }

    /// Append one line per `(key, task)` with one write and fsync: from then on the keys
    /// count as seen.
    pub fn record(&mut self, entries: &[(&str, &str)]) -> io::Result<()> {
        let mut lines = Vec::new();
        for (key, task) in entries {
            let line = Line {
                key: (*key).to_string(),
                task: (*task).to_string(),
            };
            json_line(&mut lines, &line)?;
        }
        self.journal.append(&lines, true)?;
        for (key, _) in entries {
            self.recent.insert(key_of(key.as_bytes()));
        }
        self.journal_lines += entries.len();
        Ok(())
    }

    /// Compact when the journal is long enough (see the module docs). `staging`: the
    /// folder whose files may still need their journal line. Returns whether it did.
    /// After a failure it is tried again only after as many more lines.
    pub fn compact_if_needed(&mut self, staging: &Dir) -> io::Result<bool> {
        if self.journal_lines < self.compact_at {
            return Ok(false);
        }
        match self.compact(staging) {
            Ok(()) => {
                self.compact_at = COMPACT_EVERY.max(self.journal_lines + COMPACT_EVERY / 2);
                Ok(true)
            }
            Err(e) => {
                self.compact_at = self.journal_lines + COMPACT_EVERY;
                Err(e)
            }
        }
    }

    fn compact(&mut self, staging: &Dir) -> io::Result<()> {
        // (1) Every journal key into the index.
        let keys: Vec<[u8; KEY_LEN]> = self.recent.iter().copied().collect();
        self.index.merge(keys)?;
        // (2) The journal, down to the lines of tasks still staged.
        let staged = staged_names(staging)?;
        let mut kept = Vec::new();
        let mut kept_keys = HashSet::new();
        if !staged.is_empty() {
            let mut reader = self.journal.reader()?;
            while let Some(line) = reader.next_line()? {
                if let Ok(l) = serde_json::from_slice::<Line>(line.bytes)
                    && staged.contains(&l.task)
                {
                    kept_keys.insert(key_of(l.key.as_bytes()));
                    kept.extend_from_slice(line.bytes);
                    kept.push(b'\n');
                }
            }
        }
        self.replace_journal(&kept, kept_keys)
    }

    /// Replace the journal atomically by `kept` (whole lines), whose keys are `keys`.
    fn replace_journal(&mut self, kept: &[u8], keys: HashSet<[u8; KEY_LEN]>) -> io::Result<()> {
        self.journal.replace(true, &mut |w| w.write_all(kept))?;
        self.journal_lines = keys.len();
        self.recent = keys;
        Ok(())
    }
}

/// The names in the staging folder.
pub fn staged_names(staging: &Dir) -> io::Result<HashSet<String>> {
    Ok(staging
        .list()?
        .into_iter()
        .filter_map(|e| e.name.into_string().ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary folder, open as the ledger's state folder.
    fn temp_state() -> io::Result<(tempfile::TempDir, Dir)> {
        let dir = tempfile::tempdir()?;
        let state = Dir::open(dir.path())?;
        Ok((dir, state))
    }

    #[test]
    fn keys_survive_compaction_and_staged_tasks_keep_their_line() -> io::Result<()> {
        let (dir, state) = temp_state()?;
        let staging_path = dir.path().join("staging");
        std::fs::create_dir(&staging_path)?;
        let staging = Dir::open(&staging_path)?;
        let none = HashSet::new();
        let mut l = SeenLedger::open(&state, "w", &none)?.ledger;
        let all: Vec<(String, String)> = (0..COMPACT_EVERY + 10)
            .map(|i| (format!("key{i}"), format!("T{i}.md")))
            .collect();
        for chunk in all.chunks(4096) {
            let batch: Vec<(&str, &str)> = chunk
                .iter()
                .map(|(k, t)| (k.as_str(), t.as_str()))
                .collect();
            l.record(&batch)?;
        }
        // A task still staged (its publish failed, say): its line must stay.
        std::fs::write(staging_path.join("T3.md"), "x")?;
        assert!(l.compact_if_needed(&staging)?);
        let journal = std::fs::read_to_string(dir.path().join("w.seen"))?;
        assert_eq!(journal, "{\"key\":\"key3\",\"task\":\"T3.md\"}\n");
        assert!(
            l.seen("key0")? && l.seen("key3")? && l.seen(&format!("key{}", COMPACT_EVERY + 9))?
        );
        assert!(!l.seen("key-never")?);
        l.record(&[("after", "A.md")])?;
        drop(l);
        let staged: HashSet<String> = ["T3.md".to_string()].into();
        let o = SeenLedger::open(&state, "w", &staged)?;
        assert_eq!(o.committed, staged);
        let l = o.ledger;
        assert!(l.seen("key1")? && l.seen("key3")? && l.seen("after")?);
        assert!(!l.seen("key-never")?);
        assert_eq!(l.remembered(), (COMPACT_EVERY + 10) as u64 + 2);
        Ok(())
    }

    #[test]
    fn a_long_journal_is_compacted_at_open() -> io::Result<()> {
        let (dir, state) = temp_state()?;
        let mut text = String::new();
        for i in 0..COMPACT_EVERY {
            text.push_str(&format!("{{\"key\":\"k{i}\",\"task\":\"T{i}.md\"}}\n"));
        }
        text.push_str("{\"key\":\"torn");
        std::fs::write(dir.path().join("w.seen"), text)?;
        let staged: HashSet<String> = ["T5.md".to_string(), "stray.md".to_string()].into();
        let o = SeenLedger::open(&state, "w", &staged)?;
        assert_eq!(o.committed, ["T5.md".to_string()].into());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("w.seen"))?,
            "{\"key\":\"k5\",\"task\":\"T5.md\"}\n"
        );
        assert!(o.ledger.seen("k0")? && o.ledger.seen(&format!("k{}", COMPACT_EVERY - 1))?);
        assert!(!o.ledger.seen("torn")?);
        Ok(())
    }

    #[test]
    fn a_crash_between_the_index_and_the_journal_loses_nothing() -> io::Result<()> {
        let (dir, state) = temp_state()?;
        let none = HashSet::new();
        let mut l = SeenLedger::open(&state, "w", &none)?.ledger;
        l.record(&[("a", "A.md"), ("b", "B.md")])?;
        // (1) only: the index holds the keys, the journal still has its lines.
        let keys: Vec<[u8; KEY_LEN]> = l.recent.iter().copied().collect();
        l.index.merge(keys)?;
        drop(l);
        let l = SeenLedger::open(&state, "w", &none)?.ledger;
        assert!(l.seen("a")? && l.seen("b")?);
        // A half-written journal replacement is ignored.
        std::fs::write(dir.path().join("w.seen.tmp"), "garbage")?;
        let l = SeenLedger::open(&state, "w", &none)?.ledger;
        assert!(l.seen("a")? && l.seen("b")?);
        assert!(!dir.path().join("w.seen.tmp").exists());
        Ok(())
    }
}
