//! Finished tasks made durable off the loop's thread. A task's final state is written and
//! the file moved to `Done/` (or `Rejected/`, `Failed/`) atomically but without an fsync;
//! the loop then asks this thread for one `syncfs` of the vault's file system (where there
//! is none, an fsync of each folder that received a task). Syncs start at least
//! [`SYNC_GAP`] (100 ms) apart, each serving every request made before it, so a burst of
//! finishes costs one sync per gap (the first after a quiet spell starts at once), and the
//! loop never waits for the disk (10,000 no-op tasks took the loop 12.4 s
//! with its own `syncfs` per batch, 7.4 s with none; docs/BENCHMARKS.md). A clean stop waits for the last sync
//! ([`Durable::finish`]), and syncs what is still asked at once. What is lost to a power
//! cut before a sync completes (at most a gap's finishes) is a final state not yet on
//! disk: the task is found `running` in `In_Progress/` and retried.
//!
//! The same thread removes the texts the loop's frontmatter edits replaced
//! ([`Leftovers`], `task::update_with`): an unlink that frees a file's blocks was a tenth
//! of the loop's CPU per task. A leftover a killed loop did not remove is a hidden
//! `.tmp-task-*` file, removed by a later start ([`stale_leftover`]).

use std::ffi::OsString;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ai_employee_vault::layout::Folder;
use ai_employee_vault::nofollow::{Dir, Kind, Stat};
use tracing::warn;

use super::Dirs;
use crate::agent::task::{self, Leftover, RemoveNow};

/// A request to the thread.
enum Job {
    /// Make the tasks moved into these folders durable (request number).
    Sync(u64, Vec<Folder>),
    /// Remove a leftover of an edit.
    Remove(Folder, OsString),
}

/// The least time from one sync's start to the next one's. A burst of finishes is made
/// durable by one sync per gap instead of one after another: a file replaced or removed
/// within the gap is then never written out, and on a file system mounted with `discard`
/// its blocks are not discarded either (10,000 no-op tasks took the machine 12 % less CPU;
/// docs/BENCHMARKS.md). The first sync after a quiet gap starts at once.
const SYNC_GAP: Duration = Duration::from_millis(100);

/// The folders a task's file is edited in.
const EDITED: [Folder; 2] = [Folder::NeedsAction, Folder::InProgress];

pub(super) struct Durable {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// The last request handed over.
    asked: u64,
    /// The last request whose sync completed.
    done: Arc<AtomicU64>,
    /// Syncs made (counted for the tests of the gap).
    #[cfg_attr(not(test), allow(dead_code))]
    syncs: Arc<AtomicU64>,
}

/// Told after each completed sync (a permit is kept when nobody waits).
pub(super) type Synced = Arc<tokio::sync::Notify>;

impl Durable {
    pub(super) fn start(dirs: &Dirs, synced: Synced) -> std::io::Result<Durable> {
        Durable::start_with(dirs, synced, SYNC_GAP)
    }

    /// [`Durable::start`] with syncs `gap` apart.
    fn start_with(dirs: &Dirs, synced: Synced, gap: Duration) -> std::io::Result<Durable> {
        let mut own: Vec<(Folder, Dir)> = Vec::new();
        for f in [
            Folder::NeedsAction,
            Folder::InProgress,
            Folder::Done,
            Folder::Rejected,
            Folder::Failed,
        ] {
            own.push((f, dirs.of(f).try_clone()?));
        }
        let root = dirs.root.try_clone()?;
        let (tx, rx) = mpsc::channel::<Job>();
        let done = Arc::new(AtomicU64::new(0));
        let syncs = Arc::new(AtomicU64::new(0));
        let (done2, syncs2) = (done.clone(), syncs.clone());
        let thread = std::thread::Builder::new()
            .name("vault-sync".into())
            .spawn(move || serve(&rx, &root, &own, gap, (&done2, &syncs2), &synced))?;
        Ok(Durable {
            tx: Some(tx),
            thread: Some(thread),
            asked: 0,
            done,
            syncs,
        })
    }

    /// Ask for the tasks just moved into `folders` to be made durable; returns the request's
    /// number (durable once [`Durable::completed`] reaches it), or the folders back when
    /// the thread is gone (only after a bug made it panic): the caller syncs them itself.
    pub(super) fn request(&mut self, folders: Vec<Folder>) -> Result<u64, Vec<Folder>> {
        let Some(tx) = &self.tx else {
            return Err(folders);
        };
        self.asked += 1;
        match tx.send(Job::Sync(self.asked, folders)) {
            Ok(()) => Ok(self.asked),
            Err(mpsc::SendError(job)) => {
                let folders = match job {
                    Job::Sync(_, folders) => folders,
                    Job::Remove(..) => Vec::new(),
                };
                warn!("the sync thread is gone; syncing on the loop's thread");
                self.tx = None;
                Err(folders)
            }
        }
    }

