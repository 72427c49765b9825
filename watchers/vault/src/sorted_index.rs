//! The compacted part of a ledger: fixed-size records sorted by a 16-byte key (a
//! truncated SHA-256), in one file that is only ever replaced whole. It is never loaded
//! into memory: a lookup is a binary search with `pread` (about 20 reads of one record
//! for a million), so the watcher's memory does not grow with the ledger.
//!
//! ```text
//! magic (8 bytes) | record length (u32 LE) | 0 (u32) | record count (u64 LE) | records…
//! ```
//!
//! [`SortedIndex::merge`] writes `<file>.tmp` (the old records and the new ones merged in
//! one pass; a new record replaces an old one with the same key), fsyncs it, renames it
//! over the file and fsyncs the folder. A crash leaves the old file or the new one,
//! complete; a left-over `.tmp` is deleted at open.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::nofollow::{Dir, How, Replace};

/// Length of a record's key.
pub const KEY_LEN: usize = 16;
const HEADER_LEN: u64 = 24;

/// The first 16 bytes of SHA-256 of `bytes`: 2^64 work to find a collision, so two keys
/// that differ are never taken for the same one.
pub fn key_of(bytes: &[u8]) -> [u8; KEY_LEN] {
    let digest = Sha256::digest(bytes);
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&digest[..KEY_LEN]);
    key
}

#[derive(Debug)]
pub struct SortedIndex {
    /// The folder it lives in, reached without following a symlink.
    dir: Dir,
    name: OsString,
    /// For messages only.
    path: PathBuf,
    magic: [u8; 8],
    record_len: usize,
    /// None while the file does not exist (no record yet).
    file: Option<File>,
    count: u64,
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: {what} (the file is damaged; restore it from a backup, or delete it to forget what it remembers)",
            path.display()
        ),
    )
}

fn tmp_name(name: &OsStr) -> OsString {
    let mut s = name.to_os_string();
    s.push(".tmp");
    s
}

impl SortedIndex {
    /// Open the index `name` in `dir` (missing: empty), checking its header and length.
    /// A symlink in its place is refused.
    pub fn open(
        dir: &Dir,
        name: impl AsRef<OsStr>,
        magic: [u8; 8],
        record_len: usize,
    ) -> io::Result<SortedIndex> {
        let name = name.as_ref();
        match dir.remove_file(tmp_name(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let path = dir.display_path(name);
        let path = path.as_path();
        let mut index = SortedIndex {
            dir: dir.try_clone()?,
            name: name.to_os_string(),
            path: path.to_path_buf(),
            magic,
            record_len,
            file: None,
            count: 0,
        };
        let mut file = match dir.file(name, How::READ) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(index),
            Err(e) => return Err(e),
        };
        let mut header = [0u8; HEADER_LEN as usize];
        if file.read_exact(&mut header).is_err() {
            return Err(invalid(path, "shorter than its header"));
        }
        let field = |at: usize, len: usize| -> u64 {
            let mut b = [0u8; 8];
            b[..len].copy_from_slice(&header[at..at + len]);
            u64::from_le_bytes(b)
        };
        if header[..8] != magic {
            return Err(invalid(path, "not a ledger index of this kind"));
        }
        if field(8, 4) != record_len as u64 {
            return Err(invalid(path, "records of another length"));
        }
        let count = field(16, 8);
        let want = count
            .checked_mul(record_len as u64)
            .and_then(|n| n.checked_add(HEADER_LEN));
        if want != Some(file.metadata()?.len()) {
            return Err(invalid(path, "its length does not match its record count"));
        }
        index.file = Some(file);
        index.count = count;
        Ok(index)
    }

    /// Where it is (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many records it holds.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn read(&self, file: &File, i: u64, buf: &mut [u8]) -> io::Result<()> {
        file.read_exact_at(buf, HEADER_LEN + i * self.record_len as u64)
    }

    /// The record with `key`, if any.
    pub fn find(&self, key: &[u8; KEY_LEN]) -> io::Result<Option<Vec<u8>>> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let mut buf = vec![0u8; self.record_len];
        let (mut lo, mut hi) = (0u64, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            self.read(file, mid, &mut buf)?;
            match buf[..KEY_LEN].cmp(&key[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(Some(buf)),
            }
        }
        Ok(None)
    }

    /// Merge `new` (records of `record_len` bytes; any order, duplicates allowed: the
    /// last one for a key wins) into the index, atomically. Also checks that the old
    /// records are in order.
    pub fn merge<R: AsRef<[u8]>>(&mut self, new: Vec<R>) -> io::Result<()> {
        self.merge_records(new.iter().map(AsRef::as_ref).collect())
    }

