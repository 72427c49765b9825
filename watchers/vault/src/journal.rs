//! The append-only journal every ledger is written as: the task sink's seen keys
//! (`<watcher>.seen`, see [`crate::task_ledger`]), the filesystem watcher's ledger, the
//! approval handler's ledger and its audit log (`Logs/YYYY-MM-DD.json`), and the
//! supervisor's record of its process groups (`children`). Each keeps its own record
//! format (a JSON object; `+PGID START NAME`); this module owns what they share:
//!
//! - **Reached without following a symlink**: the file is opened in its folder's [`Dir`]
//!   with `O_NOFOLLOW` (see [`crate::nofollow`]); a symlink in its place is refused.
//! - **A record is one line**, appended with one `write(2)` of the record and its newline
//!   (several records of a batch: one write for all), fsynced when the caller asks
//!   ([`Journal::append`]). Blank lines are not records.
//! - **The torn-tail rule: a last line without its newline is not a record.** An append
//!   returns, and its caller acts on the record (publishes a task, makes the external
//!   call), only after the whole line, newline included, is in the file. A last line
//!   without its newline is therefore what an append that never returned left: the
//!   process died in the middle of it, or a full disk cut it short, or a power loss left
//!   the tail of an unsynced write. Nothing relied on it, so it is never read as a record,
//!   even when its bytes happen to parse (only the newline may be missing). A reader
//!   ignores it ([`Reader`]); opening the journal for appending cuts it off
//!   ([`Journal::open`]), so the next record starts on a line of its own instead of being
//!   glued to the fragment (and lost with it when read). Cutting, rather than ending the
//!   fragment with a newline, keeps the file a sequence of whole records: a fragment that
//!   parses can never turn into a record later, and is not reported again at every start.
//!   The same holds for an append that fails: what it wrote is cut off again, so a record
//!   whose caller was told "failed" never comes back after a restart (if that cut fails
//!   too, it is made before the next append, which fails as long as it cannot be).
//! - **Rewritten by atomic replace** when it has grown ([`Journal::replace`]): the new
//!   content goes to `<name>.tmp`, is fsynced, renamed over the journal, and the folder
//!   fsynced; a crash leaves the old journal or the new one, whole. A left-over `.tmp` is
//!   deleted at open. When to compact, and what to keep, is each ledger's business.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use serde::Serialize;

use crate::nofollow::{Dir, How, Replace};

/// Permission bits of a new journal: the ledgers are the program's own state.
const MODE: u32 = 0o600;

/// An open journal, for appending.
#[derive(Debug)]
pub struct Journal {
    /// The folder it is in, reached without following a symlink.
    dir: Dir,
    name: OsString,
    /// Open for reading and `O_APPEND` writing.
    file: File,
    /// An append failed and what it wrote could not be cut off: the length to cut back
    /// to before the next append.
    cut_to: Option<u64>,
}

impl Journal {
    /// Open the journal `name` in `dir` (creating it empty, `0600`, if missing) and cut
    /// off a torn last line (see the module docs). Returns the journal and how many bytes
    /// were cut. A symlink in its place is refused.
    pub fn open(dir: Dir, name: impl Into<OsString>) -> io::Result<(Journal, u64)> {
        Journal::open_named(dir, name.into())
    }

    /// [`Journal::open`]'s body, compiled once rather than once per name type.
    fn open_named(dir: Dir, name: OsString) -> io::Result<(Journal, u64)> {
        remove_if_present(&dir, &tmp_name(&name))?;
        let file = dir.file(&name, How::read_append(MODE))?;
        let len = file.metadata()?.len();
        let whole = whole_lines_len(&file, len)?;
        if whole < len {
            file.set_len(whole)?;
            file.sync_data()?;
        }
        let journal = Journal {
            dir,
            name,
            file,
            cut_to: None,
        };
        Ok((journal, len - whole))
    }

