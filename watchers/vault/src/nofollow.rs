//! Files of the vault, reached without following a symlink out of their role.
//!
//! The vault is shared with Obsidian, sync services and the agent: anyone who can write
//! it can put a symlink where the program expects a folder or a file (`Inbox -> /etc`,
//! `Approved -> Pending_Approval`, `Dashboard.md -> ~/.bashrc`). Everything the program
//! reads as input or writes as output inside the vault therefore goes through this
//! module, which is the one place with the `*at` system calls:
//!
//! - a [`Dir`] is an open folder. The vault root, and a folder the user named on the
//!   command line (`--inbox`), are opened following symlinks: that is the user's choice.
//!   A folder of the vault (`Inbox`, `Approved`, `Logs`, `.ai-employee` …) is opened
//!   relative to the root with `O_DIRECTORY | O_NOFOLLOW` ([`Dir::folder`]); a symlink
//!   there is refused with a [`FolderError`] that names it;
//! - files and sub-folders are opened relative to a `Dir` ([`Dir::file`], [`Dir::open_dir`]),
//!   never following a symlink in any component: on Linux `openat2` with
//!   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (falling back to one `O_NOFOLLOW` `openat`
//!   per component on kernels without it), on macOS `O_NOFOLLOW_ANY`. A file opened
//!   here is checked (`fstat`) to be a regular file;
//! - listing, `stat`, rename, unlink and fsync work on the descriptor too, so a folder
//!   renamed or replaced after it was opened is never confused with its replacement.
//!
//! A symlink refused here is an error for which [`is_symlink_error`] holds; its message
//! names the link ("Inbox/x is a symbolic link (to /etc/shadow); not followed").

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

/// An open folder. Operations name files relative to it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    /// Where it was opened, for messages only (never used to reach files).
    path: PathBuf,
}

/// How a file is opened by [`Dir::file`]. Always `O_NOFOLLOW`, `O_CLOEXEC`, `O_NOCTTY`,
/// and non-blocking while it is checked to be a regular file (a FIFO never blocks).
#[derive(Debug, Clone, Copy)]
pub struct How {
    flags: OFlag,
    mode: u32,
}

impl How {
    /// Read only.
    pub const READ: How = How {
        flags: OFlag::O_RDONLY,
        mode: 0,
    };

    /// Append, creating the file with `mode` if missing.
    pub fn append(mode: u32) -> How {
        How {
            flags: OFlag::O_WRONLY.union(OFlag::O_APPEND).union(OFlag::O_CREAT),
            mode,
        }
    }

    /// Append to an existing file (`NotFound` if there is none).
    pub const APPEND_EXISTING: How = How {
        flags: OFlag::O_WRONLY.union(OFlag::O_APPEND),
        mode: 0,
    };

    /// Read and append, creating the file with `mode` if missing.
    pub fn read_append(mode: u32) -> How {
        How {
            flags: OFlag::O_RDWR.union(OFlag::O_APPEND).union(OFlag::O_CREAT),
            mode,
        }
    }

    /// Read and write, creating the file with `mode` if missing (not truncated).
    pub fn read_write(mode: u32) -> How {
        How {
            flags: OFlag::O_RDWR.union(OFlag::O_CREAT),
            mode,
        }
    }

    /// Write, creating the file with `mode` if missing (not truncated).
    pub fn write(mode: u32) -> How {
        How {
            flags: OFlag::O_WRONLY.union(OFlag::O_CREAT),
            mode,
        }
    }

    /// A new file with `mode`, open for reading and writing; `AlreadyExists` if the
    /// name is taken (by anything, a symlink included).
    pub fn create_new(mode: u32) -> How {
        How {
            flags: OFlag::O_RDWR.union(OFlag::O_CREAT).union(OFlag::O_EXCL),
            mode,
        }
    }

    /// Write, creating or truncating the file.
    pub fn truncate(mode: u32) -> How {
        How {
            flags: OFlag::O_WRONLY.union(OFlag::O_CREAT).union(OFlag::O_TRUNC),
            mode,
        }
    }
}

/// What a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

/// `lstat` of a name (a symlink itself, never its target).
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

/// `fstat` of an open file.
pub fn stat_file(f: &impl AsFd) -> io::Result<Stat> {
    Ok(Stat::of(&nix::sys::stat::fstat(f.as_fd())?))
}

/// One name in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: OsString,
    pub kind: Kind,
}

