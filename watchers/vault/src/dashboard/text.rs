//! The texts the Dashboard merge works on, in memory only while small.
//!
//! A [`Text`] is an immutable snapshot of bytes: up to [`SPILL_AT`] bytes in memory, a
//! larger one in a private, unnamed file next to the Dashboard (`O_TMPFILE` on Linux;
//! created and unlinked at once elsewhere). Every operation the merge needs (find the
//! status table, count rows, insert rows, compare, count occurrences) reads it in chunks
//! and lines of bounded size, so the supervisor's memory does not grow with the size of
//! `Dashboard.md`. Clones share the bytes.
//!
//! Lines are split on `\n` like `str::lines` without dropping `\r`; only the first
//! [`LINE_CAP`] bytes of a line are looked at (no table line of ours is near that long: a
//! longer line is never a table header, separator or one of our rows).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

/// Texts larger than this live in a private file, not in memory.
pub const SPILL_AT: usize = 256 * 1024;
/// How much of a line is looked at.
pub const LINE_CAP: usize = 64 * 1024;
/// Read granularity.
const CHUNK: usize = 64 * 1024;

/// An immutable snapshot of bytes (see the module docs).
#[derive(Clone, Debug)]
pub struct Text(Repr);

#[derive(Clone, Debug)]
enum Repr {
    Mem(Arc<Vec<u8>>),
    File { file: Arc<File>, len: u64 },
}

/// Something bytes can be read from at an offset: a [`Text`] or an open file.
pub trait At {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl At for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

impl At for Text {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match &self.0 {
            Repr::Mem(v) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(v.len());
                let n = buf.len().min(v.len() - start);
                buf[..n].copy_from_slice(&v[start..start + n]);
                Ok(n)
            }
            Repr::File { file, len } => {
                let n = usize::try_from(len.saturating_sub(offset))
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                read_exact_at(file.as_ref(), &mut buf[..n], offset)?;
                Ok(n)
            }
        }
    }
}

fn read_exact_at(f: &dyn At, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match f.read_at(buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a private copy of the Dashboard shrank",
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Builds a [`Text`]: in memory until it passes [`SPILL_AT`], then in a private file in
/// `dir`.
pub struct TextWriter<'d> {
    dir: &'d Path,
    mem: Vec<u8>,
    file: Option<(File, u64)>,
    /// The last (up to) three bytes written.
    tail: Vec<u8>,
}

impl<'d> TextWriter<'d> {
    pub fn new(dir: &'d Path) -> Self {
        TextWriter {
            dir,
            mem: Vec::new(),
            file: None,
            tail: Vec::new(),
        }
    }

    pub fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.tail
            .extend_from_slice(&bytes[bytes.len().saturating_sub(3)..]);
        let extra = self.tail.len().saturating_sub(3);
        self.tail.drain(..extra);
        if let Some((f, len)) = self.file.as_mut() {
            f.write_all(bytes)?;
            *len += bytes.len() as u64;
            return Ok(());
        }
        if self.mem.len() + bytes.len() <= SPILL_AT {
            self.mem.extend_from_slice(bytes);
            return Ok(());
        }
        let mut f = tempfile::tempfile_in(self.dir)?;
        f.write_all(&self.mem)?;
        f.write_all(bytes)?;
        let len = (self.mem.len() + bytes.len()) as u64;
        self.mem = Vec::new();
        self.file = Some((f, len));
        Ok(())
    }

    /// Copy `from[start..end]`.
    pub fn copy(&mut self, from: &dyn At, start: u64, end: u64) -> io::Result<()> {
        let mut buf = vec![0u8; CHUNK];
        let mut at = start;
        while at < end {
            let n = usize::try_from(end - at).unwrap_or(CHUNK).min(CHUNK);
            read_exact_at(from, &mut buf[..n], at)?;
            self.push(&buf[..n])?;
            at += n as u64;
        }
        Ok(())
    }

    /// Whether what was written so far ends with `suffix` (at most three bytes).
    pub fn ends_with(&self, suffix: &[u8]) -> bool {
        self.tail.ends_with(suffix)
    }

    pub fn is_empty(&self) -> bool {
        self.tail.is_empty()
    }

    pub fn finish(self) -> Text {
        match self.file {
            Some((f, len)) => Text(Repr::File {
                file: Arc::new(f),
                len,
            }),
            None => Text::from(self.mem),
        }
    }
}

