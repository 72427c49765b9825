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

/// How [`wait_sole_opener`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sole {
    /// Proven (Linux lease): nobody else had the file open at one instant after the call
    /// started. If the file has no name left, no write can land on it any more.
    Proven,
    /// Not provable here (no leases: not Linux, a filesystem without them, or a file owned
    /// by someone else without `CAP_LEASE`), or someone kept the file open past the time
    /// limit. The size was then watched until it stayed unchanged for a short window:
    /// a writer that is still active was very probably seen, but not provably.
    Settled,
}

/// Wait until no other process has `file` open, at most about `limit` (then watch the size
/// for a short stability window instead).
///
/// `file` must be the caller's only open descriptor for that file (another one, even in
/// this process, counts as "someone else"); any open mode works. Used on a file the
/// caller has just unlinked or swapped away, to know that late `O_APPEND` writers (which
/// opened it before it lost its name) are done with it.
pub fn wait_sole_opener(file: &File, limit: Duration) -> Sole {
    let end = Instant::now() + limit;
    let mut pause = Duration::from_micros(50);
    loop {
        match sys::try_write_lease(file) {
            Lease::Acquired => return Sole::Proven,
            Lease::Busy if Instant::now() < end => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            Lease::Busy | Lease::Unsupported => {
                wait_size_stable(file);
                return Sole::Settled;
            }
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

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
enum Lease {
    /// A write lease was granted (and released again at once).
    Acquired,
    /// Another open file description exists.
    Busy,
    /// Leases do not work here.
    Unsupported,
}

/// A path as a C string for the raw syscalls.
fn c_path(p: &Path) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

#[cfg(target_os = "linux")]
mod sys {
    use super::{Lease, c_path};
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// `renameat2(RENAME_EXCHANGE)` through the raw syscall (the glibc wrapper only exists
    /// since 2.28).
    pub fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
        let (a, b) = (c_path(a)?, c_path(b)?);
        // SAFETY: both pointers are valid NUL-terminated strings for the call's duration.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
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

    /// Try to take a write lease on `file`, and give it back at once. The kernel grants it
    /// only when no other open file description of the inode exists (checked empirically:
    /// `O_RDONLY`, `O_WRONLY` and `O_RDWR` all work when they are the only one; a second
    /// descriptor of any mode, in any process, gives `EAGAIN`). Needs the file's owner or
    /// `CAP_LEASE` (else `EACCES`).
    pub fn try_write_lease(file: &File) -> Lease {
        let fd = file.as_raw_fd();
        // A lease break is announced with SIGIO, whose default action kills the process.
        // The file has no name left when this is used, so nobody should open it, but make
        // sure a break could only ever deliver SIGURG (ignored by default).
        // SAFETY: plain fcntl calls on a descriptor we own.
        unsafe {
            libc::fcntl(fd, F_SETSIG, libc::SIGURG);
        }
        // SAFETY: as above.
        let r = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_WRLCK) };
        if r == 0 {
            // SAFETY: as above.
            unsafe {
                libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK);
            }
            return Lease::Acquired;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EBUSY) => Lease::Busy,
            _ => Lease::Unsupported,
        }
    }
}

#[cfg(target_os = "macos")]
mod sys {
    use super::{Lease, c_path};
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
    pub fn try_write_lease(_file: &File) -> Lease {
        Lease::Unsupported
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod sys {
    use super::Lease;
    use std::fs::File;
    use std::io;
    use std::path::Path;

    pub fn exchange(_a: &Path, _b: &Path) -> io::Result<bool> {
        Ok(false)
    }

    pub fn try_write_lease(_file: &File) -> Lease {
        Lease::Unsupported
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
}
