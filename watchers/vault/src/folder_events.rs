//! Changes to the names in a few folders, and nothing else: a file created, written,
//! moved in or out, removed. Opening, reading and listing — a watcher's own reads above
//! all — make no event, so a watcher that reads what it watches is not woken by itself.
//!
//! On Linux the events come from inotify with a mask of only those changes (notify's
//! inotify mask is fixed and includes opens and reads: every open of a watched folder woke
//! its reader, and a loop that listed the folder after each wake-up woke itself for ever).
//! Elsewhere they come from notify (FSEvents, kqueue), whose open and read events are
//! dropped here before they reach the caller.
//!
//! The events are read on a thread of their own and handed to a callback; dropping the
//! [`FolderEvents`] stops that thread. [`FolderPoll`] gives the same events from listings
//! instead (for folders where OS events do not arrive, such as network shares).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What happened to a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Closed after writing: complete unless another writer still has it open.
    Closed,
    /// Moved (renamed) in: complete, if it was complete where it came from.
    MovedIn,
    /// Created, written to or its attributes changed: maybe still being written.
    Changed,
    /// Removed or moved out.
    Left,
}

/// One event, for the folder at index `folder` of the list given to [`FolderEvents::watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderEvent {
    /// Something happened to `name` in the folder.
    Name {
        folder: usize,
        name: OsString,
        change: Change,
    },
    /// Events were lost (too many at once): list the folders again.
    Lost,
    /// The watched folder itself was removed or moved away; no more events come for it.
    FolderGone(usize),
    /// Reading events failed (in words); no more events come.
    Failed(String),
}

/// Events for a few folders; they stop when this is dropped.
pub struct FolderEvents {
    #[cfg(target_os = "linux")]
    _reader: linux::Reader,
    #[cfg(not(target_os = "linux"))]
    _watcher: notify::RecommendedWatcher,
}

/// Listings every so often, in place of OS events; stops when dropped.
pub struct FolderPoll {
    _watcher: notify::PollWatcher,
}

impl FolderEvents {
    /// Watch `folders` (not their subfolders) and call `on_event` for each event, on a
    /// thread of this module's. Fails when the OS has no file events to give (inotify's
    /// instance or watch limit reached, say) or a folder cannot be watched.
    pub fn watch(
        folders: &[PathBuf],
        on_event: impl FnMut(FolderEvent) + Send + 'static,
    ) -> std::io::Result<FolderEvents> {
        #[cfg(target_os = "linux")]
        {
            Ok(FolderEvents {
                _reader: linux::Reader::start(folders, on_event)?,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            Ok(FolderEvents {
                _watcher: with_notify::watch(folders, on_event, notify::recommended_watcher)?,
            })
        }
    }
}

/// How often a watcher checks its working folders itself (still real folders, not
/// symlinks): with [`FolderEvents::watch_names`] saying when a name changed, only for what
/// those events cannot see (the vault folder itself replaced, say) ...
pub const FOLDER_CHECK_WITH_EVENTS: std::time::Duration = std::time::Duration::from_secs(10);
/// ... and without them (the OS gave none, or polling was asked for).
pub const FOLDER_CHECK_WITHOUT_EVENTS: std::time::Duration = std::time::Duration::from_secs(1);

/// [`FOLDER_CHECK_WITH_EVENTS`] or [`FOLDER_CHECK_WITHOUT_EVENTS`].
pub fn folder_check_every(name_events: bool) -> std::time::Duration {
    if name_events {
        FOLDER_CHECK_WITH_EVENTS
    } else {
        FOLDER_CHECK_WITHOUT_EVENTS
    }
}

impl FolderEvents {
    /// [`FolderEvents::watch_names`], none (said at debug level) where the OS gives no
    /// events for `folder`: the caller then checks every [`FOLDER_CHECK_WITHOUT_EVENTS`].
    pub fn watch_names_or_none(
        folder: &Path,
        names: &[&str],
        alarm: impl Fn() + Send + 'static,
    ) -> Option<FolderEvents> {
        FolderEvents::watch_names(folder, names, alarm)
            .inspect_err(|e| {
                tracing::debug!("no file events for the vault folder ({e}); checking every second");
            })
            .ok()
    }

    /// Call `alarm` whenever one of `names` directly in `folder` is created, changed,
    /// removed or renamed (a working folder replaced by a symlink, say), when events were
    /// lost, and when `folder` itself goes or its events stop: a watcher checks its
    /// folders when told so instead of polling them. Fails as [`FolderEvents::watch`].
    pub fn watch_names(
        folder: &Path,
        names: &[&str],
        alarm: impl Fn() + Send + 'static,
    ) -> std::io::Result<FolderEvents> {
        let names: Vec<OsString> = names.iter().map(OsString::from).collect();
        FolderEvents::watch(&[folder.to_path_buf()], move |e| {
            let ours = match &e {
                FolderEvent::Name { name, .. } => names.contains(name),
                FolderEvent::Lost | FolderEvent::FolderGone(_) | FolderEvent::Failed(_) => true,
            };
            if ours {
                alarm();
            }
        })
    }
}

impl FolderPoll {
    /// List `folders` every `interval` and call `on_event` for each difference (a new
    /// name is `Changed`, never `Closed`: a listing cannot see a writer close).
    pub fn start(
        folders: &[PathBuf],
        interval: std::time::Duration,
        on_event: impl FnMut(FolderEvent) + Send + 'static,
    ) -> std::io::Result<FolderPoll> {
        let config = notify::Config::default().with_poll_interval(interval);
        Ok(FolderPoll {
            _watcher: with_notify::watch(folders, on_event, |h| {
                notify::PollWatcher::new(h, config)
            })?,
        })
    }
}

impl std::fmt::Debug for FolderEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FolderEvents")
    }
}