impl From<Vec<u8>> for Text {
    fn from(v: Vec<u8>) -> Text {
        Text(Repr::Mem(Arc::new(v)))
    }
}

impl Text {
    /// All of `file` from its start, as it is now (a private copy in `dir` when large).
    pub fn read(file: &File, dir: &Path) -> io::Result<Text> {
        let mut w = TextWriter::new(dir);
        let mut buf = vec![0u8; CHUNK];
        let mut at = 0u64;
        loop {
            let n = match At::read_at(file, &mut buf, at) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            w.push(&buf[..n])?;
            at += n as u64;
        }
        Ok(w.finish())
    }

    pub fn len(&self) -> u64 {
        match &self.0 {
            Repr::Mem(v) => v.len() as u64,
            Repr::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes in memory, when the text is small enough to be there.
    pub fn as_slice(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Mem(v) => Some(v),
            Repr::File { .. } => None,
        }
    }

    pub fn last_byte(&self) -> io::Result<Option<u8>> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut b = [0u8];
        read_exact_at(self, &mut b, self.len() - 1)?;
        Ok(Some(b[0]))
    }

    /// `self[start..end]` in memory (for the small parts: what others appended).
    pub fn slice_vec(&self, start: u64, end: u64) -> io::Result<Vec<u8>> {
        let end = end.min(self.len());
        let start = start.min(end);
        let mut v = vec![0u8; usize::try_from(end - start).unwrap_or(0)];
        read_exact_at(self, &mut v, start)?;
        Ok(v)
    }

    /// Write all of it to `out`.
    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<()> {
        if let Some(s) = self.as_slice() {
            return out.write_all(s);
        }
        let mut buf = vec![0u8; CHUNK];
        let mut at = 0;
        while at < self.len() {
            let n = usize::try_from(self.len() - at).unwrap_or(CHUNK).min(CHUNK);
            read_exact_at(self, &mut buf[..n], at)?;
            out.write_all(&buf[..n])?;
            at += n as u64;
        }
        Ok(())
    }

    /// The lines, in order (see [`Lines`]).
    pub fn lines(&self) -> Lines<'_> {
        Lines::new(self, 0, self.len())
    }

    /// How often `needle` occurs (not overlapping, leftmost first).
    pub fn occurrences(&self, needle: &[u8]) -> io::Result<usize> {
        occurrences(self, self.len(), needle)
    }
}

/// Whether `a[a_at..a_at+n] == b[b_at..b_at+n]`, compared in chunks.
pub fn ranges_equal(a: &dyn At, a_at: u64, b: &dyn At, b_at: u64, n: u64) -> io::Result<bool> {
    let mut x = vec![0u8; CHUNK];
    let mut y = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < n {
        let k = usize::try_from(n - done).unwrap_or(CHUNK).min(CHUNK);
        if read_exact_at(a, &mut x[..k], a_at + done).is_err()
            || read_exact_at(b, &mut y[..k], b_at + done).is_err()
        {
            return Ok(false);
        }
        if x[..k] != y[..k] {
            return Ok(false);
        }
        done += k as u64;
    }
    Ok(true)
}

/// Whether a file we read as `known` and now holds `now` (`now_len` bytes) has only been
/// appended to. An empty file that filled up counts as rewritten (we caught a writer
/// between truncating and writing), not as appended to.
pub fn only_appended(known: &Text, now: &dyn At, now_len: u64) -> io::Result<bool> {
    if known.is_empty() {
        return Ok(now_len == 0);
    }
    if now_len < known.len() {
        return Ok(false);
    }
    ranges_equal(known, 0, now, 0, known.len())
}

/// The size of an open file.
pub fn file_len(f: &File) -> io::Result<u64> {
    Ok(f.metadata()?.len())
}