/// A vault folder that cannot be used: one line naming it and why.
#[derive(Debug)]
pub enum FolderError {
    Symlink {
        path: PathBuf,
        target: String,
    },
    NotDir {
        what: &'static str,
        path: PathBuf,
    },
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for FolderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FolderError::Symlink { path, target } => write!(
                f,
                "{} is a symbolic link (to {target:?}); the vault's folders must be real \
                 folders inside it: links there are never followed",
                path.display()
            ),
            FolderError::NotDir { what, path } => write!(
                f,
                "cannot {what} {}: it exists and is not a folder",
                path.display()
            ),
            FolderError::Io { what, path, source } => {
                write!(f, "cannot {what} {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for FolderError {}

impl FolderError {
    pub fn is_symlink(&self) -> bool {
        matches!(self, FolderError::Symlink { .. })
    }
}

impl From<FolderError> for io::Error {
    fn from(e: FolderError) -> io::Error {
        match &e {
            FolderError::Symlink { .. } => refused(e.to_string()),
            FolderError::NotDir { .. } => {
                io::Error::new(io::ErrorKind::NotADirectory, e.to_string())
            }
            FolderError::Io { source, .. } => io::Error::new(source.kind(), e.to_string()),
        }
    }
}

/// The error inside an [`io::Error`] for a refused symlink (its message names the link).
#[derive(Debug)]
pub struct SymlinkRefused(pub String);

impl fmt::Display for SymlinkRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SymlinkRefused {}

fn refused(msg: String) -> io::Error {
    io::Error::other(SymlinkRefused(msg))
}

/// Whether `e` says a symlink was refused (here, or by the kernel's `O_NOFOLLOW`).
pub fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
        || e.get_ref()
            .is_some_and(|inner| inner.is::<SymlinkRefused>())
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC)
    .union(OFlag::O_NOFOLLOW);

impl Dir {
    /// Open the folder at `path`, following symlinks: the vault root, or a folder the
    /// user named explicitly. What is inside it is reached through the other methods.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Where it was opened (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path()/rel`, for messages.
    pub fn display_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }

    pub fn try_clone(&self) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    /// The vault folder `rel` (one or more components), which must be a real folder:
    /// a symlink is refused with a one-line [`FolderError`].
    pub fn folder(&self, rel: impl AsRef<Path>) -> Result<Dir, FolderError> {
        let rel = rel.as_ref();
        match self.open_dir(rel) {
            Ok(d) => Ok(d),
            Err(e) => Err(self.folder_error("open", rel, e)),
        }
    }

    /// [`Dir::folder`], creating what is missing (`0o700` when `private`, else `0o755`
    /// before the umask). A private folder that exists with group or other bits gets
    /// `0o700`.
    pub fn make_folder(&self, rel: impl AsRef<Path>, private: bool) -> Result<Dir, FolderError> {
        let rel = rel.as_ref();
        let mode = if private { 0o700 } else { 0o755 };
        let mut cur: Option<Dir> = None;
        let mut so_far = PathBuf::new();
        for c in components(rel).map_err(|e| self.folder_error("create", rel, e))? {
            so_far.push(c);
            let parent = cur.as_ref().unwrap_or(self);
            match nix::sys::stat::mkdirat(parent.fd.as_fd(), c, Mode::from_bits_truncate(mode)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(self.folder_error("create", &so_far, e.into())),
            }
            let next = parent
                .open_dir(c)
                .map_err(|e| self.folder_error("create", &so_far, e))?;
            cur = Some(next);
        }
        let dir = match cur {
            Some(d) => d,
            None => self
                .try_clone()
                .map_err(|e| self.folder_error("open", rel, e))?,
        };
        if private {
            let st = stat_file(&dir.fd).map_err(|e| self.folder_error("read", rel, e))?;
            if st.mode & 0o077 != 0 {
                nix::sys::stat::fchmod(dir.fd.as_fd(), Mode::from_bits_truncate(0o700))
                    .map_err(|e| self.folder_error("protect", rel, e.into()))?;
            }
        }
        Ok(dir)
    }

    fn folder_error(&self, what: &'static str, rel: &Path, e: io::Error) -> FolderError {
        let path = self.path.join(rel);
        if is_symlink_error(&e) || e.raw_os_error() == Some(libc::ENOTDIR) {
            if let Some((link, target)) = self.first_symlink(rel) {
                return FolderError::Symlink {
                    path: self.path.join(link),
                    target,
                };
            }
            if e.raw_os_error() == Some(libc::ENOTDIR) {
                return FolderError::NotDir { what, path };
            }
        }
        FolderError::Io {
            what,
            path,
            source: e,
        }
    }

    /// The first component of `rel` that is a symlink, with its target.
    fn first_symlink(&self, rel: &Path) -> Option<(PathBuf, String)> {
        let mut cur: Option<Dir> = None;
        let mut so_far = PathBuf::new();
        for c in components(rel).ok()? {
            so_far.push(c);
            let parent = cur.as_ref().unwrap_or(self);
            let st = parent.stat(c).ok()?;
            if st.kind == Kind::Symlink {
                let target = parent
                    .read_link(c)
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                return Some((so_far, target));
            }
            cur = Some(parent.open_dir(c).ok()?);
        }
        None
    }

    /// The sub-folder `rel`, not following a symlink in any component.
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> io::Result<Dir> {
        let rel = rel.as_ref();
        let fd = self.resolve(rel, DIR_FLAGS, 0)?;
        Ok(Dir {
            fd,
            path: self.path.join(rel),
        })
    }

    /// Open the regular file `rel` (one or more components) as `how` says, not
    /// following a symlink in any component. A FIFO, socket, device or folder is refused
    /// (`InvalidInput`, "not a regular file") without blocking.
    pub fn file(&self, rel: impl AsRef<Path>, how: How) -> io::Result<File> {
        let rel = rel.as_ref();
        let flags = how.flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
        let fd = self
            .resolve(rel, flags, how.mode)
            .map_err(|e| self.explain(rel, e))?;
        let st = stat_file(&fd)?;
        if st.kind != Kind::File {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", self.path.join(rel).display()),
            ));
        }
        // Regular files never block; clear the flag so the descriptor is an ordinary one.
        let fl = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
        let fl = OFlag::from_bits_truncate(fl) - OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(fl))?;
        Ok(File::from(fd))
    }

    /// The whole content of the regular file `rel`, at most `limit` bytes (`None`: no
    /// limit); over it, `InvalidData` with the size.
    pub fn read(&self, rel: impl AsRef<Path>, limit: Option<u64>) -> io::Result<Vec<u8>> {
        use std::io::Read;
        let rel = rel.as_ref();
        let f = self.file(rel, How::READ)?;
        let len = f.metadata()?.len();
        let cap = limit.unwrap_or(u64::MAX);
        if len > cap {
            return Err(too_large(&self.path.join(rel), len, cap));
        }
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        f.take(cap.saturating_add(1)).read_to_end(&mut buf)?;
        if buf.len() as u64 > cap {
            return Err(too_large(&self.path.join(rel), buf.len() as u64, cap));
        }
        Ok(buf)
    }

    /// A refused symlink named in the error message.
    fn explain(&self, rel: &Path, e: io::Error) -> io::Error {
        if e.raw_os_error() != Some(libc::ELOOP) {
            return e;
        }
        match self.first_symlink(rel) {
            Some((link, target)) => refused(format!(
                "{} is a symbolic link (to {target:?}); not followed",
                self.path.join(link).display()
            )),
            None => e,
        }
    }

    /// `openat` of `rel` beneath this folder with no symlink in any component.
    fn resolve(&self, rel: &Path, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
        let parts = components(rel)?;
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(mode as _);
        match parts.as_slice() {
            [] => Ok(nix::fcntl::openat(self.fd.as_fd(), ".", flags, mode)?),
            [one] => Ok(nix::fcntl::openat(self.fd.as_fd(), *one, flags, mode)?),
            _ => sys::open_beneath(self.fd.as_fd(), rel, &parts, flags, mode),
        }
    }

    /// `lstat` of the name `rel` (a symlink is reported as one). Intermediate components
    /// are not followed either.
    pub fn stat(&self, rel: impl AsRef<Path>) -> io::Result<Stat> {
        let rel = rel.as_ref();
        let (dir, name) = self.parent_of(rel)?;
        let d = dir.as_ref().unwrap_or(self);
        Ok(Stat::of(&nix::sys::stat::fstatat(
            d.fd.as_fd(),
            name,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?))
    }

    /// The folder holding the last component of `rel` (`None`: this one) and that name.
    fn parent_of<'a>(&self, rel: &'a Path) -> io::Result<(Option<Dir>, &'a OsStr)> {
        let parts = components(rel)?;
        let Some((name, folders)) = parts.split_last() else {
            return Err(invalid(rel, "is empty"));
        };
        if folders.is_empty() {
            return Ok((None, name));
        }
        let folder: PathBuf = folders.iter().collect();
        Ok((Some(self.open_dir(folder)?), name))
    }

    /// Whether the name `rel` exists (as anything, a dangling symlink included).
    pub fn exists(&self, rel: impl AsRef<Path>) -> bool {
        self.stat(rel).is_ok()
    }

    /// The target of the symlink `name` (for messages).
    pub fn read_link(&self, name: impl AsRef<Path>) -> io::Result<PathBuf> {
        Ok(PathBuf::from(nix::fcntl::readlinkat(
            self.fd.as_fd(),
            name.as_ref(),
        )?))
    }

    /// `fstat` of this folder itself.
    pub fn stat_self(&self) -> io::Result<Stat> {
        stat_file(&self.fd)
    }

    /// Whether `name` in `parent` is still this very folder (not renamed away, removed,
    /// or replaced by a symlink or another folder).
    pub fn still_at(&self, parent: &Dir, name: impl AsRef<Path>) -> bool {
        match (self.stat_self(), parent.stat(name)) {
            (Ok(me), Ok(there)) => {
                there.kind == Kind::Dir && there.dev == me.dev && there.ino == me.ino
            }
            _ => false,
        }
    }

    /// The names in this folder (not `.` and `..`), unsorted.
    pub fn list(&self) -> io::Result<Vec<Entry>> {
        let mut d = nix::dir::Dir::openat(
            self.fd.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut out = Vec::new();
        for e in d.iter() {
            let e = e?;
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsStr::from_bytes(name).to_os_string();
            use nix::dir::Type;
            let kind = match e.file_type() {
                Some(Type::File) => Kind::File,
                Some(Type::Directory) => Kind::Dir,
                Some(Type::Symlink) => Kind::Symlink,
                Some(_) => Kind::Other,
                None => match self.stat(&name) {
                    Ok(s) => s.kind,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                },
            };
            out.push(Entry { name, kind });
        }
        Ok(out)
    }

    /// Rename `from` (in this folder) to `to` in `to_dir`, replacing what is there.
    pub fn rename(
        &self,
        from: impl AsRef<Path>,
        to_dir: &Dir,
        to: impl AsRef<Path>,
    ) -> io::Result<()> {
        let (from, to) = (single(from.as_ref())?, single(to.as_ref())?);
        Ok(nix::fcntl::renameat(
            self.fd.as_fd(),
            from,
            to_dir.fd.as_fd(),
            to,
        )?)
    }

    /// Rename `from` (in this folder) to `to` in `to_dir` unless `to` exists (then
    /// `AlreadyExists` and nothing changed). Where the file system has no such rename:
    /// `link`, fsync of `to_dir`, `unlink`; a crash between the two leaves both names,
    /// never neither (callers' recovery looks at the link count).
    pub fn rename_noreplace(
        &self,
        from: impl AsRef<Path>,
        to_dir: &Dir,
        to: impl AsRef<Path>,
    ) -> io::Result<()> {
        let (from, to) = (single(from.as_ref())?, single(to.as_ref())?);
        if sys::rename_excl(self.fd.as_fd(), from, to_dir.fd.as_fd(), to)? {
            return Ok(());
        }
        nix::unistd::linkat(
            self.fd.as_fd(),
            from,
            to_dir.fd.as_fd(),
            to,
            AtFlags::empty(),
        )?;
        to_dir.sync()?;
        self.remove_file(from)
    }

    /// Swap the names `a` and `b` of this folder in one step. `Ok(false)`: not possible
    /// on this platform or file system (nothing changed).
    pub fn exchange(&self, a: impl AsRef<Path>, b: impl AsRef<Path>) -> io::Result<bool> {
        let (a, b) = (single(a.as_ref())?, single(b.as_ref())?);
        sys::exchange(self.fd.as_fd(), a, b)
    }

    /// Remove the name `name` (a file or a symlink itself, never its target).
    pub fn remove_file(&self, name: impl AsRef<Path>) -> io::Result<()> {
        let name = single(name.as_ref())?;
        Ok(nix::unistd::unlinkat(
            self.fd.as_fd(),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )?)
    }

    /// Remove the folder `name` and everything in it, never following a symlink.
    pub fn remove_dir_all(&self, name: impl AsRef<Path>) -> io::Result<()> {
        let name = single(name.as_ref())?;
        let sub = self.open_dir(name)?;
        for e in sub.list()? {
            match e.kind {
                Kind::Dir => sub.remove_dir_all(&e.name)?,
                _ => match sub.remove_file(&e.name) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                },
            }
        }
        drop(sub);
        Ok(nix::unistd::unlinkat(
            self.fd.as_fd(),
            name,
            nix::unistd::UnlinkatFlags::RemoveDir,
        )?)
    }

    /// fsync the folder, so names created, renamed or removed in it are durable.
    pub fn sync(&self) -> io::Result<()> {
        Ok(nix::unistd::fsync(self.fd.as_fd())?)
    }

    /// A new hidden file in this folder, removed when dropped unless kept.
    pub fn temp_file(&self, prefix: &str, suffix: &str, mode: u32) -> io::Result<TempFile<'_>> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let name = OsString::from(format!(
                "{prefix}{:x}{n:x}{nanos:x}{suffix}",
                std::process::id()
            ));
            match self.file(&name, How::create_new(mode)) {
                Ok(file) => {
                    return Ok(TempFile {
                        dir: self,
                        name,
                        file: Some(file),
                        keep: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("no free temporary name in {}", self.path.display()),
        ))
    }

    /// Create `name` with `bytes` only if it does not exist, atomically (a reader sees
    /// nothing or everything) and durably. Returns whether it was created.
    pub fn create_new(&self, name: impl AsRef<Path>, bytes: &[u8], mode: u32) -> io::Result<bool> {
        let name = single(name.as_ref())?;
        let mut tmp = self.temp_file(".tmp-", "", mode)?;
        tmp.write_all(bytes)?;
        tmp.file().sync_all()?;
        match self.rename_noreplace(tmp.name(), self, name) {
            Ok(()) => {
                tmp.keep();
                self.sync()?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replace `name` with `bytes` atomically and durably. An existing file keeps its
    /// permission bits (a new one gets `mode`); a symlink there is refused, not replaced.
    pub fn write_atomic(&self, name: impl AsRef<Path>, bytes: &[u8], mode: u32) -> io::Result<()> {
        let name = single(name.as_ref())?;
        let mode = match self.stat(name) {
            Ok(s) if s.kind == Kind::File => s.mode,
            Ok(s) if s.kind == Kind::Symlink => {
                return Err(self.explain(Path::new(name), Errno::ELOOP.into()));
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a regular file", self.path.join(name).display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => mode,
            Err(e) => return Err(e),
        };
        let mut tmp = self.temp_file(".tmp-", "", mode)?;
        nix::sys::stat::fchmod(tmp.file().as_fd(), Mode::from_bits_truncate(mode as _))?;
        tmp.write_all(bytes)?;
        tmp.file().sync_all()?;
        self.rename(tmp.name(), self, name)?;
        tmp.keep();
        self.sync()
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Dir {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// A file made by [`Dir::temp_file`]: removed on drop unless [`TempFile::keep`] was
/// called (after it was renamed into place).
pub struct TempFile<'a> {
    dir: &'a Dir,
    name: OsString,
    file: Option<File>,
    keep: bool,
}

impl TempFile<'_> {
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The open file.
    pub fn file(&self) -> &File {
        // Only `into_file` takes it, which consumes self.
        self.file.as_ref().unwrap_or_else(|| unreachable!())
    }

    /// Do not remove the name on drop (it was renamed, or is to stay).
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// The open file; the name is removed on drop unless kept before.
    pub fn into_file(mut self) -> File {
        self.file.take().unwrap_or_else(|| unreachable!())
    }
}

impl Write for TempFile<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut f = self.file();
        f.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.keep {
            let _ = self.dir.remove_file(&self.name);
        }
    }
}

/// Open `path`, which lies under `base`, resolving the part below `base` without
/// following any symlink (`base` itself is followed). For callers that hold paths, such
/// as `<vault>/.ai-employee/heartbeat/gmail` under `<vault>`. A `path` that is not under
/// `base` is refused (`InvalidInput`).
pub fn open_under(base: &Path, path: &Path, how: How) -> io::Result<File> {
    let rel = path.strip_prefix(base).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not inside {}", path.display(), base.display()),
        )
    })?;
    Dir::open(base)?.file(rel, how)
}