    /// Start the journal `name` in `dir` afresh: empty, whatever it held.
    pub fn create(dir: Dir, name: impl Into<OsString>) -> io::Result<Journal> {
        Journal::create_named(dir, name.into())
    }

    /// [`Journal::create`]'s body, compiled once rather than once per name type.
    fn create_named(dir: Dir, name: OsString) -> io::Result<Journal> {
        remove_if_present(&dir, &tmp_name(&name))?;
        let file = dir.file(&name, How::read_append(MODE))?;
        file.set_len(0)?;
        Ok(Journal {
            dir,
            name,
            file,
            cut_to: None,
        })
    }

    /// Where it is (for messages).
    pub fn path(&self) -> PathBuf {
        self.dir.display_path(&self.name)
    }

    /// Its records from the first, on a descriptor of its own (appends may go on while
    /// it is read; lines appended meanwhile may or may not be seen).
    pub fn reader(&self) -> io::Result<Reader> {
        Ok(Reader::new(self.file.try_clone()?, 0))
    }

    /// Append `lines` (one or more whole lines, each ending in a newline) with one write;
    /// with `durable`, fsync before returning (which also makes every earlier line
    /// durable). On an error nothing of `lines` stays in the journal (see the module
    /// docs).
    pub fn append(&mut self, lines: &[u8], durable: bool) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        if !lines.ends_with(b"\n") {
            return Err(no_newline(&self.path()));
        }
        if let Some(len) = self.cut_to {
            self.file.set_len(len)?;
            self.cut_to = None;
        }
        // One `write(2)` of the whole buffer; more only when that write is cut short (a
        // full disk, a signal), to finish it or to fail. What this call wrote is counted
        // so that a failure can take exactly that back (no `fstat` before every append).
        let mut done = 0usize;
        let written = loop {
            if done == lines.len() {
                break if durable {
                    self.file.sync_data()
                } else {
                    Ok(())
                };
            }
            match self.file.write(&lines[done..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = written {
            if done > 0 {
                let before = self
                    .file
                    .metadata()
                    .map(|m| m.len().saturating_sub(done as u64));
                match before {
                    Ok(b) if self.file.set_len(b).is_ok() => {}
                    Ok(b) => self.cut_to = Some(b),
                    // Its size unknown (fstat failing on an open file): an unfinished
                    // line is cut by the torn-tail rule at the next append or open.
                    Err(_) => {}
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// Replace the whole journal, atomically, by what `write` writes (whole lines, each
    /// ending in a newline). With `durable`, the new content and its name are fsynced
    /// before this returns; without, a power loss may leave the old journal. On an error
    /// the journal is as it was.
    pub fn replace(
        &mut self,
        durable: bool,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        let tmp = tmp_name(&self.name);
        let result = self.replace_from(&tmp, durable, write);
        if result.is_err() {
            // Best effort: a `.tmp` left here is removed at the next open; `result` says why.
            let _ = self.dir.remove_file(&tmp);
        }
        result
    }

    fn replace_from(
        &mut self,
        tmp: &OsStr,
        durable: bool,
        write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        let file = self.dir.file(tmp, How::truncate(MODE))?;
        let mut out = LastByte {
            out: BufWriter::with_capacity(1 << 16, &file),
            last: b'\n',
        };
        write(&mut out)?;
        out.flush()?;
        if out.last != b'\n' {
            return Err(no_newline(&self.dir.display_path(tmp)));
        }
        drop(out);
        if durable {
            file.sync_all()?;
        }
        drop(file);
        // The handle for later appends, opened before the rename: there is no moment at
        // which an append could go to the old file after it lost its name.
        let appender = self.dir.file(tmp, How::read_append(MODE))?;
        self.dir.rename(tmp, &self.dir, &self.name, Replace::Yes)?;
        if durable {
            self.dir.sync()?;
        }
        self.file = appender;
        self.cut_to = None;
        Ok(())
    }

    /// Delete the journal.
    pub fn remove(self) -> io::Result<()> {
        remove_if_present(&self.dir, &self.name)
    }
}

/// Append `record` as one JSON line (the object, then a newline) to `out`.
pub fn json_line(out: &mut dyn Write, record: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, record).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// One record: a whole line that is not blank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// Its line number in the file, from 1 (blank lines count).
    pub number: usize,
    /// The line without its newline.
    pub bytes: &'a [u8],
}

/// Reads a journal's records in order, streamed (a long journal is never held in memory),
/// by its own position in the file. A last line without its newline is not a record
/// (see the module docs): it ends the reading, and [`Reader::torn`] says how long it was.
pub struct Reader {
    input: BufReader<Positioned>,
    buf: Vec<u8>,
    number: usize,
    torn: u64,
}

impl Reader {
    /// Read the journal `name` in `dir`, not following a symlink, without changing it.
    pub fn open(dir: &Dir, name: impl AsRef<OsStr>) -> io::Result<Reader> {
        Ok(Reader::new(dir.file(name.as_ref(), How::READ)?, 0))
    }

    /// Read `file`, a journal the caller opened, from byte `at`, which must be where a
    /// line starts (0, or just after a newline): for a reader that found its place itself,
    /// such as a binary search over a journal kept in order. [`Line::number`] then counts
    /// from `at`.
    pub fn starting_at(file: File, at: u64) -> Reader {
        Reader::new(file, at)
    }

    /// The buffer is as large as what is left to read, from 4 KiB to 64 KiB: a reader of
    /// a short journal (the task loop's health check reads the last day's events every
    /// 30 s, mostly nothing at idle) does not fill, and so page in, 64 KiB each time.
    fn new(file: File, at: u64) -> Reader {
        let left = file
            .metadata()
            .map_or(u64::MAX, |m| m.len().saturating_sub(at));
        let capacity = left.saturating_add(1).clamp(1 << 12, 1 << 16) as usize;
        Reader {
            input: BufReader::with_capacity(capacity, Positioned { file, at }),
            buf: Vec::with_capacity(1024),
            number: 0,
            torn: 0,
        }
    }

    /// The next record, or `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        loop {
            self.buf.clear();
            let n = self.input.read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            if self.buf[n - 1] != b'\n' {
                self.torn = n as u64;
                return Ok(None);
            }
            self.number += 1;
            let blank = self.buf[..n - 1].iter().all(u8::is_ascii_whitespace);
            if !blank {
                return Ok(Some(Line {
                    number: self.number,
                    bytes: &self.buf[..n - 1],
                }));
            }
        }
    }

    /// Bytes of the torn last line the reading ended at (0: none).
    pub fn torn(&self) -> u64 {
        self.torn
    }
}

/// A file read from a position of its own (`pread`), not the descriptor's shared offset.
struct Positioned {
    file: File,
    at: u64,
}

impl Read for Positioned {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// A writer that remembers the last byte written through it.
struct LastByte<W> {
    out: W,
    last: u8,
}

impl<W: Write> Write for LastByte<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        if n > 0 {
            self.last = buf[n - 1];
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The length of the file's whole lines: up to and including its last newline. Read
/// backwards from its end `len`, a block at a time (the tail is normally one byte).
fn whole_lines_len(file: &File, len: u64) -> io::Result<u64> {
    const BLOCK: u64 = 8192;
    let mut buf = vec![0u8; BLOCK as usize];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

fn no_newline(path: &std::path::Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: a journal line without its newline", path.display()),
    )
}

fn tmp_name(name: &OsStr) -> OsString {
    let mut s = name.to_os_string();
    s.push(".tmp");
    s
}

fn remove_if_present(dir: &Dir, name: &OsStr) -> io::Result<()> {
    match dir.remove_file(name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The records of the journal `name` in `dir`, as text.
    fn records(dir: &Path, name: &str) -> io::Result<Vec<String>> {
        let mut r = Reader::open(&Dir::open(dir)?, name)?;
        let mut out = Vec::new();
        while let Some(line) = r.next_line()? {
            out.push(String::from_utf8_lossy(line.bytes).into_owned());
        }
        Ok(out)
    }

    fn open(dir: &Path, name: &str) -> io::Result<(Journal, u64)> {
        Journal::open(Dir::open(dir)?, name)
    }

    #[test]
    fn lines_longer_than_the_buffer_read_whole_from_any_start() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let long = "x".repeat(100_000);
        std::fs::write(dir.path().join("j"), format!("a\n{long}\nb\n"))?;
        assert_eq!(records(dir.path(), "j")?, ["a", long.as_str(), "b"]);
        // From the long line's start: the buffer is sized by what is left (64 KiB at most).
        let file = File::open(dir.path().join("j"))?;
        let mut r = Reader::starting_at(file, 2);
        let mut got = Vec::new();
        while let Some(line) = r.next_line()? {
            got.push(line.bytes.len());
        }
        assert_eq!(got, [100_000, 1]);
        Ok(())
    }

    #[test]
    fn a_torn_last_line_is_not_a_record_and_is_cut_off_at_open() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("j");
        // The torn line would parse: only its newline is missing. Still not a record.
        std::fs::write(&p, "{\"a\":1}\n{\"b\":2}")?;
        assert_eq!(records(dir.path(), "j")?, ["{\"a\":1}"]);
        let mut r = Reader::open(&Dir::open(dir.path())?, "j")?;
        while r.next_line()?.is_some() {}
        assert_eq!(r.torn(), 7);
        assert_eq!(
            std::fs::read(&p)?.len(),
            15,
            "reading leaves the file as it is"
        );
        let (j, torn) = open(dir.path(), "j")?;
        assert_eq!(torn, 7);
        assert_eq!(std::fs::read_to_string(&p)?, "{\"a\":1}\n");
        let mut r = j.reader()?;
        assert_eq!(r.next_line()?.map(|l| l.bytes), Some(&b"{\"a\":1}"[..]));
        assert_eq!(r.next_line()?, None);
        assert_eq!(r.torn(), 0);
        Ok(())
    }

    #[test]
    fn a_file_of_only_a_torn_line_is_cut_to_nothing() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        // Longer than one block read backwards, without any newline.
        std::fs::write(dir.path().join("j"), vec![0u8; 20_000])?;
        let (_j, torn) = open(dir.path(), "j")?;
        assert_eq!(torn, 20_000);
        assert_eq!(std::fs::read(dir.path().join("j"))?.len(), 0);
        Ok(())
    }

    #[test]
    fn an_empty_or_missing_journal_has_no_records() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (j, torn) = open(dir.path(), "new")?;
        assert_eq!(torn, 0);
        assert!(j.reader()?.next_line()?.is_none());
        let meta = std::fs::metadata(dir.path().join("new"))?;
        assert_eq!(meta.len(), 0);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        std::fs::write(dir.path().join("empty"), "")?;
        assert_eq!(open(dir.path(), "empty")?.1, 0);
        assert!(records(dir.path(), "empty")?.is_empty());
        Ok(())
    }

    #[test]
    fn a_file_ending_at_a_newline_is_read_whole_and_left_alone() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let text = "+1 2 a\n\n   \n-1\n+3 4 b c\n";
        std::fs::write(dir.path().join("j"), text)?;
        let (j, torn) = open(dir.path(), "j")?;
        assert_eq!(torn, 0);
        assert_eq!(std::fs::read_to_string(dir.path().join("j"))?, text);
        // Blank lines are not records, but count for the line numbers.
        let mut r = j.reader()?;
        let mut seen = Vec::new();
        while let Some(l) = r.next_line()? {
            seen.push((l.number, String::from_utf8_lossy(l.bytes).into_owned()));
        }
        assert_eq!(
            seen,
            [
                (1, "+1 2 a".into()),
                (4, "-1".into()),
                (5, "+3 4 b c".into())
            ]
        );
        Ok(())
    }

    #[test]
    fn an_append_after_a_torn_tail_starts_a_line_of_its_own() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("j"), "a\nhalf a rec")?;
        let (mut j, _) = open(dir.path(), "j")?;
        j.append(b"b\nc\n", true)?;
        j.append(b"d\n", false)?;
        assert_eq!(
            std::fs::read_to_string(dir.path().join("j"))?,
            "a\nb\nc\nd\n"
        );
        assert_eq!(records(dir.path(), "j")?, ["a", "b", "c", "d"]);
        // Only whole lines are appended.
        assert!(j.append(b"e", true).is_err());
        assert_eq!(records(dir.path(), "j")?, ["a", "b", "c", "d"]);
        Ok(())
    }

    #[test]
    fn a_replace_keeps_the_records_written_and_appends_go_on_after_them() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (mut j, _) = open(dir.path(), "j")?;
        for i in 0..100 {
            j.append(format!("{{\"n\":{i}}}\n").as_bytes(), false)?;
        }
        j.replace(true, &mut |w| {
            json_line(w, &serde_json::json!({"n": 98}))?;
            json_line(w, &serde_json::json!({"n": 99}))
        })?;
        j.append(b"{\"n\":100}\n", true)?;
        assert_eq!(
            records(dir.path(), "j")?,
            ["{\"n\":98}", "{\"n\":99}", "{\"n\":100}"]
        );
        assert!(!dir.path().join("j.tmp").exists());
        // A replacement that does not end a line is refused; the journal stays.
        let refused = j.replace(true, &mut |w| w.write_all(b"{\"n\":1}"));
        assert!(refused.is_err());
        let failed = j.replace(true, &mut |w| {
            w.write_all(b"x\n")?;
            Err(io::Error::other("the caller failed"))
        });
        assert!(failed.is_err());
        assert!(!dir.path().join("j.tmp").exists());
        j.append(b"{\"n\":101}\n", true)?;
        drop(j);
        let (j, torn) = open(dir.path(), "j")?;
        assert_eq!(torn, 0);
        assert_eq!(records(dir.path(), "j")?.len(), 4);
        // Started afresh, then removed.
        let j2 = Journal::create(Dir::open(dir.path())?, "j")?;
        assert!(records(dir.path(), "j")?.is_empty());
        j2.remove()?;
        assert!(!dir.path().join("j").exists());
        drop(j);
        Ok(())
    }

    #[test]
    fn a_half_written_replacement_is_removed_at_open() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("j"), "a\n")?;
        std::fs::write(dir.path().join("j.tmp"), "garbage")?;
        let (_j, torn) = open(dir.path(), "j")?;
        assert_eq!(torn, 0);
        assert!(!dir.path().join("j.tmp").exists());
        assert_eq!(records(dir.path(), "j")?, ["a"]);
        Ok(())
    }

    #[test]
    fn a_symlinked_journal_is_refused_and_its_target_untouched() -> io::Result<()> {
        let (vault, outside) = (tempfile::tempdir()?, tempfile::tempdir()?);
        let theirs = outside.path().join("theirs");
        std::fs::write(&theirs, "mine")?;
        std::os::unix::fs::symlink(&theirs, vault.path().join("j"))?;
        let folder = Dir::open(vault.path())?;
        let refusals = [
            open(vault.path(), "j").err(),
            Journal::create(folder.try_clone()?, "j").err(),
            Reader::open(&folder, "j").err(),
        ];
        for e in refusals {
            assert!(
                e.as_ref().is_some_and(crate::nofollow::is_symlink_error),
                "{e:?}"
            );
        }
        assert_eq!(std::fs::read_to_string(&theirs)?, "mine");
        Ok(())
    }
}