/// How often `needle` occurs in `hay[..len]` (not overlapping, leftmost first).
pub fn occurrences(hay: &dyn At, len: u64, needle: &[u8]) -> io::Result<usize> {
    if needle.is_empty() {
        return Ok(0);
    }
    let keep = needle.len() - 1;
    let mut window: Vec<u8> = Vec::with_capacity(CHUNK + keep);
    let mut buf = vec![0u8; CHUNK];
    let (mut count, mut at) = (0usize, 0u64);
    // Bytes of `window` before this index are inside a match already counted.
    let mut from = 0usize;
    while at < len {
        let n = usize::try_from(len - at).unwrap_or(CHUNK).min(CHUNK);
        read_exact_at(hay, &mut buf[..n], at)?;
        at += n as u64;
        window.extend_from_slice(&buf[..n]);
        while let Some(i) = window[from..]
            .windows(needle.len())
            .position(|w| w == needle)
        {
            count += 1;
            from += i + needle.len();
        }
        // Keep what a match crossing into the next chunk could start with.
        let cut = window
            .len()
            .saturating_sub(keep)
            .max(from.min(window.len()));
        window.drain(..cut);
        from = from.saturating_sub(cut);
    }
    Ok(count)
}

/// One line of a text: where it starts, its length without the `\n`, whether a `\n`
/// ends it, its last byte, and its first [`LINE_CAP`] bytes.
pub struct Line<'a> {
    pub start: u64,
    pub len: u64,
    pub newline: bool,
    pub last: Option<u8>,
    /// The first bytes of the line (all of it unless `len > LINE_CAP`).
    pub head: &'a [u8],
}

impl Line<'_> {
    /// The whole line is in `head`.
    pub fn complete(&self) -> bool {
        self.head.len() as u64 == self.len
    }

    /// Offset just after the line and its `\n`.
    pub fn end(&self) -> u64 {
        self.start + self.len + u64::from(self.newline)
    }
}

/// The lines of `src[start..end]`, read in chunks; a lending iterator (`next` borrows).
pub struct Lines<'s> {
    src: &'s dyn At,
    end: u64,
    /// Offset of `buf[0]`.
    buf_at: u64,
    buf: Vec<u8>,
    pos: usize,
    line: Vec<u8>,
    error: Option<io::Error>,
}

impl<'s> Lines<'s> {
    pub fn new(src: &'s dyn At, start: u64, end: u64) -> Self {
        Lines {
            src,
            end,
            buf_at: start,
            buf: Vec::new(),
            pos: 0,
            line: Vec::new(),
            error: None,
        }
    }

    /// A read error ends the lines; it is kept here.
    pub fn take_error(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Refill the buffer; false at the end (or on an error).
    fn fill(&mut self) -> bool {
        let next_at = self.buf_at + self.buf.len() as u64;
        if next_at >= self.end {
            return false;
        }
        let n = usize::try_from(self.end - next_at)
            .unwrap_or(CHUNK)
            .min(CHUNK);
        self.buf.resize(n, 0);
        if let Err(e) = read_exact_at(self.src, &mut self.buf, next_at) {
            self.error = Some(e);
            self.buf.clear();
            return false;
        }
        self.buf_at = next_at;
        self.pos = 0;
        true
    }

    pub fn next_line(&mut self) -> Option<Line<'_>> {
        if self.pos >= self.buf.len() && !self.fill() {
            return None;
        }
        self.line.clear();
        let start = self.buf_at + self.pos as u64;
        let mut len = 0u64;
        let mut last = None;
        loop {
            let rest = &self.buf[self.pos..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    take(
                        &mut self.line,
                        &self.buf[self.pos..self.pos + i],
                        &mut len,
                        &mut last,
                    );
                    self.pos += i + 1;
                    return Some(Line {
                        start,
                        len,
                        newline: true,
                        last,
                        head: &self.line,
                    });
                }
                None => {
                    take(&mut self.line, &self.buf[self.pos..], &mut len, &mut last);
                    self.pos = self.buf.len();
                    if !self.fill() {
                        return Some(Line {
                            start,
                            len,
                            newline: false,
                            last,
                            head: &self.line,
                        });
                    }
                }
            }
        }
    }
}