/// The watched folder `path` is, if it is one of `folders`.
fn folder_index(folders: &[PathBuf], path: &Path) -> Option<usize> {
    folders.iter().position(|f| f == path)
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};
    use std::path::PathBuf;
    use std::thread::JoinHandle;

    use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
    use nix::fcntl::OFlag;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

    use super::{Change, FolderEvent};

    /// Only the changes: no IN_OPEN, IN_ACCESS, IN_CLOSE_NOWRITE.
    const MASK: WatchMask = WatchMask::CREATE
        .union(WatchMask::MODIFY)
        .union(WatchMask::ATTRIB)
        .union(WatchMask::CLOSE_WRITE)
        .union(WatchMask::MOVED_TO)
        .union(WatchMask::MOVED_FROM)
        .union(WatchMask::DELETE)
        .union(WatchMask::DELETE_SELF)
        .union(WatchMask::MOVE_SELF)
        .union(WatchMask::ONLYDIR);

    /// The reading thread and the pipe whose closing stops it.
    pub struct Reader {
        stop: Option<OwnedFd>,
        thread: Option<JoinHandle<()>>,
    }

    impl Reader {
        pub fn start(
            folders: &[PathBuf],
            mut on_event: impl FnMut(FolderEvent) + Send + 'static,
        ) -> io::Result<Reader> {
            let mut ino = Inotify::init()?;
            let mut watches: Vec<(WatchDescriptor, usize)> = Vec::new();
            for (i, dir) in folders.iter().enumerate() {
                watches.push((ino.watches().add(dir, MASK)?, i));
            }
            let (stop_r, stop_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
            let thread = std::thread::Builder::new()
                .name("folder-events".into())
                .spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match wait(&ino, &stop_r) {
                            Ok(true) => {}
                            Ok(false) => return, // stopped
                            Err(e) => {
                                on_event(FolderEvent::Failed(format!("inotify: {e}")));
                                return;
                            }
                        }
                        let events = match ino.read_events(&mut buf) {
                            Ok(events) => events,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                            Err(e) => {
                                on_event(FolderEvent::Failed(format!("inotify: {e}")));
                                return;
                            }
                        };
                        for ev in events {
                            let folder = watches.iter().find(|(wd, _)| *wd == ev.wd).map(|w| w.1);
                            if let Some(e) = translate(ev.mask, folder, ev.name) {
                                on_event(e);
                            }
                        }
                    }
                })?;
            Ok(Reader {
                stop: Some(stop_w),
                thread: Some(thread),
            })
        }
    }

    impl Drop for Reader {
        fn drop(&mut self) {
            // Closing the pipe's write end wakes the thread (POLLHUP on the read end).
            drop(self.stop.take());
            if let Some(t) = self.thread.take() {
                let _ = t.join(); // a panic in the callback has been reported already
            }
        }
    }

    /// Wait for events (true) or the stop pipe's closing (false).
    fn wait(ino: &Inotify, stop: &OwnedFd) -> nix::Result<bool> {
        loop {
            let mut fds = [
                PollFd::new(ino.as_fd(), PollFlags::POLLIN),
                PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
            if fds[1].any().unwrap_or(true) {
                return Ok(false);
            }
            if fds[0].any().unwrap_or(false) {
                return Ok(true);
            }
        }
    }

    /// The event an inotify event is, if any.
    pub(super) fn translate(
        mask: EventMask,
        folder: Option<usize>,
        name: Option<&std::ffi::OsStr>,
    ) -> Option<FolderEvent> {
        if mask.contains(EventMask::Q_OVERFLOW) {
            return Some(FolderEvent::Lost);
        }
        let folder = folder?;
        if mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
            return Some(FolderEvent::FolderGone(folder));
        }
        let change = if mask.contains(EventMask::CLOSE_WRITE) {
            Change::Closed
        } else if mask.contains(EventMask::MOVED_TO) {
            Change::MovedIn
        } else if mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM) {
            Change::Left
        } else if mask.intersects(EventMask::CREATE | EventMask::MODIFY | EventMask::ATTRIB) {
            Change::Changed
        } else {
            return None; // IN_IGNORED, IN_UNMOUNT
        };
        Some(FolderEvent::Name {
            folder,
            name: name?.to_os_string(),
            change,
        })
    }
}

