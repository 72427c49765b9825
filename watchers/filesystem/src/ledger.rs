//! The watcher's memory: `<vault>/.ai-employee/filesystem.ledger`, one JSON object per
//! line, append-only, fsynced before anything it vouches for becomes visible.
//!
//! ```text
//! {"kind":"task","name":"report.pdf","sha256":"9f86…","size":4,"mtime_ns":…,"ctime_ns":…,"dev":…,"ino":…,"task":"FILE_20261121T235901Z_report.pdf"}
//! ```
//! A `task` line says: the task for this (name, content) is durable in the staging folder
//! and will be published (see `docs/filesystem-watcher.md`). A `seen` line says: this
//! name was looked at again and its content had not changed; it only refreshes the
//! `stat` fingerprint so the next start does not hash the file again, and is not fsynced.
//!
//! The last line for a name wins. The file is a [`Journal`]: a torn last line (a crash in
//! the middle of a write) is cut off when the ledger is opened; a line that does not
//! parse is skipped with a warning. When the file holds many more lines than names it is
//! rewritten (temp file, fsync, rename, fsync of the folder), so it stays about one line
//! per name.
//!
//! **Retired names.** Exactly-once needs, for every name ever taken, the hash of the
//! content of its last task, forever (the same file dropped again must not become a
//! second task). Everything else serves a name only while it is in Inbox/ (the `stat`
//! fingerprint saves hashing it again) or while its task is staged (the task name tells
//! recovery it was committed). So when [`RETIRE_EVERY`] names were added since the last
//! time, [`Ledger::retire_if_needed`] moves the names that are neither in Inbox/ nor
//! staged into `filesystem.ledger.index`: 48 bytes each (a 16-byte SHA-256 prefix of the
//! name, the content's SHA-256), sorted, looked up on disk and never loaded
//! ([`SortedIndex`]). First the index is replaced atomically (temp, fsync, rename, fsync
//! of the folder), then the journal is rewritten without those names. A crash before the
//! index's rename changes nothing; after it, a name is in both, and the journal's record
//! (read first) says the same. A retired name that shows up in Inbox/ again is hashed
//! once (its fingerprint was dropped) and compared with the retired hash.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use ai_employee_vault::journal::{Journal, json_line};
use ai_employee_vault::nofollow::{self, Dir};
use ai_employee_vault::sorted_index::{KEY_LEN, SortedIndex, key_of};
use serde::{Deserialize, Serialize};

/// Names added to the journal between two looks for names to retire.
pub const RETIRE_EVERY: usize = 65_536;
const INDEX_MAGIC: [u8; 8] = *b"AIEFSLX1";
/// Name key, then the content's SHA-256.
const INDEX_RECORD: usize = KEY_LEN + 32;

/// What `stat` says about a file; equal fingerprints mean unchanged content (the change
/// time cannot be set by users, and changes with every write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snap {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub dev: u64,
    pub ino: u64,
}

impl Snap {
    /// No file has it (inode 0): a retired name's fingerprint.
    const NONE: Snap = Snap {
        size: 0,
        mtime_ns: 0,
        ctime_ns: 0,
        dev: 0,
        ino: 0,
    };

    /// The fingerprint from an `lstat` or `fstat` made through [`nofollow`].
    pub fn of_stat(s: &nofollow::Stat) -> Snap {
        Snap {
            size: s.size,
            mtime_ns: s.mtime_ns,
            ctime_ns: s.ctime_ns,
            dev: s.dev,
            ino: s.ino,
        }
    }
}

/// What the watcher remembers about one Inbox name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// SHA-256 of the content a task was made for.
    pub sha256: [u8; 32],
    /// The fingerprint of the file when last read.
    pub snap: Snap,
    /// The task made for this content.
    pub task: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A task was made (fsynced before the task is published).
    Task,
    /// Same content seen again; refreshes the fingerprint (not fsynced).
    Seen,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    kind: Kind,
    /// The Inbox name when it is UTF-8 …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// … else its bytes in hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_hex: Option<String>,
    sha256: String,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    dev: u64,
    ino: u64,
    task: String,
}