    /// Where the loop's edits of task files in `folder` leave what they replaced.
    pub(super) fn leftovers(&self, folder: Folder) -> Leftovers {
        Leftovers {
            tx: self.tx.clone().filter(|_| EDITED.contains(&folder)),
            folder,
        }
    }

    /// The last request made durable.
    pub(super) fn completed(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }

    /// How many syncs the thread made.
    #[cfg(test)]
    fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Serve every request made so far, then stop the thread.
    pub(super) fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join(); // a panic there was already reported
        }
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Hands an edit's leftover to the thread ([`Durable::leftovers`]); removes it at once
/// when there is no thread.
pub(super) struct Leftovers {
    tx: Option<mpsc::Sender<Job>>,
    folder: Folder,
}

impl Leftovers {
    /// No thread: every leftover removed at once.
    pub(super) fn now(folder: Folder) -> Leftovers {
        Leftovers { tx: None, folder }
    }
}

impl Leftover for Leftovers {
    fn left(&self, dir: &Dir, name: OsString) {
        let Some(tx) = &self.tx else {
            return RemoveNow.left(dir, name);
        };
        // Handed back only when the thread is gone (after a panic, already reported).
        if let Err(mpsc::SendError(Job::Remove(_, name))) = tx.send(Job::Remove(self.folder, name))
        {
            RemoveNow.left(dir, name);
        }
    }
}

/// Whether `name`, with status `st`, is a leftover of an edit (a hidden
/// [`task::TEMP_PREFIX`] file) that no edit can still be using: its last change (the swap
/// that made it one, or its creation) over a minute ago.
pub(super) fn stale_leftover(name: &str, st: &Stat, now_ns: i64) -> bool {
    const MIN_AGE_NS: i64 = 60 * 1_000_000_000;
    name.starts_with(task::TEMP_PREFIX)
        && st.kind == Kind::File
        && now_ns.saturating_sub(st.ctime_ns) > MIN_AGE_NS
}

/// The thread: syncs at most every `gap` ([`SYNC_GAP`]), each serving every request made before it
/// started; leftovers removed as they come. Ends when the loop's side is dropped, after a
/// last sync of what was still asked.
fn serve(
    rx: &mpsc::Receiver<Job>,
    root: &Dir,
    own: &[(Folder, Dir)],
    gap: Duration,
    (done, syncs): (&AtomicU64, &AtomicU64),
    synced: &Synced,
) {
    let mut asked: Option<u64> = None;
    let mut folders = Vec::new();
    let mut last: Option<Instant> = None;
    let mut open = true;
    while open || asked.is_some() {
        // When the next sync may start (at once after a quiet gap).
        let due = last.map(|l| l + gap);
        let first = if !open {
            None
        } else if asked.is_none() {
            match rx.recv() {
                Ok(job) => Some(job),
                Err(mpsc::RecvError) => {
                    open = false; // the loop has gone
                    None
                }
            }
        } else {
            let wait = due.map_or(Duration::ZERO, |d| {
                d.saturating_duration_since(Instant::now())
            });
            match rx.recv_timeout(wait) {
                Ok(job) => Some(job),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    open = false;
                    None
                }
            }
        };
        let mut removals = Vec::new();
        for job in first.into_iter().chain(rx.try_iter()) {
            match job {
                Job::Sync(n, more) => {
                    asked = Some(asked.map_or(n, |a| a.max(n)));
                    for f in more {
                        if !folders.contains(&f) {
                            folders.push(f);
                        }
                    }
                }
                Job::Remove(f, name) => removals.push((f, name)),
            }
        }
        let now = Instant::now();
        if let Some(upto) = asked
            && (!open || due.is_none_or(|d| now >= d))
        {
            last = Some(now);
            sync(root, own, &folders);
            syncs.fetch_add(1, Ordering::Relaxed);
            folders.clear();
            asked = None;
            done.store(upto, Ordering::Release);
            synced.notify_one();
        }
        for (f, name) in removals {
            if let Some((_, dir)) = own.iter().find(|(o, _)| *o == f) {
                // As `task::RemoveNow`: best effort.
                let _ = dir.remove_file(&name);
            }
        }
    }
}

