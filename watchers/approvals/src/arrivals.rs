//! Which files in `Approved/` are ready to be read: the folder's change events (the vault's
//! `folder_events`: inotify on Linux, FSEvents / kqueue elsewhere; the handler's own
//! reads make none) plus a full listing at start, whenever events were lost, and every
//! `--rescan` (3 s) where there are no events; with them, once a minute.
//!
//! A file moved in (a rename is atomic) or closed after writing is ready at once. Any
//! other sighting (created, modified, found by a listing) is ready once neither its
//! content nor its metadata changed for `settle` (its ctime is older), so a file
//! still being written in place is not read half-way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant, SystemTime};

use ai_employee_vault::folder_events::{Change, FolderEvent, FolderEvents};
use ai_employee_vault::nofollow;

/// How often pending (settling) files are looked at again.
const SETTLE_POLL: Duration = Duration::from_millis(20);

/// How often the folder is listed while its file events work (at least; `--rescan` when
/// longer). Lost events are reported (`FolderEvent::Lost`) and listed for at once; this
/// listing is only a last resort, and a file that could not be handled is looked at
/// again on its own timer (`later`), not by it.
const LISTING_WITH_EVENTS: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hint {
    /// Renamed in, or closed after writing.
    Complete,
    /// Seen, maybe still being written.
    Settling,
    /// Found incomplete when read (open for writing, or changed too recently): look
    /// again at this instant, or at once when a writer closes it.
    Until(Instant),
}

/// What wakes [`Arrivals::poll`]: a change in the folder, or a [`Arrivals::waker`] call.
enum Wake {
    Folder(FolderEvent),
    Asked,
}

pub struct Arrivals {
    dir: PathBuf,
    rx: Receiver<Wake>,
    /// For [`Arrivals::waker`]; also keeps the channel open without file events.
    tx: Sender<Wake>,
    /// The folder's file events, while they work (none: never watched, failed, or the
    /// folder they were for is gone).
    watcher: Option<FolderEvents>,
    pending: HashMap<String, Hint>,
    settle: Duration,
    rescan_every: Duration,
    /// The watched folder was removed or moved away: a folder at its path is watched
    /// at the next listing.
    rewatch: bool,
    last_scan: Instant,
}

/// The file events of `dir`, sent to `tx` (the send fails only when the handler stopped).
fn watch(dir: &Path, tx: &Sender<Wake>) -> std::io::Result<FolderEvents> {
    let events = tx.clone();
    FolderEvents::watch(&[dir.to_path_buf()], move |e| {
        drop(events.send(Wake::Folder(e)))
    })
}

/// Whether a name in `Approved/` is an approval file: `*.md`, not hidden (editors' and
/// our own temp files start with a dot).
pub fn is_candidate(name: &str) -> bool {
    name.len() > 3 && name.ends_with(".md") && !name.starts_with('.')
}

