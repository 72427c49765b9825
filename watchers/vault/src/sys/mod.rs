//! Every file-system system call the workspace makes beyond `std`, behind a safe, typed
//! API: the one home for `unsafe` on files, and the only module that calls `libc` or
//! `nix` for them.
//!
//! It carries out calls and decides nothing: which flags a vault file is opened with,
//! how a refused symlink is explained, when a batch is durable enough, is for the callers
//! (`nofollow`, `atomic`, `lock`, `oauth`, the filesystem watcher). Folders are
//! passed as descriptors and names as single components ([`At`]; a whole path only
//! where the caller says so with [`At::path`]), so a call never resolves a path the
//! caller did not mean.
//!
//! What is the same on Linux and macOS is in this file; what differs is in `linux.rs`
//! and `macos.rs`, chosen once below. A call a platform or a file system does not have
//! says so (`Ok(false)`, [`Lease::Unsupported`], [`io::ErrorKind::Unsupported`]); it
//! never reports a success it did not have.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{UnlinkatFlags, Whence};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as os;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as os;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
compile_error!("the vault's file-system calls are written for Linux and macOS");

#[cfg(test)]
mod tests;

/// What a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

/// `lstat` of a name (a symlink itself, never its target), or `fstat` of an open file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    pub size: u64,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// Allocated 512-byte blocks.
    pub blocks: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Stat {
    /// The field types of `struct stat` differ between Linux and macOS; the casts make
    /// them one.
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    fn of(s: &FileStat) -> Stat {
        let fmt = SFlag::from_bits_truncate(s.st_mode as _) & SFlag::S_IFMT;
        let kind = if fmt == SFlag::S_IFREG {
            Kind::File
        } else if fmt == SFlag::S_IFDIR {
            Kind::Dir
        } else if fmt == SFlag::S_IFLNK {
            Kind::Symlink
        } else {
            Kind::Other
        };
        let ns = |sec: i64, nsec: i64| sec.saturating_mul(1_000_000_000).saturating_add(nsec);
        Stat {
            kind,
            size: u64::try_from(s.st_size).unwrap_or(0),
            mode: (s.st_mode as u32) & 0o7777,
            dev: s.st_dev as u64,
            ino: s.st_ino as u64,
            nlink: s.st_nlink as u64,
            blocks: u64::try_from(s.st_blocks).unwrap_or(0),
            mtime_ns: ns(s.st_mtime as i64, s.st_mtime_nsec as i64),
            ctime_ns: ns(s.st_ctime as i64, s.st_ctime_nsec as i64),
        }
    }

    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }

    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    /// The modification time.
    pub fn modified(&self) -> SystemTime {
        let t = Duration::from_nanos(u64::try_from(self.mtime_ns).unwrap_or(0));
        SystemTime::UNIX_EPOCH + t
    }

    /// The change time.
    pub fn changed(&self) -> SystemTime {
        let t = Duration::from_nanos(u64::try_from(self.ctime_ns).unwrap_or(0));
        SystemTime::UNIX_EPOCH + t
    }
}

/// A name in a folder: what the `*at` calls take. The name is one component, except
/// in [`At::path`].
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub dir: BorrowedFd<'a>,
    pub name: &'a OsStr,
}

impl<'a> At<'a> {
    pub fn new(dir: BorrowedFd<'a>, name: &'a OsStr) -> At<'a> {
        At { dir, name }
    }

    /// `path` resolved as the kernel does from the current folder (following symlinks).
    pub fn path(path: &'a Path) -> At<'a> {
        At::new(nix::fcntl::AT_FDCWD, path.as_os_str())
    }
}

/// How a folder is opened to walk through it: read-only, close-on-exec, and never a
/// symlink.
pub const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOFOLLOW);

// ---- Opening ----------------------------------------------------------------------------

/// `open(path, flags)`: `path` is resolved as the kernel does, following symlinks (for
/// what the user named: the vault root, a folder given on the command line).
pub fn open(path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(path, flags, Mode::empty())?)
}

