//! The few system calls the watcher needs beyond `std`: whether anybody still has a file
//! open for writing (Linux read leases), a rename that never replaces, and opening an
//! Inbox file without following links or blocking on FIFOs. Linux and macOS differences
//! live in the small `cfg`'d modules at the bottom.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Whether some process has a file open for writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// Proven: nobody has it open for writing (a read lease was granted).
    None,
    /// Proven: somebody has it open for writing.
    Open,
    /// Cannot tell here (not Linux, a file system without leases, or a file owned by
    /// another user without `CAP_LEASE`).
    Unknown,
}

/// Open `path` for reading: never through a symlink, never blocking on a FIFO.
pub fn open_read(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// [`Writers`] of an open file (`file` must be open read-only).
pub fn writers(file: &File) -> Writers {
    imp::writers(file)
}

/// Rename `from` to `to` unless `to` exists (then `ErrorKind::AlreadyExists` and nothing
/// changed). Falls back to `link`, fsync of `to`'s folder, `unlink` where the file system
/// has no such rename; a crash between the link and the unlink leaves both names (the
/// caller's recovery looks at the link count), never neither.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match imp::rename_noreplace(from, to) {
        Ok(true) => Ok(()),
        Ok(false) => {
            std::fs::hard_link(from, to)?;
            sync_dir(crate::vault::atomic::parent_dir(to))?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e),
    }
}

/// fsync a directory so the names created, renamed or removed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(target_os = "linux")]
mod imp {
    use super::Writers;
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// `F_SETSIG` (10 on every Linux architecture; not exported by the libc crate for glibc).
    const F_SETSIG: libc::c_int = 10;

    /// Try a read lease and give it back at once. The kernel grants a read lease only
    /// when no open file description of the inode is open for writing (in any process),
    /// so a grant proves there is no writer at that instant. Needs the file's owner or
    /// `CAP_LEASE` (else `EACCES`), and a file system that has leases.
    pub fn writers(file: &File) -> Writers {
        let fd = file.as_raw_fd();
        // A writer opening the file while we hold the lease breaks it, which the kernel
        // announces with a signal: SIGIO by default, whose default action kills the
        // process. SIGURG is ignored by default. We give the lease back immediately, so
        // such a writer waits microseconds at most.
        // SAFETY: plain fcntl calls on a descriptor we own; no memory involved.
        unsafe {
            libc::fcntl(fd, F_SETSIG, libc::SIGURG);
        }
        // SAFETY: as above.
        let r = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
        if r == 0 {
            // SAFETY: as above.
            unsafe {
                libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK);
            }
            return Writers::None;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) => Writers::Open,
            _ => Writers::Unknown,
        }
    }

    /// `renameat2(RENAME_NOREPLACE)`. `Ok(false)`: not supported here.
    pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<bool> {
        crate::vault::atomic::renameat2(from, to, libc::RENAME_NOREPLACE)
    }
}

#[cfg(target_os = "macos")]
mod imp {
    use super::Writers;
    use std::fs::File;
    use std::io;
    use std::path::Path;

    /// No leases on macOS: completeness is judged by settling.
    pub fn writers(_file: &File) -> Writers {
        Writers::Unknown
    }

    /// `renamex_np(RENAME_EXCL)`. `Ok(false)`: not supported by this file system.
    pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<bool> {
        let (a, b) = (
            crate::vault::atomic::c_path(from)?,
            crate::vault::atomic::c_path(to)?,
        );
        // SAFETY: both pointers are valid NUL-terminated strings for the call's duration.
        let r = unsafe { libc::renamex_np(a.as_ptr(), b.as_ptr(), libc::RENAME_EXCL) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOTSUP) | Some(libc::EINVAL) => Ok(false),
            _ => Err(e),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod imp {
    use super::Writers;
    use std::fs::File;
    use std::io;
    use std::path::Path;

    pub fn writers(_file: &File) -> Writers {
        Writers::Unknown
    }

    pub fn rename_noreplace(_from: &Path, _to: &Path) -> io::Result<bool> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_noreplace_never_replaces() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&a, "A")?;
        std::fs::write(&b, "B")?;
        let err = rename_noreplace(&a, &b).map_err(|e| e.kind());
        assert_eq!(err, Err(io::ErrorKind::AlreadyExists));
        assert_eq!(std::fs::read_to_string(&b)?, "B");
        rename_noreplace(&a, &c)?;
        assert!(!a.exists());
        assert_eq!(std::fs::read_to_string(&c)?, "A");
        Ok(())
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn writers_sees_an_open_writer() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        let w = std::fs::File::create(&p)?;
        let r = open_read(&p)?;
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
    fn open_read_refuses_symlinks() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("t");
        std::fs::write(&target, "x")?;
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&target, &link)?;
        assert!(open_read(&link).is_err());
        assert!(open_read(&target).is_ok());
        Ok(())
    }
}