/// The vault folder at `path` = `<vault>/<folder>`: `<vault>` is followed, `<folder>`
/// must be a real folder (a symlink is refused with a one-line [`FolderError`]).
pub fn open_folder(path: &Path) -> Result<Dir, FolderError> {
    let (base, name) = match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) if !p.as_os_str().is_empty() => (p, n),
        (_, Some(n)) => (Path::new("."), n),
        _ => {
            return Err(FolderError::Io {
                what: "open",
                path: path.to_path_buf(),
                source: invalid(path, "has no folder name"),
            });
        }
    };
    let root = Dir::open(base).map_err(|source| FolderError::Io {
        what: "open",
        path: base.to_path_buf(),
        source,
    })?;
    root.folder(name)
}

/// Open `path` = `<somewhere>/<folder>/<file>` without following a symlink at the folder
/// or the file (`<somewhere>`, normally the vault root, is followed). For files of a
/// vault folder reached by path: logs, locks, ledgers, credentials.
pub fn open_in_folder(path: &Path, how: How) -> io::Result<File> {
    let (base, rel) = split_folder(path)?;
    Dir::open(base)?.file(rel, how)
}

/// The folder of `path` = `<somewhere>/<folder>/<file>`, opened as [`open_in_folder`]
/// does, and the file's name: for renames and removals next to it.
pub fn folder_of(path: &Path) -> io::Result<(Dir, OsString)> {
    let (base, rel) = split_folder(path)?;
    let name = rel
        .file_name()
        .ok_or_else(|| invalid(path, "has no file name"))?
        .to_os_string();
    let folder = rel.parent().unwrap_or(Path::new(""));
    let dir = Dir::open(base)?.folder(folder).map_err(io::Error::from)?;
    Ok((dir, name))
}