/// `openat`: one name, resolved as `flags` say (with `O_NOFOLLOW` a symlink there is
/// refused with `ELOOP`).
pub fn open_at(at: At<'_>, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::openat(at.dir, at.name, flags, mode_of(mode))?)
}

/// Open the relative path made of `parts` (normal components only: the caller refused
/// `..`, absolute paths and empty names) beneath `dir`, following no symlink in any
/// component (`ELOOP`, or `ENOTDIR` for a folder that is a link to a file). On Linux one
/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, on macOS one `O_NOFOLLOW_ANY`
/// `openat`; where those are missing, one `O_NOFOLLOW` `openat` per component. No parts
/// is `dir` itself.
pub fn open_beneath(
    dir: BorrowedFd<'_>,
    parts: &[&OsStr],
    flags: OFlag,
    mode: u32,
) -> io::Result<OwnedFd> {
    let flags = flags | OFlag::O_NOFOLLOW;
    match parts {
        [] => open_at(At::new(dir, OsStr::new(".")), flags, mode),
        [one] => open_at(At::new(dir, one), flags, mode),
        _ => {
            let rel: PathBuf = parts.iter().collect();
            match os::open_in(dir, &rel, flags, mode_of(mode)) {
                Err(e) if os::NO_SINGLE_CALL.contains(&e) => {
                    per_component(dir, parts, flags, mode_of(mode))
                }
                r => Ok(r?),
            }
        }
    }
}

/// One `O_NOFOLLOW` `openat` per component: the way beneath `dir` where the kernel has
/// no single call for it.
fn per_component(
    dir: BorrowedFd<'_>,
    parts: &[&OsStr],
    flags: OFlag,
    mode: Mode,
) -> io::Result<OwnedFd> {
    let Some((last, folders)) = parts.split_last() else {
        return Ok(nix::fcntl::openat(dir, ".", flags, mode)?);
    };
    let mut cur: Option<OwnedFd> = None;
    for f in folders {
        let at = cur.as_ref().map_or(dir, |fd| fd.as_fd());
        cur = Some(nix::fcntl::openat(at, *f, DIR_FLAGS, Mode::empty())?);
    }
    let at = cur.as_ref().map_or(dir, |fd| fd.as_fd());
    Ok(nix::fcntl::openat(
        at,
        *last,
        flags | OFlag::O_NOFOLLOW,
        mode,
    )?)
}

/// Clear `O_NONBLOCK` (a descriptor opened non-blocking, so that a FIFO could not block
/// the open, becomes an ordinary one).
pub fn set_blocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let fl = nix::fcntl::fcntl(fd, FcntlArg::F_GETFL)?;
    let fl = OFlag::from_bits_truncate(fl) - OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(fd, FcntlArg::F_SETFL(fl))?;
    Ok(())
}

// ---- Names in a folder ------------------------------------------------------------------

/// `mkdirat` with `mode` (before the umask). An existing name is `AlreadyExists`.
pub fn make_dir_at(at: At<'_>, mode: u32) -> io::Result<()> {
    Ok(nix::sys::stat::mkdirat(at.dir, at.name, mode_of(mode))?)
}

/// `fstat` of an open file or folder.
pub fn stat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    Ok(Stat::of(&nix::sys::stat::fstat(fd)?))
}

/// `fstatat(AT_SYMLINK_NOFOLLOW)`: a symlink is reported as one.
pub fn stat_at(at: At<'_>) -> io::Result<Stat> {
    let st = nix::sys::stat::fstatat(at.dir, at.name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    Ok(Stat::of(&st))
}

/// `fchmod(fd, mode)`.
pub fn chmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(nix::sys::stat::fchmod(fd, mode_of(mode))?)
}

/// `readlinkat`: the target of a symlink.
pub fn read_link_at(at: At<'_>) -> io::Result<PathBuf> {
    Ok(PathBuf::from(nix::fcntl::readlinkat(at.dir, at.name)?))
}