impl Line {
    fn new(kind: Kind, name: &OsStr, r: &Record) -> Line {
        let (name, name_hex) = match name.to_str() {
            Some(s) => (Some(s.to_string()), None),
            None => (None, Some(hex(name.as_bytes()))),
        };
        Line {
            kind,
            name,
            name_hex,
            sha256: hex(&r.sha256),
            size: r.snap.size,
            mtime_ns: r.snap.mtime_ns,
            ctime_ns: r.snap.ctime_ns,
            dev: r.snap.dev,
            ino: r.snap.ino,
            task: r.task.clone(),
        }
    }

    fn into_entry(self) -> Option<(OsString, Record)> {
        let name = match (self.name, self.name_hex) {
            (Some(n), _) => OsString::from(n),
            (None, Some(h)) => OsString::from_vec(unhex(&h)?),
            (None, None) => return None,
        };
        let sha: [u8; 32] = unhex(&self.sha256)?.try_into().ok()?;
        let snap = Snap {
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
            dev: self.dev,
            ino: self.ino,
        };
        Some((
            name,
            Record {
                sha256: sha,
                snap,
                task: self.task,
            },
        ))
    }
}

/// Whether a name (with its task) must stay in the journal: still in Inbox/, or staged.
type Needed<'a> = &'a dyn Fn(&OsStr, &str) -> bool;

/// The open ledger.
#[derive(Debug)]
pub struct Ledger {
    /// `filesystem.ledger` (see [`ai_employee_vault::journal`]).
    journal: Journal,
    /// Lines in the journal.
    lines: usize,
    map: HashMap<OsString, (Kind, Record)>,
    /// Retired names.
    index: SortedIndex,
    /// Names in `map` after the last retirement.
    floor: usize,
    /// The index could not be read: nothing may be recorded (see [`Ledger::get`]).
    index_error: RefCell<Option<String>>,
}

/// What [`Ledger::open`] found.
#[derive(Debug)]
pub struct Loaded {
    pub ledger: Ledger,
    /// Every task name any line mentions (to tell committed staged files from abandoned
    /// ones at start).
    pub tasks: HashSet<String>,
    /// Lines that did not parse (skipped).
    pub bad_lines: usize,
    /// Bytes of a torn last line that were cut off.
    pub torn_bytes: u64,
    /// Names retired while opening ([`Ledger::open_retiring`]).
    pub retired: usize,
}

impl Ledger {
    /// Open (or create) the ledger at `path`, cutting off a torn last line. Neither the
    /// file, its index, nor the folder they are in is reached through a symlink.
    pub fn open(path: &Path) -> io::Result<Loaded> {
        Ledger::open_with(path, None)
    }

    /// [`Ledger::open`], retiring at once, while reading, what a long journal (left by an
    /// earlier version) holds about names that are neither in `inbox` nor staged in
    /// `staging`, so that it is never all held in memory. Without a listing of either
    /// folder it is [`Ledger::open`].
    pub fn open_retiring(path: &Path, inbox: &Dir, staging: &Dir) -> io::Result<Loaded> {
        let names = |dir: &Dir| -> Option<HashSet<OsString>> {
            Some(dir.list().ok()?.into_iter().map(|e| e.name).collect())
        };
        let (Some(present), Some(staged)) = (names(inbox), names(staging)) else {
            return Ledger::open(path);
        };
        let staged_tasks: HashSet<String> = staged
            .iter()
            .filter_map(|n| n.to_str())
            .filter_map(|n| n.strip_suffix(".copy").or_else(|| n.strip_suffix(".meta")))
            .map(str::to_string)
            .collect();
        let needed =
            |name: &OsStr, task: &str| present.contains(name) || staged_tasks.contains(task);
        Ledger::open_with(path, Some(&needed))
    }