fn sync(root: &Dir, own: &[(Folder, Dir)], folders: &[Folder]) {
    match root.sync_file_system() {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            // The folder a task left and the ones it reached.
            for (f, dir) in own {
                if (*f == Folder::InProgress || folders.contains(f))
                    && let Err(err) = dir.sync()
                {
                    warn!("cannot sync {}: {err}", f.name());
                }
            }
        }
        Err(e) => warn!("cannot sync the vault's file system: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_employee_vault::layout::Vault;
    use std::time::{Duration, Instant};

    /// A vault in a temporary folder, its folders, the thread started.
    fn started() -> (tempfile::TempDir, Dirs, Durable) {
        started_with(SYNC_GAP)
    }

    /// [`started`], with syncs `gap` apart.
    fn started_with(gap: Duration) -> (tempfile::TempDir, Dirs, Durable) {
        let tmp = match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        };
        let dirs = match Dirs::open(&Vault::new(tmp.path().to_path_buf())) {
            Ok(d) => d,
            Err(e) => panic!("vault: {e}"),
        };
        match Durable::start_with(&dirs, Synced::default(), gap) {
            Ok(d) => (tmp, dirs, d),
            Err(e) => panic!("start: {e}"),
        }
    }

    #[test]
    fn requests_complete_in_order_and_a_finished_thread_hands_work_back() {
        let (_tmp, _dirs, mut d) = started();
        let mut last = 0;
        for _ in 0..20 {
            let n = ask(&mut d);
            assert_eq!(n, last + 1);
            last = n;
        }
        wait_for(&d, last);
        d.finish();
        assert_eq!(d.request(vec![Folder::Failed]), Err(vec![Folder::Failed]));
    }

    /// Waits (with a deadline) until request `n` is durable.
    fn wait_for(d: &Durable, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while d.completed() < n && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(d.completed(), n, "request {n} served");
    }

    fn ask(d: &mut Durable) -> u64 {
        match d.request(vec![Folder::Done]) {
            Ok(n) => n,
            Err(_) => panic!("the thread took no request"),
        }
    }

    #[test]
    fn a_burst_is_synced_once_per_gap_and_a_stop_syncs_at_once() {
        // A gap no test waits for: whatever is served within it is served by the stop.
        let (_tmp, _dirs, mut d) = started_with(Duration::from_secs(3600));
        // Quiet before: served at once, by a sync of its own.
        let first = ask(&mut d);
        wait_for(&d, first);
        assert_eq!(d.syncs(), 1);
        // Requests spread over 100 ms (each would have had a sync of its own): none is
        // served before the gap is over, and the stop serves them all with one sync,
        // without waiting for the gap.
        let mut last = first;
        for _ in 0..20 {
            last = ask(&mut d);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(d.completed(), first, "served within the gap");
        d.finish();
        assert_eq!(d.completed(), last, "the stop made every request durable");
        assert_eq!(d.syncs(), 2);
    }

    #[test]
    fn leftovers_are_removed_by_the_thread_before_it_stops_or_at_once_without_it() {
        let (tmp, dirs, mut d) = started();
        let names: Vec<String> = (0..50).map(|i| format!(".tmp-task-{i}")).collect();
        for n in &names {
            if let Err(e) = std::fs::write(tmp.path().join("In_Progress").join(n), "old") {
                panic!("write: {e}");
            }
        }
        let l = d.leftovers(Folder::InProgress);
        assert!(l.tx.is_some(), "handed to the thread");
        for n in &names {
            l.left(&dirs.progress, n.into());
        }
        drop(l);
        d.finish();
        for n in &names {
            assert!(!tmp.path().join("In_Progress").join(n).exists(), "{n} left");
        }
        // A folder the loop does not edit in, or no thread: removed at once.
        if let Err(e) = std::fs::write(tmp.path().join("Done/.tmp-task-x"), "old") {
            panic!("write: {e}");
        }
        Leftovers::now(Folder::Done).left(&dirs.done, ".tmp-task-x".into());
        assert!(!tmp.path().join("Done/.tmp-task-x").exists());
    }

    #[test]
    fn only_old_hidden_leftovers_are_stale() {
        let st = |kind, ctime_ns| Stat {
            kind,
            size: 3,
            mode: 0o644,
            dev: 1,
            ino: 2,
            nlink: 1,
            blocks: 8,
            mtime_ns: 0,
            ctime_ns,
        };
        let now = 1_000_000_000_000;
        let old = now - 61_000_000_000;
        let fresh = now - 59_000_000_000;
        assert!(stale_leftover(".tmp-task-5a1", &st(Kind::File, old), now));
        assert!(
            !stale_leftover(".tmp-task-5a1", &st(Kind::File, fresh), now),
            "an edit may still use it"
        );
        assert!(!stale_leftover(".tmp-task-5a1", &st(Kind::Dir, old), now));
        assert!(!stale_leftover("task.md", &st(Kind::File, old), now));
        assert!(!stale_leftover(".tmp-other", &st(Kind::File, old), now));
    }
}
