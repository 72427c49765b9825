//! A record of the process groups this supervisor started, with each leader's start time,
//! in `<vault>/.ai-employee/children`. If the supervisor and its guardian both died (power
//! loss aside: a `kill -9` of both), the next supervisor kills what is left, and never a
//! process that merely reuses a recorded pid: the start time must match too.

use std::io::{self, Write};
use std::path::Path;

use super::stats::proc_info;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub pgid: i32,
    pub start_time: u64,
    pub name: String,
}

/// Write the record file (temp + rename; it is the supervisor's own state, so no fsync:
/// losing it to a power cut loses nothing, since the processes died too).
pub fn save(path: &Path, records: &[Record]) -> io::Result<()> {
    let mut text = String::with_capacity(records.len() * 32);
    for r in records {
        text.push_str(&format!("{} {} {}\n", r.pgid, r.start_time, r.name));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".children-")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

pub fn load(path: &Path) -> Vec<Record> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ' ');
            Some(Record {
                pgid: it.next()?.parse().ok()?,
                start_time: it.next()?.parse().ok()?,
                name: it.next().unwrap_or("").to_string(),
            })
        })
        .collect()
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
                super::signal_group(r.pgid, libc::SIGKILL);
                killed.push(r);
            }
            _ => {} // gone, or the pid now belongs to someone else: leave it alone
        }
    }
    let _ = std::fs::remove_file(path);
    killed
}
