//! Finished tasks made durable off the loop's thread. A task's final state is written and
//! the file moved to `Done/` (or `Rejected/`, `Failed/`) atomically but without an fsync;
//! the loop then asks this thread for one `syncfs` of the vault's file system (where there
//! is none, an fsync of each folder that received a task). Requests that arrive while a
//! sync runs are served together by the next one, so a burst of finishes costs a few
//! syncs, and the loop never waits for the disk (10,000 no-op tasks took the loop 12.4 s
//! with its own `syncfs` per batch, 7.4 s with none; docs/BENCHMARKS.md). A clean stop waits for the last sync
//! ([`Durable::finish`]). What is lost to a power cut before a sync completes is a final
//! state not yet on disk: the task is found `running` in `In_Progress/` and retried.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use ai_employee_vault::layout::Folder;
use ai_employee_vault::nofollow::Dir;
use tracing::warn;

use super::Dirs;

pub(super) struct Durable {
    tx: Option<mpsc::Sender<(u64, Vec<Folder>)>>,
    thread: Option<JoinHandle<()>>,
    /// The last request handed over.
    asked: u64,
    /// The last request whose sync completed.
    done: Arc<AtomicU64>,
}

/// Told after each completed sync (a permit is kept when nobody waits).
pub(super) type Synced = Arc<tokio::sync::Notify>;

impl Durable {
    pub(super) fn start(dirs: &Dirs, synced: Synced) -> std::io::Result<Durable> {
        let mut own: Vec<(Folder, Dir)> = Vec::new();
        for f in [
            Folder::InProgress,
            Folder::Done,
            Folder::Rejected,
            Folder::Failed,
        ] {
            own.push((f, dirs.of(f).try_clone()?));
        }
        let root = dirs.root.try_clone()?;
        let (tx, rx) = mpsc::channel::<(u64, Vec<Folder>)>();
        let done = Arc::new(AtomicU64::new(0));
        let done2 = done.clone();
        let thread = std::thread::Builder::new()
            .name("vault-sync".into())
            .spawn(move || {
                while let Ok((mut upto, mut folders)) = rx.recv() {
                    while let Ok((n, more)) = rx.try_recv() {
                        upto = upto.max(n);
                        folders.extend(more);
                    }
                    sync(&root, &own, &folders);
                    done2.store(upto, Ordering::Release);
                    synced.notify_one();
                }
            })?;
        Ok(Durable {
            tx: Some(tx),
            thread: Some(thread),
            asked: 0,
            done,
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
        match tx.send((self.asked, folders)) {
            Ok(()) => Ok(self.asked),
            Err(mpsc::SendError((_, folders))) => {
                warn!("the sync thread is gone; syncing on the loop's thread");
                self.tx = None;
                Err(folders)
            }
        }
    }

    /// The last request made durable.
    pub(super) fn completed(&self) -> u64 {
        self.done.load(Ordering::Acquire)
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

    #[test]
    fn requests_complete_in_order_and_a_finished_thread_hands_work_back() {
        let tmp = match tempfile::tempdir() {
            Ok(t) => t,
            Err(e) => panic!("tempdir: {e}"),
        };
        let dirs = match Dirs::open(&Vault::new(tmp.path().to_path_buf())) {
            Ok(d) => d,
            Err(e) => panic!("vault: {e}"),
        };
        let mut d = match Durable::start(&dirs, Synced::default()) {
            Ok(d) => d,
            Err(e) => panic!("start: {e}"),
        };
        let mut last = 0;
        for _ in 0..20 {
            match d.request(vec![Folder::Done]) {
                Ok(n) => {
                    assert_eq!(n, last + 1);
                    last = n;
                }
                Err(_) => panic!("the thread took no request"),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while d.completed() < last && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(d.completed(), last, "every request served");
        d.finish();
        assert_eq!(d.request(vec![Folder::Failed]), Err(vec![Folder::Failed]));
    }
}
