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
//! The last line for a name wins. A torn last line (a crash in the middle of a write) is
//! cut off when the ledger is opened; a line that does not parse is skipped with a
//! warning. When the file holds many more lines than names it is rewritten (temp file,
//! fsync, rename, fsync of the folder), so it stays about one line per name ever seen.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::vault::nofollow::{self, Dir, How};

use serde::{Deserialize, Serialize};

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
    pub fn of(m: &std::fs::Metadata) -> Snap {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Snap {
            size: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
            dev: m.dev(),
            ino: m.ino(),
        }
    }

    /// The fingerprint from an `lstat` made through [`nofollow`].
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

/// The open ledger.
#[derive(Debug)]
pub struct Ledger {
    /// The folder it is in, and its name there.
    dir: Dir,
    name: OsString,
    file: File,
    lines: usize,
    map: HashMap<OsString, (Kind, Record)>,
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
}

impl Ledger {
    /// Open (or create) the ledger at `path`, cutting off a torn last line. Neither the
    /// file nor the folder it is in is reached through a symlink.
    pub fn open(path: &Path) -> io::Result<Loaded> {
        let (dir, name) = nofollow::folder_of(path)?;
        let _ = dir.remove_file(tmp_name(&name));
        let mut file = dir.file(&name, How::read_append(0o600))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let torn_bytes = (bytes.len() - whole) as u64;
        if torn_bytes > 0 {
            file.set_len(whole as u64)?;
            file.sync_data()?;
        }
        let mut map = HashMap::new();
        let mut tasks = HashSet::new();
        let mut lines = 0;
        let mut bad_lines = 0;
        for raw in bytes[..whole].split(|&b| b == b'\n') {
            if raw.is_empty() {
                continue;
            }
            lines += 1;
            let parsed = serde_json::from_slice::<Line>(raw)
                .ok()
                .and_then(|l| Some((l.kind, l.into_entry()?)));
            match parsed {
                Some((kind, (name, rec))) => {
                    tasks.insert(rec.task.clone());
                    map.insert(name, (kind, rec));
                }
                None => bad_lines += 1,
            }
        }
        Ok(Loaded {
            ledger: Ledger {
                dir,
                name,
                file,
                lines,
                map,
            },
            tasks,
            bad_lines,
            torn_bytes,
        })
    }

    pub fn get(&self, name: &OsStr) -> Option<&Record> {
        self.map.get(name).map(|(_, r)| r)
    }

    /// How many names are remembered.
    pub fn remembered(&self) -> usize {
        self.map.len()
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
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(entries.len() * 256);
        for (name, rec) in &entries {
            serde_json::to_writer(&mut buf, &Line::new(kind, name, rec))?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        if durable {
            self.file.sync_data()?;
        }
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

    fn compact(&mut self) -> io::Result<()> {
        let tmp = tmp_name(&self.name);
        let mut buf = Vec::with_capacity(self.map.len() * 256);
        for (name, (kind, rec)) in &self.map {
            serde_json::to_writer(&mut buf, &Line::new(*kind, name, rec))?;
            buf.push(b'\n');
        }
        let mut f = self.dir.file(&tmp, How::truncate(0o600))?;
        f.write_all(&buf)?;
        f.sync_all()?;
        drop(f);
        self.dir.rename(&tmp, &self.dir, &self.name)?;
        self.dir.sync()?;
        self.file = self.dir.file(&self.name, How::append(0o600))?;
        self.lines = self.map.len();
        Ok(())
    }
}

fn tmp_name(name: &OsStr) -> OsString {
    let mut s = name.to_os_string();
    s.push(".tmp");
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

    #[test]
    fn last_line_per_name_wins_and_survives_reopen() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("l");
        let mut l = Ledger::open(&p)?.ledger;
        let odd = OsString::from_vec(vec![b'x', 0xff]);
        l.append(
            vec![("a".into(), rec(1, "T1")), (odd.clone(), rec(2, "T2"))],
            Kind::Task,
            true,
        )?;
        l.append(vec![("a".into(), rec(3, "T3"))], Kind::Task, true)?;
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
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("l");
        let mut l = Ledger::open(&p)?.ledger;
        l.append(vec![("a".into(), rec(1, "T1"))], Kind::Task, true)?;
        drop(l);
        let mut f = OpenOptions::new().append(true).open(&p)?;
        f.write_all(b"not json\n{\"kind\":\"task\",\"name\":\"b\",\"sha")?;
        drop(f);
        let loaded = Ledger::open(&p)?;
        assert_eq!(loaded.bad_lines, 1);
        assert!(loaded.torn_bytes > 0);
        let mut l = loaded.ledger;
        l.append(vec![("c".into(), rec(5, "T5"))], Kind::Task, true)?;
        drop(l);
        let loaded = Ledger::open(&p)?;
        assert_eq!(loaded.torn_bytes, 0);
        assert_eq!(loaded.ledger.remembered(), 2);
        assert!(loaded.ledger.get(OsStr::new("c")).is_some());
        Ok(())
    }

    #[test]
    fn compaction_keeps_one_line_per_name() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("l");
        let mut l = Ledger::open(&p)?.ledger;
        for i in 0..3000u32 {
            let n = (i % 3) as u8;
            l.append(
                vec![(format!("n{n}").into(), rec(n, &format!("T{i}")))],
                Kind::Task,
                false,
            )?;
        }
        assert!(l.compact_if_needed()?);
        l.append(vec![("z".into(), rec(9, "TZ"))], Kind::Task, true)?;
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

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fff"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