    fn open_with(path: &Path, needed: Option<Needed<'_>>) -> io::Result<Loaded> {
        let (dir, name) = nofollow::folder_of(path)?;
        let mut index = SortedIndex::open(&dir, index_name(&name), INDEX_MAGIC, INDEX_RECORD)?;
        let (journal, torn_bytes) = Journal::open(dir, name)?;
        let mut map = HashMap::new();
        let mut tasks = HashSet::new();
        let mut lines = 0;
        let mut bad_lines = 0;
        // Names `needed` says no to: their index records (in line order, so the last
        // wins), and, until there are enough of them to retire, their records.
        let mut retire: Vec<[u8; INDEX_RECORD]> = Vec::new();
        let mut unneeded: Option<HashMap<OsString, (Kind, Record)>> = Some(HashMap::new());
        // Streamed, so a long journal is never held in memory as text.
        let mut reader = journal.reader()?;
        while let Some(line) = reader.next_line()? {
            lines += 1;
            let parsed = serde_json::from_slice::<Line>(line.bytes)
                .ok()
                .and_then(|l| Some((l.kind, l.into_entry()?)));
            let Some((kind, (name, rec))) = parsed else {
                bad_lines += 1;
                continue;
            };
            if needed.is_none_or(|f| f(&name, &rec.task)) {
                tasks.insert(rec.task.clone());
                if let Some(u) = unneeded.as_mut() {
                    u.remove(&name);
                }
                map.insert(name, (kind, rec));
                continue;
            }
            map.remove(&name);
            retire.push(index_record(&name, &rec));
            if let Some(u) = unneeded.as_mut() {
                u.insert(name, (kind, rec));
                if retire.len() >= RETIRE_EVERY {
                    unneeded = None;
                }
            }
        }
        let retiring = unneeded.is_none();
        let mut retired = 0;
        if let Some(u) = unneeded {
            map.extend(u);
        } else {
            let before = index.len();
            // Durable before the journal forgets them (see the module docs).
            index.merge(retire)?;
            retired = usize::try_from(index.len() - before).unwrap_or(usize::MAX);
        }
        let mut ledger = Ledger {
            journal,
            lines,
            map,
            index,
            floor: 0,
            index_error: RefCell::new(None),
        };
        if retiring {
            ledger.compact()?;
            ledger.floor = ledger.map.len();
        }
        Ok(Loaded {
            ledger,
            tasks,
            bad_lines,
            torn_bytes,
            retired,
        })
    }

    /// What is remembered about `name`: its journal record, else its retired content
    /// hash (with a fingerprint no file has and no task name).
    ///
    /// If the index cannot be read, this answers None and every later [`Ledger::append`]
    /// fails, so the watcher stops before a task made because of that answer is recorded,
    /// and nothing it did is ever visible (a task is published only after its line).
    pub fn lookup(&self, name: &OsStr) -> Option<Cow<'_, Record>> {
        if let Some((_, r)) = self.map.get(name) {
            return Some(Cow::Borrowed(r));
        }
        match self.index.find(&key_of(name.as_bytes())) {
            Ok(Some(rec)) => {
                let mut sha256 = [0u8; 32];
                sha256.copy_from_slice(&rec[KEY_LEN..]);
                Some(Cow::Owned(Record {
                    sha256,
                    snap: Snap::NONE,
                    task: String::new(),
                }))
            }
            Ok(None) => None,
            Err(e) => {
                self.index_error.replace(Some(format!(
                    "reading {}: {e}",
                    self.index.path().display()
                )));
                None
            }
        }
    }

    /// The journal's record for `name` (retired names not included).
    #[cfg(test)]
    fn get(&self, name: &OsStr) -> Option<&Record> {
        self.map.get(name).map(|(_, r)| r)
    }

    /// How many names are remembered in the journal (in memory).
    pub fn remembered(&self) -> usize {
        self.map.len()
    }

    /// How many names were retired into the index.
    pub fn retired(&self) -> u64 {
        self.index.len()
    }

    /// Append `entries` with one write; with `durable`, fsync before returning (which
    /// also makes every earlier line durable). The in-memory view changes only after the
    /// write succeeded.
    pub fn append(
        &mut self,
        entries: Vec<(OsString, Record)>,
        kind: Kind,
        durable: bool,
    ) -> io::Result<()> {
        if let Some(e) = self.index_error.borrow().as_ref() {
            return Err(io::Error::other(e.clone()));
        }
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(entries.len() * 256);
        for (name, rec) in &entries {
            json_line(&mut buf, &Line::new(kind, name, rec))?;
        }
        self.journal.append(&buf, durable)?;
        self.lines += entries.len();
        for (name, rec) in entries {
            self.map.insert(name, (kind, rec));
        }
        Ok(())
    }

    /// Rewrite the ledger with one line per name when it has grown to more than twice
    /// that (plus some slack). Atomic: a crash leaves the old or the new file.
    pub fn compact_if_needed(&mut self) -> io::Result<bool> {
        if self.lines <= 2 * self.map.len() + 1024 {
            return Ok(false);
        }
        self.compact()?;
        Ok(true)
    }

    /// When [`RETIRE_EVERY`] names were added since the last time, move every name for
    /// which `needed` says no (not in Inbox/, task not staged) into the index, then
    /// rewrite the journal without them. Returns how many were retired.
    pub fn retire_if_needed(
        &mut self,
        needed: impl Fn(&OsStr, &Record) -> bool,
    ) -> io::Result<usize> {
        if self.map.len() < self.floor + RETIRE_EVERY {
            return Ok(0);
        }
        let retired: Vec<OsString> = self
            .map
            .iter()
            .filter(|(name, (_, rec))| !needed(name, rec))
            .map(|(name, _)| name.clone())
            .collect();
        if !retired.is_empty() {
            let records: Vec<[u8; INDEX_RECORD]> = retired
                .iter()
                .filter_map(|name| Some(index_record(name, &self.map.get(name)?.1)))
                .collect();
            // Durable first; only then may the journal forget them.
            self.index.merge(records)?;
            for name in &retired {
                self.map.remove(name);
            }
            self.compact()?;
        }
        self.floor = self.map.len();
        Ok(retired.len())
    }

    fn compact(&mut self) -> io::Result<()> {
        let map = &self.map;
        self.journal.replace(true, &mut |out| {
            for (name, (kind, rec)) in map {
                json_line(out, &Line::new(*kind, name, rec))?;
            }
            Ok(())
        })?;
        self.lines = self.map.len();
        Ok(())
    }
}

