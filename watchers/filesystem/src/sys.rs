//! The few system calls the watcher needs beyond `std` and `ai_employee_vault::nofollow` (which
//! opens, lists and renames without following links): whether anybody still has a file
//! open for writing (Linux read leases), and where a file's data and holes are. Linux and
//! macOS differences live in the small `cfg`'d modules at the bottom.

use std::fs::File;
use std::io;

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

/// [`Writers`] of an open file (`file` must be open read-only).
pub fn writers(file: &File) -> Writers {
    imp::writers(file)
}

/// The first offset at or after `pos` where `file` has data (`SEEK_DATA`); `None` when
/// only a hole follows up to the end. An error where the file system cannot tell (the
/// caller then copies everything).
pub fn seek_data(file: &File, pos: u64) -> io::Result<Option<u64>> {
    holes::seek_data(file, pos)
}

/// The first offset at or after `pos` where a hole starts (`SEEK_HOLE`; the end of the
/// file counts as one).
pub fn seek_hole(file: &File, pos: u64) -> io::Result<u64> {
    holes::seek_hole(file, pos)
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
mod holes {
    use nix::unistd::{Whence, lseek};
    use std::fs::File;
    use std::io;

    fn offset(pos: u64) -> io::Result<i64> {
        i64::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    }

    pub fn seek_data(file: &File, pos: u64) -> io::Result<Option<u64>> {
        match lseek(file, offset(pos)?, Whence::SeekData) {
            Ok(d) => Ok(Some(u64::try_from(d).unwrap_or(0))),
            Err(nix::errno::Errno::ENXIO) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn seek_hole(file: &File, pos: u64) -> io::Result<u64> {
        Ok(u64::try_from(lseek(file, offset(pos)?, Whence::SeekHole)?).unwrap_or(0))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod holes {
    use std::fs::File;
    use std::io;

    pub fn seek_data(_file: &File, _pos: u64) -> io::Result<Option<u64>> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    pub fn seek_hole(_file: &File, _pos: u64) -> io::Result<u64> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::Writers;
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

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
}

#[cfg(target_os = "macos")]
mod imp {
    use super::Writers;
    use std::fs::File;

    /// No leases on macOS: completeness is judged by settling.
    pub fn writers(_file: &File) -> Writers {
        Writers::Unknown
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod imp {
    use super::Writers;
    use std::fs::File;

    pub fn writers(_file: &File) -> Writers {
        Writers::Unknown
    }
}

#[cfg(test)]
mod tests {
    use ai_employee_vault::nofollow::{Dir, How};

    use super::*;
    use std::path::Path;

    fn open_read(path: &Path) -> io::Result<File> {
        let dir = path.parent().unwrap_or(Path::new("."));
        Dir::open(dir)?.file(path.file_name().unwrap_or_default(), How::READ)
    }

    fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
        let (a, b) = (from.parent(), to.parent());
        let (a, b) = (a.unwrap_or(Path::new(".")), b.unwrap_or(Path::new(".")));
        let name = |p: &Path| p.file_name().unwrap_or_default().to_os_string();
        Dir::open(a)?.rename_noreplace(name(from), &Dir::open(b)?, name(to))
    }

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
