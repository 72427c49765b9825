//! An approval file read only when it is whole: under a read lease where the kernel can
//! tell that nobody has it open for writing, else after a quiet spell and with a check
//! that it did not change while it was read.

use std::io;
use std::time::{Duration, SystemTime};

use ai_employee_vault::atomic::{self, FileId, WritersNow};
use ai_employee_vault::nofollow::{self, Dir, How, Stat};

use super::{arrivals, request};

/// What `stat` says about a file; equal fingerprints (size, times, device and inode) mean
/// unchanged content: the change time cannot be set by users and moves with every write.
#[derive(Debug, Clone, Copy)]
pub struct Fingerprint(Stat);

impl Fingerprint {
    pub fn of(stat: Stat) -> Fingerprint {
        Fingerprint(stat)
    }

    pub fn id(&self) -> FileId {
        (self.0.dev, self.0.ino)
    }

    fn key(&self) -> (u64, i64, i64, FileId) {
        let s = &self.0;
        (s.size, s.mtime_ns, s.ctime_ns, self.id())
    }
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Fingerprint {}

pub enum ReadError {
    Gone,
    Symlink,
    NotRegular,
    TooLarge(u64),
    /// Another process has it open for writing.
    Writing,
    /// Changed too recently, or while it was read (where writers cannot be seen): look
    /// again after this long.
    Unsettled(Duration),
    Io(io::Error),
}

/// Read `name` of `approved` without following a symlink swapped in since it was looked
/// at, without blocking on a FIFO, and only when it is complete: when nobody is writing
/// it. Where the kernel can tell (Linux leases), "nobody has it open for writing" is
/// proven and the text is read under a read lease. Where it cannot (macOS, a file of
/// another user), the file must have been unchanged for `settle` (its change time) and
/// must be unchanged after the read (size, times, inode). Returns its bytes and what
/// `stat` said of it.
pub fn read_approval(
    approved: &Dir,
    name: &str,
    settle: Duration,
) -> Result<(Vec<u8>, Fingerprint), ReadError> {
    let file = approved.file(name, How::READ).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            ReadError::Gone
        } else if nofollow::is_symlink_error(&e) {
            ReadError::Symlink
        } else if e.kind() == io::ErrorKind::InvalidInput {
            ReadError::NotRegular
        } else {
            ReadError::Io(e)
        }
    })?;
    let stat = nofollow::stat_file(&file).map_err(ReadError::Io)?;
    if stat.size > request::MAX_FILE_BYTES {
        return Err(ReadError::TooLarge(stat.size));
    }
    let bytes = match atomic::read_if_no_writers(&file).map_err(ReadError::Io)? {
        WritersNow::None(bytes) => bytes,
        WritersNow::Open => return Err(ReadError::Writing),
        WritersNow::Unknown => read_settled(&file, &stat, settle, SystemTime::now())?,
    };
    if bytes.len() as u64 > request::MAX_FILE_BYTES {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    Ok((bytes, Fingerprint::of(stat)))
}

/// [`read_approval`] where writers cannot be seen: a stability window before the read
/// (`stat` was taken before it), a re-check after it.
fn read_settled(
    file: &std::fs::File,
    stat: &Stat,
    settle: Duration,
    now: SystemTime,
) -> Result<Vec<u8>, ReadError> {
    use std::io::{Read, Seek};
    let quiet = arrivals::quiet_for(stat.changed(), now);
    if quiet < settle {
        return Err(ReadError::Unsettled(settle - quiet));
    }
    let mut bytes = Vec::with_capacity(stat.size as usize);
    let mut f = file;
    f.seek(io::SeekFrom::Start(0)).map_err(ReadError::Io)?;
    f.take(request::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    let after = nofollow::stat_file(file).map_err(ReadError::Io)?;
    if Fingerprint::of(after) != Fingerprint::of(*stat) || bytes.len() as u64 != stat.size {
        return Err(ReadError::Unsettled(settle.max(Duration::from_millis(10))));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsettled(r: Result<Vec<u8>, ReadError>) -> Option<Duration> {
        match r {
            Err(ReadError::Unsettled(d)) => Some(d),
            _ => None,
        }
    }

    /// Where no lease can be had: a stability window (the change time) before the read.
    #[test]
    fn without_leases_a_file_is_read_only_after_settle_unchanged() -> io::Result<()> {
        use std::io::Write;
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("a.md");
        std::fs::write(&p, "text\n")?;
        let f = std::fs::File::open(&p)?;
        let meta = nofollow::stat_file(&f)?;
        let settle = Duration::from_secs(60);
        // Just written: not yet.
        let wait = unsettled(read_settled(&f, &meta, settle, SystemTime::now()));
        assert!(wait.is_some_and(|w| w > Duration::from_secs(50) && w <= settle));
        // A minute later, unchanged: read.
        let later = SystemTime::now() + settle;
        assert_eq!(
            read_settled(&f, &meta, settle, later).ok().as_deref(),
            Some(&b"text\n"[..])
        );
        // Changed since `meta` was taken (a writer went on): not trusted, looked at again.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)?
            .write_all(b"more\n")?;
        assert!(unsettled(read_settled(&f, &meta, settle, later)).is_some());
        Ok(())
    }
}
