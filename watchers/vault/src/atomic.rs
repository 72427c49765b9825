//! Atomic writes of user-owned files: temp file in the same folder, fsync, rename, fsync
//! of the folder. A reader never sees half a file. (Owned by the vault helper.)
//!
//! Also the two platform primitives the Dashboard merge needs ([`exchange`] and
//! [`wait_sole_opener`]); the Linux and macOS differences live in small `cfg`'d functions
//! at the bottom of this file.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// Write `bytes` to `path` atomically, replacing what is there.
///
/// An existing file keeps its permission bits; a new file is created `0600`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    if let Ok(meta) = std::fs::metadata(path) {
        tmp.as_file().set_permissions(meta.permissions())?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Create `path` with `bytes` only if it does not exist (atomically: a reader sees nothing
/// or everything). Returns whether it was created.
pub fn create_new(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    use std::io::Write;
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    match tmp.persist_noclobber(path) {
        Ok(_) => {
            sync_dir(dir)?;
            Ok(true)
        }
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error),
    }
}

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
    sys::exchange(a, b)
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
    match sys::take_lease(file, LeaseKind::Read) {
        Lease::Acquired => {
            let r = read_all(file);
            sys::release_lease(file);
            Ok(WritersNow::None(r?))
        }
        Lease::Busy => Ok(WritersNow::Open),
        Lease::Unsupported => Ok(WritersNow::Unknown),
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
        match sys::take_lease(file, kind) {
            Lease::Acquired => {
                let r = f();
                sys::release_lease(file);
                return Some(r);
            }
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

#[derive(Clone, Copy)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
enum LeaseKind {
    /// Granted only when nobody else has the file open for writing (read-only fd).
    Read,
    /// Granted only when nobody else has the file open at all.
    Write,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
enum Lease {
    /// Granted and held: give it back with `release_lease`.
    Acquired,
    /// Another open file description stands in the way.
    Busy,
    /// Leases do not work here.
    Unsupported,
}

/// A path as a C string for the raw syscalls.
pub(crate) fn c_path(p: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

#[cfg(target_os = "linux")]
mod sys {
    use super::{Lease, LeaseKind, c_path};
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// `renameat2(RENAME_EXCHANGE)` through the raw syscall (the glibc wrapper only exists
    /// since 2.28).
    pub fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
        renameat2(a, b, libc::RENAME_EXCHANGE)
    }

    /// `renameat2(from, to, flags)` through the raw syscall (the glibc wrapper only exists
    /// since 2.28). `Ok(false)`: the flag is not supported here (old kernel, or a
    /// filesystem without it).
    pub fn renameat2(a: &Path, b: &Path, flags: libc::c_uint) -> io::Result<bool> {
        let (a, b) = (c_path(a)?, c_path(b)?);
        // SAFETY: both pointers are valid NUL-terminated strings for the call's duration.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                flags,
            )
        };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // Old kernel, or a filesystem without the flag.
            Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(false),
            _ => Err(e),
        }
    }

    /// `F_SETSIG` (10 on every Linux architecture; missing from the libc crate for glibc).
    const F_SETSIG: libc::c_int = 10;

    /// Take a lease on `file`. The kernel grants a write lease only when no other open
    /// file description of the inode exists (checked empirically: `O_RDONLY`, `O_WRONLY`
    /// and `O_RDWR` all work when they are the only one; a second descriptor of any mode,
    /// in any process, gives `EAGAIN`), and a read lease (read-only descriptor) only when
    /// nobody has it open for writing. Needs the file's owner or `CAP_LEASE` (else
    /// `EACCES`).
    pub fn take_lease(file: &File, kind: LeaseKind) -> Lease {
        let fd = file.as_raw_fd();
        let arg = match kind {
            LeaseKind::Read => libc::F_RDLCK,
            LeaseKind::Write => libc::F_WRLCK,
        };
        // While the lease is held, another process opening the file (for writing, for a
        // read lease) waits until we give it back, and we are told with SIGIO, whose
        // default action kills the process. Make that signal SIGURG (ignored by default).
        // SAFETY: plain fcntl calls on a descriptor we own.
        unsafe {
            libc::fcntl(fd, F_SETSIG, libc::SIGURG);
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETLEASE, arg) } == 0 {
            return Lease::Acquired;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EBUSY) => Lease::Busy,
            _ => Lease::Unsupported,
        }
    }

    pub fn release_lease(file: &File) {
        // SAFETY: a plain fcntl call on a descriptor we own.
        unsafe {
            libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
        }
    }
}

#[cfg(target_os = "macos")]
mod sys {
    use super::{Lease, LeaseKind, c_path};
    use std::fs::File;
    use std::io;
    use std::path::Path;

    /// `renamex_np(RENAME_SWAP)` (APFS; HFS+ answers `ENOTSUP`).
    pub fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
        let (a, b) = (c_path(a)?, c_path(b)?);
        // SAFETY: both pointers are valid NUL-terminated strings for the call's duration.
        let r = unsafe { libc::renamex_np(a.as_ptr(), b.as_ptr(), libc::RENAME_SWAP) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOTSUP) | Some(libc::EINVAL) => Ok(false),
            _ => Err(e),
        }
    }

    /// No leases on macOS.
    pub fn take_lease(_file: &File, _kind: LeaseKind) -> Lease {
        Lease::Unsupported
    }

    pub fn release_lease(_file: &File) {}
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod sys {
    use super::{Lease, LeaseKind};
    use std::fs::File;
    use std::io;
    use std::path::Path;

    pub fn exchange(_a: &Path, _b: &Path) -> io::Result<bool> {
        Ok(false)
    }

    pub fn take_lease(_file: &File, _kind: LeaseKind) -> Lease {
        Lease::Unsupported
    }

    pub fn release_lease(_file: &File) {}
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
    fn write_atomic_keeps_the_mode_of_an_existing_file() -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f.md");
        std::fs::write(&p, "old")?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640))?;
        write_atomic(&p, b"new")?;
        assert_eq!(std::fs::read_to_string(&p)?, "new");
        assert_eq!(std::fs::metadata(&p)?.permissions().mode() & 0o7777, 0o640);
        Ok(())
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

    #[test]
    #[cfg(target_os = "linux")]
    fn sole_opener_is_proven_only_without_other_descriptors() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        std::fs::write(&p, "x")?;
        let f = File::open(&p)?;
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
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        std::fs::write(&p, "text\n")?;
        let f = File::open(&p)?;
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
    fn read_if_no_writers_reads_only_without_a_writer() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        std::fs::write(&p, "text\n")?;
        let f = File::open(&p)?;
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
