//! Old status rows leave `Dashboard.md` for `Logs/dashboard-YYYY.md`.
//!
//! When the status table's rows take more than [`ARCHIVE_ABOVE`] bytes, the write that
//! adds rows also moves the oldest ones out, so that [`KEEP`] bytes of the newest rows
//! stay. They are appended to `Logs/dashboard-YYYY.md` (YYYY from each row's timestamp;
//! a row without one goes with the row above it) and fsynced **before** the Dashboard
//! without them is put in place, so a row is never in neither file. If that write of the
//! Dashboard does not happen (someone saved meanwhile, a crash), the rows stay in the
//! Dashboard too; the next archiving finds the archive's last section equal to the end of
//! what it moves and does not write those rows again.
//!
//! Each archiving appends one section per file:
//!
//! ```markdown
//! ## Archived from Dashboard.md on 2026-12-05 17:30:00
//!
//! | Timestamp | Action | Status | Details |
//! |---|---|---|---|
//! | 2025-11-02 10:00:00 | System_Status | ✓ Online | … |
//! ```
//!
//! rows newest first, as they were in the Dashboard; sections in the order they were
//! archived.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::text::{At, Lines, Text, file_len, ranges_equal};
use crate::atomic;
use crate::layout::Folder;

/// Rows of the status table beyond this many bytes are archived …
pub const ARCHIVE_ABOVE: u64 = 1024 * 1024;
/// … down to this many bytes of the newest rows.
pub const KEEP: u64 = 512 * 1024;

const SECTION_PREFIX: &str = "## Archived from Dashboard.md on ";

/// `Logs/dashboard-YYYY.md` next to the Dashboard at `dashboard`.
pub fn archive_path(dashboard: &Path, year: &str) -> PathBuf {
    atomic::parent_dir(dashboard)
        .join(Folder::Logs)
        .join(format!("dashboard-{year}.md"))
}

/// The year a row belongs to: the first four characters of its first cell, if digits.
fn row_year(line: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(line.get(..line.len().min(64))?).ok()?;
    let s = s.trim_start().strip_prefix('|')?.trim_start();
    let year = s.get(..4)?;
    year.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| year.to_string())
}

