//! What the program does by path around atomic writes (the writes themselves are
//! `nofollow::Dir::write_atomic` / `create_new`, through folder descriptors): fsync of a
//! folder, the folder of a path, renames by path. Also what the Dashboard merge, the
//! approval handler and the filesystem watcher learn from leases: whether anybody else has a file open ([`wait_sole_opener`], [`writers`],
//! [`read_without_writers`], [`read_if_no_writers`]). The leases themselves, and every
//! other system call, are in [`crate::sys`].

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::sys::{self, At, Lease, LeaseKind};

/// fsync a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The folder `path` lives in (`.` for a bare file name, where `Path::parent` says "").
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The identity of a file: device and inode.
pub type FileId = (u64, u64);

/// [`FileId`] of an open file.
pub fn file_id(f: &File) -> io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    Ok((m.dev(), m.ino()))
}

/// [`FileId`] of what `path` names right now (a symlink itself, not its target).
pub fn path_id(path: &Path) -> io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// Atomically swap the files named `a` and `b` (same filesystem; both must exist).
///
/// `Ok(true)`: swapped. `Ok(false)`: this platform or filesystem cannot swap (the caller
/// falls back to a plain rename); nothing was changed. `Err`: e.g. `NotFound` when one
/// of the names is gone.
pub fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    sys::exchange(At::path(a), At::path(b))
}

/// How a wait for other openers ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sole {
    /// Proven with a Linux lease (see the functions using it).
    Proven,
    /// Not provable here (no leases: not Linux, a filesystem without them, or a file owned
    /// by someone else without `CAP_LEASE`), or the other opener did not go away within
    /// the time limit. The size was then watched until it stayed unchanged for a short
    /// window: an active writer was very probably seen, but not provably.
    Settled,
}

/// Wait until no other process has `file` open, at most about `limit` (then watch the size
/// for a short stability window instead).
///
/// `file` must be the caller's only open descriptor for that file (another one, even in
/// this process, counts as "someone else"); any open mode works. Used on a file the
/// caller has just unlinked or swapped away, to know that late `O_APPEND` writers (which
/// opened it before it lost its name) are done with it: once nobody has it open and it
/// has no name, no write can land on it any more.
pub fn wait_sole_opener(file: &File, limit: Duration) -> Sole {
    match with_lease(file, LeaseKind::Write, limit, || ()) {
        Some(()) => Sole::Proven,
        None => {
            wait_size_stable(file);
            Sole::Settled
        }
    }
}

/// Read all of `file` (from the start) at an instant when nobody has it open for
/// writing, waiting for that at most about `limit`: the text cannot be half of what a
/// writer that truncates and rewrites in place is writing, nor an append half done.
///
/// On Linux the read happens under a read lease: a writer opening the file meanwhile
/// waits the few microseconds until the read is done. `file` must be open read-only. Where
/// that cannot be proven (see [`Sole::Settled`]) the size is watched for a short stability
/// window before reading. Returns the text and which of the two it was.
pub fn read_without_writers(file: &File, limit: Duration) -> io::Result<(Vec<u8>, Sole)> {
    read_without_writers_with(file, limit, read_all)
}

/// [`read_without_writers`] with the caller's way of reading (e.g. into a private copy
/// instead of memory).
pub fn read_without_writers_with<T>(
    file: &File,
    limit: Duration,
    read: impl Fn(&File) -> io::Result<T>,
) -> io::Result<(T, Sole)> {
    match with_lease(file, LeaseKind::Read, limit, || read(file)) {
        Some(r) => Ok((r?, Sole::Proven)),
        None => {
            wait_size_stable(file);
            Ok((read(file)?, Sole::Settled))
        }
    }
}

/// What one look at a file's writers found ([`read_if_no_writers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WritersNow {
    /// Nobody had it open for writing (proven with a read lease); the whole text, read
    /// under that lease.
    None(Vec<u8>),
    /// Somebody has it open for writing right now (proven); nothing was read.
    Open,
    /// Cannot tell here (see [`Sole::Settled`]); nothing was read.
    Unknown,
}

/// Read all of `file` (from the start) if, at this instant, nobody has it open for
/// writing; never waits. The read happens under a Linux read lease, so a writer that opens
/// the file meanwhile waits until it is done: the text is never half of a write in
/// progress. `file` must be open read-only. Callers that cannot tell ([`WritersNow::Unknown`])
/// judge completeness some other way (a stability window).
pub fn read_if_no_writers(file: &File) -> io::Result<WritersNow> {
    match sys::lease(file, LeaseKind::Read) {
        Lease::Held(held) => {
            let r = read_all(file);
            drop(held);
            Ok(WritersNow::None(r?))
        }
        Lease::Busy => Ok(WritersNow::Open),
        Lease::Unsupported => Ok(WritersNow::Unknown),
    }
}

/// Whether some process has a file open for writing ([`writers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// Proven: nobody has it open for writing (a read lease was granted).
    None,
    /// Proven: somebody has it open for writing.
    Open,
    /// Cannot tell here (see [`Sole::Settled`]).
    Unknown,
}

