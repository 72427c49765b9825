//! Files of the vault, reached without following a symlink out of their role.
//!
//! The vault is shared with Obsidian, sync services and the agent: anyone who can write
//! it can put a symlink where the program expects a folder or a file (`Inbox -> /etc`,
//! `Approved -> Pending_Approval`, `Dashboard.md -> ~/.bashrc`). Everything the program
//! reads as input or writes as output inside the vault therefore goes through this
//! module, the one user of the `*at` system calls (which [`crate::sys`] carries out):
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
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use crate::sys::{self, At, DIR_FLAGS};
pub use crate::sys::{Kind, Stat};

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

/// `fstat` of an open file.
pub fn stat_file(f: &impl AsFd) -> io::Result<Stat> {
    sys::stat(f.as_fd())
}

/// Whether [`Dir::rename`] may replace what is at its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replace {
    Yes,
    No,
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

impl Dir {
    /// Open the folder at `path`, following symlinks: the vault root, or a folder the
    /// user named explicitly. What is inside it is reached through the other methods.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let fd = sys::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        )?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// `name` in this folder, for the `*at` calls.
    fn at<'a>(&'a self, name: &'a OsStr) -> At<'a> {
        At::new(self.fd.as_fd(), name)
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
        self.make_folder_path(rel.as_ref(), private)
    }