/// The names in the folder `dir` (not `.` and `..`), unsorted, each with its kind where
/// the file system says it in the listing (`None`: ask [`stat_at`]).
pub fn list(dir: BorrowedFd<'_>) -> io::Result<Vec<(OsString, Option<Kind>)>> {
    use nix::dir::Type;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut d = nix::dir::Dir::openat(dir, ".", flags, Mode::empty())?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let kind = e.file_type().map(|t| match t {
            Type::File => Kind::File,
            Type::Directory => Kind::Dir,
            Type::Symlink => Kind::Symlink,
            _ => Kind::Other,
        });
        out.push((OsStr::from_bytes(name).to_os_string(), kind));
    }
    Ok(out)
}

/// `renameat`: `from` becomes `to`, replacing what is there.
pub fn rename_at(from: At<'_>, to: At<'_>) -> io::Result<()> {
    Ok(nix::fcntl::renameat(from.dir, from.name, to.dir, to.name)?)
}

/// Rename `from` to `to` unless `to` exists (then `AlreadyExists`, nothing changed).
/// `Ok(false)`: this kernel or file system has no such rename (nothing changed). Linux
/// `renameat2(RENAME_NOREPLACE)`, macOS `renameatx_np(RENAME_EXCL)`.
pub fn rename_noreplace(from: At<'_>, to: At<'_>) -> io::Result<bool> {
    rename_flagged(from, to, os::NOREPLACE)
}

/// Swap the names `a` and `b` in one step (same file system; both must exist, else e.g.
/// `NotFound`). `Ok(false)`: this kernel or file system cannot swap (nothing changed).
/// Linux `renameat2(RENAME_EXCHANGE)`, macOS `renameatx_np(RENAME_SWAP)` (APFS; HFS+
/// cannot).
pub fn exchange(a: At<'_>, b: At<'_>) -> io::Result<bool> {
    rename_flagged(a, b, os::EXCHANGE)
}

/// A rename with `flags` (the calls `nix` does not wrap). `Ok(false)`: it failed with an
/// error that means "not here" (nothing changed).
fn rename_flagged(a: At<'_>, b: At<'_>, flags: libc::c_uint) -> io::Result<bool> {
    let c = |s: &OsStr| {
        CString::new(s.as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
    };
    let (a_name, b_name) = (c(a.name)?, c(b.name)?);
    let (a_dir, b_dir) = (a.dir.as_raw_fd(), b.dir.as_raw_fd());
    if os::rename_with_flags(a_dir, &a_name, b_dir, &b_name, flags) {
        return Ok(true);
    }
    // Read before the names are freed.
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(n) if os::RENAME_UNSUPPORTED.contains(&n) => Ok(false),
        _ => Err(e),
    }
}

/// `linkat`: a second name `to` for the file `from` (not following a symlink at `from`).
pub fn link_at(from: At<'_>, to: At<'_>) -> io::Result<()> {
    let no_follow = AtFlags::empty();
    Ok(nix::unistd::linkat(
        from.dir, from.name, to.dir, to.name, no_follow,
    )?)
}

/// `unlinkat`: remove a name (a file, or a symlink itself: never its target).
pub fn remove_file_at(at: At<'_>) -> io::Result<()> {
    Ok(nix::unistd::unlinkat(
        at.dir,
        at.name,
        UnlinkatFlags::NoRemoveDir,
    )?)
}

/// `unlinkat(AT_REMOVEDIR)`: remove an empty folder.
pub fn remove_dir_at(at: At<'_>) -> io::Result<()> {
    Ok(nix::unistd::unlinkat(
        at.dir,
        at.name,
        UnlinkatFlags::RemoveDir,
    )?)
}

// ---- Durability -------------------------------------------------------------------------

/// `fsync` of an open file or folder (a folder's: the names created, renamed or removed
/// in it).
pub fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(nix::unistd::fsync(fd)?)
}