/// A retired name's record: its key, then its content hash.
fn index_record(name: &OsStr, rec: &Record) -> [u8; INDEX_RECORD] {
    let mut r = [0u8; INDEX_RECORD];
    r[..KEY_LEN].copy_from_slice(&key_of(name.as_bytes()));
    r[KEY_LEN..].copy_from_slice(&rec.sha256);
    r
}

fn index_name(name: &OsStr) -> OsString {
    let mut s = name.to_os_string();
    s.push(".index");
    s
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    fn rec(n: u8, task: &str) -> Record {
        Record {
            sha256: [n; 32],
            snap: Snap {
                size: u64::from(n),
                mtime_ns: 1,
                ctime_ns: 2,
                dev: 3,
                ino: 4,
            },
            task: task.to_string(),
        }
    }

    /// A new ledger `l` in a temporary folder.
    fn temp_ledger() -> io::Result<(tempfile::TempDir, std::path::PathBuf, Ledger)> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("l");
        let l = Ledger::open(&p)?.ledger;
        Ok((dir, p, l))
    }

    /// Append one `task` line for `name`.
    fn task(l: &mut Ledger, name: &str, r: Record, durable: bool) -> io::Result<()> {
        l.append(vec![(name.into(), r)], Kind::Task, durable)
    }

    #[test]
    fn last_line_per_name_wins_and_survives_reopen() -> io::Result<()> {
        let (_dir, p, mut l) = temp_ledger()?;
        let odd = OsString::from_vec(vec![b'x', 0xff]);
        l.append(
            vec![("a".into(), rec(1, "T1")), (odd.clone(), rec(2, "T2"))],
            Kind::Task,
            true,
        )?;
        task(&mut l, "a", rec(3, "T3"), true)?;
        l.append(vec![("a".into(), rec(3, "T3"))], Kind::Seen, false)?;
        drop(l);
        let loaded = Ledger::open(&p)?;
        assert_eq!(loaded.ledger.remembered(), 2);
        assert_eq!(loaded.ledger.get(OsStr::new("a")), Some(&rec(3, "T3")));
        assert_eq!(loaded.ledger.get(&odd), Some(&rec(2, "T2")));
        assert_eq!(loaded.tasks.len(), 3);
        assert_eq!(loaded.bad_lines, 0);
        Ok(())
    }

    #[test]
    fn torn_tail_is_cut_and_garbage_skipped() -> io::Result<()> {
        let (_dir, p, mut l) = temp_ledger()?;
        task(&mut l, "a", rec(1, "T1"), true)?;
        drop(l);
        let mut f = OpenOptions::new().append(true).open(&p)?;
        f.write_all(b"not json\n{\"kind\":\"task\",\"name\":\"b\",\"sha")?;
        drop(f);
        let loaded = Ledger::open(&p)?;
        assert_eq!(loaded.bad_lines, 1);
        assert!(loaded.torn_bytes > 0);
        let mut l = loaded.ledger;
        task(&mut l, "c", rec(5, "T5"), true)?;
        drop(l);
        let loaded = Ledger::open(&p)?;
        assert_eq!(loaded.torn_bytes, 0);
        assert_eq!(loaded.ledger.remembered(), 2);
        assert!(loaded.ledger.get(OsStr::new("c")).is_some());
        Ok(())
    }

    #[test]
    fn compaction_keeps_one_line_per_name() -> io::Result<()> {
        let (_dir, p, mut l) = temp_ledger()?;
        for i in 0..3000u32 {
            let n = (i % 3) as u8;
            l.append(
                vec![(format!("n{n}").into(), rec(n, &format!("T{i}")))],
                Kind::Task,
                false,
            )?;
        }
        assert!(l.compact_if_needed()?);
        task(&mut l, "z", rec(9, "TZ"), true)?;
        drop(l);
        let text = std::fs::read_to_string(&p)?;
        assert_eq!(text.lines().count(), 4);
        let loaded = Ledger::open(&p)?;
        assert_eq!(
            loaded.ledger.get(OsStr::new("n2")).map(|r| r.task.as_str()),
            Some("T2999")
        );
        Ok(())
    }

    fn many(l: &mut Ledger, prefix: &str, n: usize) -> io::Result<()> {
        let entries = (0..n)
            .map(|i| {
                (
                    format!("{prefix}{i}").into(),
                    rec((i % 200) as u8, &format!("T{prefix}{i}")),
                )
            })
            .collect();
        l.append(entries, Kind::Task, false)
    }

    #[test]
    fn names_gone_from_inbox_are_retired_and_still_known() -> io::Result<()> {
        let (_dir, p, mut l) = temp_ledger()?;
        many(&mut l, "gone", RETIRE_EVERY - 10)?;
        many(&mut l, "kept", 5)?;
        let needed = |n: &OsStr, _: &Record| n.to_string_lossy().starts_with("kept");
        assert_eq!(l.retire_if_needed(needed)?, 0, "not yet");
        many(&mut l, "more", 10)?;
        assert_eq!(l.retire_if_needed(needed)?, RETIRE_EVERY);
        assert_eq!(l.remembered(), 5);
        assert_eq!(l.retired(), RETIRE_EVERY as u64);
        let retired = l.lookup(OsStr::new("gone7")).map(Cow::into_owned);
        assert_eq!(
            retired,
            Some(Record {
                sha256: [7; 32],
                snap: Snap::NONE,
                task: String::new()
            })
        );
        assert_eq!(
            l.lookup(OsStr::new("kept3")).map(Cow::into_owned),
            Some(rec(3, "Tkept3"))
        );
        assert!(l.lookup(OsStr::new("never")).is_none());
        // New content for a retired name: the journal's record wins, also after reopen.
        task(&mut l, "gone7", rec(99, "Tnew"), true)?;
        drop(l);
        assert_eq!(std::fs::read_to_string(&p)?.lines().count(), 6);
        let l = Ledger::open(&p)?.ledger;
        assert_eq!(
            l.lookup(OsStr::new("gone7")).map(Cow::into_owned),
            Some(rec(99, "Tnew"))
        );
        assert_eq!(
            l.lookup(OsStr::new("more3")).map(|r| r.sha256),
            Some([3; 32])
        );
        assert_eq!(l.remembered(), 6);
        Ok(())
    }

    #[test]
    fn a_long_journal_is_retired_while_it_is_read() -> io::Result<()> {
        let (dir, p, mut l) = temp_ledger()?;
        let (inbox, staging) = (dir.path().join("Inbox"), dir.path().join("staging"));
        std::fs::create_dir(&inbox)?;
        std::fs::create_dir(&staging)?;
        std::fs::write(inbox.join("here"), "x")?;
        std::fs::write(staging.join("Tstaged.copy"), "x")?;
        task(&mut l, "here", rec(1, "There"), false)?;
        task(&mut l, "gone-later", rec(2, "Tstaged"), false)?;
        many(&mut l, "gone", RETIRE_EVERY + 3)?;
        // The last line for this name is not needed: the index must get it.
        task(&mut l, "gone-later", rec(9, "Tpublished"), false)?;
        task(&mut l, "gone1", rec(42, "Tgone1b"), true)?;
        drop(l);
        let loaded = Ledger::open_retiring(&p, &Dir::open(&inbox)?, &Dir::open(&staging)?)?;
        assert_eq!(loaded.retired, RETIRE_EVERY + 4);
        assert!(loaded.tasks.contains("Tstaged") && loaded.tasks.contains("There"));
        let l = loaded.ledger;
        assert_eq!(l.remembered(), 1);
        assert_eq!(l.get(OsStr::new("here")), Some(&rec(1, "There")));
        assert_eq!(
            l.lookup(OsStr::new("gone-later")).map(|r| r.sha256),
            Some([9; 32])
        );
        assert_eq!(
            l.lookup(OsStr::new("gone1")).map(|r| r.sha256),
            Some([42; 32])
        );
        assert_eq!(
            l.lookup(OsStr::new("gone2")).map(|r| r.sha256),
            Some([2; 32])
        );
        assert_eq!(std::fs::read_to_string(&p)?.lines().count(), 1);
        // A short one is read whole.
        drop(l);
        let mut l = Ledger::open(&p)?.ledger;
        task(&mut l, "new", rec(5, "Tnew"), true)?;
        drop(l);
        let loaded = Ledger::open_retiring(&p, &Dir::open(&inbox)?, &Dir::open(&staging)?)?;
        assert_eq!(loaded.retired, 0);
        assert_eq!(loaded.ledger.remembered(), 2);
        Ok(())
    }

    #[test]
    fn a_crash_after_the_index_before_the_journal_rewrite_changes_nothing() -> io::Result<()> {
        let (_dir, p, mut l) = temp_ledger()?;
        task(&mut l, "a", rec(1, "T1"), true)?;
        task(&mut l, "a", rec(2, "T2"), true)?;
        // The index got an older record for "a" (step one of a retirement), the journal
        // was not rewritten: the journal's last line still wins.
        let mut old = [0u8; INDEX_RECORD];
        old[..KEY_LEN].copy_from_slice(&key_of(b"a"));
        old[KEY_LEN..].copy_from_slice(&[1; 32]);
        l.index.merge(vec![old])?;
        drop(l);
        let l = Ledger::open(&p)?.ledger;
        assert_eq!(
            l.lookup(OsStr::new("a")).map(Cow::into_owned),
            Some(rec(2, "T2"))
        );
        Ok(())
    }

    #[test]
    fn an_unreadable_index_stops_every_append() -> io::Result<()> {
        let (dir, p, mut l) = temp_ledger()?;
        many(&mut l, "x", RETIRE_EVERY)?;
        assert_eq!(l.retire_if_needed(|_, _| false)?, RETIRE_EVERY);
        // The index shrinks under the open ledger: lookups past its end fail.
        OpenOptions::new()
            .write(true)
            .open(dir.path().join("l.index"))?
            .set_len(30)?;
        let answers: Vec<bool> = (0..50)
            .map(|i| l.lookup(OsStr::new(&format!("x{i}"))).is_some())
            .collect();
        assert!(answers.iter().any(|found| !found));
        assert!(
            l.append(vec![("y".into(), rec(1, "T"))], Kind::Task, true)
                .is_err()
        );
        assert!(
            l.append(vec![("y".into(), rec(1, "T"))], Kind::Seen, false)
                .is_err()
        );
        // And a damaged index is refused at open, naming it.
        drop(l);
        let e = Ledger::open(&p)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("l.index"), "{e}");
        Ok(())
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fff"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