fn split_folder(path: &Path) -> io::Result<(&Path, &Path)> {
    match path
        .parent()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
    {
        Some(base) => Ok((base, path.strip_prefix(base).unwrap_or(path))),
        None => Ok((Path::new("."), path)),
    }
}

fn invalid(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} {why}", path.display()),
    )
}

fn too_large(path: &Path, len: u64, cap: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is {len} bytes, over the limit of {cap} bytes",
            path.display()
        ),
    )
}

/// The normal components of a relative path; `..`, absolute paths and empty names are
/// refused (nothing may climb out of the folder it is resolved in).
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(rel, "leaves its folder (absolute or with ..)"));
            }
        }
    }
    Ok(out)
}

/// A single file name (for renames and removals, which work within one folder).
fn single(name: &Path) -> io::Result<&OsStr> {
    match components(name)?.as_slice() {
        [one] => Ok(one),
        _ => Err(invalid(name, "is not a single file name")),
    }
}

#[cfg(target_os = "linux")]
mod sys {
    use super::*;
    use nix::fcntl::{OpenHow, ResolveFlag};

    /// `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`; per component where the kernel
    /// has no `openat2` (before 5.6, or filtered by a seccomp profile).
    pub fn open_beneath(
        dir: BorrowedFd<'_>,
        rel: &Path,
        parts: &[&OsStr],
        flags: OFlag,
        mode: Mode,
    ) -> io::Result<OwnedFd> {
        let how = OpenHow::new().flags(flags).mode(mode).resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
        match nix::fcntl::openat2(dir, rel, how) {
            Ok(fd) => Ok(fd),
            Err(Errno::ENOSYS | Errno::EPERM) => per_component(dir, parts, flags, mode),
            Err(Errno::EAGAIN) => per_component(dir, parts, flags, mode),
            Err(e) => Err(e.into()),
        }
    }