/// `syncfs`: write out everything pending on the file system `fd` is on (one journal
/// commit for many files). `Unsupported` where there is no such call (macOS).
pub fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    os::syncfs(fd)
}

// ---- Sparse files -----------------------------------------------------------------------

/// The first offset at or after `pos` where `file` has data (`SEEK_DATA`); `None` when
/// only a hole follows up to the end. An error where the file system cannot tell (the
/// caller then reads everything). Moves the file's offset.
pub fn seek_data(file: &File, pos: u64) -> io::Result<Option<u64>> {
    match nix::unistd::lseek(file, offset(pos)?, Whence::SeekData) {
        Ok(d) => Ok(Some(u64::try_from(d).unwrap_or(0))),
        Err(Errno::ENXIO) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The first offset at or after `pos` where a hole starts (`SEEK_HOLE`; the end of the
/// file counts as one). Moves the file's offset.
pub fn seek_hole(file: &File, pos: u64) -> io::Result<u64> {
    let hole = nix::unistd::lseek(file, offset(pos)?, Whence::SeekHole)?;
    Ok(u64::try_from(hole).unwrap_or(0))
}

fn offset(pos: u64) -> io::Result<i64> {
    i64::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

// ---- Leases -----------------------------------------------------------------------------

/// What a lease waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    /// Granted only when nobody else has the file open for writing (the file must be
    /// open read-only).
    Read,
    /// Granted only when nobody else has the file open at all (any open mode).
    Write,
}

/// The answer to [`lease`].
#[must_use]
#[derive(Debug)]
pub enum Lease<'a> {
    /// Granted, and held until the [`Held`] is dropped.
    Held(Held<'a>),
    /// Another open file description stands in the way (proven).
    Busy,
    /// Leases do not work here: not Linux, a file system without them, or a file owned by
    /// someone else without `CAP_LEASE`.
    Unsupported,
}

/// A lease held on a file; given back when dropped. While it is held, another process
/// that opens the file in a conflicting way waits until it is given back.
#[derive(Debug)]
pub struct Held<'a> {
    file: &'a File,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        os::release_lease(self.file);
    }
}

/// Try to take a lease of `kind` on `file` (never waits). The kernel counts every open
/// file description of the file other than `file`'s, in this process too. Linux
/// `F_SETLEASE`; macOS has no leases.
pub fn lease(file: &File, kind: LeaseKind) -> Lease<'_> {
    os::lease(file, kind)
}

// ---- Locks ------------------------------------------------------------------------------

/// An exclusive `flock` on an open file, held for as long as this lives: closing the
/// file gives it back, and so does the holder's death (the kernel never leaves a stale
/// one).
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

impl FileLock {
    /// The locked file (to read or write what it holds).
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// The answer to [`try_lock`].
#[derive(Debug)]
pub enum TryLock {
    /// Taken.
    Locked(FileLock),
    /// Another open file description holds it; the file is handed back (to read who).
    Held(File),
}

/// Take the exclusive lock on `file`, waiting while another holds it (a signal that
/// interrupts the wait does not end it).
pub fn lock(file: File) -> io::Result<FileLock> {
    loop {
        match flock(&file, libc::LOCK_EX) {
            Ok(()) => return Ok(FileLock { file }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Take the exclusive lock on `file` if nobody holds it; never waits.
pub fn try_lock(file: File) -> io::Result<TryLock> {
    match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(TryLock::Locked(FileLock { file })),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(TryLock::Held(file)),
        Err(e) => Err(e),
    }
}

/// `flock(file, op)`. Not `nix::fcntl::Flock`: its drop panics when the unlock fails,
/// and closing the file unlocks anyway.
fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    // SAFETY: flock on a descriptor `file` owns for the call's duration; no memory
    // involved.
    if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// ---- Helpers ----------------------------------------------------------------------------

/// Permission bits as `nix` takes them (`mode_t` is 16 bits on macOS).
fn mode_of(mode: u32) -> Mode {
    Mode::from_bits_truncate(mode as _)
}