/// Add `part` to a line being read: its length and last byte always, its bytes up to
/// [`LINE_CAP`].
fn take(line: &mut Vec<u8>, part: &[u8], len: &mut u64, last: &mut Option<u8>) {
    if let Some(&b) = part.last() {
        *last = Some(b);
    }
    *len += part.len() as u64;
    let room = LINE_CAP.saturating_sub(line.len());
    line.extend_from_slice(&part[..part.len().min(room)]);
}

// ---- the status table, read and written in one pass each ----

/// Where the status table's rows start: just after its separator line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TablePos {
    /// Byte offset right after the separator line (and its line ending, if any).
    pub rows_at: u64,
    /// The separator is the last line and has no line ending.
    pub needs_newline: bool,
    pub crlf: bool,
}

/// What one pass over a text finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The first `| Timestamp | Action | Status | Details |` table (outside code blocks).
    pub table: Option<TablePos>,
    /// How many lines are each of the given rows (cells compared trimmed).
    pub counts: Vec<usize>,
    /// A `\r\n` occurs somewhere.
    pub crlf: bool,
    /// End of the table's rows: the lines right after the separator that start with `|`.
    pub rows_end: u64,
    /// Bytes of those rows.
    pub rows_bytes: u64,
    /// Where the first row starts that would no longer fit in `keep` bytes of rows, with
    /// `extra` bytes of new rows on top (see [`scan`]).
    pub keep_end: Option<u64>,
    /// No table, and the text ends inside a fenced code block opened by this marker run
    /// (e.g. ```` ``` ````): anything appended would land in it.
    pub open_fence: Option<Vec<u8>>,
}

/// Scan `src[..len]`: the status table, how often each of `rows` occurs, and where the
/// table's rows would have to be cut to keep `keep` bytes of them once `extra` more bytes
/// of rows are inserted at the top.
pub fn scan(src: &dyn At, len: u64, rows: &[&str], extra: u64, keep: u64) -> io::Result<Scan> {
    use super::table::{cells, indent, is_header, is_separator};
    let wanted: Vec<Option<Vec<&str>>> = rows.iter().map(|r| cells(r.as_bytes())).collect();
    let mut out = Scan {
        table: None,
        counts: vec![0; rows.len()],
        crlf: false,
        rows_end: 0,
        rows_bytes: 0,
        keep_end: None,
        open_fence: None,
    };
    // The open fence: its character and how many of them opened it.
    let mut fence: Option<(u8, usize)> = None;
    // The previous line (outside code blocks) was a table header.
    let mut prev_header = false;
    // In the status table's rows.
    let mut in_rows = false;
    let mut lines = Lines::new(src, 0, len);
    while let Some(line) = lines.next_line() {
        let text = line.head;
        if line.newline && line.last == Some(b'\r') {
            out.crlf = true;
        }
        let complete = line.complete();
        if complete && !wanted.is_empty() {
            if let Some(c) = cells(text) {
                for (n, w) in out.counts.iter_mut().zip(&wanted) {
                    if w.as_ref() == Some(&c) {
                        *n += 1;
                    }
                }
            }
        }
        if in_rows {
            if text.trim_ascii_start().starts_with(b"|") {
                let bytes = line.end() - line.start;
                out.rows_bytes += bytes;
                out.rows_end = line.end();
                if out.keep_end.is_none() && extra + out.rows_bytes > keep {
                    out.keep_end = Some(line.start);
                }
                continue;
            }
            in_rows = false;
        }
        if out.table.is_some() {
            continue;
        }
        let trimmed = text.trim_ascii_start();
        let marker = [b"```".as_slice(), b"~~~"]
            .into_iter()
            .find(|m| trimmed.starts_with(m));
        if indent(text) < 4 {
            match (fence, marker) {
                (None, Some(m)) => {
                    fence = Some((m[0], trimmed.iter().take_while(|&&b| b == m[0]).count()));
                    prev_header = false;
                    continue;
                }
                (Some((f, _)), Some(m)) if f == m[0] => {
                    fence = None;
                    prev_header = false;
                    continue;
                }
                _ => {}
            }
        }
        if fence.is_some() {
            continue;
        }
        if prev_header && complete && is_separator(text) {
            out.table = Some(TablePos {
                rows_at: line.end(),
                needs_newline: !line.newline,
                crlf: line.last == Some(b'\r'),
            });
            out.rows_end = line.end();
            in_rows = true;
            continue;
        }
        prev_header = complete && indent(text) < 4 && is_header(text);
    }
    lines.take_error()?;
    if out.table.is_none() {
        out.open_fence = fence.map(|(c, n)| vec![c; n]);
    }
    Ok(out)
}