/// [`Writers`] of `file` at this instant (`file` must be open read-only): a read lease
/// taken and given back at once, so a writer opening the file meanwhile waits
/// microseconds at most.
pub fn writers(file: &File) -> Writers {
    match sys::lease(file, LeaseKind::Read) {
        Lease::Held(_) => Writers::None,
        Lease::Busy => Writers::Open,
        Lease::Unsupported => Writers::Unknown,
    }
}

/// The whole content of `f`, from the start (moves its offset).
pub fn read_all(mut f: &File) -> io::Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let mut buf = Vec::new();
    f.seek(io::SeekFrom::Start(0))?;
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Take a lease on `file` (retrying while others stand in the way, polling tightly, for
/// at most about `limit`), run `f` while holding it, give it back. `None` when no lease
/// could be had (unsupported, or still others after `limit`).
fn with_lease<T>(
    file: &File,
    kind: LeaseKind,
    limit: Duration,
    f: impl FnOnce() -> T,
) -> Option<T> {
    let end = Instant::now() + limit;
    let mut pause = Duration::from_micros(20);
    loop {
        match sys::lease(file, kind) {
            Lease::Held(_held) => return Some(f()),
            Lease::Busy if Instant::now() < end => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_micros(250));
            }
            Lease::Busy | Lease::Unsupported => return None,
        }
    }
}

/// Watch the size of `file` until it has not changed for 20 ms (at most 250 ms).
fn wait_size_stable(file: &File) {
    const WINDOW: Duration = Duration::from_millis(20);
    const MAX: Duration = Duration::from_millis(250);
    let start = Instant::now();
    let size = |f: &File| f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut last = size(file);
    let mut since = Instant::now();
    while start.elapsed() < MAX {
        std::thread::sleep(Duration::from_millis(2));
        let now = size(file);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= WINDOW {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_of_a_bare_name_is_the_current_folder() {
        assert_eq!(parent_dir(Path::new("Dashboard.md")), Path::new("."));
        assert_eq!(parent_dir(Path::new("v/Dashboard.md")), Path::new("v"));
    }

    #[test]
    fn exchange_swaps_two_names() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "A")?;
        std::fs::write(&b, "B")?;
        if exchange(&a, &b)? {
            assert_eq!(std::fs::read_to_string(&a)?, "B");
            assert_eq!(std::fs::read_to_string(&b)?, "A");
        }
        std::fs::remove_file(&b)?;
        if cfg!(any(target_os = "linux", target_os = "macos")) {
            assert_eq!(
                exchange(&a, &b).map_err(|e| e.kind()),
                Err(io::ErrorKind::NotFound)
            );
        }
        Ok(())
    }

    /// A file `f` with `text` in a temporary folder, and the file open read-only.
    #[cfg(target_os = "linux")]
    fn file_with(text: &str) -> io::Result<(tempfile::TempDir, std::path::PathBuf, File)> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        std::fs::write(&p, text)?;
        let f = File::open(&p)?;
        Ok((dir, p, f))
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn sole_opener_is_proven_only_without_other_descriptors() -> io::Result<()> {
        let (_dir, p, f) = file_with("x")?;
        assert_eq!(
            wait_sole_opener(&f, Duration::from_millis(100)),
            Sole::Proven
        );
        let other = std::fs::OpenOptions::new().append(true).open(&p)?;
        let t = Instant::now();
        assert_eq!(
            wait_sole_opener(&f, Duration::from_millis(50)),
            Sole::Settled
        );
        assert!(t.elapsed() >= Duration::from_millis(50));
        drop(other);
        assert_eq!(
            wait_sole_opener(&f, Duration::from_millis(100)),
            Sole::Proven
        );
        Ok(())
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn reads_without_writers_only_when_no_one_writes() -> io::Result<()> {
        let (_dir, p, f) = file_with("text\n")?;
        let _reader = File::open(&p)?;
        let got = read_without_writers(&f, Duration::from_millis(100))?;
        assert_eq!(got, (b"text\n".to_vec(), Sole::Proven));
        let _writer = std::fs::OpenOptions::new().append(true).open(&p)?;
        let t = Instant::now();
        let got = read_without_writers(&f, Duration::from_millis(50))?;
        assert_eq!(got.1, Sole::Settled);
        assert!(t.elapsed() >= Duration::from_millis(50));
        Ok(())
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn writers_sees_an_open_writer() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        let w = std::fs::File::create(&p)?;
        let r = File::open(&p)?;
        // Leases may be unavailable (another owner without CAP_LEASE, or disabled).
        let open = writers(&r);
        assert!(matches!(open, Writers::Open | Writers::Unknown), "{open:?}");
        drop(w);
        let closed = writers(&r);
        if open == Writers::Open {
            assert_eq!(closed, Writers::None);
        }
        Ok(())
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn read_if_no_writers_reads_only_without_a_writer() -> io::Result<()> {
        let (_dir, p, f) = file_with("text\n")?;
        let _reader = File::open(&p)?;
        assert_eq!(
            read_if_no_writers(&f)?,
            WritersNow::None(b"text\n".to_vec())
        );
        let writer = std::fs::OpenOptions::new().append(true).open(&p)?;
        assert_eq!(read_if_no_writers(&f)?, WritersNow::Open);
        drop(writer);
        assert_eq!(
            read_if_no_writers(&f)?,
            WritersNow::None(b"text\n".to_vec())
        );
        Ok(())
    }
}