    /// `renameat2(RENAME_NOREPLACE)`. `Ok(false)`: not supported here.
    pub fn rename_excl(
        a_dir: BorrowedFd<'_>,
        a: &OsStr,
        b_dir: BorrowedFd<'_>,
        b: &OsStr,
    ) -> io::Result<bool> {
        renameat2(a_dir, a, b_dir, b, libc::RENAME_NOREPLACE)
    }

    /// `renameat2(RENAME_EXCHANGE)`. `Ok(false)`: not supported here.
    pub fn exchange(dir: BorrowedFd<'_>, a: &OsStr, b: &OsStr) -> io::Result<bool> {
        renameat2(dir, a, dir, b, libc::RENAME_EXCHANGE)
    }

    /// Through the raw syscall (the glibc wrapper only exists since 2.28).
    fn renameat2(
        a_dir: BorrowedFd<'_>,
        a: &OsStr,
        b_dir: BorrowedFd<'_>,
        b: &OsStr,
        flags: libc::c_uint,
    ) -> io::Result<bool> {
        let (a, b) = (cstr(a)?, cstr(b)?);
        // SAFETY: both names are valid NUL-terminated strings and both descriptors are
        // open for the call's duration.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                a_dir.as_raw_fd(),
                a.as_ptr(),
                b_dir.as_raw_fd(),
                b.as_ptr(),
                flags,
            )
        };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok(false),
            _ => Err(e),
        }
    }
}

