//! A record of the process groups this supervisor started, with each leader's start time,
//! in `<vault>/.ai-employee/children` (a journal, see [`RecordLog`]). If the supervisor and its guardian both died (power
//! loss aside: a `kill -9` of both), the next supervisor kills what is left, and never a
//! process that merely reuses a recorded pid: the start time must match too.

use std::io;
use std::path::Path;

use ai_employee_vault::journal::{Journal, Reader};
use ai_employee_vault::nofollow;

use super::stats::proc_info;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub pgid: i32,
    pub start_time: u64,
    pub name: String,
}

impl Record {
    /// Its journal line: `+PGID START NAME`.
    fn line(&self) -> String {
        format!("+{} {} {}\n", self.pgid, self.start_time, self.name)
    }
}

/// The journal of live groups (see [`ai_employee_vault::journal`]): `+PGID START NAME`
/// when a group appears, `-PGID` when it is gone, one `O_APPEND` write each, never
/// fsynced. Appends never trigger the flush a rename-over does on ext4, so keeping it
/// costs microseconds on the restart path. Rewritten (temp + rename, not fsynced either)
/// only when it has grown; removed on a clean shutdown.
pub struct RecordLog {
    journal: Journal,
    lines: usize,
}

/// Lines after which the journal is rewritten with only the live groups.
const COMPACT_AFTER: usize = 4096;

impl RecordLog {
    /// Start a fresh journal at `path` (after [`kill_leftovers`] has read the old one).
    pub fn create(path: &Path) -> io::Result<RecordLog> {
        // Neither the journal nor `.ai-employee/` is reached through a symlink.
        let (dir, name) = nofollow::folder_of(path)?;
        Ok(RecordLog {
            journal: Journal::create(dir, name)?,
            lines: 0,
        })
    }

    fn append(&mut self, line: &str) -> io::Result<()> {
        self.journal.append(line.as_bytes(), false)?;
        self.lines += 1;
        Ok(())
    }

    pub fn add(&mut self, r: &Record) -> io::Result<()> {
        self.append(&r.line())
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
        self.journal.replace(false, &mut |out| {
            live.iter()
                .try_for_each(|r| out.write_all(r.line().as_bytes()))
        })?;
        self.lines = live.len();
        Ok(())
    }

    /// Clean shutdown: nothing is left to clean up.
    pub fn discard(self) {
        // Harmless if left: every group it names is gone, so the next start kills nothing.
        let _ = self.journal.remove();
    }
}

/// Replay a journal into the groups it says are live (none if it cannot be read).
pub fn load(path: &Path) -> Vec<Record> {
    replay(path).unwrap_or_default()
}

fn replay(path: &Path) -> io::Result<Vec<Record>> {
    let (dir, name) = nofollow::folder_of(path)?;
    let mut reader = Reader::open(&dir, name)?;
    let mut live: Vec<Record> = Vec::new();
    while let Some(line) = reader.next_line()? {
        let l = String::from_utf8_lossy(line.bytes);
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
    Ok(live)
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
    // Harmless if left: `RecordLog::create` starts the journal afresh right after.
    let _ = std::fs::remove_file(path);
    killed
}

/// Kill every process group that has a process whose environment holds `name=value`
/// (other than this process's own group), and return the groups. At a loop's start, no
/// job of its vault runs yet, so each one found is left behind by a loop that was killed,
/// including one started in the moment before its group was recorded. Linux only (it
/// reads `/proc/PID/environ`, which only the process's owner and root can read); elsewhere
/// the record alone is used.
pub fn kill_marked(name: &str, value: &str) -> Vec<i32> {
    let mut groups = std::collections::BTreeSet::new();
    if cfg!(target_os = "linux") {
        let want = format!("{name}={value}");
        let me = std::process::id() as i32;
        let my_group = nix::unistd::getpgrp().as_raw();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            // Gone meanwhile, or not ours: skipped.
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            if !env.split(|b| *b == 0).any(|e| e == want.as_bytes()) {
                continue;
            }
            if let Some(pgid) = group_of(pid)
                && pgid > 1
                && pgid != my_group
            {
                groups.insert(pgid);
            }
        }
    }
    for &g in &groups {
        super::signal_group(g, nix::sys::signal::Signal::SIGKILL);
    }
    groups.into_iter().collect()
}

/// The process group of `pid` (field 5 of `/proc/PID/stat`).
fn group_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_ascii_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn journal_replays_adds_and_removes_and_survives_compaction() -> io::Result<()> {
        let rec = |pgid, name: &str| Record {
            pgid,
            start_time: 7,
            name: name.into(),
        };
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("children");
        let mut log = RecordLog::create(&path)?;
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