    /// [`SortedIndex::merge`]'s body, compiled once rather than once per record type.
    fn merge_records(&mut self, mut new: Vec<&[u8]>) -> io::Result<()> {
        if new.iter().any(|r| r.len() != self.record_len) {
            return Err(io::Error::other("a ledger record of the wrong length"));
        }
        // Stable: of records with one key, the last given stays last.
        new.sort_by(|a, b| a[..KEY_LEN].cmp(&b[..KEY_LEN]));
        let last_of_key = |i: usize| {
            new.get(i + 1)
                .is_none_or(|n| n[..KEY_LEN] != new[i][..KEY_LEN])
        };
        let unique: Vec<&[u8]> = (0..new.len())
            .filter(|&i| last_of_key(i))
            .map(|i| new[i])
            .collect();
        let tmp = tmp_name(&self.name);
        let out = self.dir.file(&tmp, How::truncate(0o600))?;
        let mut w = BufWriter::with_capacity(1 << 16, out);
        w.write_all(&[0u8; HEADER_LEN as usize])?;
        let mut count = 0u64;
        let mut old = match &self.file {
            Some(f) => {
                let mut f = f.try_clone()?;
                f.seek(io::SeekFrom::Start(HEADER_LEN))?;
                Some(BufReader::with_capacity(1 << 16, f))
            }
            None => None,
        };
        let mut left = self.count;
        let mut current = vec![0u8; self.record_len];
        let mut previous: Option<Vec<u8>> = None;
        let mut next_old = |buf: &mut Vec<u8>| -> io::Result<bool> {
            if left == 0 {
                return Ok(false);
            }
            let Some(r) = old.as_mut() else {
                return Ok(false);
            };
            r.read_exact(buf)?;
            left -= 1;
            if previous
                .as_ref()
                .is_some_and(|p| p[..KEY_LEN] >= buf[..KEY_LEN])
            {
                return Err(invalid(&self.path, "records out of order"));
            }
            previous = Some(buf.clone());
            Ok(true)
        };
        let mut have_old = next_old(&mut current)?;
        let mut new_iter = unique.into_iter().peekable();
        loop {
            let take_new = match (have_old, new_iter.peek()) {
                (false, None) => break,
                (false, Some(_)) => true,
                (true, None) => false,
                (true, Some(n)) => n[..KEY_LEN] <= current[..KEY_LEN],
            };
            if take_new {
                let Some(n) = new_iter.next() else { break };
                if have_old && n[..KEY_LEN] == current[..KEY_LEN] {
                    // Replaced by the new record.
                    have_old = next_old(&mut current)?;
                }
                w.write_all(n)?;
            } else {
                w.write_all(&current)?;
                have_old = next_old(&mut current)?;
            }
            count += 1;
        }
        let out = w.into_inner().map_err(io::IntoInnerError::into_error)?;
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(&self.magic);
        header[8..12].copy_from_slice(&(self.record_len as u32).to_le_bytes());
        header[16..24].copy_from_slice(&count.to_le_bytes());
        out.write_all_at(&header, 0)?;
        out.sync_all()?;
        drop(out);
        self.dir.rename(&tmp, &self.dir, &self.name, Replace::Yes)?;
        self.dir.sync()?;
        self.file = Some(self.dir.file(&self.name, How::READ)?);
        self.count = count;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 8] = *b"AIETEST1";

    fn rec(key: u32, value: u8) -> Vec<u8> {
        let mut r = key_of(&key.to_le_bytes()).to_vec();
        r.push(value);
        r
    }

    #[test]
    fn merges_find_and_survive_reopen() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = Dir::open(dir.path())?;
        let mut ix = SortedIndex::open(&d, "x.index", MAGIC, KEY_LEN + 1)?;
        assert_eq!(ix.find(&key_of(b"nothing"))?, None);
        ix.merge((0..1000).map(|k| rec(k, 1)).collect())?;
        // Replace some, add some, with duplicates inside the batch (the last wins).
        let mut more: Vec<Vec<u8>> = (500..1500).map(|k| rec(k, 2)).collect();
        more.push(rec(7, 3));
        more.push(rec(7, 4));
        ix.merge(more)?;
        assert_eq!(ix.len(), 1500);
        let ix = SortedIndex::open(&d, "x.index", MAGIC, KEY_LEN + 1)?;
        assert_eq!(ix.len(), 1500);
        for k in 0..1500u32 {
            let want = match k {
                7 => 4,
                k if k < 500 => 1,
                _ => 2,
            };
            assert_eq!(
                ix.find(&key_of(&k.to_le_bytes()))?,
                Some(rec(k, want)),
                "{k}"
            );
        }
        assert_eq!(ix.find(&key_of(&5000u32.to_le_bytes()))?, None);
        Ok(())
    }

    #[test]
    fn a_damaged_file_is_refused_and_a_stale_tmp_removed() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("x.index");
        let d = Dir::open(dir.path())?;
        let mut ix = SortedIndex::open(&d, "x.index", MAGIC, KEY_LEN + 1)?;
        ix.merge((0..10).map(|k| rec(k, 1)).collect())?;
        std::fs::write(dir.path().join("x.index.tmp"), b"half")?;
        assert!(SortedIndex::open(&d, "x.index", MAGIC, KEY_LEN + 1).is_ok());
        assert!(!dir.path().join("x.index.tmp").exists());
        assert!(SortedIndex::open(&d, "x.index", *b"AIEOTHER", KEY_LEN + 1).is_err());
        assert!(SortedIndex::open(&d, "x.index", MAGIC, KEY_LEN + 2).is_err());
        let f = std::fs::OpenOptions::new().append(true).open(&p)?;
        f.set_len(f.metadata()?.len() - 1)?;
        let e = SortedIndex::open(&d, "x.index", MAGIC, KEY_LEN + 1).err();
        assert!(
            e.is_some_and(|e| e.to_string().contains("does not match")),
            "a cut file must be refused"
        );
        Ok(())
    }
}