mod with_notify {
    use std::path::PathBuf;

    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    use notify::{EventKind, RecursiveMode, Watcher};

    use super::{Change, FolderEvent, folder_index};

    /// What notify calls with each event.
    pub type Handler = Box<dyn FnMut(notify::Result<notify::Event>) + Send>;

    /// A notify watcher made by `make`, watching `folders`, its events translated.
    pub fn watch<W: Watcher>(
        folders: &[PathBuf],
        mut on_event: impl FnMut(FolderEvent) + Send + 'static,
        make: impl FnOnce(Handler) -> notify::Result<W>,
    ) -> std::io::Result<W> {
        let watched = folders.to_vec();
        let handler: Handler = Box::new(move |res| {
            for e in translate(&watched, res) {
                on_event(e);
            }
        });
        let io = |e: notify::Error| match e.kind {
            notify::ErrorKind::Io(io) => io,
            notify::ErrorKind::PathNotFound => std::io::ErrorKind::NotFound.into(),
            _ => std::io::Error::other(crate::watcher::notify_error_text(&e)),
        };
        let mut w = make(handler).map_err(io)?;
        for dir in folders {
            w.watch(dir, RecursiveMode::NonRecursive).map_err(io)?;
        }
        Ok(w)
    }

    /// The events a notify event is: none for opens and reads.
    pub(super) fn translate(
        folders: &[PathBuf],
        res: notify::Result<notify::Event>,
    ) -> Vec<FolderEvent> {
        let ev = match res {
            Ok(ev) => ev,
            Err(e) => return vec![FolderEvent::Failed(crate::watcher::notify_error_text(&e))],
        };
        if ev.need_rescan() {
            return vec![FolderEvent::Lost];
        }
        let change = |i: usize| match ev.kind {
            // A rename with both names: the old one left, the new one arrived.
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if i == 0 => Some(Change::Left),
            EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => {
                Some(Change::MovedIn)
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Change::Closed),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
                Some(Change::Left)
            }
            EventKind::Access(_) => None,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Any | EventKind::Other => {
                Some(Change::Changed)
            }
        };
        let mut out = Vec::new();
        for (i, path) in ev.paths.iter().enumerate() {
            let Some(change) = change(i) else { continue };
            if let Some(f) = folder_index(folders, path) {
                if change == Change::Left {
                    out.push(FolderEvent::FolderGone(f));
                }
                continue;
            }
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            if let Some(folder) = folder_index(folders, parent) {
                out.push(FolderEvent::Name {
                    folder,
                    name: name.to_os_string(),
                    change,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
    use std::time::Duration;

    use super::*;

    fn start(dirs: &[PathBuf]) -> (FolderEvents, Receiver<FolderEvent>) {
        let (tx, rx) = channel();
        let w = FolderEvents::watch(dirs, move |e| drop(tx.send(e))).unwrap();
        (w, rx)
    }

    /// Every event until `until` is among them (10 s at most).
    fn collect_until(rx: &Receiver<FolderEvent>, until: &FolderEvent) -> Vec<FolderEvent> {
        let mut seen = Vec::new();
        while !seen.contains(until) {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(e) => seen.push(e),
                Err(_) => panic!("no {until:?}; saw {seen:?}"),
            }
        }
        seen
    }

    fn name(folder: usize, n: &str, change: Change) -> FolderEvent {
        FolderEvent::Name {
            folder,
            name: n.into(),
            change,
        }
    }

    #[test]
    fn reads_make_no_events_and_changes_do() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        let b = t.path().join("b");
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("old.md"), "x").unwrap();
        let (_w, rx) = start(&[a.clone(), b.clone()]);
        // Reads: listing, opening the folder, reading a file.
        for _ in 0..50 {
            let _ = std::fs::read_dir(&a).unwrap().count();
            let _ = std::fs::File::open(&a).unwrap();
            let _ = std::fs::read(a.join("old.md")).unwrap();
        }
        // A marker change after the reads: every read's event (were there any) would
        // have come before it.
        std::fs::write(b.join("marker"), "").unwrap();
        let seen = collect_until(&rx, &name(1, "marker", Change::Closed));
        assert!(
            seen.iter()
                .all(|e| matches!(e, FolderEvent::Name { folder: 1, .. })),
            "events for reads: {seen:?}"
        );
        // Moved in, moved out, removed.
        std::fs::rename(b.join("marker"), a.join("new.md")).unwrap();
        collect_until(&rx, &name(0, "new.md", Change::MovedIn));
        std::fs::remove_file(a.join("old.md")).unwrap();
        collect_until(&rx, &name(0, "old.md", Change::Left));
    }

    #[test]
    fn a_removed_folder_is_said_and_dropping_stops_the_thread() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let (w, rx) = start(std::slice::from_ref(&a));
        std::fs::remove_dir(&a).unwrap();
        collect_until(&rx, &FolderEvent::FolderGone(0));
        drop(w);
        // The thread has ended: its callback (holding the sender) is gone.
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(_) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("the reading thread still runs"),
            }
        }
    }

    #[test]
    fn watched_names_alarm_and_other_names_do_not() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir(root.join("Approved")).unwrap();
        let (tx, rx) = channel();
        let _w = FolderEvents::watch_names(root, &["Approved", "Done"], move || {
            let _ = tx.send(());
        })
        .unwrap();
        // Other names (the Dashboard's rewrites, say), and reads: no alarm.
        for _ in 0..20 {
            std::fs::write(root.join(".Dashboard.md.tmp"), "x").unwrap();
            std::fs::rename(root.join(".Dashboard.md.tmp"), root.join("Dashboard.md")).unwrap();
            let _ = std::fs::read_dir(root.join("Approved")).unwrap().count();
        }
        // Approved/ renamed away and a symlink put in its place: alarms.
        std::fs::rename(root.join("Approved"), root.join("old")).unwrap();
        rx.recv_timeout(Duration::from_secs(10)).expect("an alarm");
        std::os::unix::fs::symlink(root.join("old"), root.join("Approved")).unwrap();
        rx.recv_timeout(Duration::from_secs(10)).expect("an alarm");
        // Only those: nothing came for the 20 rewrites before them (each alarm was one of
        // the two changes, and nothing more is queued).
        std::fs::write(root.join("Done"), "").unwrap();
        rx.recv_timeout(Duration::from_secs(10)).expect("an alarm");
        // A created file may give a second event (created, then closed after writing).
        let more = std::iter::from_fn(|| rx.recv_timeout(Duration::from_millis(200)).ok()).count();
        assert!(more <= 1, "{more} more alarms: alarms for other names");
    }

    #[test]
    fn a_missing_folder_cannot_be_watched() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("missing");
        let e = FolderEvents::watch(std::slice::from_ref(&missing), |_| {}).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn polling_sees_new_and_removed_names() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        std::fs::create_dir(&a).unwrap();
        let (tx, rx) = channel();
        let every = Duration::from_millis(20);
        let _p =
            FolderPoll::start(std::slice::from_ref(&a), every, move |e| drop(tx.send(e))).unwrap();
        std::fs::write(a.join("new.md"), "x").unwrap();
        collect_until(&rx, &name(0, "new.md", Change::Changed));
        std::fs::remove_file(a.join("new.md")).unwrap();
        collect_until(&rx, &name(0, "new.md", Change::Left));
    }
}
