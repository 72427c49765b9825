//! A record of the process groups this supervisor started, with each leader's start time,
//! in `<vault>/.ai-employee/children` (a journal, see [`RecordLog`]). If the supervisor and its guardian both died (power
//! loss aside: a `kill -9` of both), the next supervisor kills what is left, and never a
//! process that merely reuses a recorded pid: the start time must match too.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use ai_employee_vault::nofollow::{self, How};

use super::stats::proc_info;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub pgid: i32,
    pub start_time: u64,
    pub name: String,
}

/// The journal of live groups: `+PGID START NAME` when a group appears, `-PGID` when it is
/// gone, one `O_APPEND` write each. Appends never trigger the flush a rename-over does
/// on ext4, so keeping it costs microseconds on the restart path. Rewritten (temp +
/// rename) only when it has grown; removed on a clean shutdown.
pub struct RecordLog {
    path: PathBuf,
    file: Option<File>,
    lines: usize,
}

/// Lines after which the journal is rewritten with only the live groups.
const COMPACT_AFTER: usize = 4096;

impl RecordLog {
    /// Start a fresh journal at `path` (after [`kill_leftovers`] has read the old one).
    pub fn create(path: &Path) -> io::Result<RecordLog> {
        // Neither the journal nor `.ai-employee/` is reached through a symlink.
        let file = nofollow::open_in_folder(path, How::truncate(0o600))?;
        drop(file);
        let file = nofollow::open_in_folder(path, How::append(0o600))?;
        Ok(RecordLog {
            path: path.to_path_buf(),
            file: Some(file),
            lines: 0,
        })
    }

    fn append(&mut self, line: &str) -> io::Result<()> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("record journal closed"))?;
        f.write_all(line.as_bytes())?;
        self.lines += 1;
        Ok(())
    }

    pub fn add(&mut self, r: &Record) -> io::Result<()> {
        self.append(&format!("+{} {} {}\n", r.pgid, r.start_time, r.name))
    }

    pub fn remove(&mut self, pgid: i32) -> io::Result<()> {
        self.append(&format!("-{pgid}\n"))
    }

    /// Whether the journal has grown past [`COMPACT_AFTER`] lines.
    pub fn needs_compaction(&self) -> bool {
        self.lines >= COMPACT_AFTER
    }

    /// Rewrite the journal with only `live` if it [needs compaction](Self::needs_compaction).
    pub fn maybe_compact(&mut self, live: &[Record]) -> io::Result<()> {
        if !self.needs_compaction() {
            return Ok(());
        }
        let mut text = String::with_capacity(live.len() * 32);
        for r in live {
            text.push_str(&format!("+{} {} {}\n", r.pgid, r.start_time, r.name));
        }
        let (dir, name) = nofollow::folder_of(&self.path)?;
        let mut tmp = dir.temp_file(".children-", "", 0o600)?;
        tmp.write_all(text.as_bytes())?;
        dir.rename(tmp.name(), &dir, &name)?;
        tmp.keep();
        drop(tmp);
        self.file = Some(dir.file(&name, How::append(0o600))?);
        self.lines = live.len();
        Ok(())
    }

    /// Clean shutdown: nothing is left to clean up.
    pub fn discard(mut self) {
        self.file = None;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Replay a journal into the groups it says are live.
pub fn load(path: &Path) -> Vec<Record> {
    let Ok(text) = nofollow::folder_of(path).and_then(|(dir, name)| dir.read(name, None)) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&text);
    let mut live: Vec<Record> = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix('+') {
            let mut it = rest.splitn(3, ' ');
            let rec = (|| {
                Some(Record {
                    pgid: it.next()?.parse().ok()?,
                    start_time: it.next()?.parse().ok()?,
                    name: it.next().unwrap_or("").to_string(),
                })
            })();
            if let Some(r) = rec {
                live.retain(|x| x.pgid != r.pgid);
                live.push(r);
            }
        } else if let Some(pgid) = l.strip_prefix('-').and_then(|p| p.parse::<i32>().ok()) {
            live.retain(|x| x.pgid != pgid);
        }
    }
    live
}

/// Kill the groups of a previous supervisor that are still alive with the same leader
/// (pid and start time). Returns the records that were killed.
pub fn kill_leftovers(path: &Path) -> Vec<Record> {
    let mut killed = Vec::new();
    for r in load(path) {
        if r.pgid <= 1 {
            continue;
        }
        match proc_info(r.pgid) {
            Some(info) if info.start_time == r.start_time => {
                super::signal_group(r.pgid, nix::sys::signal::Signal::SIGKILL);
                killed.push(r);
            }
            _ => {} // gone, or the pid now belongs to someone else: leave it alone
        }
    }
    let _ = std::fs::remove_file(path);
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_replays_adds_and_removes_and_survives_compaction() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("children");
        let mut log = RecordLog::create(&path)?;
        let rec = |pgid, name: &str| Record {
            pgid,
            start_time: 7,
            name: name.into(),
        };
        log.add(&rec(10, "a"))?;
        log.add(&rec(11, "b c"))?;
        log.remove(10)?;
        assert_eq!(load(&path), vec![rec(11, "b c")]);
        log.lines = COMPACT_AFTER;
        log.maybe_compact(&[rec(11, "b c")])?;
        log.add(&rec(12, "d"))?;
        assert_eq!(load(&path), vec![rec(11, "b c"), rec(12, "d")]);
        // A torn last line (crash mid-write) is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)?
            .write_all(b"+13 ")?;
        assert_eq!(load(&path).len(), 2);
        log.discard();
        assert!(!path.exists());
        Ok(())
    }
}