#[cfg(target_os = "macos")]
mod sys {
    use super::*;

    /// `O_NOFOLLOW_ANY` (macOS 11): no symlink in any component. `..` was refused
    /// already, so the result is beneath `dir`.
    pub fn open_beneath(
        dir: BorrowedFd<'_>,
        rel: &Path,
        parts: &[&OsStr],
        flags: OFlag,
        mode: Mode,
    ) -> io::Result<OwnedFd> {
        let any = OFlag::from_bits_retain(libc::O_NOFOLLOW_ANY);
        match nix::fcntl::openat(dir, rel, flags | any, mode) {
            Err(Errno::EINVAL) => per_component(dir, parts, flags, mode),
            r => Ok(r?),
        }
    }

    /// `renameatx_np(RENAME_EXCL)`. `Ok(false)`: not supported by this file system.
    pub fn rename_excl(
        a_dir: BorrowedFd<'_>,
        a: &OsStr,
        b_dir: BorrowedFd<'_>,
        b: &OsStr,
    ) -> io::Result<bool> {
        renameatx(a_dir, a, b_dir, b, libc::RENAME_EXCL)
    }

    /// `renameatx_np(RENAME_SWAP)` (APFS; HFS+ answers `ENOTSUP`).
    pub fn exchange(dir: BorrowedFd<'_>, a: &OsStr, b: &OsStr) -> io::Result<bool> {
        renameatx(dir, a, dir, b, libc::RENAME_SWAP)
    }

