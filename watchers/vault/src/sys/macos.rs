//! The macOS side of [`super`]: `O_NOFOLLOW_ANY`, `renameatx_np`; no leases, no
//! `syncfs`.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{Lease, LeaseKind};

/// `openat` with `O_NOFOLLOW_ANY` (macOS 11): no symlink in any component. `..` was
/// refused already, so the result is beneath `dir`.
pub fn open_in(dir: BorrowedFd<'_>, rel: &Path, flags: OFlag, mode: Mode) -> nix::Result<OwnedFd> {
    let any = OFlag::from_bits_retain(libc::O_NOFOLLOW_ANY);
    nix::fcntl::openat(dir, rel, flags | any, mode)
}

/// Errors of [`open_in`] after which the path is walked one component at a
/// time: a system before macOS 11, which does not know the flag.
pub const NO_SINGLE_CALL: &[Errno] = &[Errno::EINVAL];

pub const NOREPLACE: libc::c_uint = libc::RENAME_EXCL;
pub const EXCHANGE: libc::c_uint = libc::RENAME_SWAP;

/// Errors of [`rename_with_flags`] that mean the flag is not supported by this file
/// system (HFS+ cannot swap).
pub const RENAME_UNSUPPORTED: &[libc::c_int] = &[libc::ENOTSUP, libc::EINVAL];

/// `renameatx_np`. Whether it worked; the error is in `errno`.
pub fn rename_with_flags(a_dir: RawFd, a: &CStr, b_dir: RawFd, b: &CStr, flags: u32) -> bool {
    // SAFETY: both names are valid NUL-terminated strings, and the caller keeps both
    // descriptors open, for the call's duration.
    unsafe { libc::renameatx_np(a_dir, a.as_ptr(), b_dir, b.as_ptr(), flags) == 0 }
}

/// No leases on macOS.
pub fn lease(_file: &File, _kind: LeaseKind) -> Lease<'_> {
    Lease::Unsupported
}

/// Never called: no lease is ever held here.
pub fn release_lease(_file: &File) {}

/// No `syncfs` on macOS: the caller fsyncs each file.
pub fn syncfs(_fd: BorrowedFd<'_>) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
