//! The Linux side of [`super`]: `openat2`, `renameat2`, leases, `syncfs`.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::{Held, Lease, LeaseKind};

/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`.
pub fn open_in(dir: BorrowedFd<'_>, rel: &Path, flags: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
    let how = OpenHow::new().flags(flags).mode(mode).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS,
    );
    nix::fcntl::openat2(dir, rel, how)
}

/// Errors of [`open_in`] after which the path is walked one component at a
/// time: no `openat2` (before 5.6, or filtered by a seccomp profile), or a retry asked
/// for.
pub const NO_SINGLE_CALL: &[Errno] = &[Errno::ENOSYS, Errno::EPERM, Errno::EAGAIN];

pub const NOREPLACE: libc::c_uint = libc::RENAME_NOREPLACE;
pub const EXCHANGE: libc::c_uint = libc::RENAME_EXCHANGE;

/// Errors of [`rename_with_flags`] that mean the flag is not supported here (an old
/// kernel, or a file system without it).
pub const RENAME_UNSUPPORTED: &[libc::c_int] = &[libc::ENOSYS, libc::EINVAL, libc::EOPNOTSUPP];

/// `renameat2` through the raw syscall: the glibc wrapper (and so `nix`'s) only exists
/// since glibc 2.28. Whether it worked; the error is in `errno`.
pub fn rename_with_flags(a_dir: RawFd, a: &CStr, b_dir: RawFd, b: &CStr, flags: u32) -> bool {
    // SAFETY: both names are valid NUL-terminated strings, and the caller keeps both
    // descriptors open, for the call's duration.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            a_dir,
            a.as_ptr(),
            b_dir,
            b.as_ptr(),
            flags,
        )
    };
    r == 0
}

/// `F_SETSIG` (10 on every Linux architecture; missing from the libc crate for glibc).
const F_SETSIG: libc::c_int = 10;

/// `F_SETLEASE`. The kernel grants a write lease only when no other open file description
/// of the inode exists (checked empirically: `O_RDONLY`, `O_WRONLY` and `O_RDWR` all work
/// when they are the only one; a second descriptor of any mode, in any process, gives
/// `EAGAIN`), and a read lease (read-only descriptor) only when nobody has it open for
/// writing. Needs the file's owner or `CAP_LEASE` (else `EACCES`).
pub fn lease(file: &File, kind: LeaseKind) -> Lease<'_> {
    let fd = file.as_raw_fd();
    let arg = match kind {
        LeaseKind::Read => libc::F_RDLCK,
        LeaseKind::Write => libc::F_WRLCK,
    };
    // While the lease is held, another process opening the file (for writing, for a read
    // lease) waits until we give it back, and we are told with SIGIO, whose default
    // action kills the process. Make that signal SIGURG (ignored by default). That call
    // fails only for a bad descriptor or signal number, so its result is not looked at.
    // SAFETY: plain fcntl calls on a descriptor `file` owns; no memory involved.
    unsafe {
        libc::fcntl(fd, F_SETSIG, libc::SIGURG);
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETLEASE, arg) } == 0 {
        return Lease::Held(Held { file });
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EBUSY) => Lease::Busy,
        _ => Lease::Unsupported,
    }
}

/// Give a lease back. It cannot fail on a descriptor holding one; were it to, closing
/// the file gives it back too.
pub fn release_lease(file: &File) {
    // SAFETY: a plain fcntl call on a descriptor `file` owns; no memory involved.
    unsafe {
        libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK);
    }
}

/// `syncfs(fd)`.
pub fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    Ok(nix::unistd::syncfs(fd)?)
}