    fn renameatx(
        a_dir: BorrowedFd<'_>,
        a: &OsStr,
        b_dir: BorrowedFd<'_>,
        b: &OsStr,
        flags: libc::c_uint,
    ) -> io::Result<bool> {
        let (a, b) = (cstr(a)?, cstr(b)?);
        // SAFETY: both names are valid NUL-terminated strings and both descriptors are
        // open for the call's duration.
        let r = unsafe {
            libc::renameatx_np(
                a_dir.as_raw_fd(),
                a.as_ptr(),
                b_dir.as_raw_fd(),
                b.as_ptr(),
                flags,
            )
        };
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
mod sys {
    use super::*;

    pub fn open_beneath(
        dir: BorrowedFd<'_>,
        _rel: &Path,
        parts: &[&OsStr],
        flags: OFlag,
        mode: Mode,
    ) -> io::Result<OwnedFd> {
        per_component(dir, parts, flags, mode)
    }

    pub fn rename_excl(
        _a_dir: BorrowedFd<'_>,
        _a: &OsStr,
        _b_dir: BorrowedFd<'_>,
        _b: &OsStr,
    ) -> io::Result<bool> {
        Ok(false)
    }

    pub fn exchange(_dir: BorrowedFd<'_>, _a: &OsStr, _b: &OsStr) -> io::Result<bool> {
        Ok(false)
    }
}

/// One `O_NOFOLLOW` `openat` per component (`parts` has no `..`).
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
    Ok(nix::fcntl::openat(at, *last, flags, mode)?)
}

#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
fn cstr(s: &OsStr) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(s.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn setup() -> io::Result<(tempfile::TempDir, Dir)> {
        let t = tempfile::tempdir()?;
        std::fs::create_dir_all(t.path().join("vault/Inbox/sub"))?;
        std::fs::write(t.path().join("vault/Inbox/a.txt"), "a")?;
        std::fs::write(t.path().join("vault/Inbox/sub/b.txt"), "b")?;
        std::fs::write(t.path().join("secret"), "secret")?;
        let root = Dir::open(&t.path().join("vault"))?;
        Ok((t, root))
    }

    fn read(f: File) -> String {
        let mut s = String::new();
        let _ = (&f).read_to_string(&mut s);
        s
    }

    #[test]
    fn files_and_folders_are_reached_beneath() -> io::Result<()> {
        let (_t, root) = setup()?;
        assert_eq!(read(root.file("Inbox/a.txt", How::READ)?), "a");
        assert_eq!(read(root.file("Inbox/sub/b.txt", How::READ)?), "b");
        let inbox = root.folder("Inbox").map_err(io::Error::from)?;
        assert_eq!(read(inbox.file("a.txt", How::READ)?), "a");
        assert!(root.file("../secret", How::READ).is_err());
        assert!(root.file("/etc/hostname", How::READ).is_err());
        let mut names: Vec<_> = inbox
            .list()?
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [("a.txt".into(), Kind::File), ("sub".into(), Kind::Dir)]
        );
        Ok(())
    }

    #[test]
    fn symlinks_are_refused_in_every_component() -> io::Result<()> {
        let (t, root) = setup()?;
        let v = t.path().join("vault");
        symlink(t.path().join("secret"), v.join("Inbox/link"))?;
        symlink(t.path(), v.join("Inbox/out"))?;
        symlink("sub", v.join("Inbox/inside"))?;
        symlink(v.join("Inbox"), v.join("Approved"))?;
        for rel in [
            "Inbox/link",
            "Inbox/out/secret",
            "Inbox/inside/b.txt",
            "Approved/a.txt",
        ] {
            let e = root.file(rel, How::READ).expect_err(rel);
            assert!(is_symlink_error(&e), "{rel}: {e}");
            assert!(e.to_string().contains("is a symbolic link"), "{rel}: {e}");
        }
        let e = root.folder("Approved").expect_err("symlinked folder");
        assert!(e.is_symlink(), "{e}");
        assert!(e.to_string().contains("Approved is a symbolic link"), "{e}");
        let e = root
            .make_folder("Approved", false)
            .expect_err("symlinked folder");
        assert!(e.is_symlink(), "{e}");
        // Writing through a link is refused too, and leaves its target alone.
        let e = root
            .file("Inbox/link", How::append(0o600))
            .expect_err("append");
        assert!(is_symlink_error(&e), "{e}");
        assert!(root.write_atomic("Inbox/link", b"x", 0o600).is_err());
        assert_eq!(std::fs::read_to_string(t.path().join("secret"))?, "secret");
        // lstat sees the link itself.
        assert_eq!(root.stat("Inbox/link")?.kind, Kind::Symlink);
        Ok(())
    }