/// `src[..len]` with `rows` (oldest first) at the top of the status table, newest first,
/// and without the rows in `cut` (a range of its rows, moved to the archive); a
/// `## System Status` section with the table is added at the end when there is none.
pub fn build(
    src: &dyn At,
    len: u64,
    scan: &Scan,
    rows: &[&str],
    cut: Option<(u64, u64)>,
    dir: &Path,
) -> io::Result<Text> {
    use super::table::{HEADER, SECTION, SEPARATOR};
    let mut out = TextWriter::new(dir);
    match scan.table {
        Some(t) => {
            let nl: &[u8] = if t.crlf { b"\r\n" } else { b"\n" };
            out.copy(src, 0, t.rows_at)?;
            if t.needs_newline {
                out.push(nl)?;
            }
            for r in rows.iter().rev() {
                out.push(r.as_bytes())?;
                out.push(nl)?;
            }
            match cut {
                Some((from, to)) => {
                    out.copy(src, t.rows_at, from)?;
                    out.copy(src, to, len)?;
                }
                None => out.copy(src, t.rows_at, len)?,
            }
        }
        None => {
            let nl: &[u8] = if scan.crlf { b"\r\n" } else { b"\n" };
            out.copy(src, 0, len)?;
            if len > 0 {
                if !out.ends_with(b"\n") {
                    out.push(nl)?;
                }
                // A code block left open at the end (a person mid-edit) would swallow
                // the new section, and every later row would add another: close it.
                if let Some(run) = &scan.open_fence {
                    out.push(run)?;
                    out.push(nl)?;
                }
                if !out.ends_with(b"\n\n") && !out.ends_with(b"\n\r\n") {
                    out.push(nl)?;
                }
            }
            for part in [SECTION, "", HEADER, SEPARATOR] {
                out.push(part.as_bytes())?;
                out.push(nl)?;
            }
            for r in rows.iter().rev() {
                out.push(r.as_bytes())?;
                out.push(nl)?;
            }
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spilled(bytes: &[u8]) -> Text {
        let dir = std::env::temp_dir();
        let mut w = TextWriter::new(&dir);
        // Push more than SPILL_AT first so it goes to a file, then check a prefix.
        w.push(bytes).unwrap();
        w.push(&vec![b'\n'; SPILL_AT + 1]).unwrap();
        w.finish()
    }

    #[test]
    fn small_texts_stay_in_memory_large_ones_do_not() {
        let dir = std::env::temp_dir();
        let mut w = TextWriter::new(&dir);
        w.push(b"abc").unwrap();
        assert!(w.finish().as_slice().is_some());
        let t = spilled(b"abc");
        assert!(t.as_slice().is_none());
        assert_eq!(t.len(), 3 + SPILL_AT as u64 + 1);
        assert_eq!(t.slice_vec(0, 3).unwrap(), b"abc");
        assert_eq!(t.last_byte().unwrap(), Some(b'\n'));
    }

    #[test]
    fn lines_match_a_plain_split() {
        let texts: [&[u8]; 6] = [
            b"",
            b"a",
            b"a\n",
            b"a\nb",
            b"\n\nx\r\n",
            b"one\ntwo\n\nthree",
        ];
        for text in texts {
            let t = Text::from(text.to_vec());
            let mut lines = t.lines();
            let mut got = Vec::new();
            while let Some(l) = lines.next_line() {
                got.push((l.start, l.head.to_vec(), l.newline));
            }
            let mut want = Vec::new();
            let mut start = 0;
            while start < text.len() {
                let end = text[start..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(text.len(), |i| start + i);
                want.push((start as u64, text[start..end].to_vec(), end < text.len()));
                start = end + 1;
            }
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn long_lines_are_capped_but_measured() {
        let mut text = vec![b'x'; LINE_CAP * 3 + 5];
        text.push(b'\n');
        text.extend_from_slice(b"next");
        let t = Text::from(text);
        let mut lines = t.lines();
        let l = lines.next_line().unwrap();
        assert_eq!(
            (l.len, l.head.len(), l.complete()),
            ((LINE_CAP * 3 + 5) as u64, LINE_CAP, false)
        );
        let l = lines.next_line().unwrap();
        assert_eq!((l.start, l.head), ((LINE_CAP * 3 + 6) as u64, &b"next"[..]));
        assert!(lines.next_line().is_none());
    }

    #[test]
    fn occurrences_across_chunks() {
        let mut text = vec![b'.'; CHUNK - 2];
        text.extend_from_slice(b"abcabc");
        text.extend_from_slice(&vec![b'.'; CHUNK]);
        text.extend_from_slice(b"abc");
        let t = Text::from(text);
        assert_eq!(t.occurrences(b"abc").unwrap(), 3);
        assert_eq!(t.occurrences(b"cab").unwrap(), 1);
        assert_eq!(Text::from(b"aaaa".to_vec()).occurrences(b"aa").unwrap(), 2);
        assert_eq!(t.occurrences(b"").unwrap(), 0);
    }

    /// The same text in memory and in a private file gives the same scan and the same
    /// result, with the table near the start, in the middle, or missing.
    #[test]
    fn spilled_texts_are_handled_like_small_ones() {
        let dir = std::env::temp_dir();
        let notes: String = (0..20000)
            .map(|i| format!("note {i} | with a pipe\n"))
            .collect();
        let table =
            "| Timestamp | Action | Status | Details |\n|---|---|---|---|\n| old | a | b | c |\n";
        let fenced = "```\n| Timestamp | Action | Status | Details |\n|---|---|---|---|\n```\n";
        for text in [
            format!("# D\n\n{table}\n{notes}"),
            format!("{fenced}{notes}\n## S\n\n{table}after\n"),
            format!("{notes}no table, no final newline"),
            format!("{notes}\r\n{table}"),
        ] {
            assert!(text.len() > SPILL_AT);
            let rows = ["| new | a | b | c |", "| old | a | b | c |"];
            let mem = Text::from(text.clone().into_bytes());
            let mut w = TextWriter::new(&dir);
            w.push(text.as_bytes()).unwrap();
            let file = w.finish();
            assert!(mem.as_slice().is_some() && file.as_slice().is_none());
            let a = scan(&mem, mem.len(), &rows, 10, 100).unwrap();
            let b = scan(&file, file.len(), &rows, 10, 100).unwrap();
            assert_eq!(a, b);
            let mut out_a = Vec::new();
            build(&mem, mem.len(), &a, &rows[..1], None, &dir)
                .unwrap()
                .write_to(&mut out_a)
                .unwrap();
            let mut out_b = Vec::new();
            build(&file, file.len(), &b, &rows[..1], None, &dir)
                .unwrap()
                .write_to(&mut out_b)
                .unwrap();
            assert_eq!(out_a, out_b);
            // What the slice-based insert (as the unit tests of the Dashboard pin it) does.
            let want = super::super::table::tests_insert_rows(text.as_bytes(), &rows[..1]);
            assert_eq!(out_a, want);
        }
    }

    #[test]
    fn appended_only() {
        let known = Text::from(b"abc".to_vec());
        let now = Text::from(b"abcdef".to_vec());
        assert!(only_appended(&known, &now, now.len()).unwrap());
        let other = Text::from(b"abX".to_vec());
        assert!(!only_appended(&known, &other, other.len()).unwrap());
        let empty = Text::from(Vec::new());
        assert!(!only_appended(&empty, &now, now.len()).unwrap());
        assert!(only_appended(&empty, &empty, 0).unwrap());
    }
}