    /// [`Dir::make_folder`]'s body, compiled once rather than once per path type.
    fn make_folder_path(&self, rel: &Path, private: bool) -> Result<Dir, FolderError> {
        let mode = if private { 0o700 } else { 0o755 };
        let mut cur: Option<Dir> = None;
        let mut so_far = PathBuf::new();
        for c in components(rel).map_err(|e| self.folder_error("create", rel, e))? {
            so_far.push(c);
            let parent = cur.as_ref().unwrap_or(self);
            match sys::make_dir_at(parent.at(c), mode) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(self.folder_error("create", &so_far, e)),
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
                sys::chmod(dir.fd.as_fd(), 0o700)
                    .map_err(|e| self.folder_error("protect", rel, e))?;
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
        self.file_path(rel.as_ref(), how)
    }

    /// [`Dir::file`]'s body, compiled once rather than once per path type.
    fn file_path(&self, rel: &Path, how: How) -> io::Result<File> {
        self.file_stat(rel, how).map(|(f, _)| f)
    }

    /// [`Dir::file`], and the file's status when it was looked at (`None` for a file
    /// this call created: `O_CREAT | O_EXCL` makes a new regular file or nothing).
    fn file_stat(&self, rel: &Path, how: How) -> io::Result<(File, Option<Stat>)> {
        let flags = how.flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
        let fd = self
            .resolve(rel, flags, how.mode)
            .map_err(|e| self.explain(rel, e))?;
        if how.flags.contains(OFlag::O_CREAT | OFlag::O_EXCL) {
            // Only ever ours: O_NONBLOCK has no effect on a regular file's reads and writes.
            return Ok((File::from(fd), None));
        }
        let st = stat_file(&fd)?;
        if st.kind != Kind::File {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", self.path.join(rel).display()),
            ));
        }
        // A regular file never blocks (the flag only kept a FIFO from blocking the open).
        // A descriptor that can write may be handed to a child process (an agent's log):
        // make it an ordinary one; a read-only one stays ours and is left as it is.
        if how.flags.intersects(OFlag::O_WRONLY | OFlag::O_RDWR) {
            sys::set_blocking(fd.as_fd())?;
        }
        Ok((File::from(fd), Some(st)))
    }

    /// The whole content of the regular file `rel`, at most `limit` bytes (`None`: no
    /// limit); over it, `InvalidData` with the size ([`is_over_limit`]).
    pub fn read(&self, rel: impl AsRef<Path>, limit: Option<u64>) -> io::Result<Vec<u8>> {
        self.read_path(rel.as_ref(), limit).map(|(b, _)| b)
    }

    /// [`Dir::read`], and the file's status as it was opened (`fstat`).
    pub fn read_stat(
        &self,
        rel: impl AsRef<Path>,
        limit: Option<u64>,
    ) -> io::Result<(Vec<u8>, Stat)> {
        self.read_path(rel.as_ref(), limit)
    }

    /// [`Dir::read`]'s body, compiled once rather than once per path type.
    fn read_path(&self, rel: &Path, limit: Option<u64>) -> io::Result<(Vec<u8>, Stat)> {
        use std::io::Read;
        let (f, st) = self.file_stat(rel, How::READ)?;
        let st = match st {
            Some(st) => st,
            None => stat_file(&f)?,
        };
        let len = st.size;
        let cap = limit.unwrap_or(u64::MAX);
        if len > cap {
            return Err(too_large(&self.path.join(rel), len, cap));
        }
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        f.take(cap.saturating_add(1)).read_to_end(&mut buf)?;
        if buf.len() as u64 > cap {
            return Err(too_large(&self.path.join(rel), buf.len() as u64, cap));
        }
        Ok((buf, st))
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
        sys::open_beneath(self.fd.as_fd(), &parts, flags, mode)
    }

    /// `lstat` of the name `rel` (a symlink is reported as one). Intermediate components
    /// are not followed either.
    pub fn stat(&self, rel: impl AsRef<Path>) -> io::Result<Stat> {
        let (dir, name) = self.parent_of(rel.as_ref())?;
        let d = dir.as_ref().unwrap_or(self);
        sys::stat_at(d.at(name))
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
        sys::read_link_at(self.at(name.as_ref().as_os_str()))
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
        let mut out = Vec::new();
        for (name, kind) in sys::list(self.fd.as_fd())? {
            let kind = match kind {
                Some(kind) => kind,
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

    /// Rename `from` (in this folder) to `to` in `to_dir`. [`Replace::Yes`]: what is at
    /// `to` is replaced. [`Replace::No`]: if `to` exists, `AlreadyExists` and nothing
    /// changed; where the file system has no such rename: `link`, fsync of `to_dir`,
    /// `unlink`, and a crash between the two leaves both names, never neither (callers'
    /// recovery looks at the link count).
    pub fn rename(
        &self,
        from: impl AsRef<Path>,
        to_dir: &Dir,
        to: impl AsRef<Path>,
        replace: Replace,
    ) -> io::Result<()> {
        let (from, to) = (single(from.as_ref())?, single(to.as_ref())?);
        let (old, new) = (self.at(from), to_dir.at(to));
        match replace {
            Replace::Yes => sys::rename_at(old, new),
            Replace::No => {
                if sys::rename_noreplace(old, new)? {
                    return Ok(());
                }
                sys::link_at(old, new)?;
                to_dir.sync()?;
                sys::remove_file_at(old)
            }
        }
    }

    /// Swap the names `a` and `b` of this folder in one step. `Ok(false)`: not possible
    /// on this platform or file system (nothing changed).
    pub fn exchange(&self, a: impl AsRef<Path>, b: impl AsRef<Path>) -> io::Result<bool> {
        let (a, b) = (single(a.as_ref())?, single(b.as_ref())?);
        sys::exchange(self.at(a), self.at(b))
    }

    /// Remove the name `name` (a file or a symlink itself, never its target).
    pub fn remove_file(&self, name: impl AsRef<Path>) -> io::Result<()> {
        let name = single(name.as_ref())?;
        sys::remove_file_at(self.at(name))
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
        sys::remove_dir_at(self.at(name))
    }

    /// fsync the folder, so names created, renamed or removed in it are durable.
    pub fn sync(&self) -> io::Result<()> {
        sys::fsync(self.fd.as_fd())
    }

    /// `syncfs` of the file system this folder is on: everything pending there is
    /// written out, one journal commit for many files. `Unsupported` on macOS.
    pub fn sync_file_system(&self) -> io::Result<()> {
        sys::syncfs(self.fd.as_fd())
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
        self.create_new_path(name.as_ref(), bytes, mode)
    }

    /// [`Dir::create_new`]'s body, compiled once rather than once per path type.
    fn create_new_path(&self, name: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
        let name = single(name)?;
        let mut tmp = self.temp_file(".tmp-", "", mode)?;
        tmp.write_all(bytes)?;
        tmp.file().sync_all()?;
        match self.rename(tmp.name(), self, name, Replace::No) {
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
        self.write_atomic_path(name.as_ref(), bytes, mode)
    }

    /// [`Dir::write_atomic`]'s body, compiled once rather than once per path type.
    fn write_atomic_path(&self, name: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        let name = single(name)?;
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
        sys::chmod(tmp.file().as_fd(), mode)?;
        tmp.write_all(bytes)?;
        tmp.file().sync_all()?;
        self.rename(tmp.name(), self, name, Replace::Yes)?;
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
            // Best effort: a temp file that cannot be removed (the folder went read-only)
            // holds no user data, and a drop has no one to report to.
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

/// The error [`Dir::read`] makes of a file over its limit (kind `InvalidData`), told from
/// any other by [`is_over_limit`].
#[derive(Debug)]
struct OverLimit(String);

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OverLimit {}

fn too_large(path: &Path, len: u64, cap: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        OverLimit(format!(
            "{} is {len} bytes, over the limit of {cap} bytes",
            path.display()
        )),
    )
}

/// Whether `e` is [`Dir::read`]'s refusal of a file over its limit: the file is there and
/// too large, not unreadable for a passing reason.
pub fn is_over_limit(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<OverLimit>())
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

    /// Move the folder `path` to `<path>.real` and put a symlink to it at `path`.
    fn replace_with_a_link(path: &Path) -> io::Result<()> {
        let mut real = path.as_os_str().to_os_string();
        real.push(".real");
        std::fs::rename(path, &real)?;
        symlink(&real, path)
    }

    #[test]
    fn a_file_over_the_read_limit_is_told_from_other_errors() -> io::Result<()> {
        let (_t, root) = setup()?;
        std::fs::write(root.path.join("Inbox/big.txt"), "0123456789")?;
        let over = root.read("Inbox/big.txt", Some(4)).err();
        assert!(over.as_ref().is_some_and(is_over_limit), "{over:?}");
        assert_eq!(over.map(|e| e.kind()), Some(io::ErrorKind::InvalidData));
        assert_eq!(root.read("Inbox/big.txt", Some(10))?, b"0123456789");
        let missing = root.read("Inbox/none.txt", Some(4)).err();
        assert!(missing.as_ref().is_some_and(|e| !is_over_limit(e)));
        let other = io::Error::new(io::ErrorKind::InvalidData, "another");
        assert!(!is_over_limit(&other));
        Ok(())
    }

    fn read(f: File) -> String {
        let mut s = String::new();
        // A failed read leaves `s` short, which the test's comparison reports.
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

    fn open_read(path: &Path) -> io::Result<File> {
        let dir = path.parent().unwrap_or(Path::new("."));
        Dir::open(dir)?.file(path.file_name().unwrap_or_default(), How::READ)
    }

    fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
        let (a, b) = (from.parent(), to.parent());
        let (a, b) = (a.unwrap_or(Path::new(".")), b.unwrap_or(Path::new(".")));
        let name = |p: &Path| p.file_name().unwrap_or_default().to_os_string();
        Dir::open(a)?.rename(name(from), &Dir::open(b)?, name(to), Replace::No)
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

    #[test]
    fn fifos_are_refused_without_blocking() -> io::Result<()> {
        let (t, root) = setup()?;
        let mode = nix::sys::stat::Mode::S_IRWXU;
        nix::unistd::mkfifo(&t.path().join("vault/Inbox/fifo"), mode)?;
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
            .rename("a.txt", &out, "a.txt", Replace::No)
            .expect_err("taken");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        inbox.rename("a.txt", &out, "b.txt", Replace::No)?;
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
        let (_t, root) = setup()?;
        let inbox = root.folder("Inbox").map_err(io::Error::from)?;
        assert!(inbox.still_at(&root, "Inbox"));
        replace_with_a_link(&root.path().join("Inbox"))?;
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
        replace_with_a_link(&v.join("Logs"))?;
        assert!(open_in_folder(&v.join("Logs/system.log"), How::append(0o644)).is_err());
        assert!(folder_of(&v.join("Logs/system.log")).is_err());
        assert!(open_under(&v, &v.join("Inbox/sub/b.txt"), How::READ).is_ok());
        assert!(open_under(&v, &t.path().join("secret"), How::READ).is_err());
        assert_eq!(std::fs::read_to_string(t.path().join("secret"))?, "secret");
        Ok(())
    }
}