    #[test]
    fn the_fallback_walk_refuses_links_too() -> io::Result<()> {
        let (t, root) = setup()?;
        let v = t.path().join("vault");
        symlink(t.path(), v.join("Inbox/out"))?;
        let parts = components(Path::new("Inbox/out/secret"))?;
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        assert!(per_component(root.as_fd(), &parts, flags, Mode::empty()).is_err());
        let parts = components(Path::new("Inbox/sub/b.txt"))?;
        let fd = per_component(root.as_fd(), &parts, flags, Mode::empty())?;
        assert_eq!(read(File::from(fd)), "b");
        Ok(())
    }

    #[test]
    fn fifos_are_refused_without_blocking() -> io::Result<()> {
        let (t, root) = setup()?;
        nix::unistd::mkfifo(&t.path().join("vault/Inbox/fifo"), Mode::S_IRWXU)?;
        let e = root.file("Inbox/fifo", How::READ).expect_err("fifo");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        Ok(())
    }

    #[test]
    fn made_folders_are_private_when_asked() -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let (t, root) = setup()?;
        let d = root
            .make_folder(".ai-employee/heartbeat", true)
            .map_err(io::Error::from)?;
        d.create_new("beat", b"", 0o600)?;
        let m = std::fs::metadata(t.path().join("vault/.ai-employee/heartbeat"))?;
        assert_eq!(m.permissions().mode() & 0o777, 0o700);
        assert!(t.path().join("vault/.ai-employee/heartbeat/beat").exists());
        Ok(())
    }

    #[test]
    fn renames_never_replace_when_asked_and_temp_files_vanish() -> io::Result<()> {
        let (t, root) = setup()?;
        let inbox = root.folder("Inbox").map_err(io::Error::from)?;
        let out = root
            .make_folder("Needs_Action", false)
            .map_err(io::Error::from)?;
        std::fs::write(t.path().join("vault/Needs_Action/a.txt"), "taken")?;
        let e = inbox
            .rename_noreplace("a.txt", &out, "a.txt")
            .expect_err("taken");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        inbox.rename_noreplace("a.txt", &out, "b.txt")?;
        assert_eq!(read(out.file("b.txt", How::READ)?), "a");
        assert!(!inbox.exists("a.txt"));
        {
            let tmp = out.temp_file(".x-", ".tmp", 0o600)?;
            assert!(out.exists(tmp.name()));
        }
        let mut names: Vec<_> = out.list()?.into_iter().map(|e| e.name).collect();
        names.sort();
        assert_eq!(names, ["a.txt", "b.txt"]);
        assert!(!out.create_new("a.txt", b"new", 0o600)?);
        assert!(out.create_new("c.txt", b"new", 0o600)?);
        out.write_atomic("c.txt", b"newer", 0o600)?;
        assert_eq!(read(out.file("c.txt", How::READ)?), "newer");
        Ok(())
    }

    #[test]
    fn a_replaced_folder_is_noticed() -> io::Result<()> {
        let (t, root) = setup()?;
        let v = t.path().join("vault");
        let inbox = root.folder("Inbox").map_err(io::Error::from)?;
        assert!(inbox.still_at(&root, "Inbox"));
        std::fs::rename(v.join("Inbox"), v.join("Inbox.old"))?;
        symlink(v.join("Inbox.old"), v.join("Inbox"))?;
        assert!(!inbox.still_at(&root, "Inbox"));
        // The descriptor still reaches the original folder.
        assert_eq!(read(inbox.file("a.txt", How::READ)?), "a");
        Ok(())
    }

    #[test]
    fn path_helpers_check_the_folder_and_the_file() -> io::Result<()> {
        let (t, _root) = setup()?;
        let v = t.path().join("vault");
        std::fs::create_dir(v.join("Logs"))?;
        std::fs::write(v.join("Logs/system.log"), "")?;
        assert!(open_in_folder(&v.join("Logs/system.log"), How::append(0o644)).is_ok());
        symlink(t.path().join("secret"), v.join("Logs/child.log"))?;
        assert!(open_in_folder(&v.join("Logs/child.log"), How::append(0o644)).is_err());
        std::fs::rename(v.join("Logs"), v.join("Logs.real"))?;
        symlink(v.join("Logs.real"), v.join("Logs"))?;
        assert!(open_in_folder(&v.join("Logs/system.log"), How::append(0o644)).is_err());
        assert!(folder_of(&v.join("Logs/system.log")).is_err());
        assert!(open_under(&v, &v.join("Inbox/sub/b.txt"), How::READ).is_ok());
        assert!(open_under(&v, &t.path().join("secret"), How::READ).is_err());
        assert_eq!(std::fs::read_to_string(t.path().join("secret"))?, "secret");
        Ok(())
    }
}