impl Arrivals {
    /// Start watching `dir` and list what is already there.
    pub fn new(dir: &Path, settle: Duration, rescan_every: Duration) -> Arrivals {
        let (tx, rx) = channel();
        let watcher = match watch(dir, &tx) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "no file events for {} ({e}); listing it every {} instead",
                    dir.display(),
                    ai_employee_vault::units::format_duration(rescan_every)
                );
                None
            }
        };
        let mut a = Arrivals {
            dir: dir.to_path_buf(),
            rx,
            tx,
            rewatch: false,
            watcher,
            pending: HashMap::new(),
            settle,
            rescan_every,
            last_scan: Instant::now(),
        };
        a.scan();
        a
    }

    /// Every approval file in the folder right now, sorted (the start-up pass).
    pub fn list(&self) -> Vec<String> {
        // Listed through the folder's descriptor: `Approved/` replaced by a symlink (to
        // `Pending_Approval/`, say) is refused, never listed.
        let listed = nofollow::open_folder(&self.dir)
            .map_err(std::io::Error::from)
            .and_then(|d| d.list());
        let mut names: Vec<String> = match listed {
            Ok(entries) => entries
                .into_iter()
                .filter_map(|e| e.name.into_string().ok())
                .filter(|n| is_candidate(n))
                .collect(),
            Err(e) => {
                tracing::warn!("failed to list {}: {e}", self.dir.display());
                Vec::new()
            }
        };
        names.sort();
        names
    }

    fn scan(&mut self) {
        self.last_scan = Instant::now();
        // Watched before it is listed, so that nothing arrives unseen in between.
        if self.rewatch
            && let Ok(w) = watch(&self.dir, &self.tx)
        {
            tracing::info!("watching {} again", self.dir.display());
            self.watcher = Some(w);
            self.rewatch = false;
        }
        for name in self.list() {
            self.pending.entry(name).or_insert(Hint::Settling);
        }
    }

    /// Forget a name (it was handled, or is waiting for a retry).
    pub fn forget(&mut self, name: &str) {
        self.pending.remove(name);
    }

    /// Look at `name` again after `wait` (it was not complete), or as soon as it is
    /// closed after writing or moved in again.
    pub fn later(&mut self, name: &str, wait: Duration) {
        self.pending
            .insert(name.to_string(), Hint::Until(Instant::now() + wait));
    }

    /// Something that makes a [`Arrivals::poll`] waiting now (or the next one) return at
    /// once, callable from any thread (a stop signal's).
    pub fn waker(&self) -> impl Fn() + Send + 'static {
        let tx = self.tx.clone();
        move || drop(tx.send(Wake::Asked))
    }

    /// Wait at most `max_wait` for events (less when the next full listing or a settling
    /// file is due sooner, and no longer once [`Arrivals::waker`] is called), then return
    /// the names that are ready, sorted. `skip`: names the caller is not interested in
    /// right now (waiting for a retry).
    pub fn poll(&mut self, max_wait: Duration, skip: &dyn Fn(&str) -> bool) -> Vec<String> {
        let every = self.listing_every();
        let mut wait = max_wait.min(every.saturating_sub(self.last_scan.elapsed()));
        if !self.pending.is_empty() {
            wait = wait.min(SETTLE_POLL);
        }
        // Never disconnected: this holds a sender.
        if let Ok(w) = self.rx.recv_timeout(wait) {
            self.on_wake(w);
        }
        while let Ok(w) = self.rx.try_recv() {
            self.on_wake(w);
        }
        if self.last_scan.elapsed() >= self.listing_every() {
            self.scan();
        }
        self.pending.retain(|name, _| !skip(name));
        let mut ready = Vec::new();
        let now = SystemTime::now();
        let settle = self.settle;
        // Opened only when a name needs looking at.
        let dir = if self.pending.values().any(|h| *h == Hint::Settling) {
            nofollow::open_folder(&self.dir).ok()
        } else {
            None
        };
        let instant = Instant::now();
        self.pending.retain(|name, hint| {
            match *hint {
                Hint::Complete => {
                    ready.push(name.clone());
                    return false;
                }
                Hint::Until(t) if t <= instant => {
                    ready.push(name.clone());
                    return false;
                }
                Hint::Until(_) => return true,
                Hint::Settling => {}
            }
            match dir.as_ref().map(|d| d.stat(name.as_str())) {
                None | Some(Err(_)) => false,
                Some(Ok(meta)) => {
                    if quiet_for(meta.changed(), now) >= settle {
                        ready.push(name.clone());
                        false
                    } else {
                        true
                    }
                }
            }
        });
        ready.sort();
        ready
    }

    /// How often the folder is listed in full: every `--rescan` without file events,
    /// every [`LISTING_WITH_EVENTS`] (or `--rescan`, if longer) with them.
    fn listing_every(&self) -> Duration {
        if self.watcher.is_some() {
            self.rescan_every.max(LISTING_WITH_EVENTS)
        } else {
            self.rescan_every
        }
    }

    fn on_wake(&mut self, w: Wake) {
        match w {
            Wake::Folder(ev) => self.on_event(ev),
            Wake::Asked => {}
        }
    }

    fn on_event(&mut self, ev: FolderEvent) {
        let (name, change) = match ev {
            FolderEvent::Name { name, change, .. } => (name, change),
            FolderEvent::Lost => {
                tracing::debug!("file events were lost; listing the folder again");
                self.scan();
                return;
            }
            // The handler's folder check says why (a symlink put in its place, say).
            // No more events come for it: until a folder made in its place is watched
            // (at a listing), it is listed every `--rescan`.
            FolderEvent::FolderGone(_) => {
                self.watcher = None;
                self.rewatch = true;
                tracing::debug!("{} was removed or moved", self.dir.display());
                return;
            }
            FolderEvent::Failed(e) => {
                self.watcher = None;
                tracing::warn!(
                    "file events stopped ({e}); listing {} every {} instead",
                    self.dir.display(),
                    ai_employee_vault::units::format_duration(self.rescan_every)
                );
                return;
            }
        };
        let hint = match change {
            Change::Closed | Change::MovedIn => Hint::Complete,
            Change::Changed => Hint::Settling,
            // Handled (moved out by us) or removed by someone.
            Change::Left => return,
        };
        let Some(name) = name.to_str() else { return };
        if !is_candidate(name) {
            return;
        }
        let entry = self.pending.entry(name.to_string()).or_insert(hint);
        if hint == Hint::Complete {
            *entry = Hint::Complete;
        }
    }
}

/// Time since the file last changed, content or metadata (its ctime, which every write,
/// rename and chmod updates and nobody can set back). A ctime in the future (the clock
/// was turned back since) counts as quiet.
pub fn quiet_for(ctime: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(ctime).unwrap_or(Duration::MAX)
}