/// Append the rows `src[from..to]` (whole lines of the status table, newest first) to the
/// archives and fsync them. Returns how many rows went out (rows found already archived
/// by an earlier attempt are not written again).
pub fn archive_rows(
    src: &Text,
    from: u64,
    to: u64,
    dashboard: &Path,
    mode: u32,
) -> io::Result<u64> {
    let logs = atomic::parent_dir(dashboard).join(Folder::Logs);
    match std::fs::symlink_metadata(&logs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(io::Error::other(format!(
                "{} is not a folder (a symlink is not followed)",
                logs.display()
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir(&logs)?;
            atomic::sync_dir(atomic::parent_dir(dashboard))?;
        }
        Err(e) => return Err(e),
    }
    let now_year = chrono::Local::now().format("%Y").to_string();
    // Runs of rows of the same year, each archived as soon as it ends.
    let mut group: Option<(String, u64, u64)> = None;
    let mut written = 0u64;
    let mut lines = Lines::new(src, from, to);
    loop {
        let next = lines
            .next_line()
            .map(|l| (row_year(l.head), l.start, l.end(), l.newline));
        match (next, group.take()) {
            (Some((year, start, end, _)), None) => {
                let year = year.unwrap_or_else(|| now_year.clone());
                group = Some((year, start, end));
            }
            (Some((year, start, end, _)), Some((g, gs, ge))) => {
                if year.as_ref().is_none_or(|y| *y == g) {
                    group = Some((g, gs, end));
                } else {
                    written += append_group(src, gs, ge, dashboard, &g, mode)?;
                    group = Some((year.unwrap_or_else(|| now_year.clone()), start, end));
                }
            }
            (None, Some((g, gs, ge))) => {
                written += append_group(src, gs, ge, dashboard, &g, mode)?;
                break;
            }
            (None, None) => break,
        }
    }
    lines.take_error()?;
    atomic::sync_dir(&logs)?;
    Ok(written)
}

/// Append one section with `src[from..to]` to the archive of `year`, unless the archive's
/// last section is the end of those rows already (an earlier attempt). Returns the rows
/// written.
fn append_group(
    src: &Text,
    from: u64,
    to: u64,
    dashboard: &Path,
    year: &str,
    mode: u32,
) -> io::Result<u64> {
    let path = archive_path(dashboard, year);
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode & 0o666)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    let len = file_len(&file)?;
    // Rows at the end of the group that the last section already ends with (an earlier
    // attempt archived them): the whole section (then only the newer rows above it are
    // written), or all of the group (then nothing is).
    let mut to_write = to;
    if let Some(last) = last_section_rows(&file, len)? {
        let n = (len - last).min(to - from);
        if n > 0 && ranges_equal(&file, len - n, src, to - n, n)? {
            to_write = to - n;
        }
    }
    if to_write <= from {
        return Ok(0);
    }
    let mut head = String::new();
    if len == 0 {
        head.push_str(&format!(
            "# Dashboard.md archive, {year}\n\nStatus rows moved out of Dashboard.md when its \
             table grew past {} KiB; newest first within each section, sections in the order \
             they were archived.\n",
            ARCHIVE_ABOVE / 1024
        ));
    }
    head.push_str(&format!(
        "\n{SECTION_PREFIX}{}\n\n{}\n{}\n",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
        super::table::HEADER,
        super::table::SEPARATOR
    ));
    let mut written = 0u64;
    let result = (|| -> io::Result<()> {
        file.write_all(head.as_bytes())?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = from;
        while at < to_write {
            let n = usize::try_from(to_write - at)
                .unwrap_or(buf.len())
                .min(buf.len());
            let got = src.read_at(&mut buf[..n], at)?;
            if got == 0 {
                return Err(io::Error::other("a private copy of the Dashboard shrank"));
            }
            file.write_all(&buf[..got])?;
            written += buf[..got].iter().filter(|&&b| b == b'\n').count() as u64;
            at += got as u64;
        }
        // The last row of the table may have had no line ending.
        let mut last = [0u8];
        if src.read_at(&mut last, to_write - 1)? == 1 && last[0] != b'\n' {
            file.write_all(b"\n")?;
            written += 1;
        }
        file.sync_all()
    })();
    if let Err(e) = result {
        // Leave the archive as it was: the rows are still in the Dashboard.
        let _ = file.set_len(len);
        return Err(io::Error::new(
            e.kind(),
            format!("failed to archive rows to {}: {e}", path.display()),
        ));
    }
    Ok(written)
}

/// Where the rows of the archive's last section start (None: no section).
fn last_section_rows(file: &File, len: u64) -> io::Result<Option<u64>> {
    let mut lines = Lines::new(file, 0, len);
    let mut found = None;
    // 0: outside, 1: after the section line, 2: after its table header.
    let mut stage = 0;
    while let Some(l) = lines.next_line() {
        if l.head.starts_with(SECTION_PREFIX.as_bytes()) {
            stage = 1;
            continue;
        }
        match stage {
            1 if l.head.starts_with(b"| Timestamp") => stage = 2,
            2 if l.head.starts_with(b"|---") => {
                found = Some(l.end());
                stage = 0;
            }
            _ => {}
        }
    }
    lines.take_error()?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn years_come_from_the_timestamp_cell() {
        assert_eq!(
            row_year(b"| 2025-01-02 03:04:05 | a | b | c |").as_deref(),
            Some("2025")
        );
        assert_eq!(row_year(b"|2024-x|").as_deref(), Some("2024"));
        assert_eq!(row_year(b"| yesterday | a |"), None);
        assert_eq!(row_year(b"no table"), None);
    }
}
